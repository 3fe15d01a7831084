"""The engine's HTTP pool: as many connections as there are streams, in small shards, behind our own limiter.

Why not one ``httpx.AsyncClient`` with a big ``Limits`` (issue 17, "the connection pool cliff"):
httpcore's ``AsyncConnectionPool`` runs ``_assign_requests_to_connections`` on every request start
and end, and it rescans its queue × its connections, and for every idle connection counts all the
connections again. With N connections in one pool each change costs O(N) to O(N²), so above a few
hundred streams the client is CPU-bound in pool bookkeeping; with ``max_keepalive_connections=None``
the idle scan alone was 65% of the samples. Here:

- the pool is cut into shards of ``SHARD_SIZE`` connections (one httpcore pool each, public httpx
  API only), so httpcore's scans cost O(SHARD_SIZE²) at most, whatever the concurrency;
- a shard gets a request only while it has a free slot, so httpcore's own queue never holds a
  waiter; shards are made as the concurrency asked for grows (a 16-item batch opens 16 connections);
- beyond ``limit`` streams (the account's cap, 2,500 for deepseek-flash: deepseek-api.md §3.3) the
  rest wait here, in a FIFO that costs O(1) per start and end;
- each shard keeps all its connections alive (keep-alive = shard size, never None), so a finished
  stream's connection is reused, not closed and opened again.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator

import httpx

__all__ = ["ACCOUNT_CAP", "SHARD_SIZE", "ShardedPool"]

#: DeepSeek's per-account concurrency cap for deepseek-flash (deepseek-api.md §3.3).
ACCOUNT_CAP = 2500
#: Connections per httpcore pool: its per-change scans cost up to SHARD_SIZE² idle checks.
SHARD_SIZE = 8


class _Shard:
    __slots__ = ("transport", "busy", "listed")

    def __init__(self, transport: httpx.AsyncHTTPTransport) -> None:
        self.transport = transport
        self.busy = 0
        self.listed = False  # in the pool's stack of shards with a free slot


class _Released(httpx.AsyncByteStream):
    """The body of one answer; closing it gives its slot back (once)."""

    __slots__ = ("_inner", "_pool", "_shard")

    def __init__(self, inner: httpx.AsyncByteStream, pool: ShardedPool, shard: _Shard | None) -> None:
        self._inner = inner
        self._pool = pool
        self._shard = shard

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._inner.__aiter__()  # no extra generator layer per read

    async def aclose(self) -> None:
        shard, self._shard = self._shard, None
        try:
            await self._inner.aclose()
        finally:
            if shard is not None:
                self._pool.release(shard)


class ShardedPool(httpx.AsyncBaseTransport):
    """An httpx transport: at most ``limit`` requests in flight, on shards of ``shard_size`` connections.

    Only to be used on one event loop (the engine's). ``in_flight`` and ``waiting`` are public so a
    test can see that nothing is left holding a slot.
    """

    def __init__(
        self,
        limit: int = ACCOUNT_CAP,
        *,
        shard_size: int = SHARD_SIZE,
        verify: ssl.SSLContext | bool = True,
        keepalive_expiry: float = 5.0,
    ) -> None:
        if limit < 1 or shard_size < 1:
            raise ValueError("limit and shard_size must be at least 1")
        self.limit = limit
        self.shard_size = shard_size
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None  # one context for every shard (making one costs ms)
        self._expiry = keepalive_expiry
        self._shards: list[_Shard] = []
        self._free: list[_Shard] = []  # shards with a free slot, the latest freed on top
        self._waiters: deque[asyncio.Future[_Shard]] = deque()
        self.in_flight = 0

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    @property
    def shards(self) -> int:
        return len(self._shards)

    def _new_shard(self) -> _Shard:
        if self._ssl is None:
            verify = self._verify
            self._ssl = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify)
        size = self.shard_size
        transport = httpx.AsyncHTTPTransport(
            verify=self._ssl,
            limits=httpx.Limits(
                max_connections=size, max_keepalive_connections=size, keepalive_expiry=self._expiry
            ),
        )
        shard = _Shard(transport)
        self._shards.append(shard)
        return shard

    def _take(self) -> _Shard | None:
        """A slot now, or None when ``limit`` are in flight."""
        if self.in_flight >= self.limit:
            return None
        free = self._free
        while free:
            shard = free[-1]
            if shard.busy < self.shard_size:
                break
            free.pop()
            shard.listed = False
        else:
            shard = self._new_shard()
            shard.listed = True
            free.append(shard)
        shard.busy += 1
        self.in_flight += 1
        if shard.busy >= self.shard_size:
            free.pop()
            shard.listed = False
        return shard

    async def _acquire(self) -> _Shard:
        shard = self._take() if not self._waiters else None
        if shard is not None:
            return shard
        fut: asyncio.Future[_Shard] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(fut.result())  # handed a slot just as it was cancelled: pass it on
            raise

    def release(self, shard: _Shard) -> None:
        """A request is over: its slot goes to the first waiter, or back to its shard."""
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(shard)  # the slot changes hands: in_flight and busy stay as they are
                return
        shard.busy -= 1
        self.in_flight -= 1
        if not shard.listed:
            shard.listed = True
            self._free.append(shard)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        shard = await self._acquire()
        try:
            response = await shard.transport.handle_async_request(request)
        except BaseException:
            self.release(shard)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_Released(response.stream, self, shard),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        shards, self._shards, self._free = self._shards, [], []
        for w in self._waiters:
            w.cancel()
        self._waiters.clear()
        for shard in shards:
            await shard.transport.aclose()
