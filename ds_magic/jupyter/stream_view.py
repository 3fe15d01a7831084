"""The live view of one ``Response`` in a notebook: a view only, no HTTP or history logic.

While the answer streams, ipywidgets show the status line, a collapsible thinking section, the
answer and a Cancel button. Updates are written by the listener thread (_pump.py; the one writer of
these widgets, so a slow frontend never holds up the engine), throttled: the first token at once, then at most one update per ``throttle_ms``, and a
final full update (kernel-and-widgets.md §9.5). At the end the widgets are replaced, through the
same display id, by a static output (safe HTML + text/plain) and closed, so a saved notebook shows
the answer without widget state and long sessions do not pile up comms.

Model output is untrusted: it only ever reaches the page escaped, or as Markdown rendered with raw
HTML disabled and links/images neutralised (render.py; kernel-and-widgets.md §8).
"""

from __future__ import annotations

import html
import threading
import uuid
from datetime import datetime, timezone
from typing import Any

from ..pricing import estimate_cost
from ..response import Response
from ..types import Event
from .render import Throttle, escape_pre, format_footer, markdown_to_safe_html

__all__ = ["StreamView", "TextView", "footer_text"]


def footer_text(resp: Response) -> str:
    t = resp.timing
    usage = resp.usage
    cost = None
    if usage is not None and not resp.cached:
        c = estimate_cost(resp.model, usage, datetime.fromtimestamp(resp.created, timezone.utc))
        cost = str(c) if c is not None else None
    return format_footer(
        ttft=t.time_to_first_token,
        tokens=t.tokens,
        tokens_per_second=t.tokens_per_second,
        elapsed=t.total if t.total is not None else t.elapsed,
        cache_hit_tokens=usage.cache_hit_tokens if usage else 0,
        cost=cost,
        cached=resp.cached,
        status=resp.status,
        retries=resp.retries,
        model=resp.model,
        resumes=resp.resumes,
    )


def status_text(resp: Response) -> str:
    """The one status line: waiting, queued, retrying, thinking, streaming, or how it ended."""
    st = resp.status
    tokens = resp.timing.tokens
    if st == "ok":
        return "cached" if resp.cached else "done"
    if st == "cancelled":
        return f"cancelled after {tokens} tokens"
    if st in ("error", "interrupted"):
        return str(resp.error) if resp.error else st
    if resp.status_message and not resp.text_so_far and not resp.reasoning:
        return resp.status_message
    if resp.text_so_far:
        return f"streaming… (resumed ×{resp.resumes})" if resp.resumes else "streaming…"
    if resp.reasoning:
        return "thinking…"
    return "waiting for the first token…"


def _answer_html(text: str, fmt: str) -> str:
    return markdown_to_safe_html(text) if fmt == "markdown" else escape_pre(text)


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
        import ipywidgets as w

        self.resp = resp
        self.fmt = fmt
        self.show_reasoning = show_reasoning
        self.display_id = "ds-" + uuid.uuid4().hex
        self.updates = 0
        self._base_interval = max(throttle_ms, 0) / 1000
        self._throttle = Throttle(self._base_interval)
        self._flush_scheduled = False
        self._lock = threading.Lock()
        self._finalized = threading.Event()
        self._closed = False
        # One bound-method object for add_listener and remove_listener: each ``self._on_event`` is
        # a new object and remove_listener matches by identity, so removing a fresh one left this
        # view (and its ~50 closed widgets) attached to a Response that Out[] keeps (soak.py).
        self._listener = self._on_event
        self._sent_text = self._sent_reasoning = 0
        self._sent_status = ""
        self.status = w.HTML(value=self._status_html("waiting for the first token…"))
        self.reasoning = w.HTML(value="")
        self.reasoning_box = w.Accordion(children=[self.reasoning], selected_index=None)
        self.reasoning_box.set_title(0, "Thinking")
        self.reasoning_box.layout.display = "none"
        self.answer = w.HTML(value="")
        self.cancel_button = w.Button(
            description="Cancel",
            icon="stop",
            button_style="warning",
            tooltip="Stop this request (and its billing)",
        )
        self.cancel_button.on_click(lambda _b: resp.cancel())
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
        from IPython.display import display

        display(self.box, display_id=self.display_id)
        self.resp.add_listener(self._listener)
        # A status that came before the view was attached (a retry wait, a resume) is shown now.
        message = self.resp.status_message
        if message and not self.resp.done:
            with self._lock:
                if not self._closed:
                    self.status.value = self._status_html(message)
        self.resp.add_done_callback(lambda _r: self.finalize())

    # ---------------------------------------------------------------- listener thread (_pump.py)
    def _on_event(self, ev: Event) -> None:
        if ev.kind == "status":
            with self._lock:
                if not self._closed:  # listeners run on their own thread: the view may be final already
                    self.status.value = self._status_html(ev.message)
            return
        if ev.kind not in ("answer", "reasoning", "tool_call"):
            return
        size = self.resp.chars  # not len(text_so_far): that joins every piece, per event
        # Every update resends the whole answer, so a long answer is refreshed less often as it
        # goes on (1/30 of the time so far): the message count then grows with the log of the
        # answer's length, not linearly (about 90 updates for 2,000 tokens at 100 tok/s).
        self._throttle.interval = max(self._base_interval, self.resp.timing.elapsed / 30)
        if self._throttle.ready(size):
            self._update()
        elif not self._flush_scheduled:
            # A trailing update, so a pause in the stream never leaves stale text on screen.
            self._flush_scheduled = True
            from ..engine import get_engine

            get_engine().loop.call_soon_threadsafe(
                lambda: get_engine().loop.call_later(self._throttle.interval, self._trailing)
            )

    def _trailing(self) -> None:
        self._flush_scheduled = False
        if not self.resp.done and not self._finalized.is_set():
            self._update()

    def _update(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._throttle.mark()
            self.updates += 1
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
                t = resp.timing
                live = ""
                if t.time_to_first_token is not None:
                    tps = f" · {t.tokens_per_second:.1f} tok/s" if t.tokens_per_second else ""
                    live = self._status_html(
                        f"first token {t.time_to_first_token:.2f} s · {t.tokens} tokens{tps}"
                    )
                # The live footer rides in the same message as the answer.
                self.answer.value = _answer_html(text, self.fmt) + live
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
            parts.append(_answer_html(text, self.fmt))
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
        from IPython.display import update_display

        update_display(self.static_bundle(), raw=True, display_id=self.display_id)
        self.resp.remove_listener(self._listener)
        _close_tree(self.box)

    def wait_finalized(self, timeout: float = 5.0) -> bool:
        return self._finalized.wait(timeout)


def _close_tree(widget: Any) -> None:
    """Close a widget and every widget it holds (children, layout, style): each one is a comm."""
    from ipywidgets import Widget

    seen: set[int] = set()
    stack = [widget]
    while stack:
        w = stack.pop()
        if id(w) in seen:
            continue
        seen.add(id(w))
        for name in w.keys:
            value = getattr(w, name, None)
            if isinstance(value, Widget):
                stack.append(value)
            elif isinstance(value, (list, tuple)):
                stack.extend(v for v in value if isinstance(v, Widget))
        try:
            w.close()
        except Exception:
            pass


class TextView:
    """Plain terminal IPython: tokens print as they arrive, the footer at the end."""

    def __init__(self, resp: Response, *, show_reasoning: bool = True) -> None:
        self.resp = resp
        self.show_reasoning = show_reasoning

    def run(self) -> None:
        import sys

        out = sys.stdout
        mode = ""
        try:
            for ev in self.resp:
                if ev.kind == "reasoning" and self.show_reasoning:
                    if mode != "reasoning":
                        out.write("[thinking] ")
                        mode = "reasoning"
                    out.write(ev.text)
                elif ev.kind == "answer":
                    if mode == "reasoning":
                        out.write("\n\n")
                    mode = "answer"
                    out.write(ev.text)
                elif ev.kind == "status":
                    out.write(f"[{ev.message}]\n")
                out.flush()
        except Exception:
            pass  # the error is reported by the magic, once
        if self.resp.status != "ok":
            out.write(f"\n[{status_text(self.resp)}]")
        out.write(f"\n— {footer_text(self.resp)}\n")
        out.flush()

    def finalize(self) -> None:
        pass

    def wait_finalized(self, timeout: float = 5.0) -> bool:
        return True
