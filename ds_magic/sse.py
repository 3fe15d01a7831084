"""A spec-strict, incremental, linear-time Server-Sent Events decoder (pure: bytes in, events out).

Follows WHATWG HTML §9.2.5-9.2.6 (sse-and-retries.md §4), where httpx-sse and the openai SDK each
deviate: one leading BOM is stripped; bytes are always UTF-8 with U+FFFD for invalid sequences
(the ``charset`` parameter is ignored); only CR, LF and CRLF end lines (never U+2028 or U+0085);
a CR at the end of a chunk ends its line at once, and an LF at the start of the next chunk is then
swallowed; ``retry`` counts only when it is ASCII digits; blocks with no data dispatch nothing;
data pending at EOF is discarded. Each input byte is scanned a bounded number of times.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

__all__ = ["SSEDecoder", "ServerSentEvent"]

_BOM = b"\xef\xbb\xbf"
_LINE_END = re.compile(rb"\r\n|\r|\n")


class ServerSentEvent(NamedTuple):
    # A NamedTuple: one is made per streamed token, and frozen dataclasses are slow to construct.
    event: str = "message"
    data: str = ""
    id: str | None = None  # the last event ID in effect when this event was dispatched
    retry: int | None = None  # a reconnection time (ms) set in this event's block

    def json(self) -> Any:
        return json.loads(self.data)


class SSEDecoder:
    """Feed raw body bytes with :meth:`decode`; each call returns the events completed by that chunk."""

    __slots__ = (
        "_partial",
        "_skip_lf",
        "_start",
        "_data",
        "_event",
        "_id_buffer",
        "_id_seen",
        "_block_retry",
        "last_event_id",
        "retry",
    )

    def __init__(self) -> None:
        self._partial = bytearray()  # an unterminated line; only ever appended to, then consumed whole
        self._skip_lf = False  # the previous chunk ended in CR: an LF right after it is the same line end
        self._start: bytearray | None = bytearray()  # bytes seen before we know whether a BOM leads
        self._data: list[str] = []
        self._event = ""
        self._id_buffer = ""
        self._id_seen = False
        self._block_retry: int | None = None
        self.last_event_id = ""
        self.retry: int | None = None

    def decode(self, chunk: bytes) -> list[ServerSentEvent]:
        if self._start is not None:
            # §9.2.5: "The UTF-8 decode algorithm strips one leading UTF-8 BOM, if any." It may be split.
            self._start += chunk
            if len(self._start) < 3 and _BOM.startswith(bytes(self._start)):
                return []
            chunk = bytes(self._start)
            if chunk.startswith(_BOM):
                chunk = chunk[3:]
            self._start = None
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if not chunk:
            return []
        out: list[ServerSentEvent] = []
        if b"\r" not in chunk:
            lines = chunk.split(b"\n")
        else:
            lines = _LINE_END.split(chunk)
            # A CR as the very last byte ended its line; a following LF belongs to it (§9.2.5 "CRLF").
            if chunk.endswith(b"\r"):
                self._skip_lf = True
        rest = lines.pop()  # after the last line end: an unterminated line (b"" if the chunk ended one)
        if lines:
            if self._partial:
                self._partial += lines[0]
                lines[0] = bytes(self._partial)
                self._partial.clear()
            data = self._data
            for raw in lines:
                # Fast path for the two lines that make up nearly every stream: "data: ..." and "".
                if raw[:6] == b"data: ":
                    data.append(raw[6:].decode("utf-8", "replace"))
                    continue
                if not raw and data:  # the usual dispatch, inlined (same steps as _dispatch)
                    self.last_event_id = self._id_buffer
                    out.append(
                        ServerSentEvent(
                            self._event or "message",
                            data[0] if len(data) == 1 else "\n".join(data),
                            self._id_buffer if self._id_seen else None,
                            self._block_retry,
                        )
                    )
                    data = self._data = []
                    self._event = ""
                    self._block_retry = None
                    continue
                ev = self._line(raw.decode("utf-8", "replace")) if raw else self._dispatch()
                if ev is not None:
                    out.append(ev)
                    data = self._data
        if rest:
            self._partial += rest
        return out

    def flush(self) -> list[ServerSentEvent]:
        """End of stream: "any pending data must be discarded" (§9.2.6), so nothing is dispatched."""
        self._partial.clear()
        self._skip_lf = False
        self._data = []
        self._event = ""
        self._block_retry = None
        return []

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith("data"):
            # The common case first: "data: {...}".
            if line.startswith("data: "):
                self._data.append(line[6:])
                return None
            if line == "data" or line.startswith("data:"):
                self._data.append(line[5:])
                return None
        if line[0] == ":":
            return None  # a comment, e.g. DeepSeek's ": keep-alive"
        colon = line.find(":")
        if colon < 0:
            name, value = line, ""
        else:
            name, value = line[:colon], line[colon + 1 :]
            if value[:1] == " ":
                value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id_buffer = value
                self._id_seen = True
        elif name == "retry":
            # "If the field value consists of only ASCII digits": not "+5", " 5", "1_000" or "١٢".
            if value and value.isascii() and value.isdigit():
                self.retry = self._block_retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        self.last_event_id = self._id_buffer
        if not self._data:
            # §9.2.6 step 2: no data, no event; the type buffer is cleared too.
            self._event = ""
            self._block_retry = None
            return None
        ev = ServerSentEvent(
            event=self._event or "message",
            data="\n".join(self._data),
            id=self.last_event_id if self._id_seen else None,
            retry=self._block_retry,
        )
        self._data = []
        self._event = ""
        self._block_retry = None
        return ev
