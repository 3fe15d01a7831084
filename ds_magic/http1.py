"""An HTTP/1.1 response read from bytes (sans-IO): the head, then the body's framing (RFC 9112).

Why our own (issue 17): under httpx, every read of a stream went through httpcore, h11 and anyio
(a cancel scope, ``current_task``, h11's event objects): about 45% of the engine's time at 1,000
paced streams, against 8% for our SSE and chunk parsing. This parser is the one piece of that path
we need, written for DeepSeek's answers: one response per connection at a time, a streamed chunked
body handed on as it comes, with no object per chunk.

The server is untrusted (DEVELOPERS.md): every size is capped, every malformed line is a
``ProtocolError`` that names what was wrong, and memory stays bounded whatever is sent — chunk data
is passed on as it arrives, never gathered to its declared size.
"""

from __future__ import annotations

import re

__all__ = ["MAX_HEAD", "ProtocolError", "ResponseParser"]

#: The longest response head we read (status line and headers); h11's default is 16 KiB.
MAX_HEAD = 64 * 1024
# A chunk-size line (hex digits and any extensions, RFC 9112 §7.1.1) and the trailer section.
_MAX_SIZE_LINE = 4096
_MAX_TRAILERS = 16 * 1024
_HEX_DIGITS = 16  # 2**64 bytes: more digits is an attack, not an answer

_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")
_STATUS = re.compile(rb"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: ([^\r\n]*))?")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,%d}" % _HEX_DIGITS)
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

# Body framings (RFC 9112 §6.3).
_NONE, _LENGTH, _CHUNKED, _CLOSE = range(4)
# States of the chunked reader.
_SIZE, _DATA, _DATA_END, _TRAILER = range(4)


class ProtocolError(Exception):
    """The server's bytes are not a valid HTTP/1.1 response; the message says where."""


class ResponseParser:
    """One response on a connection: ``feed`` it bytes, ``eof`` when the peer closes.

    After the head: ``status``, ``reason``, ``headers`` (raw ``(name, value)`` pairs), ``keep_alive``.
    Body bytes gather in ``pending`` until ``take()``; ``complete`` once the body has ended.
    """

    __slots__ = (
        "_head_request",
        "_head_buf",
        "_buf",
        "_framing",
        "_left",
        "_state",
        "_trailer_bytes",
        "status",
        "reason",
        "headers",
        "keep_alive",
        "complete",
        "pending",
        "pending_bytes",
        "extra",
    )

    def __init__(self, *, head_request: bool = False) -> None:
        self._head_request = head_request
        self._head_buf = bytearray()  # the head, until it is whole
        self._buf = b""  # a chunk-size line or trailer not yet whole
        self._framing = -1  # -1: the head is still coming
        self._left = 0  # bytes left of the body (content-length) or of the current chunk
        self._state = _SIZE
        self._trailer_bytes = 0
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.keep_alive = False
        self.complete = False
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.extra = False  # bytes came after the response ended: the connection can't be reused

    @property
    def has_head(self) -> bool:
        return self._framing >= 0

    def take(self) -> bytes:
        """The body bytes received since the last call (b"" if none)."""
        pending = self.pending
        if not pending:
            return b""
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        self.pending_bytes = 0
        return data

    def feed(self, data: bytes) -> None:
        if self.complete:
            if data:
                self.extra = True  # we never pipeline: whatever this is, the connection is spoiled
                self.keep_alive = False
            return
        if self._framing < 0:
            data = self._head(data)
            if self._framing < 0 or not data:
                return
        framing = self._framing
        if framing == _CHUNKED:
            self._chunked(data)
        elif framing == _LENGTH:
            left = self._left
            if len(data) >= left:
                if len(data) > left:
                    self.extra, self.keep_alive = True, False
                    data = data[:left]
                self._left = 0
                self.complete = True
            else:
                self._left = left - len(data)
            self._out(data)
        elif framing == _CLOSE:
            self._out(data)
        else:  # a body where none may be (204, 304, HEAD): the connection is spoiled
            self.extra, self.keep_alive = True, False

    def eof(self) -> None:
        """The peer closed the connection: the end of a read-until-close body, else an error."""
        if self.complete:
            return
        if self._framing == _CLOSE:
            self.complete = True
            return
        if self._framing < 0:
            raise ProtocolError("the server closed the connection in the middle of the response head")
        what = "chunked" if self._framing == _CHUNKED else "content-length"
        raise ProtocolError(f"peer closed connection without sending complete message body ({what})")

    def _out(self, data: bytes) -> None:
        if data:
            self.pending.append(data)
            self.pending_bytes += len(data)

    # ------------------------------------------------------------------ the head
    def _head(self, data: bytes) -> bytes:
        """Gather the head; once it is whole, parse it and return the bytes after it. The head gathers
        in a bytearray and the end is searched for only after the bytes kept so far (its up to 4
        bytes may straddle their end): a head trickled in byte by byte then costs O(n), not O(n²)
        (44 s of CPU for 64 KiB when both the copy and the search started over at each byte)."""
        buf = self._head_buf
        start = max(0, len(buf) - 3)
        buf += data
        while True:
            end = _END_OF_HEAD.search(buf, start)
            if end is None:
                if len(buf) > MAX_HEAD:
                    raise ProtocolError(f"the response head is over {MAX_HEAD // 1024} KiB")
                return b""
            if end.start() > MAX_HEAD:
                raise ProtocolError(f"the response head is over {MAX_HEAD // 1024} KiB")
            head = bytes(buf[: end.start()])
            del buf[: end.end()]
            start = 0
            if self._parse_head(head):  # not an interim 1xx response
                rest = bytes(buf)
                buf.clear()
                return rest

    def _parse_head(self, head: bytes) -> bool:
        lines = head.split(b"\n")
        status_line = lines[0].rstrip(b"\r")
        m = _STATUS.fullmatch(status_line)
        if m is None:
            raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
        status = int(m.group(2))
        headers: list[tuple[bytes, bytes]] = []
        for raw in lines[1:]:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if line[:1] in (b" ", b"\t"):
                raise ProtocolError("a folded header line (obsolete line folding, RFC 9112 §5.2)")
            name, colon, value = line.partition(b":")
            if not colon or _TOKEN.fullmatch(name) is None:
                raise ProtocolError(f"a malformed header line: {line[:80]!r}")
            value = value.strip(b" \t")
            if _BAD_VALUE.search(value):
                raise ProtocolError(f"a control character in the {name.decode('ascii')} header")
            headers.append((name, value))
        if 100 <= status < 200:
            if status == 101:
                raise ProtocolError("the server switched protocols (101), which was not asked for")
            return False  # an interim response (100 Continue, 103 Early Hints): the real one follows
        self.status, self.reason, self.headers = status, m.group(3) or b"", headers
        self._frame(m.group(1) == b"1", headers)
        return True

    def _frame(self, http11: bool, headers: list[tuple[bytes, bytes]]) -> None:
        """The body's framing, RFC 9112 §6.3, and whether the connection may be reused."""
        connection: list[bytes] = []
        encodings: list[bytes] = []
        lengths: list[bytes] = []
        for name, value in headers:
            lower = name.lower()
            if lower == b"connection":
                connection += [t.strip().lower() for t in value.split(b",")]
            elif lower == b"transfer-encoding":
                encodings += [t.strip().lower() for t in value.split(b",") if t.strip()]
            elif lower == b"content-length":
                lengths += [t.strip() for t in value.split(b",")]
        self.keep_alive = http11 and b"close" not in connection
        if self._head_request or self.status in (204, 304):
            self._framing, self.complete = _NONE, True
        elif encodings:
            # Transfer-Encoding overrides Content-Length; a response with both may be an attack on
            # a cache, so the connection is not reused (§6.3, item 3).
            if lengths:
                self.keep_alive = False
            if encodings[-1] == b"chunked":
                self._framing = _CHUNKED
            else:
                self._framing, self.keep_alive = _CLOSE, False
        elif lengths:
            if any(not v.isdigit() for v in lengths) or len(set(lengths)) != 1 or len(lengths[0]) > 18:
                raise ProtocolError(f"an invalid Content-Length: {b', '.join(lengths)[:40]!r}")
            self._left = int(lengths[0])
            self._framing = _LENGTH
            self.complete = self._left == 0
        else:
            self._framing, self.keep_alive = _CLOSE, False

    # ------------------------------------------------------------------ chunked (RFC 9112 §7.1)
    def _chunked(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        pos, end = 0, len(buf)
        state, left = self._state, self._left
        out, got = self.pending, 0
        try:
            while pos < end:
                if state == _DATA:
                    take = end - pos if end - pos < left else left
                    out.append(buf[pos : pos + take] if pos or take < end else buf)
                    got += take
                    pos += take
                    left -= take
                    if left:
                        break
                    state = _DATA_END
                elif state == _DATA_END:
                    if end - pos < 2:
                        if buf[pos:] != b"\r":
                            raise ProtocolError("a chunk's data is longer than its size says")
                        break
                    if buf[pos : pos + 2] != b"\r\n":
                        raise ProtocolError("a chunk's data is longer than its size says")
                    pos += 2
                    state = _SIZE
                elif state == _SIZE:
                    nl = buf.find(b"\r\n", pos, pos + _MAX_SIZE_LINE)
                    if nl < 0:
                        if end - pos >= _MAX_SIZE_LINE:
                            raise ProtocolError("a chunk-size line over 4 KiB")
                        break
                    size = buf[pos:nl].split(b";", 1)[0].rstrip(b" \t")
                    if _HEX.fullmatch(size) is None:
                        raise ProtocolError(f"an invalid chunk size: {buf[pos:nl][:40]!r}")
                    pos = nl + 2
                    left = int(size, 16)
                    state = _DATA if left else _TRAILER
                else:  # the trailer section after the last chunk: read and dropped
                    nl = buf.find(b"\r\n", pos)
                    if nl < 0:
                        if self._trailer_bytes + end - pos > _MAX_TRAILERS:
                            raise ProtocolError("the trailers after the last chunk are over 16 KiB")
                        break
                    self._trailer_bytes += nl + 2 - pos
                    if self._trailer_bytes > _MAX_TRAILERS:
                        raise ProtocolError("the trailers after the last chunk are over 16 KiB")
                    line, pos = buf[pos:nl], nl + 2
                    if not line:
                        self.complete = True
                        if pos < end:
                            self.extra, self.keep_alive = True, False
                        pos = end
                        break
        finally:
            self.pending_bytes += got
            self._state, self._left = state, left
            self._buf = buf[pos:] if pos < end else b""
