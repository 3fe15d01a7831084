"""One HTTP/1.1 connection as an ``asyncio.Protocol``: a request out, its response in (issue 17).

The loop hands each read to ``data_received``, which parses it in place (http1.py) and wakes the
body's reader only if it is waiting: no task, no cancel scope and no event object per read, which
is where httpx + httpcore + h11 + anyio spent most of the engine's time. Failures are raised as
httpx's own exceptions, so transport.py stays the one place where they become ds_magic errors.

While the body's reader is busy or waits on its tick (stream_read.py gathers a trickling answer
for 100 ms), reads are parsed and kept, and nobody is woken: a tick's tokens cost one task wake-up,
not one each. Reading stops by itself while more than ``HIGH_WATER`` bytes wait unread (a slow
consumer), so memory stays bounded whatever the server sends. (Pausing the socket during the tick,
so the kernel gathers it instead, was measured: no gain at 1,000 paced streams or in a batch, and
two epoll calls a tick.)
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import httpx

from .http1 import ProtocolError, ResponseParser

__all__ = ["HIGH_WATER", "READ_SIZE", "Body", "Connection", "read_buffer", "within"]

T = TypeVar("T")

#: Unread body bytes above which the socket is not read until the consumer catches up.
HIGH_WATER = 1 << 20


async def within(aw: Awaitable[T], seconds: float | None) -> T:
    """``aw`` with a deadline (asyncio.TimeoutError past it; None: no deadline). On 3.11+ a timeout
    scope on this task: wait_for made a new task per call (11% of engine time at 1,000 streams)."""
    if seconds is None:
        return await aw
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await aw
    return await asyncio.wait_for(aw, seconds)


#: The size of a socket read (asyncio's own ``max_size`` for a plain Protocol).
READ_SIZE = 256 * 1024


def read_buffer() -> memoryview:
    """A buffer that every connection of one event loop reads into (``asyncio.BufferedProtocol``): the
    loop copies out each read before the next, so one per loop is enough. A plain Protocol gets a new
    256 KiB bytes object per read, shrunk to size: that allocation was most of the cost of a read."""
    return memoryview(bytearray(READ_SIZE))


class Connection(asyncio.BufferedProtocol):
    """A socket to one origin, carrying one request at a time. ``buffer`` comes from
    :func:`read_buffer` and is shared only by connections on the same loop."""

    __slots__ = (
        "loop",
        "key",
        "transport",
        "parser",
        "closed",
        "idle_since",
        "got_bytes",
        "_buffer",
        "_waiter",
        "_error",
        "_full",
    )

    def __init__(
        self, loop: asyncio.AbstractEventLoop, key: tuple[str, str, int], buffer: memoryview
    ) -> None:
        self.loop = loop
        self._buffer = buffer
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.parser: ResponseParser | None = None  # None between requests
        self.closed = False
        self.idle_since = 0.0
        self.got_bytes = False  # any byte of the current response
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._full = False

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._buffer[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if parser is None:  # bytes on an idle connection: nothing may come, so it can't be reused
            self.close()
            return
        self.got_bytes = True
        try:
            parser.feed(data)
        except ProtocolError as exc:
            self._fail(httpx.RemoteProtocolError(str(exc)))
            self.close()
            return
        if parser.pending_bytes > HIGH_WATER and not self._full:
            self._full = True
            self._reading()
        if self._waiter is not None and parser.has_head:
            self._wake()

    def eof_received(self) -> bool | None:
        return None  # close the transport: we never half-close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        parser = self.parser
        if parser is not None and self._error is None:
            try:
                parser.eof()
            except ProtocolError as err:
                if exc is not None:
                    self._error = httpx.ReadError(str(exc) or type(exc).__name__)
                elif not self.got_bytes:
                    self._error = httpx.RemoteProtocolError("Server disconnected without sending a response.")
                else:
                    self._error = httpx.RemoteProtocolError(str(err))
        self._wake()

    # ------------------------------------------------------------------ the request's side
    def start(self, data: bytes, head_request: bool) -> None:
        """Send one request (its whole head and body)."""
        assert self.transport is not None and self.parser is None
        self.parser = ResponseParser(head_request=head_request)
        self.got_bytes = False
        self._error = None
        self.transport.write(data)

    async def wait(self, seconds: float | None) -> None:
        """Until something new: the head, body bytes, the end, or a failure (raised)."""
        if self._error is None and not self.closed:
            fut = self.loop.create_future()
            self._waiter = fut
            try:
                await within(fut, seconds)
            except asyncio.TimeoutError:
                raise httpx.ReadTimeout("timed out waiting for the server") from None
            finally:
                self._waiter = None
        if self._error is not None:
            raise self._error
        parser = self.parser
        if self.closed and not (parser is not None and parser.complete):
            # Closed by us (abort): connection_lost, with its error, is still to come.
            raise httpx.ReadError("the connection was closed")

    def done_with(self) -> bool:
        """The response is over: True if the connection can carry the next request."""
        parser, self.parser = self.parser, None
        self._full = False
        self._reading()
        reusable = (
            parser is not None
            and parser.complete
            and parser.keep_alive
            and not self.closed
            and self._error is None
        )
        if not reusable:
            self.close()
        self.idle_since = self.loop.time()
        return reusable

    def take(self) -> bytes:
        parser = self.parser
        assert parser is not None
        data = parser.take()
        if self._full and data:
            self._full = False
            self._reading()
        return data

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()  # nothing is left to send: no graceful close to wait for

    # ------------------------------------------------------------------ internals
    def _reading(self) -> None:
        """Read the socket unless more than HIGH_WATER bytes wait unread."""
        transport = self.transport
        if transport is not None and not self.closed and transport.is_reading() == self._full:
            if self._full:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._wake()

    def _wake(self) -> None:
        fut = self._waiter
        if fut is not None and not fut.done():
            fut.set_result(None)


class Body(httpx.AsyncByteStream):
    """A response's body as httpx reads it; closing it ends the response (once) through ``release``."""

    __slots__ = ("_conn", "_release", "_seconds")

    def __init__(
        self, conn: Connection, release: Callable[[Connection], None], read_timeout: float | None
    ) -> None:
        self._conn: Connection | None = conn
        self._release = release
        self._seconds = read_timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            return
        parser = conn.parser
        assert parser is not None
        while True:
            data = conn.take()
            if data:
                yield data
            elif parser.complete:
                break
            else:
                await conn.wait(self._seconds)
        await self.aclose()

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._release(conn)
