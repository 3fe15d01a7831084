"""The coroutine that runs one streaming request on the engine loop, live or from the cache.

It owns the attempt loop (retries only before the first body byte), the resume of a dropped
stream, and the translation of every way a request can end into ``Response`` state, written
through a ``ResponseWriter``. It always closes the HTTP response, which is how the server learns
that a cancelled request should stop generating (kernel-and-widgets.md §6). Cancel is the engine
future's ``cancel()`` (``Response.cancel``), which cancels this task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from .deadlines import Timeout, Watchdog
from .errors import (
    APIStatusError,
    APITimeoutError,
    DeepSeekError,
    StreamInterruptedError,
    scrubbing,
    with_partial,
)
from .response import ResponseWriter
from .resume import Received, Stitch, add_usage, dropped_usage, resume_body, why_no_resume
from .retry import RetryPolicy
from .sse import DEFAULT_MAX_EVENT_BYTES
from .stream_read import read_stream
from .transport import (
    check_event_stream,
    decoding_error,
    error_from_exception,
    error_from_transport,
    status_error,
)
from .types import StatusEvent

if TYPE_CHECKING:
    from .cache import ResponseCache
    from .dialect import Wire

__all__ = ["RequestSpec", "finish_in_turn", "run_request"]


@dataclass
class RequestSpec:
    url: str
    headers: dict[str, str] = field(repr=False)  # holds the key: never in a repr or a traceback
    body: dict[str, Any]
    timeout: Timeout
    retry: RetryPolicy
    # Called on the engine loop right before the first attempt, e.g. to build a conversation's
    # messages once the previous turn of that conversation has been stored.
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    lock: asyncio.Lock | None = None
    # Resume a stream that breaks after text arrived, at most this many times, by prefix completion
    # on ``resume_url`` (the beta endpoint; deepseek-api.md §4.3). 0 or no URL: never.
    resume: int = 0
    resume_url: str | None = None
    # The response cache, and what besides the body decides the answer (cache.request_key).
    cache: ResponseCache | None = None
    cache_scope: tuple[str, ...] = ()
    # The configured API key, scrubbed from every error whatever its shape (errors.py, issue 14).
    secret: str = field(default="", repr=False)
    # The largest SSE line or event accepted (sse.py); beyond it the stream ends with an error.
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    # The server's dialect (dialect.py): fits the body, learns from the answer, may forbid a resume.
    wire: Wire | None = None


async def run_request(writer: ResponseWriter, http: httpx.AsyncClient, spec: RequestSpec) -> None:
    """Run ``spec`` and record everything through ``writer``; never raises (except engine shutdown).

    History, records and the cache are written before the response reports done: a cache hit is
    replayed, and an ``ok`` answer is stored, before ``finish``. Every error made on the way has
    the configured key scrubbed as it is made, whatever a server echoed (errors.scrubbing).
    """
    with scrubbing(spec.secret):  # this task's own context: no other request sees the key
        await _run(writer, http, spec)


async def _run(writer: ResponseWriter, http: httpx.AsyncClient, spec: RequestSpec) -> None:
    resp = writer.response
    task = asyncio.current_task()
    assert task is not None
    lock = spec.lock
    locked = False
    dog: Watchdog | None = None
    try:
        if lock is not None:
            cancelled = await _acquire_in_turn(lock, task)
            locked = True
            if cancelled:
                raise asyncio.CancelledError  # ended below, now that it is this turn's turn
        body = spec.prepare(spec.body) if spec.prepare is not None else spec.body
        if spec.wire is not None:
            body = await spec.wire.fit(body, http)
        resp.request = body
        if not writer.start():
            return  # cancelled before it started
        if spec.wire is not None:
            spec.wire.started(writer.push)
        key = None
        if spec.cache is not None:
            from .cache import lookup, replay, request_key  # no sqlite3 import without a cache

            key = request_key(body, scope=spec.cache_scope)
            hit = await lookup(spec.cache, key)
            if hit is not None:
                await replay(writer, hit)
                writer.finish("ok", finish_reason=hit.finish_reason)
                return
        dog = Watchdog(asyncio.get_running_loop(), task, spec.timeout)
        finish_reason = await _run_with_resume(writer, http, spec, body, dog)
        if spec.cache is not None and key is not None:
            from .cache import store

            writer.flush_held(complete=True)
            await store(spec.cache, key, resp, finish_reason)
    except asyncio.CancelledError:
        if dog is not None and dog.fired:
            _uncancel(task)
            partial = resp.text_so_far
            writer.finish(
                "interrupted" if partial or resp.reasoning else "error",
                APITimeoutError(dog.fired, dog.seconds(dog.fired), partial, resp.reasoning),
            )
        else:
            writer.finish("cancelled")
            if not resp.cancel_requested:
                raise  # not ours (engine shutdown): let it propagate
            _uncancel(task)
    except Exception as exc:
        _fail(writer, error_from_exception(exc, spec.url))
    else:
        writer.finish("ok", finish_reason=finish_reason)
    finally:
        if dog is not None:
            dog.close()
        if locked and lock is not None:
            lock.release()


def _fail(writer: ResponseWriter, exc: DeepSeekError) -> None:
    resp = writer.response
    exc = with_partial(exc, resp.text_so_far, resp.reasoning)
    started = bool(resp.text_so_far or resp.reasoning or resp.tool_calls)
    writer.finish("interrupted" if started and not isinstance(exc, APIStatusError) else "error", exc)


async def _acquire_in_turn(lock: asyncio.Lock, task: asyncio.Task[Any]) -> bool:
    """Wait for the conversation's earlier turns: its turns run, and are stored, in order. A turn
    cancelled while it waits still waits for its turn before it is stored (cancelled), so the
    history never holds it before the exchange it followed. True if it was cancelled meanwhile."""
    try:
        await lock.acquire()
    except asyncio.CancelledError:
        _uncancel(task)
        await lock.acquire()
        return True
    return False


async def finish_in_turn(writer: ResponseWriter, lock: asyncio.Lock) -> None:
    """End a conversation turn that was cancelled before its task started, in its turn."""
    async with lock:
        writer.finish("cancelled")


def _uncancel(task: asyncio.Task[Any]) -> None:
    uncancel = getattr(task, "uncancel", None)  # Python ≥ 3.11
    if uncancel is not None:
        uncancel()


async def _sleep_before_retry(
    writer: ResponseWriter, spec: RequestSpec, dog: Watchdog, delay: float, why: str, attempt: int
) -> None:
    writer.response.retries = attempt
    writer.push(
        StatusEvent(f"retrying in {delay:.3g} s after {why} (retry {attempt} of {spec.retry.max_retries})")
    )
    dog.pause()
    await spec.retry.sleep(delay)


async def _attempts(
    writer: ResponseWriter,
    http: httpx.AsyncClient,
    spec: RequestSpec,
    body: dict[str, Any],
    dog: Watchdog,
    url: str,
    received: Received,
    stitch: Stitch | None,
) -> str | None:
    """Send ``body`` until a stream completes (its finish_reason) or an error that is not retried."""
    retry, timeout = spec.retry, spec.timeout
    http_timeout = httpx.Timeout(
        connect=timeout.connect, read=None, write=timeout.connect, pool=timeout.connect
    )
    attempt = 0
    while True:
        dog.begin_attempt()
        request = http.build_request("POST", url, headers=spec.headers, json=body, timeout=http_timeout)
        try:
            # Never follow a redirect, whatever the (user's) client does: the prompt, the history
            # and the key would go to another host, and a 302 would turn into a GET (issue 14).
            response = await http.send(request, stream=True, follow_redirects=False)
        except httpx.RequestError as exc:
            err = error_from_transport(exc, url, timeout.connect)
            if isinstance(exc, httpx.TransportError) and attempt < retry.max_retries:
                attempt += 1
                await _sleep_before_retry(writer, spec, dog, retry.backoff(attempt - 1), _short(err), attempt)
                continue
            raise err from None
        try:
            if spec.wire is not None:
                spec.wire.learn(response)
            if response.status_code != 200:
                err, delay = await status_error(response, url, retry, attempt)
                if delay is not None and attempt < retry.max_retries:
                    attempt += 1
                    await response.aclose()
                    await _sleep_before_retry(writer, spec, dog, delay, str(response.status_code), attempt)
                    continue
                raise err
            await check_event_stream(response, url)
            try:
                done, finish_reason = await read_stream(
                    writer, response, dog, received, stitch, spec.max_event_bytes
                )
            except httpx.DecodingError as exc:
                raise decoding_error(exc, response.headers.get("content-encoding")) from None
            if done:
                return finish_reason
            # Nothing arrived before the connection broke: still safe to retry.
            if attempt < retry.max_retries:
                attempt += 1
                await _sleep_before_retry(
                    writer, spec, dog, retry.backoff(attempt - 1), "an empty reply", attempt
                )
                continue
            raise StreamInterruptedError("the server closed the connection before sending anything")
        finally:
            await response.aclose()


def _short(err: DeepSeekError) -> str:
    return type(err).__name__.replace("Error", " error").replace("API", "").strip().lower()


async def _run_with_resume(
    writer: ResponseWriter, http: httpx.AsyncClient, spec: RequestSpec, body: dict[str, Any], dog: Watchdog
) -> str | None:
    """The attempts, and after a drop mid-answer, the continuations (resume.py); the finish_reason."""
    received = Received()
    stitch: Stitch | None = None
    url, request = spec.url, body
    resumes = 0
    first_drop: StreamInterruptedError | None = None
    while True:
        try:
            finish_reason = await _attempts(writer, http, spec, request, dog, url, received, stitch)
        except StreamInterruptedError as exc:
            if stitch is not None:
                _push_rest(writer, received, stitch)
            first_drop = first_drop or exc
            why = why_no_resume(spec.resume, spec.resume_url, received, resumes)
            if why is None and spec.wire is not None:
                why = spec.wire.why_no_resume()
            if why is not None:
                if resumes:
                    raise StreamInterruptedError(
                        f"{exc.detail} (after {resumes} resume{'s' if resumes > 1 else ''}; {why})"
                    ) from None
                raise StreamInterruptedError(f"{exc.detail}; not resumed: {why}") from None
        except DeepSeekError as exc:
            if stitch is None:
                raise  # not a resume: nothing to add
            _push_rest(writer, received, stitch)
            # The resume request itself failed: the answer is still the partial one, interrupted.
            assert first_drop is not None
            raise StreamInterruptedError(f"{first_drop.detail}; resuming failed: {exc}") from None
        else:
            if stitch is not None:
                _push_rest(writer, received, stitch)
            return finish_reason
        resumes += 1
        writer.response.resumes = resumes
        answer, reasoning = "".join(received.answer), "".join(received.reasoning)
        writer.push(
            StatusEvent(
                f"connection dropped after {received.pieces} tokens; resuming ({resumes} of {spec.resume})…"
            )
        )
        dropped = dropped_usage(received, request)
        if stitch is not None and stitch.dropped is not None:
            dropped = add_usage(dropped, stitch.dropped)
        stitch = Stitch(answer, reasoning, dropped)
        received.usage = None
        url = spec.resume_url or spec.url
        request = resume_body(body, answer, reasoning)


def _push_rest(writer: ResponseWriter, received: Received, stitch: Stitch) -> None:
    rest = stitch.flush()
    if rest:
        received.note(rest)
        writer.push_many(rest)
