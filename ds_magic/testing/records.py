"""What the offline server records: the requests it received and the clients that went away."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(repr=False)
class RecordedRequest:
    """One HTTP request the server received (control requests under ``/_offline/`` are not recorded)."""

    index: int
    method: str
    path: str
    #: Header names in lower case. ``authorization`` holds the real value here (in-process only);
    #: ``repr`` and ``GET /_offline/requests`` show it as ``****``.
    headers: dict[str, str]
    #: The parsed JSON body, or None.
    body: Any
    raw_body: bytes
    #: ``time.monotonic()`` when the request head had arrived.
    time: float
    #: Which connection it came on (1, 2, ... in accept order).
    connection: int

    def masked_headers(self) -> dict[str, str]:
        return {k: ("****" if k in ("authorization", "x-api-key") else v) for k, v in self.headers.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "method": self.method,
            "path": self.path,
            "headers": self.masked_headers(),
            "body": self.body,
            "time": self.time,
            "connection": self.connection,
        }

    def __repr__(self) -> str:
        return (
            f"RecordedRequest(index={self.index}, method={self.method!r}, path={self.path!r}, "
            f"headers={self.masked_headers()!r}, body={self.body!r}, connection={self.connection})"
        )


@dataclass(frozen=True)
class Disconnect:
    """A client that went away while a response was being written or prepared."""

    request_index: int
    #: ``time.monotonic()`` when the server saw the EOF or reset.
    time: float
    #: Data events sent before the client went away.
    chunks_sent: int

    def to_json(self) -> dict[str, Any]:
        return {"request_index": self.request_index, "time": self.time, "chunks_sent": self.chunks_sent}
