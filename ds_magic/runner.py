"""The coroutine that runs one streaming request on the engine loop.

It owns the attempt loop (retries only before the first body byte), the deadlines that
``: keep-alive`` comments do not reset, and the translation of every way a request can end into
``Response`` state. It always closes the HTTP response, which is how the server learns that a
cancelled request should stop generating (kernel-and-widgets.md §6).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from .chunks import ChunkParser
from .errors import (
    APIStatusError,
    APITimeoutError,
    DeepSeekError,
    StreamDecodeError,
    StreamInterruptedError,
    _PartialMixin,
)
from .response import Response
from .retry import RetryPolicy, is_retryable_status
from .transport import error_from_response, error_from_transport
from .types import AnswerDelta, Event, ReasoningDelta, StatusEvent, Usage, UsageEvent

__all__ = ["Timeout", "RequestSpec", "run_request"]

_MAX_ERROR_BODY = 64 * 1024
# Seconds to wait for [DONE] (and an OpenAI-style trailing usage chunk) after the finish chunk.
_AFTER_FINISH = 2.0


@dataclass(frozen=True)
class Timeout:
    """Deadlines in seconds (None = no limit).

    - ``connect``: opening the connection.
    - ``first_token``: from sending the request to the first data event. DeepSeek sends
      ``: keep-alive`` comments while a request is queued; they do not count (deepseek-api.md §2.8).
    - ``idle``: the longest gap between two data events once the answer has started; again
      comments do not count, so a stream that only sends keep-alives is caught.
    - ``total``: the whole request, retries included.
    """

    connect: float | None = 10.0
    first_token: float | None = 300.0
    idle: float | None = 120.0
    total: float | None = None

    @classmethod
    def coerce(cls, value: Timeout | float | int | None) -> Timeout:
        if value is None:
            return cls()
        if isinstance(value, Timeout):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return cls(connect=float(value), first_token=float(value), idle=float(value))
        raise ValueError(
            f"timeout must be a positive number of seconds or ds_magic.Timeout(...), got {value!r}"
        )


@dataclass
class RequestSpec:
    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    timeout: Timeout
    retry: RetryPolicy
    # Called on the engine loop right before the first attempt, e.g. to build a conversation's
    # messages once the previous turn of that conversation has been stored.
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    lock: asyncio.Lock | None = None
    on_event: Callable[[Any], None] | None = None
    # Resume a stream that breaks after text arrived, at most this many times, by prefix completion
    # on ``resume_url`` (the beta endpoint; deepseek-api.md §4.3). 0 or no URL: never.
    resume: int = 0
    resume_url: str | None = None


class _Watchdog:
    """Cancels the request task when a deadline passes; progress is counted in data events only."""

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any], timeout: Timeout) -> None:
        self.loop = loop
        self.task = task
        self.timeout = timeout
        self.start = loop.time()
        self.attempt_start = self.start
        self.last_progress: float | None = None
        self.fired: str | None = None
        self.handle: asyncio.TimerHandle | None = None
        self.armed = False

    def begin_attempt(self) -> None:
        self.attempt_start = self.loop.time()
        self.last_progress = None
        self.armed = True
        self._schedule()

    def pause(self) -> None:
        """No deadline but ``total`` applies while we sleep between attempts."""
        self.armed = False
        self._schedule()

    def progress(self) -> None:
        self.last_progress = self.loop.time()  # the timer re-reads this when it fires: O(1) per event

    def _deadline(self) -> tuple[float, str] | None:
        t = self.timeout
        cands: list[tuple[float, str]] = []
        if t.total is not None:
            cands.append((self.start + t.total, "total"))
        if self.armed:
            if self.last_progress is None:
                if t.first_token is not None:
                    cands.append((self.attempt_start + t.first_token, "first_token"))
            elif t.idle is not None:
                cands.append((self.last_progress + t.idle, "idle"))
        return min(cands) if cands else None

    def _schedule(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        d = self._deadline()
        if d is not None:
            self.handle = self.loop.call_at(d[0], self._check)

    def _check(self) -> None:
        self.handle = None
        d = self._deadline()
        if d is None:
            return
        when, kind = d
        if self.loop.time() >= when - 1e-3:
            self.fired = kind
            self.task.cancel()
        else:
            self.handle = self.loop.call_at(when, self._check)

    def seconds(self, kind: str) -> float | None:
        value: float | None = getattr(self.timeout, kind, None)
        return value

    def close(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


def bind_cancel(resp: Response) -> asyncio.Task[Any]:
    """Make ``resp.cancel()`` (from any thread) cancel the current engine task; return that task."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None

    def cancel_task() -> None:
        loop.call_soon_threadsafe(task.cancel)

    resp._set_canceller(cancel_task)
    return task


async def run_request(resp: Response, http: httpx.AsyncClient, spec: RequestSpec) -> None:
    """Run ``spec`` and record everything into ``resp``; never raises (except engine shutdown)."""
    loop = asyncio.get_running_loop()
    task = bind_cancel(resp)
    lock = spec.lock
    locked = False
    dog: _Watchdog | None = None
    try:
        if lock is not None:
            await lock.acquire()
            locked = True
        body = spec.prepare(spec.body) if spec.prepare is not None else spec.body
        resp.request = body
        resp._start_clock()
        dog = _Watchdog(loop, task, spec.timeout)
        await _run_with_resume(resp, http, spec, body, dog)
    except asyncio.CancelledError:
        partial = resp.text_so_far
        if dog is not None and dog.fired:
            _uncancel(task)
            resp._finish(
                "interrupted" if partial or resp.reasoning else "error",
                APITimeoutError(dog.fired, dog.seconds(dog.fired), partial, resp.reasoning),
            )
        else:
            resp._finish("cancelled")
            if not resp.cancel_requested:
                raise  # not ours (engine shutdown): let it propagate
            _uncancel(task)
    except DeepSeekError as exc:
        if isinstance(exc, StreamInterruptedError):
            # Built where the stream broke; the message should say what was kept.
            exc = StreamInterruptedError(exc.detail, resp.text_so_far, resp.reasoning)
        elif isinstance(exc, _PartialMixin):
            exc.partial, exc.partial_reasoning = resp.text_so_far, resp.reasoning
        started = bool(resp.text_so_far or resp.reasoning or resp.tool_calls)
        resp._finish("interrupted" if started and not isinstance(exc, APIStatusError) else "error", exc)
    except Exception as exc:  # a bug or an unexpected library error: still end the response
        resp._finish("error", DeepSeekError(f"Unexpected error: {type(exc).__name__}: {exc}"))
    else:
        resp._finish("ok")
    finally:
        if dog is not None:
            dog.close()
        if locked and lock is not None:
            lock.release()


def _uncancel(task: asyncio.Task[Any]) -> None:
    uncancel = getattr(task, "uncancel", None)  # Python ≥ 3.11
    if uncancel is not None:
        uncancel()


async def _sleep_before_retry(
    resp: Response, spec: RequestSpec, dog: _Watchdog, delay: float, why: str, attempt: int
) -> None:
    resp.retries = attempt
    resp._push(
        StatusEvent(f"retrying in {delay:.3g} s after {why} (retry {attempt} of {spec.retry.max_retries})")
    )
    dog.pause()
    await spec.retry.sleep(delay)


async def _attempts(
    resp: Response,
    http: httpx.AsyncClient,
    spec: RequestSpec,
    body: dict[str, Any],
    dog: _Watchdog,
    url: str | None = None,
    received: _Received | None = None,
    stitch: _Stitch | None = None,
) -> None:
    url = url or spec.url
    received = received if received is not None else _Received()
    retry = spec.retry
    timeout = spec.timeout
    http_timeout = httpx.Timeout(
        connect=timeout.connect, read=None, write=timeout.connect, pool=timeout.connect
    )
    attempt = 0
    while True:
        dog.begin_attempt()
        request = http.build_request("POST", url, headers=spec.headers, json=body, timeout=http_timeout)
        try:
            response = await http.send(request, stream=True)
        except httpx.TransportError as exc:
            err = error_from_transport(exc, url, timeout.connect)
            if attempt < retry.max_retries:
                attempt += 1
                await _sleep_before_retry(resp, spec, dog, retry.backoff(attempt - 1), _short(err), attempt)
                continue
            raise err from None
        try:
            if response.status_code != 200:
                raw = await _read_limited(response)
                delay = (
                    retry.delay(attempt, response.headers)
                    if is_retryable_status(response.status_code)
                    else None
                )
                err = error_from_response(response.status_code, raw, response.headers, retry_after=delay)
                if delay is not None and attempt < retry.max_retries:
                    attempt += 1
                    await response.aclose()
                    await _sleep_before_retry(resp, spec, dog, delay, str(response.status_code), attempt)
                    continue
                raise err
            ctype = response.headers.get("content-type", "")
            if "text/event-stream" not in ctype.split(";")[0].lower():
                raw = await _read_limited(response)
                if ctype.split(";")[0].strip().lower() == "application/json" and b'"error"' in raw[:4096]:
                    raise error_from_response(502, raw, response.headers)
                raise StreamDecodeError(
                    f"expected an event stream but the server sent {ctype or 'no content type'}",
                    raw[:200].decode("utf-8", "replace"),
                )
            got_bytes = await _read_stream(resp, response, dog, spec, received, stitch)
            if got_bytes is None:
                return
            # Nothing arrived before the connection broke: still safe to retry.
            if attempt < retry.max_retries:
                attempt += 1
                await _sleep_before_retry(
                    resp, spec, dog, retry.backoff(attempt - 1), "an empty reply", attempt
                )
                continue
            raise StreamInterruptedError("the server closed the connection before sending anything")
        finally:
            await response.aclose()


def _short(err: DeepSeekError) -> str:
    return type(err).__name__.replace("Error", " error").replace("API", "").strip().lower()


async def _read_limited(response: httpx.Response) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        parts.append(chunk)
        size += len(chunk)
        if size >= _MAX_ERROR_BODY:
            break
    return b"".join(parts)[:_MAX_ERROR_BODY]


async def _read_stream(
    resp: Response,
    response: httpx.Response,
    dog: _Watchdog,
    spec: RequestSpec,
    received: _Received | None = None,
    stitch: _Stitch | None = None,
) -> bool | None:
    """Read the event stream into ``resp``. Returns None when it ended properly, False if the
    connection broke before any byte arrived (retryable); raises on any later failure."""
    parser = ChunkParser()
    note = received.note if received is not None else None
    push = resp._push
    push_many = resp._push_many
    got_bytes = False
    queued_said = False
    seen = 0
    feed = parser.feed
    clock = dog.loop.time
    # We ask for identity encoding; only a compressed answer needs httpx's decoding layers.
    encoded = response.headers.get("content-encoding", "identity").lower() not in ("identity", "")
    body = response.aiter_bytes() if encoded else response.aiter_raw()
    reads = body.__aiter__()
    finish_deadline: float | None = None
    try:
        while True:
            if finish_deadline is None:
                try:
                    raw = await reads.__anext__()
                except StopAsyncIteration:
                    break
            else:
                # The finish chunk has come: the answer is complete. Wait a moment for a trailing
                # usage chunk and [DONE], but a server that then sends only keep-alives (or nothing)
                # must not hold a finished answer until the idle deadline (deepseek-api.md §2.5).
                left = finish_deadline - clock()
                if left <= 0:
                    break
                try:
                    raw = await asyncio.wait_for(reads.__anext__(), left)
                except (StopAsyncIteration, asyncio.TimeoutError):
                    break
            got_bytes = True
            events = feed(raw)
            if parser.data_events != seen:
                seen = parser.data_events
                first = dog.last_progress is None
                dog.last_progress = clock()  # read by the watchdog's timer: O(1) per read
                if first:
                    dog._schedule()  # from the first-token deadline to the (usually shorter) idle one
            elif not queued_said and seen == 0:
                queued_said = True
                push(StatusEvent("waiting (queued by DeepSeek)"))
            if events:
                if stitch is not None:
                    events = stitch(events)
                if note is not None:
                    note(events)
                push_many(events)
            if finish_deadline is None and parser.finish_reason is not None and not parser.done:
                finish_deadline = clock() + _AFTER_FINISH
            if parser.done:
                # Nothing after [DONE] is parsed, but the (tiny) rest of the body is read so the
                # connection goes back to the pool instead of being closed.
                try:
                    await asyncio.wait_for(_drain(body), 0.5)
                except asyncio.TimeoutError:
                    pass  # a server that keeps talking after [DONE]: just close the connection
                break
    except httpx.TransportError as exc:
        if not got_bytes:
            return False
        raise StreamInterruptedError(_transport_detail(exc)) from None
    if parser.done or parser.finish_reason is not None:
        # A finish_reason without [DONE] is still a complete answer; nothing after [DONE] is read.
        resp.finish_reason = parser.finish_reason
        return None
    if not got_bytes:
        return False
    raise StreamInterruptedError("the connection closed before the answer finished (no [DONE])")


async def _drain(body: Any) -> None:
    async for _ in body:
        pass


def _transport_detail(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the server closed the connection mid-answer ({text})"
    return f"the connection broke mid-answer ({text})"


# ---------------------------------------------------------------- resume after a dropped stream


@dataclass
class _Received:
    """What the server sent, as sent: the prefix for a resume. Response may show a masked copy
    (a content filter), so the runner keeps its own."""

    answer: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tool_calls: bool = False
    pieces: int = 0
    usage: Usage | None = None

    def note(self, events: Sequence[Event]) -> None:
        for ev in events:
            kind = ev.kind
            if kind == "answer":
                self.answer.append(ev.text)  # type: ignore[union-attr]
                self.pieces += 1
            elif kind == "reasoning":
                self.reasoning.append(ev.text)  # type: ignore[union-attr]
                self.pieces += 1
            elif kind == "tool_call":
                self.tool_calls = True
            elif kind == "usage":
                self.usage = ev.usage  # type: ignore[union-attr]


class _PrefixStrip:
    """Drops the prefix if a continuation starts by repeating it.

    deepseek-api.md §4.3: the continuation is believed to hold only the new text, "verify; the
    client should cope with either". Text is held only while it still matches the prefix; the
    first differing character releases it. Prefixes shorter than ``MIN`` are never stripped: a
    continuation that happens to start with the same few characters is more likely than an echo.
    """

    MIN = 8

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.buf = ""
        self.deciding = len(prefix) >= self.MIN

    def feed(self, text: str) -> str:
        if not self.deciding:
            return text
        self.buf += text
        n = min(len(self.buf), len(self.prefix))
        if self.buf[:n] != self.prefix[:n]:
            return self.flush()
        if len(self.buf) >= len(self.prefix):
            self.deciding = False
            out, self.buf = self.buf[len(self.prefix) :], ""
            return out
        return ""

    def flush(self) -> str:
        self.deciding = False
        out, self.buf = self.buf, ""
        return out


class _Stitch:
    """Joins a resumed stream to what was already shown: no repeated prefix, no second reasoning."""

    def __init__(self, answer: str, reasoning: str, dropped: Usage | None) -> None:
        self.answer = _PrefixStrip(answer)
        self.reasoning = _PrefixStrip(reasoning)
        # The drop came after the answer had started: the reasoning was complete, so any reasoning
        # the resumed request sends is not part of this answer.
        self.reasoning_done = bool(answer)
        self.dropped = dropped

    def __call__(self, events: Sequence[Event]) -> list[Event]:
        out: list[Event] = []
        for ev in events:
            kind = ev.kind
            if kind == "answer":
                text = self.answer.feed(ev.text)  # type: ignore[union-attr]
                if text:
                    out.append(AnswerDelta(text))
            elif kind == "reasoning":
                if self.reasoning_done:
                    continue
                text = self.reasoning.feed(ev.text)  # type: ignore[union-attr]
                if text:
                    out.append(ReasoningDelta(text))
            elif kind == "usage" and self.dropped is not None:
                out.append(UsageEvent(_add_usage(ev.usage, self.dropped)))  # type: ignore[union-attr]
            else:
                out.append(ev)
        return out

    def flush(self) -> list[Event]:
        out: list[Event] = []
        text = self.reasoning.flush()
        if text and not self.reasoning_done:
            out.append(ReasoningDelta(text))
        text = self.answer.flush()
        if text:
            out.append(AnswerDelta(text))
        return out


def _add_usage(a: Usage, b: Usage) -> Usage:
    return Usage(
        prompt_tokens=a.prompt_tokens + b.prompt_tokens,
        completion_tokens=a.completion_tokens + b.completion_tokens,
        reasoning_tokens=a.reasoning_tokens + b.reasoning_tokens,
        cache_hit_tokens=a.cache_hit_tokens + b.cache_hit_tokens,
        cache_miss_tokens=a.cache_miss_tokens + b.cache_miss_tokens,
    )


def _dropped_usage(received: _Received, body: dict[str, Any]) -> Usage:
    """What the broken attempt cost, for the total: its own usage if it got that far, else an
    estimate (a dropped stream rarely reaches its usage chunk). The prompt was billed in full and
    each streamed piece is about one token; counting the prompt as cache misses errs on the side
    of a higher estimate, never a lower one."""
    if received.usage is not None:
        return received.usage
    from .conversation import estimate_tokens

    prompt = sum(estimate_tokens(str(m.get("content") or "")) for m in body.get("messages", ()))
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=received.pieces,
        reasoning_tokens=len(received.reasoning),
        cache_miss_tokens=prompt,
    )


def resume_body(body: dict[str, Any], answer: str, reasoning: str) -> dict[str, Any]:
    """The request that continues ``body`` from a partial answer by chat prefix completion.

    deepseek-api.md §4.3: the same history plus a last ``{"role": "assistant", "content": <partial>,
    "prefix": true}``; a drop during the reasoning passes the partial ``reasoning_content`` too. A
    request that already ended in a prefix message (the user's own prefix completion) gets the
    partial answer appended to that prefix.
    """
    messages = [dict(m) for m in body.get("messages", ())]
    content = answer
    if messages and messages[-1].get("role") == "assistant" and messages[-1].get("prefix") is True:
        content = str(messages.pop().get("content") or "") + answer
    last: dict[str, Any] = {"role": "assistant", "content": content, "prefix": True}
    if reasoning and not answer:
        last["reasoning_content"] = reasoning
    return {**body, "messages": [*messages, last]}


async def _run_with_resume(
    resp: Response, http: httpx.AsyncClient, spec: RequestSpec, body: dict[str, Any], dog: _Watchdog
) -> None:
    received = _Received()
    stitch: _Stitch | None = None
    url, request = spec.url, body
    resumes = 0
    first_drop: StreamInterruptedError | None = None
    while True:
        try:
            await _attempts(resp, http, spec, request, dog, url, received, stitch)
        except StreamInterruptedError as exc:
            if stitch is not None:
                _push_rest(resp, received, stitch)
            first_drop = first_drop or exc
            why = _why_no_resume(spec, received, resumes)
            if why is not None:
                if resumes:
                    raise StreamInterruptedError(
                        f"{exc.detail} (after {resumes} resume{'s' if resumes > 1 else ''}; {why})"
                    ) from None
                raise StreamInterruptedError(f"{exc.detail}; not resumed: {why}") from None
        except DeepSeekError as exc:
            if stitch is None:
                raise  # not a resume: nothing to add
            _push_rest(resp, received, stitch)
            # The resume request itself failed: the answer is still the partial one, interrupted.
            assert first_drop is not None
            raise StreamInterruptedError(f"{first_drop.detail}; resuming failed: {exc}") from None
        else:
            if stitch is not None:
                _push_rest(resp, received, stitch)
            return
        resumes += 1
        resp.resumes = resumes
        answer, reasoning = "".join(received.answer), "".join(received.reasoning)
        resp._push(
            StatusEvent(
                f"connection dropped after {received.pieces} tokens; resuming ({resumes} of {spec.resume})…"
            )
        )
        dropped = _dropped_usage(received, request)
        if stitch is not None and stitch.dropped is not None:
            dropped = _add_usage(dropped, stitch.dropped)
        stitch = _Stitch(answer, reasoning, dropped)
        received.usage = None
        url = spec.resume_url or spec.url
        request = resume_body(body, answer, reasoning)


def _push_rest(resp: Response, received: _Received, stitch: _Stitch) -> None:
    rest = stitch.flush()
    if rest:
        received.note(rest)
        resp._push_many(rest)


def _why_no_resume(spec: RequestSpec, received: _Received, resumes: int) -> str | None:
    if not spec.resume or spec.resume_url is None:
        return "resume is off"
    if resumes >= spec.resume:
        return f"already resumed {resumes} times"
    if received.tool_calls:
        return "prefix completion cannot continue a tool call"
    if not received.answer and not received.reasoning:
        return "nothing had arrived"
    return None
