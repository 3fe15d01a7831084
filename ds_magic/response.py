"""``Response``: one streaming answer. Iterate it to stream, ask ``.text`` when done.

The engine thread writes into it; any number of readers (a ``for`` loop, an ``async for`` on another
loop, the notebook view) read from it. Each reader has its own small queue in which consecutive
deltas of the same kind are merged, so a slow reader never makes the engine fall behind the socket
and never grows a backlog of more than a handful of events: it just gets bigger pieces.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .errors import DeepSeekError
from .pump import Mailbox, merge_append, pump
from .types import (
    AnswerDelta,
    Event,
    Finish,
    ReasoningDelta,
    Status,
    StatusEvent,
    Timing,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageEvent,
)

if TYPE_CHECKING:
    from .redact import Redactor, RedactRules

__all__ = ["Response", "ResponseWriter"]

_log = logging.getLogger("ds_magic")


class _Reader:
    """One reader's pending events, merged while it is not looking."""

    __slots__ = ("pending", "loop", "wake", "woken", "max_pending")

    def __init__(self, snapshot: list[Event], loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.pending: list[Event] = snapshot
        #: The longest the pending list has been: what a slow reader costs (benchmarks/backpressure.py).
        self.max_pending = len(snapshot)
        self.loop = loop
        self.wake: asyncio.Event | None = asyncio.Event() if loop is not None else None
        self.woken = False

    def push(self, ev: Event) -> None:
        p = self.pending
        merge_append(p, ev)
        if len(p) > self.max_pending:
            self.max_pending = len(p)

    def notify(self) -> None:
        # Called with the response lock held; one wake-up callback in flight at a time.
        if self.loop is not None and not self.woken:
            self.woken = True
            try:
                self.loop.call_soon_threadsafe(self._set)
            except RuntimeError:  # the reader's loop is closed: nobody is listening any more
                pass

    def _set(self) -> None:
        self.woken = False
        assert self.wake is not None
        self.wake.set()


class Response:
    """A streaming chat completion.

    - ``for event in response`` / ``async for event in response``: typed events as they arrive
      (:class:`AnswerDelta`, :class:`ReasoningDelta`, :class:`ToolCallDelta`, :class:`UsageEvent`,
      :class:`StatusEvent`, and last a :class:`Finish`). A reader that starts late first gets what
      arrived so far, merged. Iteration raises the request's error at the end if it failed.
    - ``.text`` waits for the end and returns the answer (partial if cancelled or interrupted).
    - ``.wait()`` waits and raises the error, if any; ``await response`` does the same without
      blocking the caller's loop.
    - ``.cancel()`` stops the request from any thread and closes the HTTP stream.
    """

    def __init__(
        self,
        *,
        model: str,
        request: dict[str, Any] | None = None,
        chat: str | None = None,
        redact: RedactRules | None = None,
    ) -> None:
        self.model = model
        self.request: dict[str, Any] = request or {}
        self.chat = chat
        self.status: Status = "pending"
        self.error: DeepSeekError | None = None
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.retries = 0
        #: How many times a dropped stream was resumed by prefix completion (Client(resume=...)).
        self.resumes = 0
        self.cached = False
        self.status_message = ""
        self.created = time.time()
        self._lock = threading.Condition(threading.Lock())
        self._done = threading.Event()
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[int, ToolCall] = {}
        self._readers: list[_Reader] = []
        self._callbacks: list[Callable[[Response], None]] = []
        self._listeners: tuple[Mailbox, ...] = ()
        self._canceller: Callable[[], None] | None = None
        self.cancel_requested = False
        self._t0 = time.perf_counter()
        self._t_first: float | None = None
        self._t_first_answer: float | None = None
        self._t_end: float | None = None
        self._pieces = 0
        self._chars = 0  # answer + reasoning characters so far, without joining the pieces
        # Masking of configured words/patterns (redact.py): applied to what comes in, so every reader,
        # listener, the history and the cache only ever see the masked text. None: no cost at all.
        self._redact: tuple[Redactor, Redactor] | None = (
            (redact.stream(), redact.stream()) if redact is not None else None
        )

    # ----------------------------------------------------------------- written by the engine
    def _start_clock(self) -> None:
        self._t0 = time.perf_counter()
        self.status = "running"

    def _push(self, ev: Event) -> None:
        self._push_many((ev,))

    def _push_many(self, events: Sequence[Event]) -> None:
        """Record events (one lock round per network read, not per token) and wake the readers."""
        if self._redact is not None:
            events = self._masked(events)
            if not events:
                return
        self._record(events)

    def _masked(self, events: Sequence[Event]) -> list[Event]:
        assert self._redact is not None
        answer, reasoning = self._redact
        out: list[Event] = []
        for ev in events:
            if isinstance(ev, AnswerDelta):
                text = answer.feed(ev.text)
                if text:
                    out.append(AnswerDelta(text))
            elif isinstance(ev, ReasoningDelta):
                text = reasoning.feed(ev.text)
                if text:
                    out.append(ReasoningDelta(text))
            else:
                out.append(ev)
        return out

    def _flush_redacted(self, status: Status) -> None:
        """At the end, the held-back tails: masked conservatively unless the answer completed."""
        if self._redact is None or self._done.is_set():
            return
        answer, reasoning = self._redact
        complete = status == "ok"
        rest: list[Event] = []
        text = reasoning.flush(complete)
        if text:
            rest.append(ReasoningDelta(text))
        text = answer.flush(complete)
        if text:
            rest.append(AnswerDelta(text))
        if rest:
            self._record(rest)

    def _record(self, events: Sequence[Event]) -> None:
        now = time.perf_counter()
        with self._lock:
            for ev in events:
                kind = ev.kind
                if kind == "answer":
                    self._text.append(ev.text)  # type: ignore[union-attr]
                    self._chars += len(ev.text)  # type: ignore[union-attr]
                    self._pieces += 1
                    if self._t_first_answer is None:
                        self._t_first_answer = now
                        if self._t_first is None:
                            self._t_first = now
                elif kind == "reasoning":
                    self._reasoning.append(ev.text)  # type: ignore[union-attr]
                    self._chars += len(ev.text)  # type: ignore[union-attr]
                    self._pieces += 1
                    if self._t_first is None:
                        self._t_first = now
                elif isinstance(ev, ToolCallDelta):
                    self._pieces += 1
                    if self._t_first is None:
                        self._t_first = now
                    call = self._calls.get(ev.index)
                    if call is None:
                        call = self._calls[ev.index] = ToolCall(index=ev.index)
                    if ev.id:
                        call.id = ev.id
                    if ev.name:
                        call.name += ev.name
                    call.arguments += ev.arguments
                elif isinstance(ev, UsageEvent):
                    self.usage = ev.usage
                elif isinstance(ev, StatusEvent):
                    self.status_message = ev.message
                for r in self._readers:
                    r.push(ev)
            if self._readers:
                for r in self._readers:
                    r.notify()
                self._lock.notify_all()
            listeners = self._listeners
        if listeners:
            pump.deliver(listeners, events)  # appends only: listeners run on their own thread

    def _set_canceller(self, fn: Callable[[], None]) -> None:
        with self._lock:
            self._canceller = fn
            run_now = self.cancel_requested and not self._done.is_set()
        if run_now:
            fn()

    def _finish(
        self, status: Status, error: DeepSeekError | None = None, finish_reason: str | None = None
    ) -> None:
        self._flush_redacted(status)
        with self._lock:
            if self._done.is_set():
                return
            self._t_end = time.perf_counter()
            # A finished answer is kept (Out[], history) long after its stream: one string instead
            # of a piece per token, and no canceller closure holding the engine task (soak.py).
            if len(self._text) > 1:
                self._text = ["".join(self._text)]
            if len(self._reasoning) > 1:
                self._reasoning = ["".join(self._reasoning)]
            self._canceller = None
            self.status = status
            self.error = error
            if finish_reason is not None:
                self.finish_reason = finish_reason
            fin = Finish(self.finish_reason, status)
            for r in self._readers:
                r.pending.append(fin)
                r.notify()
            self._done.set()
            self._lock.notify_all()
            callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            try:
                cb(self)
            except Exception:  # a broken callback must not take the engine down with it
                _log.exception("ds_magic: a Response done-callback failed")

    # ----------------------------------------------------------------- control
    def cancel(self) -> None:
        """Stop the request: thread-safe, idempotent, closes the HTTP response so billing stops."""
        with self._lock:
            if self._done.is_set() or self.cancel_requested:
                return
            self.cancel_requested = True
            fn = self._canceller
        if fn is not None:
            fn()

    def add_listener(self, fn: Callable[[Event], None]) -> None:
        """Call ``fn(event)`` for each event from now on, in order, on the ``ds-listeners`` thread.

        Never on the engine thread, so a slow ``fn`` cannot hold up reading the socket; while it is
        busy, consecutive deltas are merged, so it gets fewer, larger events (_pump.py).
        """
        with self._lock:
            self._listeners = (*self._listeners, Mailbox(fn))

    def remove_listener(self, fn: Callable[[Event], None]) -> None:
        with self._lock:
            # ==, not `is`: each `obj.method` access makes a new bound-method object, and equal
            # ones must match, or a view stays attached (and alive) after it is done.
            self._listeners = tuple(b for b in self._listeners if b.fn != fn)

    def add_done_callback(self, fn: Callable[[Response], None]) -> None:
        """Call ``fn(response)`` when the request ends (at once if it already has)."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(fn)
                return
        fn(self)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> Response:
        """Block until the request ends; raise its error if it failed. Ctrl-C / ■ cancels it."""
        self.join(timeout)
        if self.error is not None and self.status in ("error", "interrupted"):
            raise self.error
        return self

    def join(self, timeout: float | None = None) -> bool:
        """Block until the request ends (or ``timeout``); never raises its error. Ctrl-C / ■ cancels it.

        Returns whether it has ended. On the engine thread it never blocks (it would wait on itself).
        """
        if self._done.is_set():
            return True
        if _in_engine_thread():
            return False  # never block the thread that would finish us
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            # Short slices so that KeyboardInterrupt is seen promptly (kernel-and-widgets.md §9.2).
            while not self._done.wait(0.1):
                if deadline is not None and time.monotonic() >= deadline:
                    return False
        except KeyboardInterrupt:
            self.cancel()
            raise
        return True

    async def finished(self) -> None:
        """Wait until the request ends without blocking the caller's loop; never raises its error.
        A cancelled waiting task cancels the request."""
        if self._done.is_set():
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def wake(_: Response) -> None:
            def set_result() -> None:
                if not fut.done():
                    fut.set_result(None)

            try:
                loop.call_soon_threadsafe(set_result)
            except RuntimeError:
                pass

        self.add_done_callback(wake)
        try:
            # Await in 100 ms slices: an interrupt is queued with a plain call_soon by ipykernel and
            # would otherwise wait for unrelated I/O to wake the loop (kernel-and-widgets.md §6).
            while not fut.done():
                await asyncio.wait({fut}, timeout=0.1)
        except asyncio.CancelledError:
            self.cancel()
            raise

    def __await__(self) -> Generator[Any, None, Response]:
        yield from self.finished().__await__()
        if self.error is not None and self.status in ("error", "interrupted"):
            raise self.error
        return self

    # ----------------------------------------------------------------- results
    @property
    def text(self) -> str:
        """The answer, once the request has ended (what arrived, if it was cancelled or interrupted).

        Raises the request's error only when it failed before any text arrived.
        """
        self.join()
        if self.status == "error" and self.error is not None and not self._text and not self._reasoning:
            raise self.error
        return "".join(self._text)

    @property
    def chars(self) -> int:
        """Characters of answer and thinking so far, counted as they arrive (never joins the pieces)."""
        return self._chars

    @property
    def text_so_far(self) -> str:
        """The answer as it stands now; never waits, never raises."""
        return "".join(self._text)

    @property
    def reasoning(self) -> str:
        """The thinking text so far (complete once the request has ended)."""
        return "".join(self._reasoning)

    @property
    def tool_calls(self) -> list[ToolCall]:
        with self._lock:
            return [self._calls[i] for i in sorted(self._calls)]

    @property
    def timing(self) -> Timing:
        """A snapshot: ``total`` and the final tokens/s are known once the request has ended."""
        with self._lock:
            end = self._t_end
            now = end if end is not None else time.perf_counter()
            first = self._t_first
            tokens = self.usage.completion_tokens if (self.usage and end is not None) else self._pieces
            tps = None
            if first is not None and now - first > 0 and tokens > 1:
                # The first token marks the start of generation, so it is not counted in the rate.
                tps = (tokens - 1) / (now - first)
            return Timing(
                time_to_first_token=None if first is None else first - self._t0,
                time_to_first_answer_token=None
                if self._t_first_answer is None
                else self._t_first_answer - self._t0,
                elapsed=now - self._t0,
                total=None if end is None else end - self._t0,
                tokens=tokens,
                tokens_per_second=tps,
            )

    # ----------------------------------------------------------------- streaming
    def _snapshot(self) -> list[Event]:
        snap: list[Event] = []
        if self._reasoning:
            snap.append(ReasoningDelta("".join(self._reasoning)))
        if self._text:
            snap.append(AnswerDelta("".join(self._text)))
        for i in sorted(self._calls):
            c = self._calls[i]
            snap.append(ToolCallDelta(index=i, id=c.id, name=c.name, arguments=c.arguments))
        if self.usage is not None:
            snap.append(UsageEvent(self.usage))
        if self._done.is_set():
            snap.append(Finish(self.finish_reason, self.status))
        return snap

    def _end_of_stream(self) -> None:
        if self.error is not None and self.status in ("error", "interrupted"):
            raise self.error

    def __iter__(self) -> Iterator[Event]:
        with self._lock:
            reader = _Reader(self._snapshot())
            self._readers.append(reader)
        try:
            while True:
                with self._lock:
                    while not reader.pending:
                        self._lock.wait(0.1)
                    batch, reader.pending = reader.pending, []
                for ev in batch:
                    yield ev
                    if isinstance(ev, Finish):
                        self._end_of_stream()
                        return
        except KeyboardInterrupt:
            self.cancel()
            raise
        finally:
            with self._lock:
                if reader in self._readers:
                    self._readers.remove(reader)

    async def __aiter_impl(self) -> AsyncIterator[Event]:
        loop = asyncio.get_running_loop()
        with self._lock:
            reader = _Reader(self._snapshot(), loop)
            self._readers.append(reader)
        assert reader.wake is not None
        try:
            while True:
                with self._lock:
                    batch, reader.pending = reader.pending, []
                    if not batch:
                        reader.wake.clear()
                if not batch:
                    await reader.wake.wait()
                    continue
                for ev in batch:
                    yield ev
                    if isinstance(ev, Finish):
                        self._end_of_stream()
                        return
        except asyncio.CancelledError:
            self.cancel()
            raise
        finally:
            with self._lock:
                if reader in self._readers:
                    self._readers.remove(reader)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self.__aiter_impl()

    # ----------------------------------------------------------------- display
    def __repr__(self) -> str:
        if self._done.is_set() and self.status in ("ok", "cancelled") and (self._text or not self.error):
            return self.text_so_far
        text = self.text_so_far
        tail = f" {text[:60]!r}…" if len(text) > 60 else (f" {text!r}" if text else "")
        err = f" error={self.error}" if self.error else ""
        return f"<Response {self.model} status={self.status}{tail}{err}>"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary (no API key: the request body never holds one)."""
        return {
            "model": self.model,
            "chat": self.chat,
            "status": self.status,
            "finish_reason": self.finish_reason,
            "text": self.text_so_far,
            "reasoning": self.reasoning,
            "tool_calls": [c.to_message() for c in self.tool_calls],
            "usage": self.usage.to_dict() if self.usage else None,
            "timing": self.timing.to_dict(),
            "retries": self.retries,
            "cached": self.cached,
            "error": str(self.error) if self.error else None,
            "error_type": type(self.error).__name__ if self.error else None,
        }


def _in_engine_thread() -> bool:
    return threading.current_thread().name == "ds-engine"


class ResponseWriter:
    """The producer's side of a :class:`Response`: what the runner, the cache and batch call.

    A ``Response`` is read by anyone and written only through its writer, on the engine thread.
    ``before_done`` hooks (history, run records) run inside :meth:`finish`, before the response
    reports done, so whoever sees it done also sees its bookkeeping.
    """

    __slots__ = ("response",)

    def __init__(self, response: Response) -> None:
        self.response = response

    def start(self) -> None:
        """The request starts now (after any wait behind an earlier turn): clocks start here."""
        self.response._start_clock()

    def set_request(self, body: dict[str, Any]) -> None:
        self.response.request = body

    def push(self, ev: Event) -> None:
        self.response._push_many((ev,))

    def push_many(self, events: Sequence[Event]) -> None:
        self.response._push_many(events)

    def finish(
        self, status: Status, error: DeepSeekError | None = None, finish_reason: str | None = None
    ) -> None:
        """End the response (once; later calls are ignored)."""
        self.response._finish(status, error, finish_reason)
