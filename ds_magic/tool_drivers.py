"""The two drivers of a ``ToolLoop``: sync (this thread waits) and async (this loop awaits).

The loop's drive generator (tool_loop.py) yields what must be waited for: ``("step", Response)``,
``("approve", (call, tool))`` or ``("await", awaitable)`` (an async tool's coroutine); a driver waits
its own way, in the caller's thread, and sends the outcome back. Nothing here runs on the engine
thread. A cancel (``ToolLoop.cancel`` from any thread, Ctrl-C / ■, or the awaiting task cancelled)
turns every later wait into its cancelled outcome, so the loop's bookkeeping always completes.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, Protocol

from .tool_call import Capture

if TYPE_CHECKING:
    from .tools import Tool
    from .types import ToolCall

__all__ = ["Waiter", "drive_sync", "drive_async", "answer_cancelled"]

Ask = tuple[str, Any]
Drive = Generator[Ask, Any, None]


class LoopLike(Protocol):
    approve: Callable[[ToolCall, Tool], Any] | None
    waiter: Waiter

    @property
    def cancel_requested(self) -> bool: ...
    def cancel(self) -> None: ...


class Waiter:
    """The future an async driver awaits now; ``cancel`` cancels it from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now: tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]] | None = None
        self._cancelled = False

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            now = self._now
        if now is not None:
            now[0].call_soon_threadsafe(now[1].cancel)

    async def wait(self, awaitable: Awaitable[Any]) -> Any:
        fut = asyncio.ensure_future(awaitable)
        with self._lock:
            if self._cancelled:
                fut.cancel()
            self._now = (asyncio.get_running_loop(), fut)
        try:
            return await fut
        finally:
            with self._lock:
                self._now = None


def answer_cancelled(ask: Ask) -> Any:
    """The outcome of a wait once the loop is cancelled: nothing new is waited for."""
    kind, value = ask
    if kind == "step":
        value.join(10.0)  # cancelled: it ends as soon as the engine has closed the stream
        return None
    if kind == "approve":
        return "cancelled"
    close = getattr(value, "close", None)
    if callable(close):
        close()  # a coroutine never awaited: closed, so Python does not warn about it
    return ("interrupted", None, "")


def drive_sync(gen: Drive, loop: LoopLike) -> None:
    try:
        ask = next(gen)
        while True:
            ask = gen.send(_answer_sync(ask, loop))
    except StopIteration:
        pass


async def drive_async(gen: Drive, loop: LoopLike) -> None:
    task_cancelled = False
    try:
        ask = next(gen)
        while True:
            try:
                answer = await _answer_async(ask, loop)
            except asyncio.CancelledError:
                loop.cancel()
                task_cancelled = True
                answer = answer_cancelled(ask)
            if task_cancelled:  # finish the bookkeeping without awaiting: nothing new starts
                while True:
                    ask = gen.send(answer)
                    answer = answer_cancelled(ask)
            ask = gen.send(answer)
    except StopIteration:
        pass
    if task_cancelled:
        raise asyncio.CancelledError()


def _answer_sync(ask: Ask, loop: LoopLike) -> Any:
    kind, value = ask
    try:
        if kind == "step":
            value.join()
            return None
        if kind == "approve":
            assert loop.approve is not None
            decision = loop.approve(*value)
            if inspect.isawaitable(decision):
                decision = _run_coroutine(decision)
            return decision
        with Capture() as capture:
            result = _run_coroutine(value)
        return ("value", result, capture.buffer.getvalue())
    except KeyboardInterrupt:
        loop.cancel()
        return answer_cancelled(ask)
    except Exception as exc:
        return ("raised", exc, "")


async def _answer_async(ask: Ask, loop: LoopLike) -> Any:
    kind, value = ask
    try:
        if kind == "step":
            await value.finished()
            return None
        if kind == "approve":
            assert loop.approve is not None
            decision = loop.approve(*value)
            if inspect.isawaitable(decision):
                decision = await loop.waiter.wait(decision)
            return decision
        with Capture(across_awaits=True) as capture:
            result = await loop.waiter.wait(value)
        return ("value", result, capture.buffer.getvalue())
    except asyncio.CancelledError:
        if not loop.cancel_requested or _cancelling():
            raise  # the task itself was cancelled: drive_async cancels the loop
        return answer_cancelled(ask)  # only what we waited for (ToolLoop.cancel did it)
    except KeyboardInterrupt:
        loop.cancel()
        return answer_cancelled(ask)
    except Exception as exc:
        return ("raised", exc, "")


def _cancelling() -> bool:
    """Whether the current asyncio task itself has been asked to cancel (not just what it awaited)."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)  # Python 3.11+
    return bool(cancelling()) if callable(cancelling) else False


def _run_coroutine(awaitable: Any) -> Any:
    """An awaitable finished in this thread (the sync driver), if no loop runs here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        close = getattr(awaitable, "close", None)
        if callable(close):
            close()
        raise RuntimeError("an async tool or approver needs the async driver here: await loop.arun()")

    async def wrap() -> Any:
        return await awaitable

    return asyncio.run(wrap())
