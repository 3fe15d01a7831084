"""The offline server's hand-written HTTP/1.1 layer: reading requests, writing responses and chunked bodies.

It also follows one answer on its connection (``Exchange``), so that a client that goes away is
noticed at once, on a failed write or by the watcher that reads the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .wire import dumps

# ---------------------------------------------------------------- requests


class BadHTTP(Exception):
    pass


@dataclass
class Request:
    method: str
    target: str
    path: str
    version: str
    headers: dict[str, str]
    body: bytes
    received: float

    @property
    def wants_close(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        return "close" in conn or (self.version == "HTTP/1.0" and "keep-alive" not in conn)


class Conn:
    """One client connection: a byte buffer over the StreamReader, and the writer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, cid: int) -> None:
        self.reader = reader
        self.writer = writer
        self.id = cid
        self.buf = bytearray()
        self.eof = False

    async def fill(self) -> bool:
        """Read more bytes into the buffer; False at EOF or on a reset."""
        if self.eof:
            return False
        try:
            data = await self.reader.read(65536)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    async def read_request(self) -> Request | None:
        while self.buf[:2] == b"\r\n":  # stray CRLF between requests (RFC 9112 §2.2)
            del self.buf[:2]
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self.buf) > 65536:
                raise BadHTTP("request head too large")
            if not await self.fill():
                return None
            while self.buf[:2] == b"\r\n":
                del self.buf[:2]
        received = time.monotonic()
        head = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[: end + 4]
        method, target, version, headers = _parse_head(head)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked()
        else:
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                raise BadHTTP("bad Content-Length") from None
            if length < 0:
                raise BadHTTP("bad Content-Length")
            body = await self._read_exact(length)
        if body is None:
            return None
        path = target.split("?", 1)[0]
        if path.startswith(("http://", "https://")):  # absolute form
            path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
        return Request(method.upper(), target, path, version, headers, body, received)

    async def _read_exact(self, n: int) -> bytes | None:
        while len(self.buf) < n:
            if not await self.fill():
                return None
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    async def _read_line(self) -> bytes | None:
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[: end + 2]
                return line
            if len(self.buf) > 65536:
                raise BadHTTP("chunk line too long")
            if not await self.fill():
                return None

    async def _read_chunked(self) -> bytes | None:
        out = bytearray()
        while True:
            line = await self._read_line()
            if line is None:
                return None
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BadHTTP("bad chunk size") from None
            if size == 0:
                while True:  # trailers
                    trailer = await self._read_line()
                    if trailer is None:
                        return None
                    if not trailer:
                        return bytes(out)
            data = await self._read_exact(size + 2)
            if data is None:
                return None
            out += data[:-2]

    def write(self, data: bytes) -> None:
        if not self.writer.transport.is_closing():
            self.writer.write(data)

    async def drain(self) -> None:
        await self.writer.drain()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


def _parse_head(head: str) -> tuple[str, str, str, dict[str, str]]:
    """The request line and the headers (names in lower case, repeated ones joined with ", ")."""
    lines = head.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadHTTP("malformed request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadHTTP("malformed header line")
        key = name.lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return method, target, version, headers


async def serve(conn: Conn, dispatch: Callable[[Conn, Request], Awaitable[bool]]) -> None:
    """Answer the requests of *conn* in turn (keep-alive) until *dispatch* or the client ends it; close it."""
    try:
        while True:
            try:
                req = await conn.read_request()
            except BadHTTP as exc:
                body = f"Bad Request: {exc}\n".encode()
                hdrs = [
                    ("Content-Type", "text/plain"),
                    ("Content-Length", str(len(body))),
                    ("Connection", "close"),
                ]
                conn.write(head(400, hdrs) + body)
                await conn.drain()
                return
            if req is None:
                return
            keep = await dispatch(conn, req)
            if not keep or req.wants_close or conn.eof:
                return
    except (ConnectionError, OSError, asyncio.CancelledError):
        pass
    finally:
        conn.close()


# ---------------------------------------------------------------- responses


def phrase(status: int, unknown: str = "Error") -> str:
    """The reason phrase of *status*, or *unknown* for a code http.HTTPStatus does not know."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return unknown


def head(status: int, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {phrase(status, 'Unknown')}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def send(conn: Conn, data: bytes, ex: Exchange | None = None) -> None:
    if ex is not None:
        ex.end()  # the last bytes of this response: it is no longer in flight
    conn.write(data)
    await conn.drain()


async def send_json(
    conn: Conn,
    status: int,
    obj: Any,
    headers: Iterable[tuple[str, str]] = (),
    ex: Exchange | None = None,
) -> bool:
    body = dumps(obj).encode()
    hdrs = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers]
    await send(conn, head(status, hdrs) + body, ex)
    return True


async def send_error(
    conn: Conn,
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    headers: Iterable[tuple[str, str]] = (),
    plain: bool = False,
    ex: Exchange | None = None,
) -> bool:
    if plain:
        body = message.encode()
        hdrs = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            *headers,
        ]
        await send(conn, head(status, hdrs) + body, ex)
        return True
    err = {"error": {"message": message, "type": type_, "param": None, "code": "invalid_request_error"}}
    return await send_json(conn, status, err, headers, ex)


# ---------------------------------------------------------------- one answer on its connection


@dataclass(frozen=True)
class Hooks:
    """How an Exchange tells the server about its response (the server keeps the records)."""

    #: The response is no longer in flight (called once).
    ended: Callable[[Exchange], None]
    #: The client went away at ``time.monotonic()`` *at* (called once, and only before the end).
    lost: Callable[[Exchange, float], None]
    #: The response ran to the end.
    completed: Callable[[Exchange], None]


class Exchange:
    """One /chat/completions request being answered: the disconnect flag and the data-event count."""

    def __init__(self, index: int, conn: Conn, hooks: Hooks) -> None:
        self.index = index
        self.conn = conn
        self.hooks = hooks
        self.gone = asyncio.Event()
        self.done = False
        self.ended = False
        self.chunks = 0

    async def pause(self, seconds: float) -> bool:
        """Sleep unless the client goes away first; True while the client is still there."""
        if self.gone.is_set():
            return False
        if seconds <= 0:
            return True
        try:
            await asyncio.wait_for(self.gone.wait(), seconds)
        except asyncio.TimeoutError:
            return True
        return False

    async def pause_until(self, deadline: float) -> bool:
        return await self.pause(deadline - time.monotonic())

    def end(self) -> None:
        """The response is complete (or abandoned): no longer in flight; a client closing now cancels nothing."""
        self.done = True
        if not self.ended:
            self.ended = True
            self.hooks.ended(self)

    def lost(self) -> None:
        """The client went away: recorded once, and only while the response was still being written."""
        if self.gone.is_set() or self.done:
            self.gone.set()
            return
        now = time.monotonic()
        self.gone.set()
        self.hooks.lost(self, now)

    def complete(self) -> None:
        self.hooks.completed(self)

    async def watch(self) -> None:
        """Read the socket while the response is prepared and written, to see a client leave at once."""
        while not self.done:
            if not await self.conn.fill():
                if not self.done:
                    self.lost()
                return


class ChunkedOut:
    """Writes a chunked body, noticing a client that went away (on a failed write or via the watcher)."""

    def __init__(self, conn: Conn, ex: Exchange, split: bool) -> None:
        self.conn = conn
        self.ex = ex
        self.split = split

    async def _flush(self) -> bool:
        try:
            await self.conn.drain()
            await asyncio.sleep(0)  # let the watcher run between events
        except (ConnectionError, OSError):
            self.ex.lost()
            return False
        return not self.ex.gone.is_set()

    async def raw(self, data: bytes, chunk: bool = False) -> bool:
        """Write *data* (as one chunk of the body when *chunk*); False if the client is gone."""
        if self.ex.gone.is_set():
            return False
        if chunk and self.split:
            return await self._split(data)
        self.conn.write(f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunk else data)
        return await self._flush()

    async def _split(self, data: bytes) -> bool:
        for byte in data:
            self.conn.write(b"1\r\n" + bytes([byte]) + b"\r\n")
            if byte >= 0x80:  # inside a multi-byte character: make sure the pieces travel apart
                try:
                    await self.conn.drain()
                except (ConnectionError, OSError):
                    self.ex.lost()
                    return False
                await asyncio.sleep(0.002)
            if self.ex.gone.is_set():
                return False
        return await self._flush()

    async def event(self, payload: bytes) -> bool:
        """Write one data event and count it."""
        if not await self.raw(payload, chunk=True):
            return False
        self.ex.chunks += 1
        return True

    async def finish(self, last: bytes, completed: bool = False) -> bool:
        """Write *last* (if any) and the end of the body; the response is complete."""
        if self.ex.gone.is_set():
            return False
        if last and self.split:
            if not await self._split(last):
                return False
            last = b""
        tail = (f"{len(last):x}\r\n".encode() + last + b"\r\n" if last else b"") + b"0\r\n\r\n"
        if completed:
            self.ex.complete()
        self.ex.end()  # the last bytes: a client closing now has not cancelled anything
        self.conn.write(tail)
        try:
            await self.conn.drain()
        except (ConnectionError, OSError):
            return False
        return True
