"""Listener delivery off the engine thread: a slow callback never makes the engine fall behind the socket.

``Response.add_listener(fn)`` callbacks (the notebook view, user hooks) used to run inside the engine's
read loop; one that blocks (a display that waits, a callback that sleeps) would stop the engine from
reading the socket, so TCP backs up, the server stalls, and every other stream on the engine stalls too.
Instead each listener gets a mailbox in which consecutive deltas of the same kind are merged (like a
``Response`` reader's queue), and one shared daemon thread delivers the mailboxes. The engine only
appends to a list; a slow listener gets fewer, larger events, and its backlog stays a handful of events.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

from .types import AnswerDelta, Event, Finish, ReasoningDelta

__all__ = ["WAKE_EVERY", "Fanout", "Mailbox", "Reader", "merge_append", "pump"]

_log = logging.getLogger("ds_magic")
_MERGEABLE = (AnswerDelta, ReasoningDelta)
_SLICE = 0.1
#: The most often a waiting reader is woken while events stream (the first ones and the end: at once):
#: the notebook view's own throttle tick (settings.throttle_ms, 100 ms), so it loses nothing by it.
WAKE_EVERY = 0.1


def merge_append(pending: list[Event], ev: Event) -> None:
    """Append ``ev``, merging it into the last event when both are deltas of the same kind: a slow
    consumer then gets fewer, larger pieces instead of a growing backlog."""
    if pending and isinstance(ev, _MERGEABLE):
        last = pending[-1]
        if type(last) is type(ev):
            pending[-1] = type(ev)(last.text + ev.text)
            return
    pending.append(ev)


class Mailbox:
    """One listener's pending events, merged while it is busy."""

    __slots__ = ("fn", "pending", "queued", "max_pending")

    def __init__(self, fn: Callable[[Event], None]) -> None:
        self.fn = fn
        self.pending: list[Event] = []
        self.queued = False
        #: The longest the pending list has been (what backpressure costs this listener).
        self.max_pending = 0

    def put(self, events: Sequence[Event]) -> bool:
        """Add events (merging deltas); True if the mailbox must be scheduled. Caller holds the pump lock."""
        p = self.pending
        for ev in events:
            merge_append(p, ev)
        if len(p) > self.max_pending:
            self.max_pending = len(p)
        if self.queued or not p:
            return False
        self.queued = True
        return True


class Reader:
    """One iterator's pending events (``for ev in response`` / ``async for``), merged while it is not
    looking. Owned by a ``Response``: every method is called with that response's lock held.

    A reader that waits is woken at once for the first events and for the end, and otherwise at most
    once per ``WAKE_EVERY`` (issue 17: one cross-thread wake-up per event was 230 µs/event for a lone
    answer); a reader that comes asking finds what is pending without any wake-up at all.
    """

    __slots__ = (
        "pending",
        "loop",
        "wake",
        "woken",
        "max_pending",
        "sleeping",
        "last_wake",
        "wake_at",
    )

    def __init__(self, snapshot: list[Event], loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.pending: list[Event] = snapshot
        #: The longest the pending list has been: what a slow reader costs (benchmarks/backpressure.py).
        self.max_pending = len(snapshot)
        self.loop = loop
        self.wake: asyncio.Event | None = asyncio.Event() if loop is not None else None
        self.woken = False
        self.sleeping = False  # blocked (or awaiting) on an empty queue
        self.last_wake = -WAKE_EVERY
        self.wake_at: float | None = None  # when a wake-up scheduled on the engine loop is due (monotonic)

    def push(self, ev: Event) -> None:
        p = self.pending
        merge_append(p, ev)
        if len(p) > self.max_pending:
            self.max_pending = len(p)

    def wake_now(self, cond: threading.Condition, now: float) -> None:
        self.sleeping = False
        self.last_wake = now
        if self.loop is None:
            cond.notify_all()
        elif not self.woken:  # one wake-up callback in flight at a time
            self.woken = True
            try:
                self.loop.call_soon_threadsafe(self._set)
            except RuntimeError:  # the reader's loop is closed: nobody is listening any more
                pass

    def _set(self) -> None:
        self.woken = False
        assert self.wake is not None
        self.wake.set()

    def events(self, lock: threading.Condition) -> Iterator[Event]:
        """Blocking: the queued events, a batch at a time, up to and including the ``Finish``."""
        while True:
            with lock:
                while not self.pending:
                    self.sleeping = True
                    lock.wait(_SLICE)  # short slices, so that Ctrl-C is seen (kernel-and-widgets.md §9.2)
                self.sleeping = False
                batch, self.pending = self.pending, []
            for ev in batch:
                yield ev
                if isinstance(ev, Finish):
                    return

    async def aevents(self, lock: threading.Condition) -> AsyncIterator[Event]:
        """The same on the reader's own loop, woken through ``call_soon_threadsafe`` instead of polling."""
        assert self.wake is not None
        while True:
            with lock:
                batch, self.pending = self.pending, []
                self.sleeping = not batch
                if not batch:
                    self.wake.clear()
            if not batch:
                await self.wake.wait()
                continue
            for ev in batch:
                yield ev
                if isinstance(ev, Finish):
                    return


class Fanout:
    """Who reads one response: its iterators' queues and its listeners' mailboxes.

    The response calls ``push``/``end`` with its own lock (``cond``) held and ``deliver`` after
    releasing it.
    """

    __slots__ = ("cond", "readers", "listeners", "reader_peak")

    def __init__(self, cond: threading.Condition) -> None:
        self.cond = cond
        self.readers: list[Reader] = []
        self.listeners: tuple[Mailbox, ...] = ()
        self.reader_peak = 0

    def attach(self, snapshot: list[Event], loop: asyncio.AbstractEventLoop | None) -> Reader:
        reader = Reader(snapshot, loop)
        self.readers.append(reader)
        return reader

    def detach(self, reader: Reader) -> None:
        if reader in self.readers:
            self.readers.remove(reader)
            self.reader_peak = max(self.reader_peak, reader.max_pending)

    def push(self, events: Sequence[Event]) -> None:
        """Queue for every reader; wake a waiting one now, or at its next tick (on the engine loop)."""
        readers = self.readers
        if not readers:
            return
        now = time.monotonic()
        for r in readers:
            for ev in events:
                r.push(ev)
            if not r.sleeping or r.wake_at is not None:
                continue  # it takes them when it next asks, or a wake-up is already on its way
            due = r.last_wake + WAKE_EVERY - now
            if due <= 0:
                r.wake_now(self.cond, now)
                continue
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not on the engine loop (a late flush from another thread)
                r.wake_now(self.cond, now)
                continue
            r.wake_at = now + due
            loop.call_later(due, self._wake_later, r)

    def next_wake(self) -> float | None:
        """Seconds until the first wake-up already scheduled for a waiting reader, or None."""
        due = [r.wake_at for r in self.readers if r.wake_at is not None]
        return min(due) - time.monotonic() if due else None

    def _wake_later(self, reader: Reader) -> None:
        with self.cond:
            reader.wake_at = None
            if reader.sleeping and reader.pending:
                reader.wake_now(self.cond, time.monotonic())

    def end(self, fin: Event) -> None:
        now = time.monotonic()
        for r in self.readers:
            r.pending.append(fin)
            r.wake_now(self.cond, now)  # the end, at once

    def deliver(self, events: Sequence[Event]) -> None:
        if self.listeners:
            pump.deliver(self.listeners, events)  # appends only: listeners run on their own thread

    def peaks(self) -> tuple[int, int]:
        readers = max([self.reader_peak, *(r.max_pending for r in self.readers)])
        return readers, max([0, *(b.max_pending for b in self.listeners)])


class _Pump:
    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.ready: deque[Mailbox] = deque()
        self.thread: threading.Thread | None = None

    def deliver(self, boxes: Sequence[Mailbox], events: Sequence[Event]) -> None:
        """Called by the engine: O(events) list appends, never a callback."""
        with self.cond:
            woke = False
            for box in boxes:
                if box.put(events):
                    self.ready.append(box)
                    woke = True
            if woke:
                if self.thread is None or not self.thread.is_alive():
                    self.thread = threading.Thread(target=self._run, name="ds-listeners", daemon=True)
                    self.thread.start()
                self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.ready:
                    self.cond.wait()
                box = self.ready.popleft()
                events, box.pending = box.pending, []
                box.queued = False
            for ev in events:
                try:
                    box.fn(ev)
                except Exception:
                    _log.exception("ds_magic: a Response listener failed")


pump = _Pump()
