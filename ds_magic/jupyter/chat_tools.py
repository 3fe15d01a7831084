"""``Chat(tools=[...])``: a chat message answered by a tool loop, its calls shown in the chat.

Threads (kernel-and-widgets.md §5, §9.2): the chat runs in background mode, its requests and every
write to its widget on the engine thread; but tools run where user code runs, the kernel's main
thread. So a message's ``ToolLoop`` is driven by a task on the kernel's own event loop (captured
when the chat is made, in a cell), which the kernel runs between cells: its steps stream on the
engine as any request, and each hook only posts the widget work to the engine thread.

Approval (``DeepSeekMagics.tool_approval``): "auto" runs every call; "ask" shows Run / Deny / Always
allow under the call in the chat, the click arriving as a comm message (``{"event": "decide"}``).
Tool names, arguments and results are untrusted: they reach the page as plain strings (textContent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..engine import get_engine
from ..response import Response
from ..tool_loop import Decision, ToolCallRecord, ToolLoop
from ..tools import Tool, as_tools
from ..types import ToolCall
from .chat_widget import ChatWidget
from .errors import DeepSeekCellError, error_text
from .session import session
from .tool_cell import KERNEL_ALLOWED, resolve_tools
from .tool_text import call_args_text

__all__ = ["ChatTools"]


class ChatTools:
    """The tool side of one chat; ``start`` on the engine thread, the loop on the kernel's loop."""

    def __init__(self, widget: ChatWidget, items: list[Any]) -> None:
        try:
            self.main = asyncio.get_running_loop()
        except RuntimeError:
            raise DeepSeekCellError(
                "Chat(tools=...) needs a running kernel: make the chat in a notebook cell"
            ) from None
        settings = session.settings
        self.shell = settings.shell if settings is not None else None
        self.tools = as_tools(resolve_tools(items, self.shell))  # a bad name fails now, in the cell
        self.widget = widget
        self.loop: ToolLoop | None = None
        self._entries: dict[str, dict[str, Any]] = {}
        self._keys: dict[int, str] = {}
        self._pending: dict[str, asyncio.Future[Decision]] = {}
        self._asking = ""  # the call whose buttons show (main thread)

    # ------------------------------------------------------------------ engine thread
    def start(
        self,
        text: str,
        params: dict[str, Any],
        model: str | None,
        conversation: Any,
        guard: Callable[..., None],
        begin: Callable[[str, Response, bool], None],
        end: Callable[[Response], None],
        fail: Callable[[str, str], None],
    ) -> None:
        """Make the loop for ``text`` and hand it to the kernel's loop to drive; ``guard(fn, *args)``
        runs a chat callback on the engine thread with the chat's safety net."""
        settings = session.settings
        try:
            loop = session.client(settings).chat(
                text,
                model=model,
                conversation=conversation,
                tools=self.tools,
                allowed=KERNEL_ALLOWED,
                max_steps=settings.tool_max_steps if settings is not None else 8,
                **params,
            )
        except Exception as exc:  # a missing key, a bad parameter: inline, like a failed request
            guard(fail, text, error_text(exc, chat=True))
            return
        assert isinstance(loop, ToolLoop)
        self.loop = loop
        self._entries.clear()
        engine = get_engine()
        first = [True]

        def on_step(resp: Response) -> None:
            engine.call_soon(guard, begin, text, resp, first[0])
            first[0] = False

        loop.on_step = on_step
        loop.on_call = lambda rec: self._note(rec, "pending")
        loop.on_result = lambda rec: self._note(rec, rec.status)
        auto = settings is not None and settings.tool_approval == "auto"
        loop.approve = (lambda _c, _t: "run") if auto else self.ask

        async def drive() -> None:
            try:
                await loop.arun()
            except Exception as exc:
                engine.call_soon(guard, fail, text, error_text(exc, chat=True))
                return
            finally:
                engine.call_soon(self._publish, [], "")  # the turns now show the calls and results
            if loop.steps:
                engine.call_soon(guard, end, loop.steps[-1])
            else:
                engine.call_soon(guard, fail, text, loop.note or "the tool loop did not start")

        self.main.call_soon_threadsafe(lambda: asyncio.ensure_future(drive()))

    def _publish(self, calls: list[dict[str, Any]], asking: str) -> None:
        with self.widget.hold_sync():  # one message: the calls and the buttons together
            self.widget.tool_calls = calls
            self.widget.tool_asking = asking

    # ------------------------------------------------------------------ kernel's main thread
    def _note(self, rec: ToolCallRecord, status: str) -> None:
        key = self._keys.setdefault(id(rec.call), f"{rec.step}:{rec.call.index}:{len(self._keys)}")
        entry = self._entries.setdefault(key, {"id": key, "name": rec.name, "args": ""})
        entry.update(
            args=call_args_text(rec.name, rec.call.arguments),
            status=status,
            note=rec.note,
            result=(rec.error or rec.result or "") if status not in ("pending", "asking") else "",
        )
        self._show()

    def _show(self) -> None:
        get_engine().call_soon(self._publish, [dict(e) for e in self._entries.values()], self._asking)

    async def ask(self, call: ToolCall, tool: Tool) -> Decision:
        key = self._keys[id(call)]
        fut: asyncio.Future[Decision] = self.main.create_future()
        self._pending[key] = fut
        self._entries[key]["status"] = "asking"
        self._asking = key
        self._show()
        try:
            while not fut.done():  # 100 ms slices: ■ must reach a sleeping loop (tool_view.py)
                await asyncio.wait({fut}, timeout=0.1)
            return fut.result()
        finally:
            self._pending.pop(key, None)
            self._asking = ""

    # ------------------------------------------------------------------ any thread
    def decide(self, content: dict[str, Any]) -> None:
        """A Run / Deny / Always click (comm handler)."""
        fut = self._pending.get(str(content.get("id")))
        decision = content.get("decision")
        if fut is None or decision not in ("run", "deny", "always"):
            return

        def settle() -> None:
            if not fut.done():
                fut.set_result(decision)

        self.main.call_soon_threadsafe(settle)

    def cancel(self) -> None:
        if self.loop is not None:
            self.loop.cancel()
