"""ResponseParser (http1.py, issue 17), pure bytes in, no sockets: tables of valid and malformed
responses (RFC 9112), each fed whole and in small pieces, and hypothesis properties: any valid
response in any split yields exactly its body; arbitrary bytes raise only ProtocolError and the
parser's retained buffer stays bounded (memory bounded whatever the server sends)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

from ds_magic.http1 import MAX_HEAD, ProtocolError, ResponseParser


def splits(data: bytes) -> list[list[bytes]]:
    """The whole, then byte by byte (in 997-byte pieces for big inputs: the head is re-searched on
    every feed, so byte-wise feeding of 64 KiB would only cost time)."""
    step = 1 if len(data) <= 4096 else 997
    return [[data], [data[i : i + step] for i in range(0, len(data), step)]]


def run(
    pieces: list[bytes], *, head_request: bool = False, eof: bool = False
) -> tuple[ResponseParser, bytes]:
    p = ResponseParser(head_request=head_request)
    body = b""
    for piece in pieces:
        p.feed(piece)
        body += p.take()
    if eof:
        p.eof()
        body += p.take()
    return p, body


@dataclass
class Ok:
    name: str
    data: bytes
    status: int
    body: bytes
    keep_alive: bool
    head_request: bool = False
    eof: bool = False  # the body is read until close: eof() completes it
    extra: bool = False


CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

VALID = [
    Ok("content-length", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, b"hello", True),
    Ok("content-length 0", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200, b"", True),
    Ok(
        "identical duplicate content-lengths",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\ncontent-length: 3\r\n\r\nabc",
        200,
        b"abc",
        True,
    ),
    Ok(
        "chunked with extensions and trailers",
        CHUNKED + b'5;name=val\r\nhello\r\n6 ; x="q"\r\n world\r\nA\r\n0123456789\r\n'
        b"0;last\r\nTrailer-A: 1\r\nB: 2\r\n\r\n",
        200,
        b"hello world0123456789",
        True,
    ),
    Ok(
        "chunked, upper-case hex",
        CHUNKED + b"a\r\n0123456789\r\nB\r\n0123456789a\r\n0\r\n\r\n",
        200,
        b"01234567890123456789a",
        True,
    ),
    Ok("chunked, no chunks", CHUNKED + b"0\r\n\r\n", 200, b"", True),
    Ok(
        "read until close",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nabc\r\ndef",
        200,
        b"abc\r\ndef",
        False,
        eof=True,
    ),
    Ok("read until close, empty", b"HTTP/1.1 200 OK\r\n\r\n", 200, b"", False, eof=True),
    Ok("204 has no body", b"HTTP/1.1 204 No Content\r\n\r\n", 204, b"", True),
    Ok(
        "304 has no body even with a length",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
        304,
        b"",
        True,
    ),
    Ok(
        "HEAD has no body",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
        200,
        b"",
        True,
        head_request=True,
    ),
    Ok("HEAD of a chunked answer", CHUNKED, 200, b"", True, head_request=True),
    Ok(
        "100 Continue, then 200",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
        200,
        b"hi",
        True,
    ),
    Ok(
        "two interim responses (103 with headers)",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx",
        201,
        b"x",
        True,
    ),
    Ok("bare LF line endings", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nhi", 200, b"hi", True),
    Ok("mixed line endings", b"HTTP/1.1 200 OK\r\nContent-Length: 2\n\r\nhi", 200, b"hi", True),
    Ok("no reason phrase", b"HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nz", 200, b"z", True),
    Ok(
        "Connection: close",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi",
        200,
        b"hi",
        False,
    ),
    Ok(
        "Connection list with Close",
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\nhi",
        200,
        b"hi",
        False,
    ),
    Ok("HTTP/1.0 is not kept alive", b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", 200, b"hi", False),
    Ok(
        "TE and CL: chunked wins, not kept alive",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        200,
        b"abc",
        False,
    ),
    Ok(
        "TE chunked last wins",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nzz\r\n0\r\n\r\n",
        200,
        b"zz",
        True,
    ),
    Ok(
        "TE not ending in chunked: read until close",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n2\r\nzz",
        200,
        b"2\r\nzz",
        False,
        eof=True,
    ),
    Ok(
        "bytes after a content-length body",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiJUNK",
        200,
        b"hi",
        False,
        extra=True,
    ),
    Ok(
        "bytes after the last chunk",
        CHUNKED + b"1\r\na\r\n0\r\n\r\nHTTP/1.1 200 OK",
        200,
        b"a",
        False,
        extra=True,
    ),
    Ok("bytes after a 204", b"HTTP/1.1 204 No Content\r\n\r\nx", 204, b"", False, extra=True),
]


@pytest.mark.parametrize("case", VALID, ids=[c.name for c in VALID])
def test_valid_responses(case: Ok) -> None:
    for pieces in splits(case.data):
        p, body = run(pieces, head_request=case.head_request)
        assert p.has_head and p.status == case.status
        assert p.complete is not case.eof  # a close-delimited body ends only at eof()
        if case.eof:
            p.eof()
            body += p.take()
            assert p.complete
        assert body == case.body
        assert p.keep_alive is case.keep_alive
        assert p.extra is case.extra
        p.eof()  # a complete response: the close is no error


def test_headers_and_reason_are_kept_raw() -> None:
    p, _ = run([b"HTTP/1.1 404 Not Found Here\r\nX-A:  spaced \t\r\nX-Empty:\r\nX-A: 2\r\n\r\n"])
    assert p.status == 404 and p.reason == b"Not Found Here"
    assert p.headers == [(b"X-A", b"spaced"), (b"X-Empty", b""), (b"X-A", b"2")]
    assert not p.complete  # no framing: read until close


def test_take_hands_the_body_on_as_it_arrives() -> None:
    p = ResponseParser()
    p.feed(CHUNKED + b"10\r\n01234")
    assert p.take() == b"01234" and p.take() == b""
    p.feed(b"56789abcdef\r\n")
    assert p.pending_bytes == 11 and p.take() == b"56789abcdef" and p.pending_bytes == 0
    assert not p.complete
    p.feed(b"0\r\n\r\n")
    assert p.complete and p.take() == b""


@pytest.mark.parametrize("end", [b"\r\n\r\n", b"\n\n", b"\r\n\n", b"\n\r\n"])
def test_the_end_of_the_head_is_found_across_any_two_or_three_pieces(end: bytes) -> None:
    # The search for the end starts just before the bytes kept so far (the end may straddle them),
    # and from the start again after an interim response's head.
    nl = end[: len(end) // 2] if end in (b"\r\n\r\n", b"\n\n") else b"\n"
    interim = b"HTTP/1.1 103 Early Hints" + nl + b"Link: </style.css>; rel=preload; as=style" + end
    data = interim + b"HTTP/1.1 200 OK" + nl + b"Content-Length: 3" + end + b"abc"
    for i in range(len(data) + 1):
        for j in range(i, len(data) + 1):
            p, body = run([data[:i], data[i:j], data[j:]])
            assert p.status == 200 and p.complete and body == b"abc", (i, j)


# ----------------------------------------------------------------------------- malformed
def big_head(size: int) -> bytes:
    return b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * size


MALFORMED: list[tuple[str, bytes, str, bool]] = [
    # name, bytes, a piece of the expected message, eof() after the bytes
    ("HTTP/2 status line", b"HTTP/2 200 OK\r\n\r\n", "status line", False),
    ("two-digit status", b"HTTP/1.1 20 OK\r\n\r\n", "status line", False),
    ("status 099", b"HTTP/1.1 099 Odd\r\n\r\n", "status line", False),
    ("not HTTP at all", b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "status line", False),
    ("lower-case http", b"http/1.1 200 OK\r\n\r\n", "status line", False),
    ("folded header", b"HTTP/1.1 200 OK\r\nX-A: b\r\n  c\r\n\r\n", "folded", False),
    ("folded with a tab", b"HTTP/1.1 200 OK\r\nX-A: b\r\n\tc\r\n\r\n", "folded", False),
    ("header name with a space", b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "malformed header", False),
    ("space before the colon", b"HTTP/1.1 200 OK\r\nName : x\r\n\r\n", "malformed header", False),
    ("header without a colon", b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "malformed header", False),
    ("empty header name", b"HTTP/1.1 200 OK\r\n: x\r\n\r\n", "malformed header", False),
    ("control char in a value", b"HTTP/1.1 200 OK\r\nX-A: b\x01c\r\n\r\n", "control character", False),
    ("bare CR in a value", b"HTTP/1.1 200 OK\r\nX-A: b\rc\r\n\r\n", "control character", False),
    ("DEL in a value", b"HTTP/1.1 200 OK\r\nX-A: \x7f\r\n\r\n", "control character", False),
    ("NUL in a value", b"HTTP/1.1 200 OK\r\nX-A: a\x00\r\n\r\n", "control character", False),
    ("content-length not digits", b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", "Content-Length", False),
    ("negative content-length", b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length", False),
    ("content-length with a sign", b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n", "Content-Length", False),
    ("empty content-length", b"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", "Content-Length", False),
    (
        "different content-lengths",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
        "Content-Length",
        False,
    ),
    (
        "mixed content-length headers",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "Content-Length",
        False,
    ),
    (
        "19-digit content-length",
        b"HTTP/1.1 200 OK\r\nContent-Length: " + b"1" * 19 + b"\r\n\r\n",
        "Content-Length",
        False,
    ),
    ("chunk size not hex", CHUNKED + b"zz\r\n", "chunk size", False),
    ("empty chunk size", CHUNKED + b"\r\n", "chunk size", False),
    ("chunk size with leading space", CHUNKED + b" 5\r\nhello\r\n", "chunk size", False),
    ("negative chunk size", CHUNKED + b"-5\r\n", "chunk size", False),
    ("chunk size 0x-prefixed", CHUNKED + b"0x5\r\nhello\r\n", "chunk size", False),
    ("17 hex digits", CHUNKED + b"1" * 17 + b"\r\n", "chunk size", False),
    ("chunk data longer than its size", CHUNKED + b"3\r\nabcd\r\n0\r\n\r\n", "longer than its size", False),
    ("chunk data without its CRLF", CHUNKED + b"3\r\nabc0\r\n\r\n", "longer than its size", False),
    ("head over 64 KiB, no end", big_head(MAX_HEAD + 10), "over 64 KiB", False),
    ("head over 64 KiB, then its end", big_head(MAX_HEAD + 10) + b"\r\n\r\n", "over 64 KiB", False),
    (
        "interim then a head over 64 KiB",
        b"HTTP/1.1 100 Continue\r\n\r\n" + big_head(MAX_HEAD + 10),
        "over 64 KiB",
        False,
    ),
    ("size line over 4 KiB", CHUNKED + b"5;" + b"x" * 5000, "over 4 KiB", False),
    (
        "size line over 4 KiB, then its end",
        CHUNKED + b"5;" + b"x" * 5000 + b"\r\nhello\r\n",
        "over 4 KiB",
        False,
    ),
    ("trailers over 16 KiB", CHUNKED + b"0\r\n" + b"X-T: v\r\n" * 3000, "over 16 KiB", False),
    ("one trailer over 16 KiB", CHUNKED + b"0\r\nX-T: " + b"v" * 17000, "over 16 KiB", False),
    ("101 switching protocols", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: ws\r\n\r\n", "101", False),
    ("eof before any byte", b"", "head", True),
    ("eof mid-head", b"HTTP/1.1 200 OK\r\nContent-Le", "head", True),
    (
        "eof mid content-length body",
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc",
        "content-length",
        True,
    ),
    ("eof mid chunk", CHUNKED + b"9\r\nabc", "chunked", True),
    ("eof between chunks", CHUNKED + b"3\r\nabc\r\n", "chunked", True),
    ("eof in the trailers", CHUNKED + b"0\r\nX-T: 1\r\n", "chunked", True),
]


@pytest.mark.parametrize(("data", "what", "eof"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_responses_raise_a_one_line_protocol_error(data: bytes, what: str, eof: bool) -> None:
    for pieces in splits(data) if data else [[]]:
        with pytest.raises(ProtocolError) as info:
            run(pieces, eof=eof)
        message = str(info.value)
        assert what in message
        assert message and "\n" not in message and "\r" not in message and len(message) < 200


def test_a_head_of_exactly_the_cap_is_read() -> None:
    line = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX-Pad: "
    head = line + b"a" * (MAX_HEAD - len(line))
    assert len(head) == MAX_HEAD
    for pieces in splits(head + b"\r\n\r\nz"):
        p, body = run(pieces)
        assert p.complete and body == b"z"


# ----------------------------------------------------------------------------- properties
@st.composite
def responses(draw: st.DrawFn) -> tuple[bytes, bytes, bool, bool]:
    """A valid response: (its bytes, its body, whether eof() ends the body, whether kept alive)."""
    body = draw(st.binary(max_size=3000))
    nl = draw(st.sampled_from([b"\r\n", b"\n"]))  # the head's line ends (bare LF is accepted)
    head = [b"HTTP/1.1 200 OK"]
    head += [b"X-%d: %s" % (i, v) for i, v in enumerate(draw(st.lists(st.sampled_from([b"a", b"", b"b c"]))))]
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    tail = b""
    if framing == "length":
        head.append(b"Content-Length: %d" % len(body))
        tail = body
    elif framing == "chunked":
        head.append(b"Transfer-Encoding: chunked")
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=8)))
        parts = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True) if b > a]
        for part in parts:
            ext = draw(st.sampled_from([b"", b";a=b", b" ;x", b';q="1;2"']))
            tail += b"%x%s\r\n%s\r\n" % (len(part), ext, part)
        tail += b"0\r\n"
        tail += b"".join(draw(st.lists(st.sampled_from([b"T: 1\r\n", b"Trailer-Two: x y\r\n"]), max_size=3)))
        tail += b"\r\n"
    else:
        tail = body
    interim = draw(st.sampled_from([b"", b"HTTP/1.1 100 Continue" + nl + nl]))
    data = interim + nl.join(head) + nl + nl + tail
    return data, body, framing == "close", framing != "close"


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({min(p, len(data)) for p in points})
    return [data[a:b] for a, b in zip([0, *edges], [*edges, len(data)], strict=True)]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(responses(), st.lists(st.integers(0, 8000), max_size=40))
def test_any_valid_response_in_any_split_yields_exactly_its_body(
    response: tuple[bytes, bytes, bool, bool], points: list[int]
) -> None:
    data, body, until_close, keep_alive = response
    results = []
    for pieces in ([data], cut(data, points)):
        p, got = run(pieces)
        assert p.complete is not until_close
        if until_close:
            p.eof()
            got += p.take()
        assert p.complete and not p.extra
        assert got == body
        assert p.keep_alive is keep_alive
        results.append((p.status, p.headers, got))
    assert results[0] == results[1]  # split or whole, the same response


# The bytes a hostile server might send, in pieces that reach the parser's caps quickly.
TOKENS = st.sampled_from(
    [
        b"HTTP/1.1 200 OK\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Content-Length: 7\r\n",
        b"\r\n",
        b"\n",
        b"\r",
        b"0\r\n",
        b"0\r\nT: ",
        b"ffff\r\n",
        b"5;",
        b":",
        b" ",
        b"X-A: b\r\n",
        b"a" * 4000,
        b"a" * 20000,
        b"T: " + b"v" * 3000 + b"\r\n",
    ]
)
JUNK = st.one_of(TOKENS, st.builds(lambda b, n: b * n, TOKENS, st.integers(1, 8)), st.binary(max_size=200))


# A valid head first (often) so that the body's states, not only the head's, meet the junk.
HEADS = st.sampled_from(
    [
        b"",
        CHUNKED,
        CHUNKED + b"0\r\n",
        CHUNKED + b"3;x\r\nabc\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ]
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(HEADS, st.lists(JUNK, max_size=40), st.booleans())
def test_arbitrary_bytes_raise_only_protocol_error_and_memory_stays_bounded(
    head: bytes, pieces: list[bytes], head_request: bool
) -> None:
    p = ResponseParser(head_request=head_request)
    biggest = 0
    try:
        for piece in [head, *pieces]:
            p.feed(piece)
            p.take()
            assert p.pending_bytes == 0
            # The head is kept only while ≤ MAX_HEAD; after it, only a chunk-size line (< 4 KiB) or
            # the trailers (≤ 16 KiB): body bytes are never gathered, whatever was fed.
            kept = len(p._buf) + len(p._head_buf)
            assert kept <= (16 * 1024 if p.has_head else MAX_HEAD)
            biggest = max(biggest, kept * (4 if p.has_head else 1))
        p.eof()
        assert p.complete
    except ProtocolError as exc:
        assert "\n" not in str(exc)
    target(float(biggest))  # steer the search towards the biggest buffers kept (the caps' edges)
