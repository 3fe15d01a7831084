"""A ``%%deepseek --tools fn1,fn2`` cell: the tools found, the approver picked, the loop run and shown.

* Names come from ``--tools`` or ``%config DeepSeekMagics.tools = [...]``: a built-in
  (``python``, ``variables``: notebook_tools.py) or a function in the user's namespace.
* Who approves (``DeepSeekMagics.tool_approval``): ``"auto"`` runs every call; ``"ask"`` (default)
  asks in the view (Run / Deny / Always, await mode), or with ``input()`` (block mode, terminal
  IPython). Headless runs (nbclient and papermill send ``allow_stdin: false``: nobody is there to
  answer) deny, and the output says so. Safe tools and "Always" answers (kept per kernel) skip it.
* Tools run on the kernel's main thread (ToolLoop runs them in the caller's thread); ■ inside a sync
  tool raises KeyboardInterrupt in it (the core's ``tool_call.interruptible``) and the cell then
  fails with one line, so Run All stops there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import DeepSeekError
from ..response import Response
from ..tool_loop import Decision, ToolCallRecord, ToolLoop
from ..tools import Tool, as_tools
from ..types import ToolCall
from .display import mark_shown
from .errors import DeepSeekCellError, cell_error
from .kernel_hooks import block_hint, in_kernel
from .notebook_tools import BUILTIN_NAMES, builtin_tools
from .session import session
from .settings import Settings, body_params
from .tool_text import call_args_text

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from .cell import CellCall
    from .options import CellOptions
    from .tool_view import ToolLoopView

__all__ = [
    "KERNEL_ALLOWED",
    "wants_tools",
    "tool_names",
    "resolve_tools",
    "is_headless",
    "run_tools",
    "run_tools_async",
]

#: Tools the user answered "Always allow" for, for the rest of this kernel's life.
KERNEL_ALLOWED: set[str] = set()
HEADLESS_NOTE = (
    "Headless run (no one to approve): tool calls that need approval are denied; "
    "set %config DeepSeekMagics.tool_approval = 'auto' to run them."
)


def wants_tools(settings: Settings, options: CellOptions) -> bool:
    """Whether this cell offers tools (``--tools`` given, or the ``tools`` setting not empty)."""
    if options.tools is not None:
        return bool(tool_names(options.tools, []))
    return bool(settings.tools)


def tool_names(spec: str | None, default: list[str]) -> list[str]:
    """``--tools a,b`` (or the ``tools`` setting when the option is absent) as a list of names."""
    if spec is None:
        return [str(n) for n in default]
    return [n.strip() for n in spec.split(",") if n.strip()]


def resolve_tools(items: list[Any], shell: InteractiveShell | None) -> list[Callable[..., Any] | Tool]:
    """Names → the built-ins or the user's functions; functions and Tools pass through."""
    builtins = builtin_tools(shell) if shell is not None else {}
    ns = shell.user_ns if shell is not None else {}
    found: list[Callable[..., Any] | Tool] = []
    for item in items:
        if not isinstance(item, str):
            found.append(item)
        elif item in builtins:
            found.append(builtins[item])
        elif callable(ns.get(item)):
            found.append(ns[item])
        else:
            what = "not a function" if item in ns else "no function by that name in the namespace"
            raise DeepSeekCellError(
                f"--tools {item}: {what}; give the names of your functions or the built-ins "
                f"({', '.join(BUILTIN_NAMES)}), separated by commas"
            )
    return found


def is_headless(shell: InteractiveShell | None) -> bool:
    """In a kernel whose current request was sent with ``allow_stdin: false`` (nbclient, papermill)."""
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return False
    try:
        parent = kernel.get_parent()
    except Exception:
        return False
    content = parent.get("content", {}) if isinstance(parent, dict) else {}
    return content.get("allow_stdin") is False


class _Interrupts:
    """Sync tools told to the view before they run, and ■ inside one noted (the core's
    ``tool_call.interruptible`` makes SIGINT raise KeyboardInterrupt in a sync tool)."""

    def __init__(self, view: ToolLoopView | None) -> None:
        self.view = view
        self.interrupted = False

    def wrap(self, tool: Tool) -> Tool:
        if inspect.iscoroutinefunction(tool.fn):
            return tool  # an async tool is cancelled with the cell's task
        fn = tool.fn
        owner = self

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            if owner.view is not None:
                owner.view.mark_running(tool.name)
            try:
                return fn(*args, **kwargs)
            except KeyboardInterrupt:
                owner.interrupted = True
                raise

        return dataclasses.replace(tool, fn=run)


def _input_approver(call: ToolCall, tool: Tool) -> Decision:
    """Block mode and terminal IPython: ask on stdin."""
    print(f"The model wants to call {tool.name}({call_args_text(tool.name, call.arguments)})")
    if tool.name == "python":
        try:
            code = json.loads(call.arguments).get("code", "")
        except (ValueError, AttributeError):
            code = call.arguments
        print(code)
    try:
        answer = input(f"Run it? [r]un / [d]eny / [a]lways allow {tool.name}: ").strip().lower()
    except Exception:  # no stdin after all (StdinNotImplementedError, EOFError)
        return "deny"
    answers: dict[str, Decision] = {"r": "run", "run": "run", "y": "run", "a": "always", "always": "always"}
    return answers.get(answer, "deny")


def dry_run_tools(settings: Settings, shell: InteractiveShell, call: CellCall) -> dict[str, Any]:
    """``--dry-run`` with tools: the first request's body, the tools' specs included; nothing sent."""
    items = tool_names(call.options.tools, list(settings.tools))
    params = dict(call.params)
    model = params.pop("model")
    prompt: Any = call.prompt if call.conversation is not None else (call.messages or [])
    try:
        body = session.client(settings).request_body(
            prompt,
            model=model,
            conversation=call.conversation,
            tools=resolve_tools(items, shell),
            **body_params(params),
        )
    except (DeepSeekError, ValueError, TypeError) as exc:
        raise cell_error(exc) from None
    print(json.dumps(body, indent=2, ensure_ascii=False))
    return body


def _start(
    settings: Settings, shell: InteractiveShell, call: CellCall, mode: str
) -> tuple[ToolLoop, ToolLoopView | None, _Interrupts]:
    items = tool_names(call.options.tools, list(settings.tools))
    tools = as_tools(resolve_tools(items, shell)) if items else []
    params = dict(call.params)
    model = params.pop("model")
    approval = settings.tool_approval
    headless = approval != "auto" and is_headless(shell)
    kernel = in_kernel(shell)
    interrupts = _Interrupts(None)
    try:
        tools = [interrupts.wrap(t) for t in tools]
        client = session.client(settings)
        prompt: Any = call.prompt if call.conversation is not None else (call.messages or [])
        loop = client.chat(
            prompt,
            model=model,
            conversation=call.conversation,
            tools=tools,
            max_steps=call.options.max_steps or settings.tool_max_steps,
            allowed=KERNEL_ALLOWED,
            **params,
        )
    except (DeepSeekError, ValueError, TypeError) as exc:
        raise cell_error(exc) from None
    assert isinstance(loop, ToolLoop)
    view = None
    if kernel:
        from .tool_view import ToolLoopView  # the widget library loads with the first tool cell

        view = ToolLoopView(
            loop,
            fmt="text" if call.options.format == "code" else call.options.format,
            show_reasoning=settings.show_reasoning,
            throttle_ms=settings.throttle_ms,
            cancel_hint=block_hint() if mode == "block" else "",
            note=HEADLESS_NOTE if headless else "",
        )
        interrupts.view = view
    else:
        loop.on_step = _print_step(settings)
        loop.on_result = _print_result
    if approval == "auto":
        loop.approve = lambda _call, _tool: "run"
    elif headless:
        loop.approve = None  # the loop denies: "no approver: denied"
        if view is None:
            print(HEADLESS_NOTE)
    elif mode == "await" and view is not None:
        loop.approve = view.ask
    else:
        loop.approve = _input_approver
    if call.options.out:
        shell.user_ns[call.options.out] = loop
    return loop, view, interrupts


def _print_step(settings: Settings) -> Callable[[Response], None]:
    from .text_view import TextView

    def show(resp: Response) -> None:
        session.track(resp)
        mark_shown(resp)
        TextView(resp, show_reasoning=settings.show_reasoning).run()

    return show


def _print_result(rec: ToolCallRecord) -> None:
    """Terminal IPython: what a call did, its prints and result (the loop captured them), capped."""
    note = f" ({rec.note})" if rec.note else ""
    print(f"[tool] {rec.name}: {rec.status}{note}")
    for label, text in (("printed", rec.output), ("error", rec.error), ("result", rec.result)):
        if text:
            shown = (
                text if len(text) <= 2_000 else text[:2_000] + f"… [{len(text) - 2_000:,} more characters]"
            )
            print(f"[tool] {label}: {shown.rstrip()}")


def _result(shell: InteractiveShell, loop: ToolLoop, interrupts: _Interrupts) -> Any:
    if interrupts.interrupted:
        raise DeepSeekCellError(
            "Interrupted: the tool was stopped by ■; what ran so far is kept in the history, marked cancelled."
        )
    if loop.state == "error":
        raise DeepSeekCellError(f"The tool loop stopped: {loop.note}")
    last = loop.steps[-1] if loop.steps else None
    if last is None:
        return None
    shell.user_ns["_ds_last"] = last
    shell.user_ns["_ds_loop"] = loop
    mark_shown(last)
    return last


def run_tools(settings: Settings, shell: InteractiveShell, call: CellCall, mode: str) -> Any:
    """Block mode (and terminal IPython): the loop runs in this thread; approvals ask on stdin."""
    loop, view, interrupts = _start(settings, shell, call, mode)
    try:
        loop.run()
    finally:
        if view is not None:
            view.finalize()
    return _result(shell, loop, interrupts)


async def run_tools_async(settings: Settings, shell: InteractiveShell, call: CellCall) -> Any:
    """Await mode: the cell awaits the loop, so approval clicks and Cancel arrive meanwhile."""
    loop, view, interrupts = _start(settings, shell, call, "await")
    interrupted = False
    try:
        await loop.arun()
    except (asyncio.CancelledError, KeyboardInterrupt):
        interrupted = True  # ■ while a request streamed or an approval waited: the loop is cancelled
    finally:
        if view is not None:
            view.finalize()
    if interrupted:
        raise DeepSeekCellError(
            f"Interrupted: the tool loop was stopped after {len(loop.steps)} request(s); "
            "what happened so far is kept in the history, marked cancelled."
        )
    return _result(shell, loop, interrupts)
