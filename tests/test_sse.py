"""The SSE decoder against the WHATWG rules, fed at every awkward split (sse-and-retries.md §4)."""

from __future__ import annotations

import time

import pytest

from ds_magic.sse import ServerSentEvent, SSEDecoder


def feed(chunks: list[bytes]) -> list[ServerSentEvent]:
    d = SSEDecoder()
    out: list[ServerSentEvent] = []
    for c in chunks:
        out += d.decode(c)
    out += d.flush()
    return out


def datas(chunks: list[bytes]) -> list[str]:
    return [e.data for e in feed(chunks)]


def every_split(data: bytes) -> list[list[bytes]]:
    return [[data[:i], data[i:]] for i in range(len(data) + 1)] + [
        [data[i : i + 1] for i in range(len(data))]
    ]


# (name, stream, expected data list) — each checked whole, at every split point, and byte by byte.
CASES = [
    ("lf", b"data: a\n\ndata: b\n\n", ["a", "b"]),
    ("crlf", b"data: a\r\n\r\ndata: b\r\n\r\n", ["a", "b"]),
    ("cr", b"data: a\r\rdata: b\r\r", ["a", "b"]),
    ("mixed line ends", b"data: a\r\ndata: b\n\rdata: c\r\n\n", ["a\nb", "c"]),
    ("multi-line data", b"data: 1\ndata: 2\ndata:3\n\n", ["1\n2\n3"]),
    ("one space stripped only", b"data:  two\ndata:\ttab\n\n", [" two\n\ttab"]),
    ("field without colon", b"data\ndata\n\n", ["\n"]),
    ("empty data value", b"data:\n\n", [""]),
    ("comments ignored", b": keep-alive\n\n: x\ndata: y\n\n", ["y"]),
    ("empty-data blocks dispatch nothing", b"event: ping\n\nretry: 10\n\nid: 3\n\ndata: z\n\n", ["z"]),
    ("pending data at eof discarded", b"data: kept\n\ndata: lost\n", ["kept"]),
    ("unknown fields ignored", b"foo: bar\nDATA: no\ndata: yes\n\n", ["yes"]),
    ("done passes through", b'data: {"a":1}\n\ndata: [DONE]\n\n', ['{"a":1}', "[DONE]"]),
    ("u2028 and u0085 are not line ends", "data: a\u2028b\u0085c\n\n".encode(), ["a\u2028b\u0085c"]),
    ("multibyte utf-8", "data: café 北京 🎉\n\n".encode(), ["café 北京 🎉"]),
    ("wpt bom", "\ufeffdata:1\n\n\ufeffdata:2\n\ndata:3\n\n\n".encode(), ["1", "3"]),
    ("wpt double bom", "\ufeff\ufeffdata:1\n\ndata:2\n\ndata:3\n\n\n".encode(), ["2", "3"]),
    (
        "wpt comments",
        b"data:1\r:\0\n:\r\ndata:2\n:"
        + b"x" * 2048
        + b"\rdata:3\n:data:fail\r:"
        + b"x" * 2048
        + b"\ndata:4\n\n",
        ["1\n2\n3\n4"],
    ),
    ("wpt field data", b"data:\n\ndata\ndata\n\ndata:test\n\n\n", ["", "\n", "test"]),
    ("null character in data", b"data:\0\n\n\n\n\n", ["\x00"]),
]


@pytest.mark.parametrize("name, stream, expected", CASES, ids=[c[0] for c in CASES])
def test_table_at_every_split(name, stream, expected):
    assert datas([stream]) == expected
    for chunks in every_split(stream):
        assert datas(chunks) == expected, chunks


def test_event_type_default_and_empty():
    evs = feed([b"event: test\ndata: x\n\ndata: x\n\nevent: \ndata: y\n\n"])
    assert [e.event for e in evs] == ["test", "message", "message"]


def test_crlf_split_across_chunks_is_one_line_end():
    d = SSEDecoder()
    assert d.decode(b"data: a\r") == []
    assert d.decode(b"\n\r") == [ServerSentEvent(data="a")]
    assert d.decode(b"\n") == []  # swallowed LF of the CRLF; no extra blank line


def test_lone_cr_at_chunk_end_dispatches_at_once():
    d = SSEDecoder()
    assert d.decode(b"data: a\r\r") == [ServerSentEvent(data="a")]


def test_event_available_as_soon_as_blank_line_arrives():
    d = SSEDecoder()
    assert d.decode(b"data: x\n") == []
    assert d.decode(b"\n") == [ServerSentEvent(data="x")]


def test_id_persists_and_nul_ignored():
    evs = feed([b"id: 1\ndata: a\n\ndata: b\n\nid: 2\0x\ndata: c\n\nid\ndata: d\n\n"])
    assert [e.id for e in evs] == ["1", "1", "1", ""]


def test_id_of_undispatched_block_is_not_committed():
    d = SSEDecoder()
    d.decode(b"retry:1000\ndata:test1\n\nid:test\ndata:test2\n")
    d.flush()
    assert d.last_event_id == ""


def test_id_none_until_set():
    assert feed([b"data: a\n\n"])[0].id is None


@pytest.mark.parametrize("value", ["+5", "-5", "  5", "1_000", "١٢", "1000x", "", "5.0"])
def test_bogus_retry_ignored(value):
    d = SSEDecoder()
    d.decode(b"retry:2000\n\n")
    d.decode(f"retry:{value}\ndata: x\n\n".encode())
    assert d.retry == 2000


def test_retry_digits_accepted_and_attached_to_block():
    evs = feed([b"retry: 3000\ndata: x\n\ndata: y\n\n"])
    assert [e.retry for e in evs] == [3000, None]


def test_invalid_utf8_becomes_replacement_char():
    assert datas([b"data: ok\xff\xfe!\n\n"]) == ["ok\ufffd\ufffd!"]


def test_multibyte_char_split_at_every_byte():
    raw = "data: 北🎉é\n\n".encode()
    for i in range(len(raw)):
        assert datas([raw[:i], raw[i:]]) == ["北🎉é"]


def test_charset_never_matters_windows_1252_bytes_are_utf8():
    # The decoder takes bytes and always decodes UTF-8 (§9.2.5), whatever a header claims.
    assert datas([b"data:ok\xe2\x80\xa6\n\n"]) == ["ok\u2026"]


def test_bom_split_across_chunks():
    assert datas([b"\xef", b"\xbb", b"\xbfdata: a\n\n"]) == ["a"]
    assert datas([b"\xef", b"x\n\ndata: b\n\n"]) == ["b"]


def test_json_helper():
    assert feed([b'data: {"a": [1, 2]}\n\n'])[0].json() == {"a": [1, 2]}


def test_linear_time_on_one_huge_event():
    payload = b"data: " + b"x" * (8 * 1024 * 1024) + b"\n\n"
    chunks = [payload[i : i + 4096] for i in range(0, len(payload), 4096)]
    t0 = time.perf_counter()
    evs = feed(chunks)
    assert time.perf_counter() - t0 < 2.0  # quadratic buffering takes far longer (sse-and-retries.md §2.1)
    assert len(evs) == 1 and len(evs[0].data) == 8 * 1024 * 1024
