"""Listener delivery off the engine thread: a slow callback never makes the engine fall behind the socket.

``Response.add_listener(fn)`` callbacks (the notebook view, user hooks) used to run inside the engine's
read loop; one that blocks (a display that waits, a callback that sleeps) would stop the engine from
reading the socket, so TCP backs up, the server stalls, and every other stream on the engine stalls too.
Instead each listener gets a mailbox in which consecutive deltas of the same kind are merged (like a
``Response`` reader's queue), and one shared daemon thread delivers the mailboxes. The engine only
appends to a list; a slow listener gets fewer, larger events, and its backlog stays a handful of events.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence

from .types import AnswerDelta, Event, ReasoningDelta

__all__ = ["Mailbox", "merge_append", "pump"]

_log = logging.getLogger("ds_magic")
_MERGEABLE = (AnswerDelta, ReasoningDelta)


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
