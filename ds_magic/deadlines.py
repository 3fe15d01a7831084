"""Deadlines of one request: ``Timeout`` (what the user sets) and ``Watchdog`` (what enforces it).

HTTP read timeouts cannot express these: DeepSeek sends ``: keep-alive`` comments while a request is
queued (deepseek-api.md §2.8), which would reset a read timeout forever. The watchdog counts data
events only, and cancels the request task when a deadline passes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

__all__ = ["Timeout", "Watchdog"]


@dataclass(frozen=True)
class Timeout:
    """Deadlines in seconds (None = no limit).

    - ``connect``: opening the connection.
    - ``first_token``: from sending the request to the first data event. DeepSeek sends
      ``: keep-alive`` comments while a request is queued; they do not count (deepseek-api.md §2.8).
    - ``idle``: the longest gap between two data events once the answer has started; again
      comments do not count, so a stream that only sends keep-alives is caught.
    - ``total``: the whole request, retries included.
    """

    connect: float | None = 10.0
    first_token: float | None = 300.0
    idle: float | None = 120.0
    total: float | None = None

    @classmethod
    def coerce(cls, value: Timeout | float | int | None) -> Timeout:
        if value is None:
            return cls()
        if isinstance(value, Timeout):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return cls(connect=float(value), first_token=float(value), idle=float(value))
        raise ValueError(
            f"timeout must be a positive number of seconds or ds_magic.Timeout(...), got {value!r}"
        )


class Watchdog:
    """Cancels the request task when a deadline passes; progress is counted in data events only."""

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any], timeout: Timeout) -> None:
        self.loop = loop
        self.task = task
        self.timeout = timeout
        self.start = loop.time()
        self.attempt_start = self.start
        self.last_progress: float | None = None
        self.fired: str | None = None
        self.handle: asyncio.TimerHandle | None = None
        self.armed = False

    def begin_attempt(self) -> None:
        self.attempt_start = self.loop.time()
        self.last_progress = None
        self.armed = True
        self._schedule()

    def pause(self) -> None:
        """No deadline but ``total`` applies while we sleep between attempts."""
        self.armed = False
        self._schedule()

    def note_progress(self) -> None:
        """A data event arrived. O(1): the timer re-reads ``last_progress`` when it fires; only the
        first one re-arms it, from the first-token deadline to the (usually shorter) idle one."""
        first = self.last_progress is None
        self.last_progress = self.loop.time()
        if first:
            self._schedule()

    def _deadline(self) -> tuple[float, str] | None:
        t = self.timeout
        cands: list[tuple[float, str]] = []
        if t.total is not None:
            cands.append((self.start + t.total, "total"))
        if self.armed:
            if self.last_progress is None:
                if t.first_token is not None:
                    cands.append((self.attempt_start + t.first_token, "first_token"))
            elif t.idle is not None:
                cands.append((self.last_progress + t.idle, "idle"))
        return min(cands) if cands else None

    def _schedule(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        d = self._deadline()
        if d is not None:
            self.handle = self.loop.call_at(d[0], self._check)

    def _check(self) -> None:
        self.handle = None
        d = self._deadline()
        if d is None:
            return
        when, kind = d
        if self.loop.time() >= when - 1e-3:
            self.fired = kind
            self.task.cancel()
        else:
            self.handle = self.loop.call_at(when, self._check)

    def seconds(self, kind: str) -> float | None:
        value: float | None = getattr(self.timeout, kind, None)
        return value

    def close(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
