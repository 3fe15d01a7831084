"""An incremental Server-Sent Events decoder: bytes in, events out, no I/O.

It follows WHATWG HTML §9.2.5-9.2.6 to the letter (sse-and-retries.md §4), including the points
where httpx-sse and the openai SDK do not (§2.1, §3.2): one leading BOM is stripped, bytes are always
UTF-8 with U+FFFD for bad sequences, a CR ends its line at once even at the end of a chunk, ``retry``
must be ASCII digits, blocks without data dispatch nothing, and data pending at EOF is discarded.
Each input byte is scanned a bounded number of times, so decoding is linear in the input size.

One line, and one event's data, may hold at most ``max_event_bytes`` (default 16 MiB, far above
DeepSeek's largest real event); beyond that :class:`EventTooLargeError` is raised at once, so a
server that sends an endless line costs about twice the cap in memory, not what it sends (issue 14).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import EventTooLargeError

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "SSEDecoder", "ServerSentEvent"]

DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event. ``id`` is the last event ID in effect (None if no ``id`` field was ever
    accepted); ``retry`` is the reconnection time (ms) set in this event's own block, if any."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        """``json.loads(self.data)``."""
        return json.loads(self.data)


# The decoder builds events through the slot descriptors: a frozen dataclass's __init__ goes through
# object.__setattr__ once per field, which made event construction about a fifth of decode() time.
_new = object.__new__
_set_event = ServerSentEvent.__dict__["event"].__set__
_set_data = ServerSentEvent.__dict__["data"].__set__
_set_id = ServerSentEvent.__dict__["id"].__set__
_set_retry = ServerSentEvent.__dict__["retry"].__set__


def _make_event(event: str, data: str, id: str | None, retry: int | None) -> ServerSentEvent:
    ev: ServerSentEvent = _new(ServerSentEvent)
    _set_event(ev, event)
    _set_data(ev, data)
    _set_id(ev, id)
    _set_retry(ev, retry)
    return ev


class SSEDecoder:
    """Feed body bytes to :meth:`decode`; each call returns the events whose blank line it completed.

    >>> d = SSEDecoder()
    >>> d.decode(b"data: he"), d.decode(b"llo\\n\\n")
    ([], [ServerSentEvent(event='message', data='hello', id=None, retry=None)])

    Call :meth:`flush` at end of stream; the decoder is then ready for a new stream (a reconnection)
    and keeps :attr:`last_event_id` and :attr:`retry`, which is what a reconnection needs.
    """

    __slots__ = (
        "_buf",
        "_at_start",
        "_skip_lf",
        "_data",
        "_type",
        "_id",
        "_last_id",
        "_block_retry",
        "_max",
        "_size",
        "error",
        "retry",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        if isinstance(max_event_bytes, bool) or not isinstance(max_event_bytes, int) or max_event_bytes < 1:
            raise ValueError(f"max_event_bytes must be a whole number of bytes ≥ 1, got {max_event_bytes!r}")
        self._max = max_event_bytes
        self._size = 0  # bytes of data lines in the event being built
        # The unterminated tail of the stream: bytes after the last line end. Only appended to, and
        # taken whole once its line ends, so a long line costs O(its length), not O(length²).
        self._buf = bytearray()
        self._at_start = True  # no byte seen yet: a leading BOM (maybe split) is still possible
        self._skip_lf = False  # the last byte seen was a CR: an LF right after it ends no new line
        self._data: list[str] = []  # the data buffer, one entry per data line (joined with LF)
        self._type = ""  # the event type buffer
        self._id: str | None = None  # the last event ID buffer (None: no id field accepted yet)
        self._last_id: str | None = None  # the last event ID string, committed at dispatch
        self._block_retry: int | None = None  # a retry set since the last blank line
        self.error: EventTooLargeError | None = None
        """Set once a line or event went over the cap: the decoder has stopped."""
        self.retry: int | None = None
        """The reconnection time in ms: the last valid ``retry`` field seen, or None."""

    @property
    def last_event_id(self) -> str:
        """The last event ID string (what to send as ``Last-Event-ID`` when reconnecting)."""
        return self._last_id or ""

    def decode(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode the next piece of the body; return the events completed in it, in order.

        A line or event over ``max_event_bytes`` raises :class:`EventTooLargeError`; events that
        were completed before it in the same piece are returned first, and the error (also in
        :attr:`error`) is raised by the next call. The decoder stays stopped after that.
        """
        if self.error is not None:
            raise self.error
        out: list[ServerSentEvent] = []
        try:
            self._decode(chunk, out)
        except EventTooLargeError as exc:
            self.error = exc
            if not out:
                raise
        return out

    def _decode(self, chunk: bytes, out: list[ServerSentEvent]) -> None:
        buf = self._buf
        if self._at_start:
            # §9.2.5: streams are decoded with "UTF-8 decode", which strips ONE leading BOM. It may
            # arrive split across chunks, so hold back a proper prefix of it until we know.
            if buf:
                chunk = bytes(buf) + chunk
                buf.clear()
            if len(chunk) < 3 and _BOM.startswith(chunk):
                buf += chunk
                return
            self._at_start = False
            if chunk.startswith(_BOM):
                chunk = chunk[3:]
        if self._skip_lf:
            # §9.2.5: CRLF is one line end. The CR has already ended the line (dispatch must not
            # wait on the next read), so an LF that starts this chunk is the rest of it.
            if not chunk:
                return
            self._skip_lf = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]
        if 0x0D in chunk:  # an int needle is a memchr, several times faster than b"\r" here
            # Only CR, LF and CRLF end lines (never U+2028, U+0085, VT or FF), so we split raw bytes.
            # Both passes run in C; chunks without CR (the usual case) skip them.
            if chunk[-1] == 0x0D:
                self._skip_lf = True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if (
            chunk[:6] == b"data: "
            and chunk.find(0x0A) == len(chunk) - 2
            and chunk[-1] == 0x0A
            and not buf
            and not self._data
            and len(chunk) <= self._max
        ):
            # The usual read of a token stream: one whole event of one "data: " line. The same
            # steps as the loop below, minus the split.
            self._last_id = self._id
            ev = _make_event(
                self._type or "message", chunk[6:-2].decode("utf-8", "replace"), self._id, self._block_retry
            )
            self._type = ""
            self._block_retry = None
            out.append(ev)
            return
        lines = chunk.split(b"\n")
        if len(lines) == 1:  # no line end yet
            buf += chunk
            if len(buf) > self._max:
                self._too_large(bytes(buf[:200]))
            return
        if buf:
            buf += lines[0]
            lines[0] = bytes(buf)
            buf.clear()
        rest = lines.pop()
        if rest:
            buf += rest

        data = self._data
        cap = self._max
        for line in lines:
            # Lines are decoded one at a time, and only once complete, so a character split across
            # chunks decodes whole; bad bytes become U+FFFD (§9.2.5 "UTF-8 decode").
            if line[:6] == b"data: ":  # nearly every line of a token stream
                self._size += len(line)
                if self._size > cap:
                    self._too_large(line[:200])
                data.append(line[6:].decode("utf-8", "replace"))
            elif line:
                if len(line) > cap:
                    self._too_large(line[:200])
                self._field(line)
            else:
                # A blank line: §9.2.6 "dispatch the event". Step 1 commits the ID even if nothing
                # is dispatched.
                self._last_id = self._id
                if data:
                    # Steps 3-6: the buffer's lines joined by LF is the data minus its final LF.
                    out.append(
                        _make_event(
                            self._type or "message",
                            data[0] if len(data) == 1 else "\n".join(data),
                            self._id,
                            self._block_retry,
                        )
                    )
                    data = self._data = []
                self._size = 0
                # Step 2 (no data: no event) and step 7 both clear the type buffer.
                self._type = ""
                self._block_retry = None
        if len(buf) > cap:  # the unterminated last line, checked after the complete ones
            self._too_large(bytes(buf[:200]))

    def flush(self) -> list[ServerSentEvent]:
        """End of stream: always ``[]``, since "any pending data must be discarded" (§9.2.6).

        Resets the per-stream state. The uncommitted ID of an unfinished block is dropped, so the
        next stream starts from :attr:`last_event_id`, as browsers do on reconnection.
        """
        self._buf.clear()
        self._at_start = True
        self._skip_lf = False
        self._data = []
        self._size = 0
        self._type = ""
        self._id = self._last_id
        self._block_retry = None
        self.error = None
        return []

    def _too_large(self, head: bytes) -> None:
        raise EventTooLargeError(self._max, head.decode("utf-8", "replace"))

    def _field(self, line: bytes) -> None:
        # §9.2.6, on raw bytes: ":" and " " are ASCII and never part of a multi-byte or invalid
        # UTF-8 sequence, so splitting first and decoding the parts gives the same strings.
        colon = line.find(b":")
        if colon == 0:
            return  # a comment, such as DeepSeek's ": keep-alive"
        if colon < 0:
            name, value = line, b""  # "data" alone is field "data" with an empty value
        else:
            name, value = line[:colon], line[colon + 1 :]
            if value[:1] == b" ":
                value = value[1:]  # one space only; tabs and further spaces are kept
        # Field names are compared exactly: no case folding, and a BOM after the first is part of
        # the name, so "\ufeffdata" is an unknown field.
        if name == b"data":
            self._size += len(line)
            if self._size > self._max:
                self._too_large(line[:200])
            self._data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            self._type = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:  # an id containing U+0000 is ignored
                self._id = value.decode("utf-8", "replace")
        elif name == b"retry":
            # "If the field value consists of only ASCII digits". bytes.isdigit() is exactly that
            # (False for "", "+5", " 5", "1_000", "١٢"), unlike int(), which takes all of those.
            if value.isdigit():
                try:
                    ms = int(value)
                except ValueError:  # over Python's int-from-string digit limit: absurd, ignore
                    return
                self.retry = self._block_retry = ms
        # Any other field is ignored.
