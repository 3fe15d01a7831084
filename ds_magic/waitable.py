"""``Completion``: the one "has it ended yet?" of a ``Response`` and a ``BatchResult``.

Work runs on the engine thread and is waited for from anywhere else: a plain thread (``wait()``),
another event loop (``await``), or a callback. Waiting is in 100 ms slices both ways, so that a
KeyboardInterrupt (Ctrl-C, ■) is seen promptly in a blocking wait and an interrupt that ipykernel
queues with a plain ``call_soon`` does not sit behind unrelated I/O in an ``await``
(kernel-and-widgets.md §6, §9.2). Either way an interrupted wait cancels the work it waited for.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Completion"]

T = TypeVar("T")

_log = logging.getLogger("ds_magic")
_SLICE = 0.1
#: What every ended Completion waits on: its own Event (a Condition, a lock and a deque, ~900 bytes)
#: is let go once set, since Out[] keeps ended Responses for the whole session (benchmarks/soak.py).
_ENDED = threading.Event()
_ENDED.set()


class Completion(Generic[T]):
    """A one-shot end signal for ``owner``, with done-callbacks; ``on_interrupt`` cancels the work."""

    __slots__ = ("_owner", "_on_interrupt", "_event", "_done", "_lock", "_callbacks")

    def __init__(self, owner: T, on_interrupt: Callable[[], None]) -> None:
        self._owner = owner
        self._on_interrupt = on_interrupt
        # Made when a thread first waits: most Responses are never waited on by a thread (a batch's,
        # a cell's awaited one), and an Event is a Condition, a lock and a deque (issue 17: ~2% of a
        # batch's engine time, and memory per open stream).
        self._event: threading.Event | None = None
        self._done = False
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[T], None]] = []

    @property
    def done(self) -> bool:
        return self._done

    def set(self) -> bool:
        """Mark the end and run the callbacks (once; returns False if it had already ended)."""
        with self._lock:
            if self._done:
                return False
            self._done = True
            if self._event is not None:
                self._event.set()  # wakes whoever waits on it now; later waits see _ENDED
            self._event = _ENDED
            callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            try:
                cb(self._owner)
            except Exception:  # a broken callback must not take the engine down with it
                _log.exception("ds_magic: a done-callback failed")
        return True

    def add_done_callback(self, fn: Callable[[T], None]) -> None:
        """Call ``fn(owner)`` when it ends; at once, on this thread, if it already has."""
        with self._lock:
            if not self._done:
                self._callbacks.append(fn)
                return
        fn(self._owner)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the end or ``timeout``; True if it ended. Ctrl-C cancels the work and re-raises."""
        if self._done:
            return True
        with self._lock:
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not event.wait(_SLICE):
                if deadline is not None and time.monotonic() >= deadline:
                    return False
        except KeyboardInterrupt:
            self._on_interrupt()
            raise
        return True

    async def wait_async(self) -> None:
        """Wait on the caller's loop without blocking it; a cancelled waiter cancels the work."""
        if self._done:
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def set_result() -> None:
            if not fut.done():
                fut.set_result(None)

        def wake(_: T) -> None:
            try:
                loop.call_soon_threadsafe(set_result)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass

        self.add_done_callback(wake)
        try:
            while not fut.done():
                await asyncio.wait({fut}, timeout=_SLICE)
        except asyncio.CancelledError:
            self._on_interrupt()
            raise
