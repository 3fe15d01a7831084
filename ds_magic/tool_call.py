"""One tool call of a tool loop: its record, and running it in the caller's thread.

A call's prints are captured (``contextlib.redirect_stdout``/``redirect_stderr``: the tool runs in the
thread that swapped them, the caller's), its result is shown as ``repr`` (a ``str`` as itself), and
both are capped so a huge DataFrame cannot flood the model's context or the page. An exception is
the call's error result; the loop goes on (issue 16).
"""

from __future__ import annotations

import contextlib
import io
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .tools import Tool
from .types import ToolCall

if TYPE_CHECKING:
    from .guard import Finding

__all__ = [
    "ToolCallRecord",
    "CallStatus",
    "DEFAULT_MAX_RESULT_CHARS",
    "cap",
    "prepare",
    "finish_sync",
    "finish_value",
    "fail",
    "screen",
    "interruptible",
    "Capture",
]

#: The default cap of a result's repr and of a call's captured prints, in characters.
DEFAULT_MAX_RESULT_CHARS = 20_000

CallStatus = Literal["pending", "running", "ok", "error", "denied", "cancelled", "skipped"]


@dataclass
class ToolCallRecord:
    """What happened to one call. ``content`` is what the model gets back as the tool message."""

    call: ToolCall
    tool: Tool | None
    step: int  # index into ToolLoop.steps of the answer that made the call
    status: CallStatus = "pending"
    #: "run" / "deny" / "always" as decided (a safe or always-allowed tool: "run"); None: not asked.
    decision: str | None = None
    #: One line on why, when it is not the plain case: "no approver: denied", "safe", ...
    note: str = ""
    output: str = ""  # captured prints (stdout and stderr), capped
    result: str | None = None  # the return value's repr, capped (the cut said)
    error: str | None = None  # "ZeroDivisionError: division by zero"
    duration: float | None = None  # seconds the function ran
    arguments: dict[str, Any] | None = field(default=None, repr=False)  # as parsed, if they were
    #: Why the result was not sent to the model (it looks like it holds a secret), or "".
    withheld: str = ""

    @property
    def name(self) -> str:
        return self.call.name

    @property
    def content(self) -> str:
        """The tool message's content (deepseek-api.md §1.5: a ``tool`` message has content)."""
        if self.withheld:
            return f"not sent: {self.withheld}"
        if self.status == "ok":
            parts = []
            if self.output:
                parts.append(f"printed:\n{self.output.rstrip()}")
            if self.result is not None and (self.result != "None" or not self.output):
                parts.append(self.result if not self.output else f"returned: {self.result}")
            return "\n".join(parts) if parts else "None"
        if self.status == "error":
            printed = f"\nprinted before the error:\n{self.output}" if self.output else ""
            return f"error: {self.error}{printed}"
        if self.status == "denied":
            return (
                f"denied by the user: the call was not run ({self.note})"
                if self.note
                else ("denied by the user: the call was not run")
            )
        return f"not run: {self.note or self.status}"


def cap(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [cut: {len(text) - limit:,} more characters of {len(text):,}]"


def _shown(value: Any, limit: int) -> str:
    if isinstance(value, str):
        return cap(value, limit)
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not lose the call
        text = f"<{type(value).__name__} object: repr failed with {type(exc).__name__}>"
    return cap(text, limit)


def fail(record: ToolCallRecord, exc: BaseException, started: float | None = None) -> None:
    record.status = "error"
    message = str(exc).strip().splitlines()
    record.error = f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__
    if started is not None:
        record.duration = time.perf_counter() - started


def prepare(record: ToolCallRecord) -> tuple[list[Any], dict[str, Any]] | None:
    """The call's arguments, bound and validated; None (the record then holds the error) otherwise."""
    tool = record.tool
    if tool is None:
        record.status = "error"
        record.error = f"unknown tool {record.call.name!r}"
        return None
    try:
        args, kwargs = tool.bind(record.call.arguments)
    except ValueError as exc:
        record.status = "error"
        record.error = f"bad arguments: {exc}"
        return None
    record.arguments = {**dict(zip(tool.adapters, args, strict=False)), **kwargs}
    return args, kwargs


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C / ■ raises KeyboardInterrupt inside a sync tool running on the main thread.

    A cell that awaits (ipykernel ≥ 7's top-level await) runs under a SIGINT handler that only
    schedules the cell task's cancellation on the event loop (kernel-and-widgets.md §4, §6); a sync
    tool holds the loop, so that would never run and ■ would not stop it. While the tool runs the
    interpreter's own handler is put back, then the previous one. Another thread, or SIGINT ignored
    or left to the OS: nothing is changed.
    """
    previous: Any = None
    if threading.current_thread() is threading.main_thread():
        current = signal.getsignal(signal.SIGINT)
        if callable(current) and current is not signal.default_int_handler:
            previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


class Capture:
    """stdout and stderr of the tool, captured while it runs in this thread.

    ``redirect_stdout`` swaps ``sys.stdout`` for the whole process and restores it on exit, so
    captures must nest. A sync tool's always do (it runs to the end without yielding). An async
    tool's capture spans awaits, and two of those interleaved (a ToolBatch's loops) would restore
    each other's buffers and leave ``sys.stdout`` pointing at one: so while one capture spans awaits,
    another async one captures nothing (``across_awaits``), and its prints go where prints go.
    """

    _spanning = 0  # captures that span awaits, now; changed only on the caller's thread
    _guard = threading.Lock()

    def __init__(self, *, across_awaits: bool = False) -> None:
        self.buffer = io.StringIO()
        self._stack = contextlib.ExitStack()
        self._across = across_awaits

    def __enter__(self) -> Capture:
        if self._across:
            with Capture._guard:
                if Capture._spanning:
                    return self  # another one spans awaits now: capture nothing (see above)
                Capture._spanning += 1
            self._stack.callback(Capture._release)
        self._stack.enter_context(contextlib.redirect_stdout(self.buffer))
        self._stack.enter_context(contextlib.redirect_stderr(self.buffer))
        return self

    @staticmethod
    def _release() -> None:
        with Capture._guard:
            Capture._spanning -= 1

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


def finish_value(record: ToolCallRecord, value: Any, output: str, started: float, limit: int) -> None:
    record.duration = time.perf_counter() - started
    record.output = cap(output, limit)
    record.result = _shown(value, limit)
    record.status = "ok"


def finish_sync(record: ToolCallRecord, bound: tuple[list[Any], dict[str, Any]], limit: int) -> Any:
    """Run a sync tool now, in this thread. Returns a coroutine if the function made one (an
    ``async def`` or a function returning an awaitable): the caller awaits it and calls
    :func:`finish_value`. ``KeyboardInterrupt`` (■ in the notebook) propagates to the loop."""
    assert record.tool is not None
    args, kwargs = bound
    record.status = "running"
    started = time.perf_counter()
    capture = Capture()
    try:
        with capture, interruptible():
            value = record.tool.fn(*args, **kwargs)
    except Exception as exc:
        record.output = cap(capture.buffer.getvalue(), limit)
        fail(record, exc, started)
        return None
    if hasattr(value, "__await__"):
        return value
    finish_value(record, value, capture.buffer.getvalue(), started, limit)
    return None


def screen(rec: ToolCallRecord, find_secrets: Callable[[list[tuple[str, str]]], Sequence[Finding]]) -> None:
    """The outbound secret check (guard.py) on what a tool made, as on a prompt: a result or its
    prints that look like a key are not sent to the model (the record keeps them, for the user)."""
    if rec.status not in ("ok", "error"):
        return
    found = find_secrets([(f"the result of {rec.name}", rec.content)])
    if found:
        first = found[0]
        rec.withheld = (
            f"the result looks like it holds {first.kind} (line {first.line}); it was kept here, "
            "not sent (allow_secrets=True sends it)"
        )
