"""The notebook progress view of a batch: a bar, one line of counts, and a Cancel button.

Imported only inside a kernel; the core never imports ipywidgets. As
for ``StreamView``, the engine thread is the one writer of these widgets, throttled, and at the end
the widgets are replaced through the same display id by a static line and closed, so a saved
notebook shows the outcome without widget state (kernel-and-widgets.md §9.5). ``batch`` returns at
once, so the kernel is idle and a click reaches ``on_click`` on every ipykernel version (§9.2).
"""

from __future__ import annotations

import html
import threading
import time
import uuid
from typing import TYPE_CHECKING

import ipywidgets as w

from ..batch_progress import BatchProgress, format_progress
from .controls import cancel_button
from .display import mark_shown, show_output, update_output

if TYPE_CHECKING:
    from ..batch_result import BatchResult

__all__ = ["BatchProgressView"]


class BatchProgressView:
    """``show()`` on the kernel thread; ``update(progress)`` is the batch's progress callback."""

    def __init__(self, result: BatchResult, *, interval: float = 0.25, min_gap: float = 0.04) -> None:
        self.result = result
        self.interval = interval
        self.min_gap = min_gap
        self.display_id = "ds-batch-" + uuid.uuid4().hex
        self._last = -float("inf")
        self._last_move = -float("inf")
        self._shown_settled = 0
        self._lock = threading.Lock()
        self._closed = False
        total = len(result)
        self.bar = w.IntProgress(value=0, min=0, max=max(total, 1), description="", bar_style="info")
        self.label = w.HTML(value=self._html(f"batch 0/{total} done"))
        self.cancel_button = cancel_button("Stop the batch; keep what finished", result.cancel)
        self.box = w.HBox([self.cancel_button, self.bar, self.label])

    @staticmethod
    def _html(text: str) -> str:
        return f"<span style='font-family:monospace;font-size:90%'>{html.escape(text)}</span>"

    def show(self) -> None:
        show_output(self.box, display_id=self.display_id)
        # As a cell's value (``%%deepseek --each`` returns the batch) it then prints nothing the first
        # time: the view's last line says what its repr would (issue 13: the line showed twice).
        mark_shown(self.result)

    def update(self, p: BatchProgress) -> None:
        """Show ``p``: at once when an item has ended since the last update (the batch calls this
        right after each item ends), else at most every ``interval`` s (tokens/s, ETA).

        Why the bar used to sit at 0/6 and jump to 6/6 (issue 13): only the time throttle decided,
        so items that ended within ``interval`` of each other, or of the last tick, were merged into
        one later update; on the offline stand-in every item's answer has the same length and
        speed, so all six ended inside one window and the first visible change was the last one.
        ``min_gap`` (between two moves of the bar) still bounds the traffic of a batch of thousands
        of quick items: a move held back by it is shown by the next tick, at most ``interval`` later.
        """
        now = time.monotonic()
        moved = p.settled != self._shown_settled and now - self._last_move >= self.min_gap
        if not p.finished and not moved and now - self._last < self.interval:
            return
        with self._lock:
            if self._closed:
                return
            self._last = now
            if p.settled != self._shown_settled:
                self._last_move = now
                self._shown_settled = p.settled
            self.bar.value = p.settled
            self.label.value = self._html(format_progress(p))
            if not p.finished:
                return
            self._closed = True
        self._finalize(p)

    def _finalize(self, p: BatchProgress) -> None:
        line = format_progress(p)
        color = "#c0392b" if p.failed else ("#b9770e" if p.cancelled else "#1e8449")
        bundle = {
            "text/plain": line,
            "text/html": f"<div style='font-family:monospace;font-size:90%;color:{color}'>{html.escape(line)}</div>",
        }
        update_output(bundle, self.display_id)
        for widget in (self.cancel_button, self.bar, self.label, self.box):
            widget.close()
