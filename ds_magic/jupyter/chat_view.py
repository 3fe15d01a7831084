"""What the page shows of one ``Chat``: the writes to its widget and its display bundles (chat.py
decides what happens; this module only draws it).

Once shown, only the engine thread calls these (kernel-and-widgets.md §5, one writer per widget);
``hold_sync`` sends the changed values of one update in one comm message (§9.5).
"""

from __future__ import annotations

import html
import uuid
from typing import Any

from ..response import Response
from .chat_widget import ChatWidget
from .display import show_output, update_output
from .live import live_line, status_text
from .render import answer_html, escape_pre

__all__ = ["ChatView", "WIDGET_MIME"]

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_FROZEN_NOTE = "Live chat: later turns are in the notebook's widget state; chat.close() writes them here."


class ChatView:
    """The page side of one chat: its widget, its display id, and what was last sent of the live answer."""

    def __init__(self, widget: ChatWidget, *, show_reasoning: bool) -> None:
        self.widget = widget
        self.show_reasoning = show_reasoning
        self.display_id = "ds-chat-" + uuid.uuid4().hex
        self.shown = False
        self._sent_text = self._sent_reasoning = 0

    def show(self, transcript: tuple[str, str], *, closed: bool) -> None:
        """Display the widget with the transcript as its static fallback (only the transcript once closed)."""
        html_text, plain = transcript
        if closed:
            show_output({"text/html": html_text, "text/plain": plain}, raw=True)
            return
        shown = self.widget._repr_mimebundle_()
        assert shown is not None  # None only for a widget without a view, which ChatWidget has
        data, _meta = shown
        # Readers without widgets (GitHub, VS Code's saved file) see this, frozen at display time.
        bundle = {
            WIDGET_MIME: data[WIDGET_MIME],
            "text/html": html_text
            + f"<div style='color:#888;font-size:0.85em'>{html.escape(_FROZEN_NOTE)}</div>",
            "text/plain": f"{plain}\n\n{_FROZEN_NOTE}",
        }
        show_output(bundle, raw=True, display_id=self.display_id)
        self.shown = True

    def start_answer(
        self, entries: list[dict[str, Any]], live_id: str, model: str, queue: list[str], status: str
    ) -> None:
        """An answer starts streaming: its prompt joins the entries, the live area is empty."""
        self._sent_text = self._sent_reasoning = 0
        with self.widget.hold_sync():
            self.widget.entries = entries
            self.widget.live = {"id": live_id, "model": model}
            self.widget.live_html = ""
            self.widget.live_reasoning = ""
            self.widget.live_info = "waiting for the first token…"
            self.widget.busy = True
            self.widget.queue = queue
            self.widget.status = status

    def update_answer(self, resp: Response) -> None:
        """The live answer as it is now (LiveUpdate's render callback); only what changed is sent."""
        text = resp.text_so_far
        reasoning = resp.reasoning if self.show_reasoning else ""
        info = " · ".join(part for part in (status_text(resp), live_line(resp)) if part)
        with self.widget.hold_sync():
            if len(text) != self._sent_text:
                self._sent_text = len(text)
                self.widget.live_html = answer_html(text, "markdown") if text else ""
            if reasoning and len(reasoning) != self._sent_reasoning:
                self._sent_reasoning = len(reasoning)
                self.widget.live_reasoning = escape_pre(reasoning)
            self.widget.live_info = info

    def show_queue(self, queue: list[str], status: str) -> None:
        with self.widget.hold_sync():
            self.widget.queue = queue
            self.widget.status = status

    def settle(self, entries: list[dict[str, Any]], queue: list[str], status: str) -> None:
        """The finished state: these entries, no live answer."""
        with self.widget.hold_sync():
            self.widget.entries = entries
            self.widget.live = {}
            self.widget.live_html = self.widget.live_reasoning = self.widget.live_info = ""
            self.widget.busy = bool(queue)
            self.widget.queue = queue
            self.widget.status = status

    def close(self, transcript: tuple[str, str]) -> None:
        """Replace the widget's output by the static transcript, and close the widget's comm."""
        if self.shown:
            html_text, plain = transcript
            bundle = {"text/html": html_text, "text/plain": plain}
            update_output(bundle, self.display_id)
        self.widget.close()
