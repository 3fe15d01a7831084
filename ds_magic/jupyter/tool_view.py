"""The live view of a tool loop in a notebook: each step's answer (the stream view) followed by that
step's tool calls (a ToolWidget), in the order they happened. A view only: the loop decides.

* While a step streams, its tool-call deltas show live: ``calling get_weather(city="Pa…`` (written
  by the listener thread, throttled like the answer, kernel-and-widgets.md §9.5).
* A complete call shows with its arguments (the ``python`` tool's code highlighted) and, when it
  needs approval, the Run / Deny / Always buttons; the click arrives as a comm message while the cell
  awaits (ipykernel ≥ 7.4), and :meth:`ask` resolves.
* Its result, prints and error each go into a collapsible section.
* At the end every widget is replaced, through its display id, by a static output (escaped HTML +
  text/plain) and closed, so a saved notebook shows what happened without widget state.

Tool names, arguments and results are untrusted (the model chose them, a tool printed them): they
reach the page as escaped text only, never as markup.
"""

from __future__ import annotations

import asyncio
import functools
import html
import threading
import time
import uuid
from typing import Any

from ..response import Response
from ..tool_loop import Decision, ToolCallRecord, ToolLoop
from ..tools import Tool
from ..types import ToolCall
from .display import mark_shown, show_output, update_output
from .session import session
from .stream_view import StreamView
from .tool_text import call_args_text, call_preview, code_of, code_tokens
from .tool_widget import ToolWidget

__all__ = ["ToolLoopView"]


class _Step:
    """One step's tool widget and what it shows."""

    def __init__(self, view: StreamView | None) -> None:
        self.view = view
        self.widget = ToolWidget()
        self.display_id = "ds-tools-" + uuid.uuid4().hex
        self.entries: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.deltas: dict[int, list[str]] = {}
        self.last_live = 0.0
        self.closed = False

    def push(self) -> None:
        self.widget.calls = [dict(e) for e in self.entries.values()]


class ToolLoopView:
    """Widgets for one tool loop; made and fed on the kernel's main thread (the loop's hooks)."""

    def __init__(
        self,
        loop: ToolLoop,
        *,
        fmt: str = "markdown",
        show_reasoning: bool = True,
        throttle_ms: int = 100,
        cancel_hint: str = "",
        note: str = "",
    ) -> None:
        self.loop = loop
        self.fmt = fmt
        self.show_reasoning = show_reasoning
        self.throttle = max(0.02, throttle_ms / 1000)
        self.cancel_hint = cancel_hint
        #: A line said once under the first calls, e.g. the headless "denied by default" note.
        self.note = note
        self.steps: list[_Step] = []
        self._keys: dict[int, tuple[_Step, str]] = {}  # id(ToolCall) -> (step, entry key)
        self._pending: dict[str, asyncio.Future[Decision]] = {}
        loop.on_step = self._on_step
        loop.on_call = self._on_call
        loop.on_result = self._on_result

    # ------------------------------------------------------------------ loop hooks (main thread)
    def _on_step(self, resp: Response) -> None:
        session.track(resp)
        mark_shown(resp)
        view = StreamView(
            resp,
            fmt=self.fmt,
            show_reasoning=self.show_reasoning,
            throttle_ms=int(self.throttle * 1000),
            cancel_hint=self.cancel_hint,
        )
        view.show()
        step = _Step(view)
        step.widget.on_msg(functools.partial(self._on_msg, step))
        show_output(step.widget, display_id=step.display_id)
        self.steps.append(step)
        resp.add_listener(functools.partial(self._on_event, step))

    def _on_call(self, rec: ToolCallRecord) -> None:
        step = self.steps[-1]
        key = f"{rec.step}:{rec.call.index}:{len(step.entries)}"
        self._keys[id(rec.call)] = (step, key)
        code = code_of(rec.name, rec.call.arguments)
        with step.lock:
            step.entries[key] = {
                "id": key,
                "name": rec.name,
                "args": call_args_text(rec.name, rec.call.arguments),
                "code": code_tokens(code) if code is not None else [],
                "status": "pending",
                "note": "",
            }
            step.widget.live = ""
            step.push()

    def _on_result(self, rec: ToolCallRecord) -> None:
        found = self._keys.get(id(rec.call))
        if found is None:
            return
        step, key = found
        entry = step.entries[key]
        entry.update(
            status=rec.status,
            note=rec.note,
            output=rec.output,
            result=rec.result if rec.result is not None else "",
            error=rec.error or "",
        )
        if rec.duration is not None:
            entry["duration"] = rec.duration
        if step.widget.asking == key:
            step.widget.asking = ""
        if self.note and rec.status == "denied" and rec.decision == "deny" and not step.widget.status:
            step.widget.status = self.note  # said where a call was denied for want of someone to ask
        step.push()

    def mark_running(self, name: str) -> None:
        """A tool is about to run (called by the interruptible wrapper, tool_cell.py)."""
        for step in reversed(self.steps):
            for entry in step.entries.values():
                if entry["name"] == name and entry["status"] in ("pending", "asking"):
                    entry["status"] = "running"
                    step.push()
                    return

    # ------------------------------------------------------------------ listener thread
    def _on_event(self, step: _Step, ev: Any) -> None:
        kind = getattr(ev, "kind", None)
        if kind == "tool_call":
            parts = step.deltas.setdefault(ev.index, ["", ""])
            parts[0] += ev.name or ""
            parts[1] += ev.arguments or ""
            now = time.monotonic()
            if now - step.last_live < self.throttle and step.last_live:
                return
            step.last_live = now
        elif kind != "finish":
            return
        with step.lock:
            if step.entries or step.closed:
                return  # the calls are complete: the main thread shows them now
            lines = [call_preview(n or "?", a) for n, a in (step.deltas[i] for i in sorted(step.deltas))]
            step.widget.live = "\n".join(lines)

    # ------------------------------------------------------------------ approval
    async def ask(self, call: ToolCall, tool: Tool) -> Decision:
        """The await-mode approver: show the buttons and wait for the click (a comm message)."""
        step, key = self._keys[id(call)]
        fut: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._pending[key] = fut
        step.entries[key]["status"] = "asking"
        with step.widget.hold_sync():  # one message: the buttons and the call's state together
            step.push()
            step.widget.asking = key
        try:
            # In 100 ms slices: ipykernel queues ■'s cancel with a call_soon that does not wake a loop
            # asleep in select(), so only a loop that wakes up sees it (kernel-and-widgets.md §0.6).
            while not fut.done():
                await asyncio.wait({fut}, timeout=0.1)
            decision = fut.result()
        except asyncio.CancelledError:
            self._pending.pop(key, None)
            step.widget.asking = ""
            raise
        self._pending.pop(key, None)
        step.entries[key]["status"] = "running" if decision != "deny" else "denied"
        with step.widget.hold_sync():
            step.push()
            step.widget.asking = ""
        return decision

    def _on_msg(self, step: _Step, _widget: Any, content: Any, _buffers: Any = None) -> None:
        if not isinstance(content, dict):
            return
        if content.get("event") == "stop":
            self.loop.cancel()  # a waiting approval counts as denied; no further request (tool_loop.py)
            return
        if content.get("event") != "decide":
            return
        decision = content.get("decision")
        fut = self._pending.get(str(content.get("id")))
        if fut is None or fut.done() or decision not in ("run", "deny", "always"):
            return

        def settle() -> None:
            if not fut.done():
                fut.set_result(decision)

        fut.get_loop().call_soon_threadsafe(settle)

    # ------------------------------------------------------------------ end
    def footer(self) -> str:
        loop = self.loop
        usage = loop.usage()
        cost = loop.cost()
        parts = [
            f"{len(loop.steps)} request{'s' if len(loop.steps) != 1 else ''}",
            f"{len(loop.calls)} tool call{'s' if len(loop.calls) != 1 else ''}",
            f"{usage.prompt_tokens + usage.completion_tokens:,} tokens",
            f"{loop.elapsed:.1f} s",
        ]
        if cost is not None:
            parts.append(f"≈${cost:.2g}")  # an estimate, as the answer footers say (pricing.py)
        line = " · ".join(parts)
        if loop.note:
            line += f" — {loop.note}"
        return line

    def finalize(self) -> None:
        """Every step's widget becomes a static output and is closed; the loop's summary goes last."""
        for i, step in enumerate(self.steps):
            last = i == len(self.steps) - 1
            if step.view is not None:
                step.view.wait_finalized(10)
            with step.lock:
                step.closed = True
            update_output(self._bundle(step, self.footer() if last else ""), step.display_id)
            step.widget.close()  # one anywidget model, no children
        for fut in self._pending.values():
            fut.cancel()

    def _bundle(self, step: _Step, footer: str) -> dict[str, str]:
        html_parts: list[str] = []
        plain: list[str] = []
        for e in step.entries.values():
            code = "".join(text for _cls, text in e.get("code") or [])
            head = f"{e['name']}({e['args']})"
            state = e["status"] + (f" · {e['note']}" if e.get("note") else "")
            plain.append(f"▸ {head} — {state}")
            body = ""
            if code:
                body += f"<pre class='ds-tools-code'>{html.escape(code)}</pre>"
                plain.append(code)
            for label in ("output", "error", "result"):
                value = e.get(label)
                if value:
                    title = "printed" if label == "output" else label
                    body += (
                        f"<details><summary>{title}</summary><pre>{html.escape(str(value))}</pre></details>"
                    )
                    plain.append(f"{title}: {value}")
            html_parts.append(
                "<div style='border-left:3px solid #ccc;padding:2px 8px;margin:4px 0'>"
                f"<code>{html.escape(head)}</code> <span style='color:#888'>{html.escape(state)}</span>{body}</div>"
            )
        for line in (step.widget.status, footer):
            if line:
                html_parts.append(f"<div style='color:#888;font-size:0.85em'>{html.escape(line)}</div>")
                plain.append(line)
        if not html_parts:
            return {"text/plain": ""}
        return {
            "text/html": "<div class='ds-tools'>" + "".join(html_parts) + "</div>",
            "text/plain": "\n".join(plain),
        }
