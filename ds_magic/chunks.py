"""DeepSeek stream layer: SSE bytes in, typed events out (pure, no I/O).

Follows deepseek-api.md §2: the first chunk only carries the role; thinking arrives in
``delta.reasoning_content`` and the answer in ``delta.content`` (the other one is null); usage rides
on the finishing chunk or, OpenAI-style, on a trailing chunk with no choices; ``data: [DONE]`` ends
the stream and nothing after it is read; an in-band ``{"error": ...}`` object is raised.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import StreamDecodeError, StreamError
from .sse import SSEDecoder
from .types import AnswerDelta, Event, ReasoningDelta, ToolCallDelta, Usage, UsageEvent

__all__ = ["ChunkParser", "parse_chunk"]

_decoder = json.JSONDecoder()
_raw_decode = _decoder.raw_decode


def _loads(data: str) -> Any:
    # raw_decode skips json.loads' two wrapper layers (the hot path); anything unusual, such as
    # leading whitespace or trailing data, goes through json.loads for its exact error message.
    try:
        obj, end = _raw_decode(data)
    except ValueError:
        return json.loads(data)
    if end != len(data):
        return json.loads(data)
    return obj


def parse_chunk(data: str, out: list[Event]) -> str | None:
    """Append the events of one ``data:`` payload to ``out``; return its ``finish_reason``.

    Raises :class:`StreamDecodeError` for data that is not a JSON object and :class:`StreamError`
    for an error object sent inside the stream.
    """
    try:
        obj = _loads(data)
    except ValueError as exc:
        raise StreamDecodeError(str(exc), data) from None
    if not isinstance(obj, dict):
        raise StreamDecodeError("expected a JSON object", data)
    err = obj.get("error")
    if err:
        msg = err.get("message") if isinstance(err, dict) else err
        raise StreamError(msg if isinstance(msg, str) and msg else "an error occurred during streaming", err)
    finish: str | None = None
    choices = obj.get("choices")
    if choices:
        choice = choices[0]
        if not isinstance(choice, dict):
            raise StreamDecodeError("a choice is not an object", data)
        delta = choice.get("delta")
        if delta:
            # None and "" are both "nothing here": the role-only first chunk is noise.
            reasoning = delta.get("reasoning_content")
            if reasoning:
                out.append(ReasoningDelta(reasoning))
            content = delta.get("content")
            if content:
                out.append(AnswerDelta(content))
            calls = delta.get("tool_calls")
            if calls:
                _tool_calls(calls, out, data)
        finish = choice.get("finish_reason")
    usage = obj.get("usage")
    # Only a non-null usage counts: with include_usage every other chunk carries usage: null.
    if isinstance(usage, dict):
        out.append(UsageEvent(Usage.from_api(usage)))
    return finish


def _tool_calls(calls: Any, out: list[Event], data: str) -> None:
    if not isinstance(calls, list):
        raise StreamDecodeError("tool_calls is not a list", data)
    for call in calls:
        fn = call.get("function") or {}
        out.append(
            ToolCallDelta(
                index=int(call.get("index", 0)),
                id=call.get("id"),
                name=fn.get("name"),
                arguments=fn.get("arguments") or "",
            )
        )


class ChunkParser:
    """Incremental: feed raw body bytes, get the events that completed in them."""

    __slots__ = ("_sse", "done", "finish_reason", "data_events")

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self.done = False
        self.finish_reason: str | None = None
        self.data_events = 0

    def feed(self, chunk: bytes) -> list[Event]:
        out: list[Event] = []
        if self.done:
            return out
        for sse in self._sse.decode(chunk):
            data = sse.data
            self.data_events += 1
            if data.startswith("[DONE]"):
                self.done = True
                break
            finish = parse_chunk(data, out)
            if finish is not None:
                self.finish_reason = finish
        return out
