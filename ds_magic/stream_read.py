"""Reading one answer's event stream: bytes → events → the response, and the end of the body.

Split from runner.py (the attempt loop) so the hot path of a stream is one short module (issue 17).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from .chunks import ChunkParser
from .deadlines import Watchdog
from .errors import StreamInterruptedError
from .http_conn import within
from .pump import WAKE_EVERY
from .response import ResponseWriter
from .resume import Received, Stitch
from .transport import transport_detail
from .types import StatusEvent

__all__ = ["read_stream"]

# Seconds to wait for [DONE] (and an OpenAI-style trailing usage chunk) after the finish chunk.
_AFTER_FINISH = 2.0
# Seconds to read the end of the body after [DONE], so the connection can be reused.
_AFTER_DONE = 0.5
# A read that took longer than this waited on the socket (its data was not already buffered).
_WAITED = 0.002
# How long a trickling stream gathers in the socket between reads: a reader's tick, so each
# gathered read finds its reader's last wake-up a tick old and wakes it at once (no second wait).
_GATHER = WAKE_EVERY
# How long before the reader's scheduled wake-up a gathering tick ends (the push must come first).
_EARLY = 0.01
# Fewer events than this in a gather tick (200 tokens/s) is a trickle worth gathering.
_TRICKLE = 20


async def read_stream(
    writer: ResponseWriter,
    response: httpx.Response,
    dog: Watchdog,
    received: Received,
    stitch: Stitch | None,
    max_event_bytes: int,
) -> tuple[bool, str | None]:
    """Read the event stream through ``writer``. Returns (True, finish_reason) when it ended
    properly, (False, None) if the connection broke before any byte arrived (retryable); raises on
    any later failure."""
    parser = ChunkParser(max_event_bytes)
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
    waited = trickle = False
    window, count = clock(), 0  # events read in the current tick
    try:
        while True:
            if finish_deadline is None:
                asked = clock()
                try:
                    raw = await reads.__anext__()
                except StopAsyncIteration:
                    break
                waited = clock() - asked > _WAITED
            else:
                # The finish chunk has come: the answer is complete. Wait a moment for a trailing
                # usage chunk and [DONE], but a server that then sends only keep-alives (or nothing)
                # must not hold a finished answer until the idle deadline (deepseek-api.md §2.5).
                left = finish_deadline - clock()
                if left <= 0:
                    break
                try:
                    raw = await within(reads.__anext__(), left)
                except (StopAsyncIteration, asyncio.TimeoutError):
                    break
            got_bytes = True
            events = feed(raw)
            if parser.data_events != seen:
                seen = parser.data_events
                dog.note_progress()
            elif not queued_said and seen == 0:
                queued_said = True
                writer.push(StatusEvent("waiting (queued by DeepSeek)"))
            if events:
                if stitch is not None:
                    events = stitch(events)
                received.note(events)
                writer.push_many(events)
            if parser.error is not None:
                raise parser.error  # after the text that came before it in the same read (chunks.py)
            if finish_deadline is None and parser.finish_reason is not None and not parser.done:
                finish_deadline = clock() + _AFTER_FINISH
            if events:
                count += len(events)
            if clock() - window >= _GATHER:  # was the last tick's text a trickle?
                trickle, window, count = count < _TRICKLE, clock(), 0
            if events and trickle and waited and finish_deadline is None and not parser.done:
                # Text is trickling in (we had to wait for this read): let a tick's worth gather in
                # the connection's buffer (http_conn.py; h11's under a user's own httpx client) and
                # take it in one read, not a task wake-up per token. The tick ends just before the
                # reader's scheduled wake-up (pump.WAKE_EVERY), which the text just pushed waits for,
                # so each token waits one tick at most. The first text is never held back, and a
                # stream that flows faster (_TRICKLE a tick, e.g. a replay at 5,000 tokens/s) is
                # never slowed: "waited" alone misleads when another thread holds the GIL.
                wake = writer.next_wake()
                await asyncio.sleep(_GATHER if wake is None else min(_GATHER, max(wake - _EARLY, 0.0)))
            if parser.done:
                # Nothing after [DONE] is parsed, but the (tiny) rest of the body is read so the
                # connection goes back to the pool instead of being closed. asyncio.timeout, not
                # wait_for: wait_for made a task per stream, 11% of engine time at 1,000 streams.
                try:
                    await within(_drain(body), _AFTER_DONE)
                except asyncio.TimeoutError:
                    pass  # a server that keeps talking after [DONE]: just close the connection
                break
    except httpx.TransportError as exc:
        if not got_bytes:
            return False, None
        raise StreamInterruptedError(transport_detail(exc)) from None
    if parser.done or parser.finish_reason is not None:
        # A finish_reason without [DONE] is still a complete answer; nothing after [DONE] is read.
        return True, parser.finish_reason
    if not got_bytes:
        return False, None
    raise StreamInterruptedError("the connection closed before the answer finished (no [DONE])")


async def _drain(body: Any) -> None:
    async for _ in body:
        pass
