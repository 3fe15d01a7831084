"""SSEDecoder against the WHATWG event-stream rules (sse-and-retries.md §4), at awkward chunk splits."""

from __future__ import annotations

import dataclasses

import pytest

from ds_magic.sse import ServerSentEvent, SSEDecoder

E = ServerSentEvent


def feed(chunks: list[bytes]) -> list[ServerSentEvent]:
    d = SSEDecoder()
    out: list[ServerSentEvent] = []
    for c in chunks:
        out += d.decode(c)
    assert d.flush() == []
    return out


def datas(chunks: list[bytes]) -> list[str]:
    return [e.data for e in feed(chunks)]


def two_way(stream: bytes) -> list[list[bytes]]:
    return [[stream[:i], stream[i:]] for i in range(len(stream) + 1)]


def bytewise(stream: bytes) -> list[bytes]:
    return [stream[i : i + 1] for i in range(len(stream))]


# name: one edge each; stream; expected data of the events, in order.
DATA_CASES = [
    ("lf", b"data: a\n\ndata: b\n\n", ["a", "b"]),
    ("crlf", b"data: a\r\n\r\ndata: b\r\n\r\n", ["a", "b"]),
    ("cr", b"data: a\r\rdata: b\r\r", ["a", "b"]),
    ("lf then cr is two line ends", b"data: a\n\rdata: b\n\r", ["a", "b"]),
    ("cr cr lf is two line ends", b"data: a\r\r\ndata: b\n\n", ["a", "b"]),
    ("mixed line ends", b"data: a\r\ndata: b\n\rdata: c\r\n\n", ["a\nb", "c"]),
    ("multi-line data", b"data: 1\ndata: 2\ndata:3\n\n", ["1\n2\n3"]),
    ("only one space stripped", b"data:  two\n\n", [" two"]),
    ("tab kept", b"data:\ttab\n\n", ["\ttab"]),
    ("no space after colon", b"data:x\n\n", ["x"]),
    ("colon in value kept", b"data: a: b\n\n", ["a: b"]),
    ("field without colon", b"data\ndata\n\n", ["\n"]),
    ("empty value", b"data:\n\n", [""]),
    ("trailing lf stripped once", b"data: a\ndata:\n\n", ["a\n"]),
    ("comment lines ignored", b": keep-alive\n\n: x\ndata: y\n:\n\n", ["y"]),
    ("event-only block dispatches nothing", b"event: ping\n\ndata: z\n\n", ["z"]),
    ("retry-only block dispatches nothing", b"retry: 10\n\ndata: z\n\n", ["z"]),
    ("id-only block dispatches nothing", b"id: 7\n\ndata: z\n\n", ["z"]),
    ("pending data at eof discarded", b"data: kept\n\ndata: lost\n", ["kept"]),
    ("unterminated last line discarded", b"data: kept\n\ndata: lost", ["kept"]),
    ("unknown and case-folded fields ignored", b"foo: bar\nDATA: no\nData: no\ndata: yes\n\n", ["yes"]),
    ("done passes through as data", b'data: {"a":1}\n\ndata: [DONE]\n\n', ['{"a":1}', "[DONE]"]),
    (
        "u2028 u2029 u0085 are not line ends",
        "data: a\u2028b\u2029c\u0085d\n\n".encode(),
        ["a\u2028b\u2029c\u0085d"],
    ),
    ("vt and ff are not line ends", b"data: a\x0bb\x0cc\n\n", ["a\x0bb\x0cc"]),
    ("multibyte utf-8", "data: café 北京 🎉\n\n".encode(), ["café 北京 🎉"]),
    ("invalid utf-8 becomes u+fffd", b"data: ok\xff\xfe!\xe2\x80\n\n", ["ok\ufffd\ufffd!\ufffd"]),
    ("nul in data kept", b"data:\0\n\n\n\n\n", ["\x00"]),
    ("bom stripped", b"\xef\xbb\xbfdata: a\n\n", ["a"]),
    ("bom before blank line", b"\xef\xbb\xbf\ndata: a\n\n", ["a"]),
    ("wpt format-bom", "\ufeffdata:1\n\n\ufeffdata:2\n\ndata:3\n\n\n".encode(), ["1", "3"]),
    ("wpt format-bom-2 double bom", "\ufeff\ufeffdata:1\n\ndata:2\n\ndata:3\n\n\n".encode(), ["2", "3"]),
    (
        "wpt format-comments",
        b"data:1\r:\0\n:\r\ndata:2\n:"
        + b"x" * 2048
        + b"\rdata:3\n:data:fail\r:"
        + b"x" * 2048
        + b"\ndata:4\n\n",
        ["1\n2\n3\n4"],
    ),
    ("wpt format-field-data", b"data:\n\ndata\ndata\n\ndata:test\n\n\n", ["", "\n", "test"]),
    (
        "wpt format-data-before-final-empty-line",
        b"retry:1000\ndata:test1\n\nid:test\ndata:test2\n",
        ["test1"],
    ),
]


@pytest.mark.parametrize(("stream", "expected"), [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES])
def test_whole_at_every_split_and_bytewise(stream: bytes, expected: list[str]) -> None:
    assert datas([stream]) == expected
    for chunks in two_way(stream):
        assert datas(chunks) == expected, chunks
    assert datas(bytewise(stream)) == expected


MULTI = (
    "\ufeff: hello\r\n"
    "retry: 1500\r\n"
    "id: 1\r\n"
    "event: delta\r\n"
    'data: {"c":"北"}\r\n'
    "\r\n"
    "data: 🎉\rdata:2\u2028x\r\r"
    "event: ping\n\n"
    "id\ndata\n\n"
    "data: [DONE]\n\n"
    "data: lost"
).encode()
MULTI_EVENTS = [
    E("delta", '{"c":"北"}', "1", 1500),
    E("message", "🎉\n2\u2028x", "1", None),
    E("message", "", "", None),
    E("message", "[DONE]", "", None),
]


def test_multi_event_stream_at_every_split_point() -> None:
    assert feed([MULTI]) == MULTI_EVENTS
    for i in range(len(MULTI) + 1):
        assert feed([MULTI[:i], MULTI[i:]]) == MULTI_EVENTS, i


def test_multi_event_stream_at_every_pair_of_split_points() -> None:
    for i in range(len(MULTI) + 1):
        for j in range(i, len(MULTI) + 1):
            assert feed([MULTI[:i], MULTI[i:j], MULTI[j:]]) == MULTI_EVENTS, (i, j)


def test_multi_event_stream_in_one_byte_chunks() -> None:
    assert feed(bytewise(MULTI)) == MULTI_EVENTS


def test_crlf_split_across_chunks() -> None:
    d = SSEDecoder()
    assert d.decode(b"data: a\r") == []
    assert d.decode(b"\n\r") == [E(data="a")]  # the CR ended the blank line: out at once
    assert d.decode(b"\n") == []  # the rest of that CRLF, not another blank line
    assert d.decode(b"data: b\n") == []
    assert d.decode(b"\n") == [E(data="b")]


def test_lone_cr_at_end_of_chunk_dispatches_in_that_call() -> None:
    d = SSEDecoder()
    assert d.decode(b"data: a\r") == []
    assert d.decode(b"\r") == [E(data="a")]
    d = SSEDecoder()
    assert d.decode(b"data: a\n\r") == [E(data="a")]


def test_whole_event_chunk_joins_what_is_pending() -> None:
    # A chunk that is exactly one "data: ...\n\n" event must still see the state before it.
    assert feed([b"data: a\n", b"data: b\n\n"]) == [E(data="a\nb")]
    assert feed([b"event: t\nid: 4\nretry: 9\n", b"data: x\n\n"]) == [E("t", "x", "4", 9)]
    assert feed([b"x", b"data: y\n\n"]) == []  # one line "xdata: y": an unknown field
    assert feed([b"data: a\r", b"\ndata: b\n\n"]) == [E(data="a\nb")]


def test_empty_chunk_between_cr_and_lf_keeps_them_one_line_end() -> None:
    assert feed([b"data: a\r", b"", b"\n", b"data: b\n\n"]) == [E(data="a\nb")]


def test_event_comes_out_of_the_call_that_completes_its_blank_line() -> None:
    d = SSEDecoder()
    assert d.decode(b"data: x\n") == []
    assert d.decode(b"\n") == [E(data="x")]
    assert d.decode(b"data: y\n\ndata: z") == [E(data="y")]
    assert d.decode(b"\n") == []
    assert d.decode(b"\ndata: w\n\n") == [E(data="z"), E(data="w")]


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b"event: test\ndata: x\n\ndata: x\n\n", ["test", "message"]),
        (b"event: \ndata:data\n\n\n", ["message"]),  # wpt format-field-event-empty
        (b"event\ndata: x\n\n", ["message"]),
        (b"event: a\nevent: b\ndata: x\n\n", ["b"]),
        (b"event: ping\n\ndata: x\n\n", ["message"]),  # a no-data block clears the type too
        (b"event:  sp\ndata: x\n\n", [" sp"]),
    ],
    ids=["set then default", "empty", "no colon", "last wins", "cleared by no-data block", "one space"],
)
def test_event_type(stream: bytes, expected: list[str]) -> None:
    assert [e.event for e in feed([stream])] == expected


def test_id_none_until_set() -> None:
    d = SSEDecoder()
    assert d.decode(b"data: a\n\n") == [E(data="a", id=None)]
    assert d.last_event_id == ""


def test_id_persists_across_events() -> None:
    evs = feed([b"id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\n"])
    assert [e.id for e in evs] == ["1", "1", "2"]


def test_id_with_nul_ignored() -> None:
    d = SSEDecoder()
    evs = d.decode(b"id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\nid: \0\0\ndata: c\n\n")
    assert [e.id for e in evs] == ["1", "1", "1"]
    assert d.last_event_id == "1"


def test_id_without_value_resets_to_empty() -> None:
    d = SSEDecoder()
    evs = d.decode(b"id: 1\ndata: a\n\nid\ndata: b\n\n")
    assert [e.id for e in evs] == ["1", ""]
    assert d.last_event_id == ""


def test_id_only_block_commits_the_id() -> None:
    d = SSEDecoder()
    assert d.decode(b"id: 5\n\n") == []
    assert d.last_event_id == "5"


def test_id_of_undispatched_block_not_committed() -> None:
    # wpt format-data-before-final-empty-line: lastEventId is "" after the reconnect.
    d = SSEDecoder()
    assert d.decode(b"retry:1000\ndata:test1\n\nid:test\ndata:test2\n") == [E(data="test1", retry=1000)]
    assert d.flush() == []
    assert d.last_event_id == ""
    assert d.decode(b"data: next\n\n") == [E(data="next", id=None)]


@pytest.mark.parametrize("value", ["+5", "-5", " 5", "5 ", "1_000", "١٢", "1000x", "", "5.0", "0x10"])
def test_bogus_retry_ignored(value: str) -> None:
    d = SSEDecoder()
    d.decode(b"retry:2000\n\n")
    assert d.decode(f"retry: {value}\ndata: x\n\n".encode()) == [E(data="x", retry=None)]
    assert d.retry == 2000


def test_wpt_retry_bogus() -> None:
    d = SSEDecoder()
    assert d.decode(b"retry:2000\nretry:1000x\ndata:x\n\n\n") == [E(data="x", retry=2000)]
    assert d.retry == 2000


def test_retry_set_on_decoder_and_on_its_own_block_only() -> None:
    d = SSEDecoder()
    assert d.retry is None
    evs = d.decode(b"retry: 3000\ndata: x\n\ndata: y\n\nretry: 0\n\n")
    assert [e.retry for e in evs] == [3000, None]
    assert d.retry == 0  # a retry-only block dispatches nothing but still sets the time


def test_retry_with_absurd_digit_count_does_not_raise() -> None:
    d = SSEDecoder()
    assert d.decode(b"retry: 7\n\nretry: " + b"9" * 5000 + b"\ndata: x\n\n") == [E(data="x")]
    assert d.retry == 7


def test_bom_split_across_chunks() -> None:
    assert datas([b"\xef", b"\xbb", b"\xbfdata: a\n\n"]) == ["a"]
    assert datas([b"", b"\xef\xbb", b"", b"\xbf", b"data: a\n\n"]) == ["a"]


def test_partial_bom_is_data() -> None:
    # "\xef" then "x" is no BOM: the bytes stay in the field name, which is then unknown.
    assert datas([b"\xef", b"x\n\ndata: b\n\n"]) == ["b"]
    assert datas([b"\xef\xbbdata: a\n\ndata: b\n\n"]) == ["b"]


def test_bom_later_in_value_is_data() -> None:
    assert datas(["data: \ufeffa\n\n".encode()]) == ["\ufeffa"]


def test_multibyte_char_split_at_every_byte() -> None:
    raw = "data: 北🎉é\n\n".encode()
    for i in range(len(raw) + 1):
        assert datas([raw[:i], raw[i:]]) == ["北🎉é"], i
    assert datas(bytewise(raw)) == ["北🎉é"]


def test_charset_never_matters() -> None:
    # wpt format-utf-8: served as windows-1252, still UTF-8. The decoder takes bytes, so no header
    # can change how they decode.
    assert datas([b"data:ok\xe2\x80\xa6\n\n"]) == ["ok\u2026"]


def test_flush_discards_and_resets_for_a_new_stream() -> None:
    d = SSEDecoder()
    assert d.decode(b"id: 1\ndata: a\n\nevent: x\nid: 2\ndata: partial\ndata: mo") == [E(data="a", id="1")]
    assert d.flush() == []
    # A new stream: no leftover data, type or partial line, the committed id, and a fresh BOM strip.
    assert d.decode(b"\xef\xbb\xbfre\n\ndata: b\n\n") == [E(data="b", id="1")]
    assert d.last_event_id == "1"


def test_flush_after_lone_cr() -> None:
    d = SSEDecoder()
    assert d.decode(b"data: a\r") == []
    assert d.flush() == []
    assert d.decode(b"\n\ndata: b\n\n") == [E(data="b")]


def test_json_helper() -> None:
    assert feed([b'data: {"a": [1, 2]}\n\n'])[0].json() == {"a": [1, 2]}


def test_event_is_frozen_with_defaults() -> None:
    ev = E()
    assert (ev.event, ev.data, ev.id, ev.retry) == ("message", "", None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.data = "x"  # type: ignore[misc]


def test_linear_time_on_one_huge_event() -> None:
    size = 8 * 1024 * 1024
    payload = b"data: " + b"x" * size + b"\n\n"
    chunks = [payload[i : i + 4096] for i in range(0, len(payload), 4096)]
    evs = feed(chunks)
    # Quadratic buffering (buf += line, sse-and-retries.md §2.1) is timed in benchmarks/sse_huge_event.py.
    assert len(evs) == 1 and len(evs[0].data) == size


# ---------------------------------------------------------------- the line / event cap (issue 14)
def test_an_endless_line_is_refused_at_the_cap():
    from ds_magic.errors import EventTooLargeError

    d = SSEDecoder(max_event_bytes=1024)
    assert d.decode(b"data: ok\n\n")[0].data == "ok"
    with pytest.raises(EventTooLargeError, match="1 KiB limit"):
        for _ in range(100):
            d.decode(b"x" * 100)
    with pytest.raises(EventTooLargeError):  # it stays stopped
        d.decode(b"\n\n")
    assert d.flush() == [] and d.decode(b"data: again\n\n")[0].data == "again"  # a new stream


def test_many_data_lines_count_together_and_what_came_before_is_kept():
    from ds_magic.errors import EventTooLargeError

    d = SSEDecoder(max_event_bytes=1000)
    # 20 data lines of 96 bytes make one event of 1.9 KB: refused once their sum passes the cap.
    got = d.decode(b"data: before\n\n" + (b"data: " + b"y" * 90 + b"\n") * 20)
    assert [e.data for e in got] == ["before"]  # completed before the overflow: returned first
    assert isinstance(d.error, EventTooLargeError)
    with pytest.raises(EventTooLargeError):  # and the error with the next call
        d.decode(b"\n")
    # Under the cap, whatever the split, the same events as without one.
    stream = b"data: " + b"z" * 900 + b"\n\ndata: small\n\n"
    for parts in two_way(stream):
        assert datas(parts) == ["z" * 900, "small"]


def test_memory_stays_within_about_twice_the_cap():
    import tracemalloc

    from ds_magic.errors import EventTooLargeError

    cap = 256 * 1024
    d = SSEDecoder(max_event_bytes=cap)
    piece = b"a" * 16384
    tracemalloc.start()
    try:
        d.decode(b'data: {"choices":[{"delta":{"content":"')
        with pytest.raises(EventTooLargeError):
            for _ in range(10_000):  # 160 MiB if nothing stopped it
                d.decode(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * cap + 4 * len(piece)
