"""The live view of one ``Response`` in a notebook: a view only, no HTTP or history logic.

While the answer streams, ipywidgets show the status line, a collapsible thinking section, the
answer and a Cancel button. Updates are written by the listener thread (pump.py; the one writer of
these widgets, so a slow frontend never holds up the engine), throttled as live.py says
(kernel-and-widgets.md §9.5). At the end the widgets are replaced, through the
same display id, by a static output (safe HTML + text/plain) and closed, so a saved notebook shows
the answer without widget state and long sessions do not pile up comms.

Model output is untrusted: it only ever reaches the page escaped, or as Markdown rendered with raw
HTML disabled and links/images neutralised (render.py; kernel-and-widgets.md §8).
"""

from __future__ import annotations

import html
import threading
import uuid
from typing import Any

import ipywidgets as w

from ..response import Response
from .controls import cancel_button
from .display import show_output, update_output
from .live import LiveUpdate, footer_text, live_line, status_text
from .render import answer_html, escape_pre

__all__ = ["StreamView", "close_tree"]


class StreamView:
    """Widgets for one streaming answer; ``show()`` on the kernel thread, then the engine drives it."""

    def __init__(
        self,
        resp: Response,
        *,
        fmt: str = "markdown",
        show_reasoning: bool = True,
        throttle_ms: int = 100,
        cancel_hint: str = "",
    ) -> None:
        self.resp = resp
        self.fmt = fmt
        self.show_reasoning = show_reasoning
        self.display_id = "ds-" + uuid.uuid4().hex
        self._live = LiveUpdate(resp, self._update, throttle_ms=throttle_ms, on_status=self._show_status)
        self._lock = threading.Lock()
        self._finalized = threading.Event()
        self._closed = False
        self._sent_text = self._sent_reasoning = 0
        self._sent_status = ""
        self.status = w.HTML(value=self._status_html("waiting for the first token…"))
        self.reasoning = w.HTML(value="")
        self.reasoning_box = w.Accordion(children=[self.reasoning], selected_index=None)
        self.reasoning_box.set_title(0, "Thinking")
        self.reasoning_box.layout.display = "none"
        self.answer = w.HTML(value="")
        self.cancel_button = cancel_button("Stop this request (and its billing)", resp.cancel)
        self.hint = w.HTML(
            value=f"<small style='color:#888'>{html.escape(cancel_hint)}</small>" if cancel_hint else ""
        )
        self.footer = w.HTML(value="")
        self.box = w.VBox(
            [
                w.HBox([self.cancel_button, self.status, self.hint]),
                self.reasoning_box,
                self.answer,
                self.footer,
            ]
        )

    @staticmethod
    def _status_html(text: str) -> str:
        return f"<span style='color:#666;font-size:0.9em;padding-left:0.5em'>{html.escape(text)}</span>"

    def show(self) -> None:
        show_output(self.box, display_id=self.display_id)
        self._live.start()
        # A status that came before the view was attached (a retry wait, a resume) is shown now.
        message = self.resp.status_message
        if message and not self.resp.done:
            self._show_status(message)
        self.resp.add_done_callback(lambda _r: self.finalize())

    # ---------------------------------------------------------------- listener thread (pump.py)
    def _show_status(self, message: str) -> None:
        with self._lock:
            if not self._closed:  # listeners run on their own thread: the view may be final already
                self.status.value = self._status_html(message)

    def _update(self) -> None:
        with self._lock:
            if self._closed:
                return
            resp = self.resp
            # Only changed values are sent: each assignment is one comm message (iopub budget).
            reasoning = resp.reasoning
            if reasoning and self.show_reasoning and len(reasoning) != self._sent_reasoning:
                self._sent_reasoning = len(reasoning)
                if self.reasoning_box.layout.display == "none":
                    self.reasoning_box.layout.display = None
                self.reasoning.value = escape_pre(reasoning)
            text = resp.text_so_far
            if text and len(text) != self._sent_text:
                self._sent_text = len(text)
                line = live_line(resp)
                # The live footer rides in the same message as the answer.
                self.answer.value = answer_html(text, self.fmt) + (self._status_html(line) if line else "")
            status = status_text(resp)
            if status != self._sent_status:
                self._sent_status = status
                self.status.value = self._status_html(status)

    # ---------------------------------------------------------------- end
    def static_bundle(self) -> dict[str, str]:
        resp = self.resp
        text = resp.text_so_far
        reasoning = resp.reasoning
        foot = footer_text(resp)
        parts = []
        if reasoning and self.show_reasoning:
            parts.append(
                "<details><summary style='color:#666'>Thinking</summary>"
                f"<div style='color:#666'>{escape_pre(reasoning)}</div></details>"
            )
        if text:
            parts.append(answer_html(text, self.fmt))
        if resp.status != "ok" or not text:
            parts.append(
                f"<div style='color:{'#b00' if resp.status == 'error' else '#a60'}'>{html.escape(status_text(resp))}</div>"
            )
        parts.append(f"<div style='color:#888;font-size:0.85em;margin-top:0.3em'>{html.escape(foot)}</div>")
        plain = text
        if resp.status != "ok":
            plain += f"\n[{status_text(resp)}]"
        plain += f"\n— {foot}"
        return {"text/html": "<div class='ds-magic-answer'>" + "".join(parts) + "</div>", "text/plain": plain}

    def finalize(self) -> None:
        """Replace the widgets by the static output and close them (idempotent, any thread)."""
        with self._lock:
            if self._finalized.is_set():
                return
            self._finalized.set()
            self._closed = True
        self._live.stop()
        update_output(self.static_bundle(), self.display_id)
        close_tree(self.box)

    def wait_finalized(self, timeout: float = 5.0) -> bool:
        return self._finalized.wait(timeout)


def close_tree(widget: Any) -> None:
    """Close a widget and every widget it holds (children, layout, style): each one is a comm."""
    seen: set[int] = set()
    stack = [widget]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        for name in item.keys:
            value = getattr(item, name, None)
            if isinstance(value, w.Widget):
                stack.append(value)
            elif isinstance(value, (list, tuple)):
                stack.extend(v for v in value if isinstance(v, w.Widget))
        try:
            item.close()
        except Exception:
            pass
