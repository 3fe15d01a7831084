"""Writing the answer to an accepted chat request: scripted failures, the SSE stream, the whole JSON answer.

The stream is a list of data events written with its pacing; a fault stops it, or inserts one odd
event, at event number ``fault_after`` (see the faults in the package docstring).
"""

from __future__ import annotations

import time

from .framing import ChunkedOut, Conn, Exchange, Request, head, phrase, send, send_error
from .plans import Plan, completion, token_logprobs
from .script import Script
from .validate import error_for
from .wire import ChunkMaker, dumps, sse

HTML_PAGE = (
    "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
PLAIN_422 = (
    "Failed to deserialize the JSON body into the target type: missing field `messages` at line 4 column 1"
)

# faults that end the normal stream at event number `fault_after`
_STOPPING = frozenset({"drop", "stall", "stall_keepalive", "eof_no_done", "malformed_json", "inband_error"})
# faults that insert one odd event at position `fault_after` and go on
_INSERTING = frozenset({"big_event", "invalid_utf8"})

_KEEPALIVE = b": keep-alive\n\n"
_INVALID_MARK = "\u0000OFFLINE-INVALID-UTF8\u0000"


async def fail(conn: Conn, ex: Exchange, req: Request, script: Script, active: int) -> bool:
    """A scripted failure: an HTML page, a plain-text error, or the documented JSON error of the status.

    *active* is the number of requests in flight (the 429 message names it).
    """
    extra = list(script.headers.items())
    if script.fault == "html_error":
        page = HTML_PAGE.format(status=script.status, phrase=phrase(script.status)).encode()
        hdrs = [("Content-Type", "text/html"), ("Content-Length", str(len(page))), *extra]
        await send(conn, head(script.status, hdrs) + page, ex)
        return True
    if script.fault == "plain_text_error":
        status = 422 if script.status == 200 else script.status
        return await send_error(
            conn, status, script.error_message or PLAIN_422, headers=extra, plain=True, ex=ex
        )
    message, type_ = error_for(script, req, active)
    return await send_error(conn, script.status, message, type_, headers=extra, ex=ex)


# ---------------------------------------------------------------- streaming


def dialect_header(plan: Plan) -> list[tuple[str, str]]:
    """The server names its dialect in every answer, so that ds_magic's client knows it (dialect.py)."""
    return [] if plan.openai else [("X-DS-Magic-Dialect", "deepseek")]


def events(plan: Plan, script: Script, maker: ChunkMaker) -> list[tuple[bytes, bool]]:
    """The data events of a normal stream (without [DONE]); the flag marks paced token events."""
    out: list[tuple[bytes, bool]] = []
    if plan.openai:  # OpenAI's own first chunk: the role alone
        out.append((sse(maker.chunk({"role": "assistant"})), False))
    elif plan.thinking:
        out.append((sse(maker.chunk({"role": "assistant", "content": None, "reasoning_content": ""})), False))
    else:
        out.append((sse(maker.chunk({"role": "assistant", "content": ""})), False))
    for piece in plan.reasoning:
        out.append((sse(maker.chunk({"content": None, "reasoning_content": piece})), True))
    answer = list(plan.answer)
    last = answer.pop() if script.finish_with_text and answer and not plan.tool_calls else ""
    for piece in answer:
        chunk = maker.chunk(_content(plan, piece))
        if plan.logprobs is not None:  # logprobs: true (deepseek-api.md §1.5)
            chunk["choices"][0]["logprobs"] = {"content": [token_logprobs(piece, plan.logprobs)]}
        out.append((sse(chunk), True))
    for i, call in enumerate(plan.tool_calls):
        first = {
            "index": i,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        out.append((sse(maker.chunk({"tool_calls": [first]})), True))
        for frag in call.pieces:
            out.append(
                (sse(maker.chunk({"tool_calls": [{"index": i, "function": {"arguments": frag}}]})), True)
            )
    final = _content(plan, last)
    if script.usage_style == "openai" or plan.openai:
        out.append((sse(maker.chunk(final, plan.finish_reason)), bool(last)))
        out.append((sse(maker.usage_chunk(plan.usage)), False))
    else:
        out.append((sse(maker.chunk(final, plan.finish_reason, plan.usage)), bool(last)))
    return out


def _content(plan: Plan, text: str) -> dict[str, str | None]:
    """The delta of a piece of the answer (with ``reasoning_content: null`` when thinking)."""
    return {"content": text, "reasoning_content": None} if plan.thinking else {"content": text}


def odd_event(plan: Plan, script: Script, maker: ChunkMaker) -> bytes:
    """The event that ``big_event`` or ``invalid_utf8`` inserts."""
    if script.fault == "big_event":
        big = ("offline big event " * (script.fault_size // 18 + 1))[: script.fault_size]
        return sse(maker.chunk(_content(plan, big)))
    raw = sse(maker.chunk(_content(plan, _INVALID_MARK)))
    return raw.replace(dumps(_INVALID_MARK)[1:-1].encode(), b"bad \xff\xfe bytes")


async def stream(conn: Conn, ex: Exchange, plan: Plan, script: Script) -> bool:
    hdrs = [
        ("Content-Type", "text/event-stream; charset=utf-8"),
        ("Cache-Control", "no-cache"),
        ("Transfer-Encoding", "chunked"),
        *dialect_header(plan),
        *script.headers.items(),
    ]
    out = ChunkedOut(conn, ex, split=script.fault == "split_utf8")
    if not await out.raw(head(200, hdrs)):
        return False
    if not await _first_wait(ex, out, script, _KEEPALIVE):
        return False
    maker = ChunkMaker(plan.model, plan.include_usage)
    payloads = events(plan, script, maker)
    fault = script.fault
    tps = script.tokens_per_second
    t0: float | None = None
    k = 0
    for i, (payload, paced) in enumerate(payloads):
        if fault in _STOPPING and i == script.fault_after:
            return await _stream_fault(out, ex, script)
        if (
            fault in _INSERTING
            and i == script.fault_after
            and not await out.event(odd_event(plan, script, maker))
        ):
            return False
        if paced and tps:
            if t0 is None:
                t0 = time.monotonic()
            elif not await ex.pause_until(t0 + k / tps):
                return False
            k += 1
        if not await out.event(payload):
            return False
    if fault in _STOPPING:
        return await _stream_fault(out, ex, script)
    if fault in _INSERTING and script.fault_after >= len(payloads):
        if not await out.event(odd_event(plan, script, maker)):
            return False
    if fault == "keepalive_after_answer":
        return await _keepalives_forever(out, ex, script, _KEEPALIVE)
    if not await out.finish(b"data: [DONE]\n\n", completed=True):
        return False
    return True


async def _first_wait(ex: Exchange, out: ChunkedOut, script: Script, keepalive: bytes) -> bool:
    """The ttft wait, with ``script.keepalives`` keep-alives spread over it (the first at once)."""
    start = time.monotonic()
    n = script.keepalives
    for k in range(n):
        if not await ex.pause_until(start + script.ttft * k / n):
            return False
        if not await out.raw(keepalive, chunk=True):
            return False
    return await ex.pause_until(start + script.ttft)


async def _keepalives_forever(out: ChunkedOut, ex: Exchange, script: Script, keepalive: bytes) -> bool:
    while await ex.pause(script.keepalive_interval):
        if not await out.raw(keepalive, chunk=True):
            return False
    return False


async def _stream_fault(out: ChunkedOut, ex: Exchange, script: Script) -> bool:
    fault = script.fault
    if fault == "drop":
        return False
    if fault == "stall":
        await ex.gone.wait()
        return False
    if fault == "stall_keepalive":
        return await _keepalives_forever(out, ex, script, _KEEPALIVE)
    if fault == "malformed_json":
        if not await out.event(b'data: {"id": broken\n\n'):
            return False
    elif fault == "inband_error":
        err = {
            "error": {
                "message": script.error_message
                or "Server Error: the inference was interrupted (offline in-band error)",
                "type": "server_error",
                "param": None,
                "code": "server_error",
            }
        }
        if not await out.event(sse(err)):
            return False
    return await out.finish(b"")  # eof_no_done and the two above: a clean end of the body, no [DONE]


# ---------------------------------------------------------------- non-streaming


async def whole(conn: Conn, ex: Exchange, plan: Plan, script: Script) -> bool:
    """A non-streaming answer (also the ``wrong_content_type`` fault of a streaming request)."""
    fault = script.fault
    data = dumps(completion(plan)).encode()
    if fault == "malformed_json":
        data = b'{"id": broken'
    tps = script.tokens_per_second
    gen = (max(plan.token_count - 1, 0) / tps) if tps else 0.0
    base = [("Content-Type", "application/json"), *dialect_header(plan), *script.headers.items()]
    if script.keepalives > 0 or fault in ("stall", "stall_keepalive"):
        return await _whole_chunked(conn, ex, script, data, gen, base)
    if fault == "stall":
        await ex.gone.wait()
        return False
    if not await ex.pause(script.ttft + gen):
        return False
    response = head(200, [*base, ("Content-Length", str(len(data)))])
    if fault == "drop":
        await send(conn, response + data[: len(data) // 2])
        return False
    ex.complete()
    await send(conn, response + data, ex)
    return True


async def _whole_chunked(
    conn: Conn, ex: Exchange, script: Script, data: bytes, gen: float, base: list[tuple[str, str]]
) -> bool:
    """The whole answer as a chunked body, after blank-line keep-alives (*gen*: seconds of generation)."""
    fault = script.fault
    out = ChunkedOut(conn, ex, split=fault == "split_utf8")
    if not await out.raw(head(200, [*base, ("Transfer-Encoding", "chunked")])):
        return False
    if not await _first_wait(ex, out, script, b"\n"):
        return False
    if fault == "stall":
        await ex.gone.wait()
        return False
    if fault == "stall_keepalive":
        return await _keepalives_forever(out, ex, script, b"\n")
    if not await ex.pause(gen):
        return False
    if fault == "drop":
        await out.raw(data[: len(data) // 2], chunk=True)
        return False
    if not await out.finish(data, completed=True):
        return False
    return True
