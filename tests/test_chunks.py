"""The DeepSeek chunk layer (ds_magic/chunks.py) on its own: one ``data:`` payload or raw SSE bytes in,
typed events out. Shapes follow deepseek-api.md §2 (captures of real streams); one edge per test."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ds_magic.chunks import ChunkParser, parse_chunk
from ds_magic.errors import StreamDecodeError, StreamError
from ds_magic.types import AnswerDelta, Event, ReasoningDelta, ToolCallDelta, Usage, UsageEvent

ID = "5b0c1d2e-0000-4000-8000-000000000001"


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """A ``chat.completion.chunk`` as DeepSeek sends it (§2.2), with one choice."""
    obj: dict[str, Any] = {
        "id": ID,
        "object": "chat.completion.chunk",
        "created": 1790000000,
        "model": "deepseek-flash",
        "choices": [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}],
    }
    obj.update(extra)
    return obj


def sse(*payloads: dict[str, Any] | str, eol: str = "\n") -> bytes:
    out = []
    for p in payloads:
        data = p if isinstance(p, str) else json.dumps(p, ensure_ascii=False)
        out.append(f"data: {data}{eol}{eol}")
    return "".join(out).encode()


def parse(payload: dict[str, Any] | str) -> tuple[list[Event], str | None]:
    out: list[Event] = []
    finish = parse_chunk(payload if isinstance(payload, str) else json.dumps(payload), out)
    return out, finish


def feed_all(parts: list[bytes]) -> tuple[list[Event], ChunkParser]:
    parser = ChunkParser()
    events: list[Event] = []
    for part in parts:
        events += parser.feed(part)
    return events, parser


USAGE = {
    "prompt_tokens": 14,
    "completion_tokens": 9,
    "total_tokens": 23,
    "prompt_tokens_details": {"cached_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 7},
    "prompt_cache_hit_tokens": 0,
    "prompt_cache_miss_tokens": 14,
}
USAGE_EVENT = UsageEvent(
    Usage(prompt_tokens=14, completion_tokens=9, reasoning_tokens=7, cache_hit_tokens=0, cache_miss_tokens=14)
)


# ------------------------------------------------------------------- one payload, parse_chunk()

# name: one edge each; the payload; the events; the finish_reason returned.
PAYLOAD_CASES = [
    (
        "role-only first chunk (non-thinking) gives no events",
        chunk({"role": "assistant", "content": ""}),
        [],
        None,
    ),
    (
        "role-only first chunk (thinking) gives no events",
        chunk({"role": "assistant", "content": None, "reasoning_content": ""}),
        [],
        None,
    ),
    (
        "role and content in one chunk",
        chunk({"role": "assistant", "content": "Hi"}),
        [AnswerDelta("Hi")],
        None,
    ),
    (
        "reasoning phase: content is null",
        chunk({"content": None, "reasoning_content": "The user wants"}),
        [ReasoningDelta("The user wants")],
        None,
    ),
    (
        "answer phase: reasoning_content is null",
        chunk({"content": "Paris", "reasoning_content": None}),
        [AnswerDelta("Paris")],
        None,
    ),
    (
        "empty content with role: null (the official doc example's last delta)",
        chunk({"content": "", "role": None}),
        [],
        None,
    ),
    (
        "usage: null on a content chunk is ignored (include_usage)",
        chunk({"content": "x"}, usage=None),
        [AnswerDelta("x")],
        None,
    ),
    (
        "usage rides on the finish chunk",
        chunk({"content": "", "reasoning_content": None}, "stop", usage=USAGE),
        [USAGE_EVENT],
        "stop",
    ),
    (
        "finish chunk carries the last text and the usage (§2.5)",
        chunk({"content": "."}, "length", usage=USAGE),
        [AnswerDelta("."), USAGE_EVENT],
        "length",
    ),
    (
        "trailing usage chunk with choices: [] (OpenAI style)",
        {"id": ID, "object": "chat.completion.chunk", "choices": [], "usage": USAGE},
        [USAGE_EVENT],
        None,
    ),
    (
        "empty delta {} with a finish_reason",
        chunk({}, "insufficient_system_resource"),
        [],
        "insufficient_system_resource",
    ),
    (
        "usage with only the three basic fields: the cache split defaults sensibly",
        chunk({}, "stop", usage={"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}),
        [UsageEvent(Usage(prompt_tokens=12, completion_tokens=3, cache_hit_tokens=0, cache_miss_tokens=12))],
        "stop",
    ),
    (
        "first tool-call chunk: index, id and name, empty arguments",
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_00_AbCdEfGhIjKlMnOpQrStUvWx",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        ),
        [ToolCallDelta(index=0, id="call_00_AbCdEfGhIjKlMnOpQrStUvWx", name="get_weather", arguments="")],
        None,
    ),
    (
        "later tool-call chunk: only index and an argument piece",
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"'}}]}),
        [ToolCallDelta(index=0, arguments='{"')],
        None,
    ),
]


@pytest.mark.parametrize(
    "payload, events, finish", [c[1:] for c in PAYLOAD_CASES], ids=[c[0] for c in PAYLOAD_CASES]
)
def test_payload(payload, events, finish):
    assert parse(payload) == (events, finish)


def test_parse_chunk_appends_to_out_and_keeps_what_was_there():
    out: list[Event] = [AnswerDelta("before")]
    parse_chunk(json.dumps(chunk({"content": "after"})), out)
    assert out == [AnswerDelta("before"), AnswerDelta("after")]


def test_inband_error_object_raises_stream_error_with_the_server_message():
    err = {"error": {"message": "Internal server error", "type": "server_error", "code": None}}
    with pytest.raises(StreamError, match="Internal server error") as info:
        parse(err)
    assert info.value.body == err["error"]


def test_inband_error_as_a_bare_string_raises_stream_error():
    with pytest.raises(StreamError, match="overloaded"):
        parse({"error": "overloaded"})


@pytest.mark.parametrize(
    "data",
    ['{"id": broken', "not json at all", "", '{"a": 1} trailing', "[1, 2]", '"a string"', "null"],
    ids=["truncated", "text", "empty", "trailing data", "array", "string", "null"],
)
def test_non_json_object_raises_stream_decode_error(data):
    with pytest.raises(StreamDecodeError) as info:
        parse(data)
    assert info.value.raw == data


def test_a_choice_that_is_not_an_object_raises_stream_decode_error():
    with pytest.raises(StreamDecodeError):
        parse({"choices": ["oops"]})


# ------------------------------------------------------------------- streams, ChunkParser.feed()


def test_reasoning_then_content():
    stream = sse(
        chunk({"role": "assistant", "content": None, "reasoning_content": ""}),
        chunk({"content": None, "reasoning_content": "The user wants"}),
        chunk({"content": None, "reasoning_content": " a short answer."}),
        chunk({"content": "Paris", "reasoning_content": None}),
        chunk({"content": ".", "reasoning_content": None}),
        chunk({"content": "", "reasoning_content": None}, "stop", usage=USAGE),
        "[DONE]",
    )
    events, parser = feed_all([stream])
    assert events == [
        ReasoningDelta("The user wants"),
        ReasoningDelta(" a short answer."),
        AnswerDelta("Paris"),
        AnswerDelta("."),
        USAGE_EVENT,
    ]
    assert parser.done and parser.finish_reason == "stop"


def test_tool_call_fragments_id_and_name_first_then_argument_pieces():
    stream = sse(
        chunk({"role": "assistant", "content": ""}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_00_x",
                        "type": "function",
                        "function": {"name": "f", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'location": "Tokyo"}'}}]}),
        chunk({"content": ""}, "tool_calls", usage=USAGE),
        "[DONE]",
    )
    events, parser = feed_all([stream])
    assert events == [
        ToolCallDelta(index=0, id="call_00_x", name="f", arguments=""),
        ToolCallDelta(index=0, arguments='{"'),
        ToolCallDelta(index=0, arguments='location": "Tokyo"}'),
        USAGE_EVENT,
    ]
    assert parser.finish_reason == "tool_calls"


def test_two_parallel_tool_calls_told_apart_by_index():
    def call(index: int, **fn: str) -> dict[str, Any]:
        return {"index": index, "function": fn}

    stream = sse(
        chunk({"tool_calls": [{**call(0, name="a", arguments=""), "id": "call_00_a", "type": "function"}]}),
        chunk({"tool_calls": [{**call(1, name="b", arguments=""), "id": "call_01_b", "type": "function"}]}),
        chunk({"tool_calls": [call(0, arguments='{"x":'), call(1, arguments='{"y":')]}),
        chunk({"tool_calls": [call(1, arguments="2}")]}),
        chunk({"tool_calls": [call(0, arguments="1}")]}),
        chunk({}, "tool_calls"),
        "[DONE]",
    )
    events, _ = feed_all([stream])
    assert events == [
        ToolCallDelta(index=0, id="call_00_a", name="a", arguments=""),
        ToolCallDelta(index=1, id="call_01_b", name="b", arguments=""),
        ToolCallDelta(index=0, arguments='{"x":'),
        ToolCallDelta(index=1, arguments='{"y":'),
        ToolCallDelta(index=1, arguments="2}"),
        ToolCallDelta(index=0, arguments="1}"),
    ]
    by_index: dict[int, str] = {}
    for ev in events:
        assert isinstance(ev, ToolCallDelta)
        by_index[ev.index] = by_index.get(ev.index, "") + ev.arguments
    assert by_index == {0: '{"x":1}', 1: '{"y":2}'}


def test_done_ends_the_stream_and_later_bytes_are_ignored():
    parser = ChunkParser()
    events = parser.feed(sse(chunk({"content": "a"}), "[DONE]", chunk({"content": "after in same read"})))
    assert events == [AnswerDelta("a")] and parser.done
    assert parser.feed(sse(chunk({"content": "later read"}))) == []
    assert parser.feed(b"data: not even json\n\n") == []  # nothing after [DONE] is parsed


def test_done_in_the_same_read_as_a_bad_event_after_it_does_not_raise():
    events, parser = feed_all([sse(chunk({"content": "a"}), "[DONE]") + b'data: {"id": broken\n\n'])
    assert events == [AnswerDelta("a")] and parser.done


def test_keepalive_comments_between_events_give_nothing():
    stream = b": keep-alive\n\n" + sse(chunk({"content": "a"})) + b": keep-alive\n\n" + sse("[DONE]")
    events, parser = feed_all([stream])
    assert events == [AnswerDelta("a")] and parser.done


def test_data_events_are_counted_comments_are_not():
    _, parser = feed_all([b": keep-alive\n\n" + sse(chunk({"content": "a"}), chunk({}, "stop"), "[DONE]")])
    assert parser.data_events == 3  # two chunks and [DONE]


def test_inband_error_in_a_stream_raises_from_feed():
    parser = ChunkParser()
    assert parser.feed(sse(chunk({"content": "partial"}))) == [AnswerDelta("partial")]
    with pytest.raises(StreamError, match="boom"):
        parser.feed(sse({"error": {"message": "boom"}}))


def test_non_json_in_a_stream_raises_stream_decode_error_from_feed():
    with pytest.raises(StreamDecodeError):
        ChunkParser().feed(b'data: {"id": broken\n\n')


def test_without_done_the_parser_is_not_done():
    _, parser = feed_all([sse(chunk({"content": "a"}), chunk({}, "stop"))])
    assert not parser.done and parser.finish_reason == "stop"


# A stream with every kind of event and multi-byte UTF-8 (é, 中, an emoji), so that a split can land
# inside a character, inside "data:", between CR and LF, and inside [DONE].
WHOLE = sse(
    chunk({"role": "assistant", "content": None, "reasoning_content": ""}),
    chunk({"content": None, "reasoning_content": "Pensée 中文"}),
    chunk({"content": "Café 🚀", "reasoning_content": None}),
    chunk({"tool_calls": [{"index": 0, "id": "call_00_x", "function": {"name": "f", "arguments": '{"é"'}}]}),
    chunk({"content": ""}, "stop", usage=USAGE),
    "[DONE]",
    eol="\r\n",
)
WHOLE_EVENTS = [
    ReasoningDelta("Pensée 中文"),
    AnswerDelta("Café 🚀"),
    ToolCallDelta(index=0, id="call_00_x", name="f", arguments='{"é"'),
    USAGE_EVENT,
]


def test_whole_stream_in_one_read():
    events, parser = feed_all([WHOLE])
    assert events == WHOLE_EVENTS and parser.done and parser.finish_reason == "stop"


def test_split_at_every_byte_boundary_gives_the_same_events():
    for i in range(len(WHOLE) + 1):
        events, parser = feed_all([WHOLE[:i], WHOLE[i:]])
        assert events == WHOLE_EVENTS, f"split at byte {i}"
        assert parser.done and parser.finish_reason == "stop", f"split at byte {i}"


def test_one_byte_per_read_gives_the_same_events():
    events, parser = feed_all([WHOLE[i : i + 1] for i in range(len(WHOLE))])
    assert events == WHOLE_EVENTS and parser.done


# ------------------------------------------------------------------- property


TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)  # any text UTF-8 can carry


@given(pieces=st.lists(TEXT, max_size=12), eol=st.sampled_from(["\n", "\r\n", "\r"]), data=st.data())
def test_any_content_in_any_chunking_concatenates_to_the_original(pieces, eol, data):
    stream = sse(
        chunk({"role": "assistant", "content": ""}),
        *(chunk({"content": p}) for p in pieces),
        chunk({"content": ""}, "stop", usage=USAGE),
        "[DONE]",
        eol=eol,
    )
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8), label="cuts"))
    bounds = [0, *cuts, len(stream)]
    parts = [stream[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    events, parser = feed_all(parts)
    answer = [e for e in events if isinstance(e, AnswerDelta)]
    assert "".join(e.text for e in answer) == "".join(pieces)
    assert all(e.text for e in answer)  # an empty piece is no event
    assert events[-1] == USAGE_EVENT and parser.done and parser.finish_reason == "stop"
