"""The engine's HTTP pool: one connection per stream up to the account's cap, behind our own limiter.

An httpx transport (``httpx.AsyncClient(transport=EnginePool())``), so the rest of the package
speaks httpx and a user's own ``http_client=`` still works; underneath it is our own HTTP/1.1
(http_conn.py, http1.py) instead of httpcore, h11 and anyio (issue 17):

- httpcore's ``AsyncConnectionPool`` rescans its queue × its connections on every request start
  and end, and counts all its connections for every idle one (O(N²) with
  ``max_keepalive_connections=None``): above a few hundred streams a client is CPU-bound in pool
  bookkeeping. Here taking and giving back a connection is O(1): a stack of idle connections per
  origin, the newest on top (the one least likely to have been closed by the server);
- at most ``limit`` requests are in flight (the account's cap, 2,500 for deepseek-flash:
  deepseek-api.md §3.3); the rest wait in a FIFO that also costs O(1) per start and end. Waiting
  for the cap is not a failure, so httpx's ``pool`` timeout is not applied to it;
- idle connections are kept ``keepalive_expiry`` seconds; one the server closed meanwhile is
  dropped when its close arrives.

Proxies are not handled here: httpx mounts its own transport for ``HTTPS_PROXY`` and friends.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections import deque

import httpx

from .http1 import ResponseParser
from .http_conn import Body, Connection, read_buffer, within

__all__ = ["ACCOUNT_CAP", "EnginePool"]

#: DeepSeek's per-account concurrency cap for deepseek-flash (deepseek-api.md §3.3).
ACCOUNT_CAP = 2500
_PORTS = {"http": 80, "https": 443}
# A method and a field name are tokens (RFC 9110 §9.1, §5.1): httpx does not check them (h11 did),
# and one with a line break in it would smuggle a header of its own into the request.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class EnginePool(httpx.AsyncBaseTransport):
    """An httpx transport: at most ``limit`` requests in flight, each on a connection of its own.

    Only to be used on one event loop (the engine's). ``in_flight``, ``waiting``, ``connections``
    and ``idle`` are public so a test can see that nothing is left holding a slot or a socket.
    """

    def __init__(
        self,
        limit: int = ACCOUNT_CAP,
        *,
        verify: ssl.SSLContext | bool = True,
        keepalive_expiry: float = 5.0,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None  # one context for every connection (making one costs ms)
        self._expiry = keepalive_expiry
        self._idle: dict[tuple[str, str, int], deque[Connection]] = {}
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._open: set[Connection] = set()
        self._buffer = read_buffer()  # the pool lives on one loop: its connections share one
        self.in_flight = 0

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    @property
    def connections(self) -> int:
        """Open connections, busy or idle."""
        return sum(1 for c in self._open if not c.closed)

    @property
    def idle(self) -> int:
        return sum(1 for q in self._idle.values() for c in q if not c.closed)

    # ------------------------------------------------------------------ the limiter
    async def _acquire(self) -> None:
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release_slot()  # handed a slot just as it was cancelled: pass it on
            raise

    def _release_slot(self) -> None:
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot changes hands: in_flight stays as it is
                return
        self.in_flight -= 1

    # ------------------------------------------------------------------ connections
    def _reuse(self, key: tuple[str, str, int], now: float) -> Connection | None:
        stack = self._idle.get(key)
        while stack:
            conn = stack.pop()
            if not conn.closed and now - conn.idle_since < self._expiry:
                return conn
            conn.close()
            self._open.discard(conn)
        return None

    def _sweep(self, stack: deque[Connection], now: float) -> None:
        """Close the oldest idle connections once expired (or closed by the server): O(1) a release."""
        while stack and (stack[0].closed or now - stack[0].idle_since >= self._expiry):
            conn = stack.popleft()
            conn.close()
            self._open.discard(conn)

    async def _connect(self, key: tuple[str, str, int], seconds: float | None) -> Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        context = None
        if scheme == "https":
            if self._ssl is None:
                verify = self._verify
                self._ssl = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify)
            context = self._ssl
        try:
            _, conn = await within(
                loop.create_connection(
                    lambda: Connection(loop, key, self._buffer),
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context is not None else None,
                ),
                seconds,
            )
        except asyncio.TimeoutError:
            raise httpx.ConnectTimeout(f"no connection to {host}:{port} within {seconds:g} s") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from None
        self._open.add(conn)
        return conn

    def _give_back(self, conn: Connection) -> None:
        """A response is over (its body read to the end, or closed early): its slot is freed, and
        its connection kept for the next request if it can carry one."""
        self._release_slot()
        if conn.done_with():
            stack = self._idle.setdefault(conn.key, deque())
            stack.append(conn)
            self._sweep(stack, conn.idle_since)
        else:
            self._open.discard(conn)

    # ------------------------------------------------------------------ httpx's side
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        if scheme not in _PORTS:
            raise httpx.UnsupportedProtocol(f"the URL has no http:// or https:// scheme: {scheme!r}")
        timeouts = request.extensions.get("timeout", {})
        key = (scheme, url.host, url.port or _PORTS[scheme])
        data = _serialize(request, await request.aread())
        head_request = request.method == "HEAD"
        await self._acquire()
        try:
            conn, parser = await self._send(key, data, head_request, timeouts)
        except BaseException:
            self._release_slot()
            raise
        body = Body(conn, self._give_back, timeouts.get("read"))
        return httpx.Response(
            status_code=parser.status,
            headers=parser.headers,
            stream=body,
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": parser.reason,
            },
        )

    async def _send(
        self, key: tuple[str, str, int], data: bytes, head_request: bool, timeouts: dict[str, float | None]
    ) -> tuple[Connection, ResponseParser]:
        """The request sent, and its response's head read, on a kept connection if there is one.

        A kept connection the server closed is dropped as soon as the loop reads its close, before
        it can be taken again (what httpcore's "is readable" check before reuse does). It is not
        sent again after a failure: a server that drops on purpose looks the same, and the runner's
        retry policy, which the user set, decides about sending twice."""
        conn = self._reuse(key, asyncio.get_running_loop().time())
        if conn is None:
            conn = await self._connect(key, timeouts.get("connect"))
        conn.start(data, head_request)
        parser = conn.parser
        assert parser is not None
        try:
            while not parser.has_head:
                await conn.wait(timeouts.get("read"))
        except BaseException:
            conn.done_with()
            self._open.discard(conn)
            raise
        return conn, parser

    async def aclose(self) -> None:
        for w in self._waiters:  # their requests fail as a transport error, not as a cancel
            if not w.done():
                w.set_exception(httpx.ConnectError("the engine's HTTP pool was closed"))
        self._waiters.clear()
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()


def _serialize(request: httpx.Request, content: bytes) -> bytes:
    """The request line, headers and body (RFC 9112 §3, §5, §6). httpx has set Host, and
    Content-Length for a body it knows the size of; a streamed one was read whole above."""
    raw = request.headers.raw
    method = request.method.encode("ascii", "replace")
    if _TOKEN.fullmatch(method) is None:
        raise httpx.LocalProtocolError(f"the request method {method[:40]!r} is not a token")
    parts = [method, b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    has_length = False
    for name, value in raw:
        lower = name.lower()
        if lower == b"transfer-encoding":
            continue  # the body was read whole: it goes with a Content-Length instead
        if lower == b"content-length":
            has_length = True
        if _TOKEN.fullmatch(name) is None:
            raise httpx.LocalProtocolError(f"the header name {name[:40]!r} is not a token")
        if b"\r" in value or b"\n" in value or b"\0" in value:
            # Never the value itself in the message: it may be the key (Authorization).
            raise httpx.LocalProtocolError(f"the {name.decode('ascii', 'replace')} header has a line break")
        parts += (name, b": ", value, b"\r\n")
    if content and not has_length:
        parts.append(b"Content-Length: %d\r\n" % len(content))
    parts += (b"\r\n", content)
    return b"".join(parts)
