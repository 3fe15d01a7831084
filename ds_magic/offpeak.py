"""DeepSeek's peak and off-peak windows as intervals of time, and the gate of a ``when="off-peak"`` run.

The windows are read from the pricing table's ``PEAK_HOURS`` (pricing.py; ``set_peak_hours``
replaces them for a process), never written here: a change in DeepSeek's rules is a data change. Off-peak is priced at half the peak rate
(deepseek-api.md §5.1); which window a request is billed in is not documented, so a request is
taken to be priced by the window it *starts* in (§5.1 "[inf: assume start]").

::

    ds_magic.batch("Label: {item}", rows, run="labels-v2", when="off-peak")    # waits, then runs
    ds_magic.batch(..., when=OffPeak(clock=my_clock, finish=True))           # an injected clock

:class:`OffPeak` is the gate the batch schedule asks before it starts each item: in a peak window
it says no, and the run waits (its progress shows the countdown to the next off-peak window, and
Cancel ends the wait). If a window ends mid-run the run pauses until the next one, unless
``finish=True``: then, once started, it goes on at peak prices.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .pricing import get_peak_hours, peak_hours_at

__all__ = ["Clock", "Window", "OffPeak", "window_at", "next_offpeak", "system_clock"]

#: What the gate reads the time from: a callable giving an aware datetime (tests inject their own).
Clock = Callable[[], datetime]

# How far the windows are searched each way. The longest stretch without a change is a weekend
# (Friday 10:00 to Monday 01:00 UTC); a table with no peak at all is covered by the cap.
_SEARCH_DAYS = 8


def system_clock() -> datetime:
    """Now, in UTC."""
    return datetime.now(timezone.utc)


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


@dataclass(frozen=True)
class Window:
    """One stretch of peak or off-peak time: ``[start, end)`` in UTC.

    ``start`` / ``end`` are None where no change lies within the searched week (before peak pricing
    began, or in a table without peak hours).
    """

    peak: bool
    start: datetime | None
    end: datetime | None

    @property
    def name(self) -> str:
        return "peak" if self.peak else "off-peak"

    @property
    def label(self) -> str:
        """``"off-peak 2026-12-01 10:00–2026-12-02 01:00 UTC"``: what a record says it was priced in."""

        def fmt(t: datetime | None) -> str:
            return t.strftime("%Y-%m-%d %H:%M") if t is not None else "…"

        return f"{self.name} {fmt(self.start)}–{fmt(self.end)} UTC"


def _peak_intervals(around: datetime) -> list[tuple[datetime, datetime]]:
    """The peak intervals within ``_SEARCH_DAYS`` of ``around``, sorted and merged."""
    day0 = around.replace(hour=0, minute=0, second=0, microsecond=0)
    found: list[tuple[datetime, datetime]] = []
    for d in range(-_SEARCH_DAYS, _SEARCH_DAYS + 1):
        day = day0 + timedelta(days=d)
        for rule in get_peak_hours():
            if day.weekday() not in rule.weekdays:
                continue
            for start_min, end_min in rule.windows:
                start = day + timedelta(minutes=start_min)
                if peak_hours_at(start) is rule:  # only while this rule is the one in effect
                    found.append((start, day + timedelta(minutes=end_min)))
    found.sort()
    merged: list[tuple[datetime, datetime]] = []
    for start, end in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


# The last window found, with the rules it came from: a run asks for the window of every item, and
# almost always gets the same one (the search costs about 0.3 ms).
_last: tuple[object, Window] | None = None


def window_at(when: datetime) -> Window:
    """The peak or off-peak window that ``when`` falls in (naive datetimes are taken as UTC)."""
    global _last
    t = _utc(when)
    rules = get_peak_hours()
    last = _last
    if last is not None and last[0] is rules:
        w = last[1]
        if w.start is not None and w.end is not None and w.start <= t < w.end:
            return w
    w = _search(t)
    _last = (rules, w)
    return w


def _search(t: datetime) -> Window:
    before: datetime | None = None
    for start, end in _peak_intervals(t):
        if start <= t < end:
            return Window(True, start, end)
        if end <= t:
            before = end
        else:  # the first peak after t ends this off-peak stretch
            return Window(False, before, start)
    return Window(False, before, None)


def next_offpeak(when: datetime) -> datetime:
    """``when`` itself if it is off-peak, else the end of its peak window."""
    w = window_at(when)
    if not w.peak or w.end is None:
        return _utc(when)
    return w.end


class OffPeak:
    """The gate of a ``when="off-peak"`` run: items start only in off-peak windows.

    ``clock`` gives the time (default: the system's, in UTC). ``finish=True``: once the run has
    started, a peak window does not pause it. :meth:`may_start` is called on the engine loop
    before each item starts; :attr:`waiting_until` and :meth:`seconds_left` are for progress
    displays, from any thread.
    """

    def __init__(self, clock: Clock | None = None, *, finish: bool = False) -> None:
        self.clock: Clock = clock if clock is not None else system_clock
        self.finish = finish
        self.started = False
        #: The start of the off-peak window the run waits for; None while items may start.
        self.waiting_until: datetime | None = None
        #: The window each item (by the caller's key) was last started in: what it is priced in.
        self.started_in: dict[int, Window] = {}
        self.priced_at: dict[int, datetime] = {}
        self.pauses = 0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return _utc(self.clock())

    def may_start(self, key: int) -> bool:
        """May item ``key`` start now? If so, note the window (and time) it starts in."""
        now = self.now()
        w = window_at(now)
        with self._lock:
            if w.peak and not (self.finish and self.started):
                if self.waiting_until is None and self.started:
                    self.pauses += 1  # a window ended mid-run
                self.waiting_until = w.end
                return False
            self.waiting_until = None
            self.started = True
            self.started_in[key] = w
            self.priced_at[key] = now
        return True

    def seconds_left(self) -> float | None:
        """Seconds to the off-peak window the run waits for; None when it is not waiting."""
        until = self.waiting_until
        if until is None:
            return None
        return max((until - self.now()).total_seconds(), 0.0)

    def take(self, key: int) -> tuple[Window | None, datetime | None]:
        """The window and time item ``key`` started in, forgotten here (so memory stays bounded)."""
        with self._lock:
            return self.started_in.pop(key, None), self.priced_at.pop(key, None)

    def __repr__(self) -> str:
        state = f"waiting until {self.waiting_until:%Y-%m-%d %H:%M} UTC" if self.waiting_until else "open"
        return f"<OffPeak {state}{', finish' if self.finish else ''}>"
