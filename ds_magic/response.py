"""``Response``: one streaming answer. Iterate it to stream, ask ``.text`` when done.

The engine thread writes into it through a :class:`ResponseWriter`; any number of readers (a ``for``
loop, an ``async for`` on another loop, the notebook view) read from it. Each reader has its own
small queue in which consecutive deltas of the same kind are merged (pump.py), so a slow reader
never makes the engine fall behind the socket and never grows a backlog of more than a handful of
events: it just gets bigger pieces.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .errors import DeepSeekError
from .parts import AnswerParts, own_turn
from .pump import Fanout, Mailbox, Reader
from .text import clean_events
from .types import Event, Finish, Status, Timing, ToolCall, Usage
from .waitable import Completion

if TYPE_CHECKING:
    from .redact import EventMasker, RedactRules

__all__ = ["Response", "ResponseWriter"]

_log = logging.getLogger("ds_magic")


class Response:
    """A streaming chat completion.

    - ``for event in response`` / ``async for event in response``: typed events as they arrive
      (:class:`AnswerDelta`, :class:`ReasoningDelta`, :class:`ToolCallDelta`, :class:`UsageEvent`,
      :class:`StatusEvent`, and last a :class:`Finish`). A reader that starts late first gets what
      arrived so far, merged. Iteration raises the request's error at the end if it failed.
    - ``.text`` waits for the end and returns the answer (partial if cancelled or interrupted).
    - ``.wait()`` waits and raises the error, if any; ``await response`` does the same without
      blocking the caller's loop. ``.join()`` and ``await .finished()`` wait without raising.
    - ``.cancel()`` stops the request from any thread and closes the HTTP stream.

    History, run records and cache writes are done before the response reports done. Then the
    ``request`` of a conversation's turn keeps only its own messages, not the history (parts.own_turn).
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
        self.retries = 0
        #: How many times a dropped stream was resumed by prefix completion (Client(resume=...)).
        self.resumes = 0
        self.cached = False
        self.created = time.time()
        self.cancel_requested = False
        self._lock = threading.Condition(threading.Lock())
        self._completion: Completion[Response] = Completion(self, self.cancel)
        self._finish_lock = threading.Lock()
        self._ended = False  # final state set; done once the bookkeeping has run too
        self._parts = AnswerParts()
        self._fan = Fanout(self._lock)
        self._before_done: list[Callable[[Response], None]] = []
        self._future: concurrent.futures.Future[Any] | None = None
        #: Masking of configured words/patterns (redact.py), applied by the writer to what comes in,
        #: so readers, listeners, the history and the cache only ever see masked text.
        self.masker: EventMasker | None = None
        if redact is not None:
            from .redact import EventMasker

            self.masker = EventMasker(redact)

    def _record(self, events: Sequence[Event]) -> None:
        """Store events (one lock round per network read, not per token) and wake the readers."""
        now = time.perf_counter()
        with self._lock:
            if self._ended:
                return  # a late piece from a stream that was already ended (cancelled): not part of it
            self._parts.add(events, now)
            self._fan.push(events)  # wakes a waiting reader, at most once per tick (pump.py)
        self._fan.deliver(events)

    def _finish(
        self, status: Status, error: DeepSeekError | None = None, finish_reason: str | None = None
    ) -> None:
        with self._finish_lock:  # the engine and a canceller may both end it: one wins, whole
            self._finish_once(status, error, finish_reason)

    def _finish_once(self, status: Status, error: DeepSeekError | None, finish_reason: str | None) -> None:
        if self._ended:
            return
        self._flush_held(status == "ok")
        with self._lock:
            if self._ended:
                return
            self._ended = True
            self._parts.end()
            self._future = None  # nothing that holds the engine task once it has ended (soak.py)
            self.request = own_turn(self.request, self.chat)  # not the whole history (parts.py)
            self.status = status
            self.error = error
            if finish_reason is not None:
                self.finish_reason = finish_reason
            hooks, self._before_done = self._before_done, []
        for hook in hooks:  # bookkeeping: whoever sees the response done sees this done too
            try:
                hook(self)
            except Exception:
                _log.exception("ds_magic: bookkeeping for a response failed")
        with self._lock:
            self._fan.end(Finish(self.finish_reason, status))
            self._lock.notify_all()
        self._completion.set()

    def _flush_held(self, complete: bool) -> None:
        if self.masker is not None:  # what the rules held back, masked unless the answer completed
            rest = self.masker.flush(complete)
            if rest:
                self._record(rest)

    def cancel(self) -> None:
        """Stop the request: thread-safe, idempotent; the engine task is cancelled and its HTTP
        response closed, which is how the server learns to stop generating (and billing)."""
        with self._lock:
            if self._ended or self.cancel_requested:
                return
            self.cancel_requested = True
            future = self._future
        if future is not None and not future.cancel() and future.done():
            self._finish("cancelled")  # its task has already ended: nothing else would end it

    def add_listener(self, fn: Callable[[Event], None]) -> None:
        """Call ``fn(event)`` for each event from now on, in order, on the ``ds-listeners`` thread: never the
        engine's, so a slow ``fn`` cannot hold up the socket; it gets fewer, merged events (pump.py)."""
        with self._lock:
            self._fan.listeners = (*self._fan.listeners, Mailbox(fn))

    def remove_listener(self, fn: Callable[[Event], None]) -> None:
        with self._lock:
            # ==, not `is`: each `obj.method` is a new bound method; equal ones must match (or a view stays).
            self._fan.listeners = tuple(b for b in self._fan.listeners if b.fn != fn)

    def add_done_callback(self, fn: Callable[[Response], None]) -> None:
        """Call ``fn(response)`` when the request ends (at once if it already has)."""
        self._completion.add_done_callback(fn)

    @property
    def done(self) -> bool:
        return self._completion.done

    def wait(self, timeout: float | None = None) -> Response:
        """Block until the request ends; raise its error if it failed. Ctrl-C / ■ cancels it."""
        self.join(timeout)
        self._raise_if_failed()
        return self

    def join(self, timeout: float | None = None) -> bool:
        """Block until the request ends or ``timeout``; True if it has. Never raises its error; Ctrl-C
        / ■ cancels it. Never blocks the engine thread (it would wait on itself)."""
        if self._completion.done:
            return True
        if threading.current_thread().name == "ds-engine":
            return False
        return self._completion.wait(timeout)

    async def finished(self) -> None:
        """Await the end on the caller's loop; never raises its error. A cancelled waiter cancels it."""
        await self._completion.wait_async()

    def __await__(self) -> Generator[Any, None, Response]:
        yield from self.finished().__await__()
        self._raise_if_failed()
        return self

    def _raise_if_failed(self) -> None:
        if self.error is not None and self.status in ("error", "interrupted"):
            raise self.error

    @property
    def text(self) -> str:
        """The answer, once the request has ended (what arrived, if it was cancelled or interrupted).

        Raises the request's error only when it failed before any text arrived.
        """
        if not self._ended:
            self.join()
        parts = self._parts
        if self.status == "error" and self.error is not None and not parts.text and not parts.reasoning:
            raise self.error
        return "".join(parts.text)

    @property
    def text_so_far(self) -> str:
        """The answer as it stands now; never waits, never raises."""
        return "".join(self._parts.text)

    @property
    def chars(self) -> int:
        """Characters of answer and thinking so far, counted as they arrive (never joins the pieces)."""
        return self._parts.chars

    @property
    def reasoning(self) -> str:
        """The thinking text so far (complete once the request has ended)."""
        return "".join(self._parts.reasoning)

    @property
    def tool_calls(self) -> list[ToolCall]:
        with self._lock:
            return self._parts.tool_calls()

    @property
    def usage(self) -> Usage | None:
        """Token counts, once the server sent them (usually with the last chunk)."""
        return self._parts.usage

    @property
    def status_message(self) -> str:
        """The latest status line from the engine (queued, retrying, resuming), or ""."""
        return self._parts.status_message

    @property
    def backlog_peak(self) -> tuple[int, int]:
        """The most events ever queued for one reader and for one listener: what a slow consumer
        costs (merged deltas keep it to a handful; benchmarks/backpressure.py)."""
        with self._lock:
            return self._fan.peaks()

    @property
    def timing(self) -> Timing:
        """A snapshot: ``total`` and the final tokens/s are known once the request has ended."""
        with self._lock:
            usage = self._parts.usage
            return self._parts.clock.timing(usage.completion_tokens if usage is not None else None)

    def _attach(self, loop: asyncio.AbstractEventLoop | None) -> Reader:
        with self._lock:
            snap = self._parts.snapshot()
            if self._completion.done:
                snap.append(Finish(self.finish_reason, self.status))
            return self._fan.attach(snap, loop)

    def _detach(self, reader: Reader) -> None:
        with self._lock:
            self._fan.detach(reader)

    def __iter__(self) -> Iterator[Event]:
        reader = self._attach(None)
        try:
            yield from reader.events(self._lock)
            self._raise_if_failed()
        except KeyboardInterrupt:
            self.cancel()
            raise
        finally:
            self._detach(reader)

    async def _aiter(self) -> AsyncIterator[Event]:
        reader = self._attach(asyncio.get_running_loop())
        try:
            async for ev in reader.aevents(self._lock):
                yield ev
            self._raise_if_failed()
        except asyncio.CancelledError:
            self.cancel()
            raise
        finally:
            self._detach(reader)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._aiter()

    def __repr__(self) -> str:
        text = self.text_so_far
        if self.done and self.status in ("ok", "cancelled") and (self._parts.text or not self.error):
            return text
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


class ResponseWriter:
    """The producer's side of a :class:`Response`: what the runner, the cache replay and batch call.
    A ``Response`` is written only through its writer, on the engine thread (or, for a request
    cancelled before it started, by whoever cancelled it)."""

    __slots__ = ("response",)

    def __init__(self, response: Response) -> None:
        self.response = response

    def bind(
        self, future: concurrent.futures.Future[Any], if_never_started: Callable[[], None] | None = None
    ) -> None:
        """The engine future running this request: ``Response.cancel()`` is its ``cancel()``. A task cancelled before it started never runs its code, so a response still pending when
        its future is cancelled is ended by ``if_never_started`` (default: at once; a conversation
        turn ends in its turn, so the history keeps its order). A started one is ended by its
        runner, which also closes the HTTP stream. A cancel that came before ``bind`` applies now.
        """
        resp = self.response
        with resp._lock:
            resp._future = None if resp._ended else future
            cancel_now = resp.cancel_requested and not resp._ended
        end = if_never_started or (lambda: self.finish("cancelled"))

        def ended(f: concurrent.futures.Future[Any]) -> None:
            if f.cancelled():
                if resp.status == "pending":
                    end()
            elif not resp._ended:  # the task ended without ending it (a bug): nobody may wait forever
                exc = f.exception()
                self.finish("error", DeepSeekError(f"Unexpected error: {type(exc).__name__}: {exc}"))

        future.add_done_callback(ended)
        if cancel_now:
            future.cancel()

    def before_done(self, fn: Callable[[Response], None]) -> None:
        """Run ``fn(response)`` at the end, after its final state is set and before it reports
        done (history, run records): nobody who sees it done can miss the bookkeeping."""
        resp = self.response
        with resp._lock:
            if not resp._ended:
                resp._before_done.append(fn)
                return
        fn(resp)

    def start(self) -> bool:
        """The request starts now (after any wait behind an earlier turn): the clocks start here.
        False if it has already ended (cancelled before it started): then nothing is to be sent."""
        resp = self.response
        with resp._lock:
            if resp._ended:
                return False
            resp._parts.clock.start()
            resp.status = "running"
            return True

    def push(self, ev: Event) -> None:
        self.push_many((ev,))

    def push_many(self, events: Sequence[Event]) -> None:
        """Record events; lone surrogates become U+FFFD here, once for every reader (text.py)."""
        resp = self.response
        events = clean_events(events)
        if resp.masker is not None:
            events = resp.masker.feed(events)
            if not events:
                return
        resp._record(events)

    def next_wake(self) -> float | None:
        """Seconds to a waiting reader's next wake-up (pump.py) or None; a hint, so read without the lock."""
        return self.response._fan.next_wake()

    def flush_held(self, complete: bool) -> None:
        """Let out what the redaction rules held back (masked unless ``complete``): the text is final."""
        self.response._flush_held(complete)

    def restore_clock(self, ttft: float | None, ttfa: float | None, total: float | None, pieces: int) -> None:
        """Timings measured in another process (a sharded batch's worker, batch_shard.py), once ended."""
        self.response._parts.clock.restore(ttft, ttfa, total, pieces)

    def finish(
        self, status: Status, error: DeepSeekError | None = None, finish_reason: str | None = None
    ) -> None:
        """End the response (once; later calls are ignored)."""
        self.response._finish(status, error, finish_reason)
