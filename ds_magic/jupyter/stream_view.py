"""The live view of one ``Response`` in a notebook: a view only, no HTTP or history logic.

While the answer streams, one anywidget model (stream_widget.py) shows the thinking, the answer,
notes, a status line and Cancel. Updates are written by the listener thread (pump.py; a slow frontend
never holds up the engine), throttled as live.py says (kernel-and-widgets.md §9.5), and each one is
one custom message that only carries what is new (issue 13, "Live traffic is O(n)"):

* the Markdown blocks completed since the last update (blocks.py), rendered once, safely, and sent
  once; the open tail block as a diff against the tail sent before; when the tail block is complete
  it becomes a block as a diff against that tail, so no text travels twice;
* the thinking and a plain answer as appended text; the status line when it changed.

At the end the widget is replaced, through the same display id, by a static output built from the
same blocks in the same frame (so nothing moves), its state is emptied (a notebook saved by
nbclient keeps closed widgets' state too) and it is closed.

Model output is untrusted: it only ever reaches the page escaped, as text, or as Markdown rendered
with raw HTML disabled and links/images neutralised (render.py; kernel-and-widgets.md §8).
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from ..response import Response
from .blocks import BlockCutter, tail_diff
from .display import show_output, update_output
from .fallback import FallbackSchedule
from .live import LiveUpdate, footer_text, live_line, prompt_estimate, status_text
from .render import block_html
from .stream_widget import StreamWidget, frame_html, pre_html

__all__ = ["StreamView"]

#: Seconds between two sends of the live counts (first token · tokens · tok/s).
_LINE_EVERY = 1.0


class StreamView:
    """One streaming answer; ``show()`` on the kernel thread, then the engine drives it.

    The API other views build on (tool calls, for one): :meth:`add_note` adds a line of plain text
    under the answer, in the live view and in the static output.
    """

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
        self.fmt = "text" if fmt != "markdown" else "markdown"
        self.show_reasoning = show_reasoning
        self.display_id = "ds-" + uuid.uuid4().hex
        # A flat interval: updates are diffs now, so they need not thin out as the answer grows.
        self._live = LiveUpdate(
            resp, self._update, throttle_ms=throttle_ms, on_status=self._show_status, grow=False
        )
        self._lock = threading.Lock()
        self._finalized = threading.Event()
        self._closed = False
        self._n = 0  # messages sent (the page checks it follows on)
        self._cutter = BlockCutter()
        self._blocks: list[str] = []  # rendered complete blocks
        self._tail = ""  # the tail HTML the page has
        self._sent_text = 0  # characters of the answer sent (fmt "text")
        self._sent_reasoning = 0
        self._status = ""
        self._status_at = -1.0  # when the live "N tokens · tok/s" line was last sent
        self._notes: list[str] = []
        self._fallback = FallbackSchedule()
        self.widget = StreamWidget(
            fmt=self.fmt, hint=cancel_hint, plain=self._plain("waiting for the first token…")
        )
        self.widget.on_msg(self._on_message)
        # Now, while the request still holds the whole history: a stopped answer's cost estimate.
        self._prompt_tokens = prompt_estimate(resp)

    def show(self) -> None:
        show_output(self.widget, display_id=self.display_id)
        self._live.start()
        # A status that came before the view was attached (a retry wait, a resume) is shown now.
        message = self.resp.status_message
        if message and not self.resp.done:
            self._show_status(message)
        self.resp.add_done_callback(lambda _r: self.finalize())

    def add_note(self, text: str) -> None:
        """Add a line of plain text under the answer (a tool call, a section); any thread."""
        with self._lock:
            self._notes.append(text)
            if not self._closed:
                self._send({"o": [text]})

    # ---------------------------------------------------------------- kernel → page
    def _send(self, msg: dict[str, Any]) -> None:
        """Send one message (caller holds the lock)."""
        self._n += 1
        msg["n"] = self._n
        self.widget.send(msg)

    def _plain(self, status: str) -> str:
        return self.resp.text_so_far or status

    def _show_status(self, message: str) -> None:
        with self._lock:
            if not self._closed and message != self._status:  # the view may be final already
                self._status = message
                self._send({"s": message})

    def _take_answer(self, msg: dict[str, Any]) -> None:
        """Put what is new in the answer into ``msg`` (caller holds the lock)."""
        text = self.resp.text_so_far
        if self.fmt == "text":
            if len(text) > self._sent_text:
                msg["x"] = text[self._sent_text :]
                self._sent_text = len(text)
            return
        new = [block_html(block) for block in self._cutter.cut(text)]
        if new:
            # The page has most of the first one already, as its tail: send the rest of it (no block
            # travels twice), and the page starts a new tail.
            self._blocks.extend(new)
            msg["p"], msg["b"] = tail_diff(self._tail, "".join(new))
            self._tail = ""
        tail = block_html(text[self._cutter.done :])
        if tail != self._tail:
            keep, suffix = tail_diff(self._tail, tail)
            msg["k"], msg["t"] = keep, suffix
            self._tail = tail

    def _update(self) -> None:
        with self._lock:
            if self._closed:
                return
            msg: dict[str, Any] = {}
            resp = self.resp
            reasoning = resp.reasoning
            if self.show_reasoning and len(reasoning) > self._sent_reasoning:
                msg["r"] = reasoning[self._sent_reasoning :]
                self._sent_reasoning = len(reasoning)
            self._take_answer(msg)
            status = status_text(resp)
            now = time.monotonic()
            if not self._status.startswith(status) or now - self._status_at >= _LINE_EVERY:
                # The counts change with every token: sent about once a second, not every update.
                line = live_line(resp)
                status += f" · {line}" if line else ""
                if status != self._status:
                    msg["s"] = self._status = status
                    self._status_at = now
            if msg:
                self._send(msg)
            self.widget.set_plain(self._plain(status))
            if self._fallback.due(len(resp.text_so_far)):
                # Under the lock: finalize() cannot come between, so this never follows the static
                # output (fallback.py says when, and what it costs).
                update_output(self.widget.view_bundle(), self.display_id)

    # ---------------------------------------------------------------- page → kernel
    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """A Cancel click, a view that asks for the whole state (it was drawn late), or the loader
        that asks for the view's code (the first view of a page)."""
        event = content.get("event") if isinstance(content, dict) else None
        if event == "cancel":
            self.resp.cancel()
        elif event == "code":
            self.widget.send_code()
        elif event == "sync":
            with self._lock:
                if self._closed:
                    return
                self._n += 1
                self.widget.send(
                    {
                        "n": self._n,
                        "full": 1,
                        "b": "".join(self._blocks),
                        "t": self._tail,
                        "r": self.resp.reasoning[: self._sent_reasoning],
                        "x": self.resp.text_so_far[: self._sent_text],
                        "s": self._status,
                        "o": list(self._notes),
                    }
                )

    # ---------------------------------------------------------------- end
    def static_bundle(self) -> dict[str, str]:
        """The output that replaces the widget: the same frame, blocks and styles (no jump)."""
        resp = self.resp
        text = resp.text_so_far
        if self.fmt == "text":
            body = pre_html(text) if text else ""
        else:
            self._blocks.extend(block_html(b) for b in self._cutter.cut(text))
            body = "".join(self._blocks) + block_html(text[self._cutter.done :])
        foot = footer_text(resp, prompt_tokens=self._prompt_tokens)
        status = status_text(resp) if resp.status != "ok" or not text else ""
        html_out = frame_html(
            body=body,
            reasoning=resp.reasoning if self.show_reasoning else "",
            notes=tuple(self._notes),
            status=status,
            status_is_error=resp.status == "error",
            footer=foot,
        )
        plain = text
        if status:
            plain += f"\n[{status}]"
        for note in self._notes:
            plain += f"\n{note}"
        plain += f"\n— {foot}"
        return {"text/html": html_out, "text/plain": plain}

    def finalize(self) -> None:
        """Replace the widget by the static output, empty its state and close it (idempotent)."""
        with self._lock:
            if self._finalized.is_set():
                return
            self._finalized.set()
            self._closed = True
            bundle = self.static_bundle()
        self._live.stop()
        update_output(bundle, self.display_id)
        widget = self.widget
        try:
            widget.shrink()
            widget.close()
        except Exception:  # the kernel is shutting down: nothing left to tell
            pass

    def wait_finalized(self, timeout: float = 5.0) -> bool:
        return self._finalized.wait(timeout)
