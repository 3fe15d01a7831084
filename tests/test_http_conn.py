"""Our HTTP/1.1 under httpx (http_conn.py, http_pool.py; issue 17) through real sockets on 127.0.0.1:
streamed bodies, keep-alive reuse and its refusals, a trickle kept while the reader is busy, the high-water pause, every failure as
an httpx exception, TLS, the limiter's hand-over on cancel, and nothing left open after aclose().

The server is a small keep-alive HTTP/1.1 server of our own (tests/hostile.RawServer answers one
request per connection); it runs its own loop in a thread and counts its connections. No timings:
every wait is on a condition with a hang guard."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import psutil
import pytest
import trustme

from ds_magic.http_conn import HIGH_WATER, READ_SIZE, Body, Connection, read_buffer
from ds_magic.http_pool import EnginePool

GUARD = 60.0  # hang guard: generous, the machine is shared
READ_MAX = READ_SIZE  # the most one socket read takes (our buffer for asyncio.BufferedProtocol)


@dataclass
class Req:
    conn: int  # the server's number for the connection it came on (1, 2, ...)
    head: bytes
    path: str
    reader: asyncio.StreamReader
    body: bytes = b""

    async def hangup(self) -> None:
        """Until the client closes the connection (it sends nothing more: we never pipeline)."""
        await self.reader.read()


Handler = Callable[["Server", Req, asyncio.StreamWriter], Awaitable[bool]]  # True: keep the connection


class Server:
    """A keep-alive HTTP/1.1 server: reads request after request on each connection and lets
    ``handler`` write the answer; counts connections made (``accepted``) and still open (``open``)."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.accepted = 0
        self.open = 0
        self.requests: list[Req] = []
        self.flags: set[str] = set()  # set by the handler, read by the test
        self.unsent = 0  # bytes the handler's transport still holds (set when it asks)
        self._gates: dict[str, asyncio.Event] = {}
        self._lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(GUARD)
        return self

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        return int(self._server.sockets[0].getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in others:
                t.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(GUARD)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(GUARD)
        self.loop.close()

    def gate(self, name: str) -> asyncio.Event:
        with self._lock:
            return self._gates.setdefault(name, asyncio.Event())

    async def wait_gate(self, name: str, req: Req) -> bool:
        """Until the gate opens (True) or the client hangs up (False)."""
        gate = asyncio.ensure_future(self.gate(name).wait())
        hangup = asyncio.ensure_future(req.hangup())
        done, _ = await asyncio.wait({gate, hangup}, return_when=asyncio.FIRST_COMPLETED)
        for t in (gate, hangup):
            t.cancel()
        await asyncio.gather(gate, hangup, return_exceptions=True)
        return gate in done

    def release(self, name: str) -> None:
        """Open a gate the handler waits at (from the test's thread)."""
        self.loop.call_soon_threadsafe(self.gate(name).set)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        number = self.accepted
        self.open += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
                    return
                path = head.split(b" ", 2)[1].decode()
                length = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
                body = await reader.readexactly(int(length[0].split(b":")[1])) if length else b""
                req = Req(number, head, path, reader, body)
                self.requests.append(req)
                if not await self.handler(self, req, writer):
                    return
        except (ConnectionError, ssl.SSLError):
            return
        except asyncio.CancelledError:
            return  # __exit__ ends a handler still waiting, quietly (asyncio.streams would log it)
        finally:
            writer.close()
            self.open -= 1


async def until(cond: Callable[[], object], what: str) -> None:
    """Wait on the client's loop until ``cond()`` is true (polled; ``GUARD`` is the hang guard)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GUARD
    while not cond():
        assert loop.time() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.002)  # the poll interval of this condition wait


async def loop_turns(n: int = 5) -> None:
    """Let the loop run ``n`` iterations: a readable socket that is being read is read by then."""
    for _ in range(n):
        await asyncio.sleep(0)


def client_sockets(port: int) -> int:
    """This process's established TCP connections to ``port``, counted by the OS."""
    conns = psutil.Process().net_connections(kind="tcp")
    return sum(1 for c in conns if c.raddr and c.raddr[1] == port and c.status == "ESTABLISHED")


def ok(body: bytes, *extra: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), b"".join(extra), body)


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes, ext: bytes = b"") -> bytes:
    return b"%x%s\r\n%s\r\n" % (len(data), ext, data)


async def send(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


async def answer_ok(server: Server, req: Req, writer: asyncio.StreamWriter) -> bool:
    await send(writer, ok(b"hello " + req.path.encode()))
    return True


def run(coro: Awaitable[Any]) -> Any:
    async def guarded() -> Any:
        return await asyncio.wait_for(coro, GUARD * 2)

    return asyncio.run(guarded())


# ----------------------------------------------------------------------------- streamed bodies
PARTS = [b'data: {"n": %d}\n\n' % i for i in range(12)]


def awkward_pieces() -> tuple[list[bytes], list[bytes]]:
    """The head and a chunked body of ``PARTS`` (some size lines with an extension, a trailer),
    cut inside each chunk's data and, every other chunk, between the CR and LF after it: (the
    pieces, the body bytes each piece carries)."""
    raw, is_body, cuts = bytearray(), [], []
    for i, part in enumerate(PARTS):
        line = b"%x%s\r\n" % (len(part), b";n=%d" % i if i % 2 else b"")
        raw += line
        is_body += [False] * len(line)
        cuts.append(len(raw) + len(part) // 2)
        raw += part
        is_body += [True] * len(part)
        if i % 2:
            cuts.append(len(raw) + 1)  # between the CR and the LF
        raw += b"\r\n"
        is_body += [False, False]
    tail = b"0\r\nX-Trailer: 1\r\n\r\n"
    raw += tail
    is_body += [False] * len(tail)
    edges = list(zip([0, *cuts], [*cuts, len(raw)], strict=True))
    pieces = [bytes(raw[a:b]) for a, b in edges]
    carried = [bytes(raw[k] for k in range(a, b) if is_body[k]) for a, b in edges]
    return [CHUNKED_HEAD + pieces[0], *pieces[1:]], carried


def test_a_chunked_body_sent_in_pieces_arrives_whole_in_order_and_the_connection_is_reused() -> None:
    # The server sends a piece only once the client has read all the body bytes before it, so
    # every piece reaches the parser on its own, cut where it is cut.
    pieces, carried = awkward_pieces()
    assert all(carried[:-1]) and len(pieces) == len(PARTS) * 3 // 2 + 1
    got_so_far = [0]

    async def handler(server: Server, req: Req, writer: asyncio.StreamWriter) -> bool:
        if req.path == "/again":
            await send(writer, ok(b"second"))
            return True
        need = 0
        for piece, body in zip(pieces, carried, strict=True):
            while got_so_far[0] < need:  # the client has not read the bytes so far yet
                await asyncio.sleep(0.001)
            await send(writer, piece)
            need += len(body)
        return True

    async def main(server: Server) -> None:
        pool = EnginePool(keepalive_expiry=GUARD)
        async with httpx.AsyncClient(transport=pool) as client:
            reads: list[bytes] = []
            async with client.stream("GET", server.url + "/stream") as r:
                assert r.status_code == 200 and r.headers["content-type"] == "text/event-stream"
                async for data in r.aiter_raw():
                    reads.append(data)
                    got_so_far[0] += len(data)
            assert b"".join(reads) == b"".join(PARTS)
            assert reads == [b for b in carried if b]  # each piece handed on as it came, none held back
            assert pool.in_flight == 0 and pool.idle == 1
            again = await client.get(server.url + "/again")
            assert again.content == b"second"
            assert server.accepted == 1  # the body was read to its end: the same connection again
            assert [q.conn for q in server.requests] == [1, 1]
            await pool.aclose()

    with Server(handler) as server:
        run(main(server))


def test_connection_close_and_an_early_closed_body_are_not_reused() -> None:
    async def handler(server: Server, req: Req, writer: asyncio.StreamWriter) -> bool:
        if req.path == "/close":
            await send(writer, ok(b"bye", b"Connection: close\r\n"))
            return True  # the server would go on: the client is the one that must not
        await send(writer, CHUNKED_HEAD + chunk(b"first"))
        await req.hangup()  # the rest never comes: the client leaves early
        return False

    async def main(server: Server) -> None:
        pool = EnginePool(keepalive_expiry=GUARD)
        async with httpx.AsyncClient(transport=pool) as client:
            r = await client.get(server.url + "/close")
            assert r.content == b"bye"
            assert pool.connections == 0 and pool.in_flight == 0
            await until(lambda: server.open == 0, "the client closed the Connection: close socket")

            async with client.stream("GET", server.url + "/early") as r:
                async for data in r.aiter_raw():
                    assert data == b"first"
                    break  # closed early: the rest of the body is still to come
            assert pool.connections == 0 and pool.idle == 0 and pool.in_flight == 0
            await until(lambda: server.open == 0, "the client closed the half-read socket")

            r = await client.get(server.url + "/close")
            assert r.content == b"bye"
            assert [q.conn for q in server.requests] == [1, 2, 3]  # a new connection each time
            await pool.aclose()

    with Server(handler) as server:
        run(main(server))


def test_a_kept_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async def handler(server: Server, req: Req, writer: asyncio.StreamWriter) -> bool:
        await send(writer, ok(b"answer %d" % len(server.requests)))
        return req.path != "/then-close"  # close it after the answer, with no Connection: close

    async def main(server: Server) -> None:
        pool = EnginePool(keepalive_expiry=GUARD)
        async with httpx.AsyncClient(transport=pool) as client:
            assert (await client.get(server.url + "/then-close")).content == b"answer 1"
            # Kept (the answer said nothing of closing), until the loop reads the server's close.
            await until(lambda: pool.idle == 0 and pool.connections == 0, "the idle close was seen")
            assert (await client.get(server.url + "/")).content == b"answer 2"  # no error
            assert (await client.get(server.url + "/")).content == b"answer 3"
            assert [q.conn for q in server.requests] == [1, 2, 2]
            assert pool.idle == 1
            await pool.aclose()

    with Server(handler) as server:
        run(main(server))


def test_bytes_after_the_end_of_a_response_spoil_the_connection() -> None:
    async def handler(server: Server, req: Req, writer: asyncio.StreamWriter) -> bool:
        await send(writer, ok(b"ok") + b"HTTP/1.1 200 OK\r\n")  # a second answer nobody asked for
        return True

    async def main(server: Server) -> None:
        pool = EnginePool(keepalive_expiry=GUARD)
        async with httpx.AsyncClient(transport=pool) as client:
            for _ in range(2):
                assert (await client.get(server.url + "/")).content == b"ok"
            assert [q.conn for q in server.requests] == [1, 2]
            await pool.aclose()

    with Server(handler) as server:
        run(main(server))


# ----------------------------------------------------------------------------- hold and high water
class Counted(Connection):
    """The real Connection, counting the socket reads the loop hands it."""

    reads = 0

    def data_received(self, data: bytes) -> None:
        self.reads += 1
        super().data_received(data)


async def connect(server: Server, request: bytes = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n") -> Counted:
    """A Connection of our own to the server, its request sent and its response's head read."""
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(
        lambda: Counted(loop, ("http", "127.0.0.1", server.port), read_buffer()), "127.0.0.1", server.port
    )
    conn.start(request, False)
    while conn.parser is None or not conn.parser.has_head:
        await conn.wait(GUARD)
    return conn


TRICKLE = [chunk(b"token %d " % i) for i in range(40)]


def test_a_trickle_read_while_the_reader_is_busy_is_kept_and_taken_in_one_piece() -> None:
    """What stream_read.py's gathering tick relies on: reads that come while nobody waits are parsed
    and kept (no wake-up), and the reader's next ask takes all of them at once."""

    async def handler(server: Server, req: Req, writer: asyncio.StreamWriter) -> bool:
        await send(writer, CHUNKED_HEAD + chunk(b"first "))
        await server.gate("trickle").wait()
        for piece in TRICKLE:
            await send(writer, piece)  # one write each: a trickle of tokens
        server.flags.add("sent")
        await server.gate("end").wait()
        await send(writer, b"0\r\n\r\n")
        return True

    async def main(server: Server) -> None:
        conn = await connect(server)
        parser = conn.parser
        assert parser is not None
        released: list[Connection] = []
        body = Body(conn, released.append, GUARD)
        body_reads = aiter(body)
        assert await anext(body_reads) == b"first "

        # The reader is busy elsewhere (it does not ask): the trickle is read and parsed meanwhile.
        server.release("trickle")
        size = sum(len(b"token %d " % i) for i in range(40))
        await until(lambda: parser.pending_bytes == size, "the trickle was read and kept")
        expected = b"".join(b"token %d " % i for i in range(40))
        assert await anext(body_reads) == expected  # taken in one piece, however many reads it took

        server.release("end")
        with pytest.raises(StopAsyncIteration):
            await anext(body_reads)
        assert released == [conn]  # the body ended: the response given back, once
        assert conn.done_with()  # and the connection could carry another request
        conn.close()

    with Server(handler) as server:
        run(main(server))


BIG = 48 * 1024 * 1024  # more than loopback's socket buffers hold (rmem max 32 MiB + wmem 4 MiB here)


def test_a_consumer_that_does_not_read_stops_the_socket_at_the_high_water_mark() -> None:
    pattern = bytes(range(256)) * (BIG // 256)

    async def handler(server: Server, req: Req, writer: asyncio.StreamWriter) -> bool:
        writer.write(ok(pattern))  # as fast as it can: all of it at once
        server.unsent = writer.transport.get_write_buffer_size()
        await server.gate("report").wait()
        server.unsent = writer.transport.get_write_buffer_size()
        server.flags.add("reported")
        await writer.drain()
        server.flags.add("drained")
        return True

    async def main(server: Server) -> None:
        conn = await connect(server)
        parser, transport = conn.parser, conn.transport
        assert parser is not None and transport is not None
        await until(lambda: not transport.is_reading(), "reading paused at the high-water mark")
        await loop_turns()
        held = parser.pending_bytes
        assert HIGH_WATER < held <= HIGH_WATER + READ_MAX
        server.release("report")
        await until(lambda: "reported" in server.flags, "the server reported")
        assert server.unsent > 0 and "drained" not in server.flags  # the server is blocked writing
        assert parser.pending_bytes == held and not transport.is_reading()  # and we still read nothing

        got, biggest = bytearray(), 0
        async for data in Body(conn, lambda c: None, GUARD):
            biggest = max(biggest, len(data))
            got += data
        assert len(got) == BIG and got == pattern
        assert biggest <= HIGH_WATER + READ_MAX  # never more than that waited unread
        await until(lambda: "drained" in server.flags, "the server finished writing")
        conn.close()

    with Server(handler) as server:
        run(main(server))


# ----------------------------------------------------------------------------- failures
def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def hostile(server: Server, req: Req, writer: asyncio.StreamWriter) -> bool:
    """One misbehaviour per path; ``/ok`` answers properly."""
    if req.path == "/ok":
        await send(writer, ok(b"fine"))
        return True
    if req.path == "/close-at-once":
        return False
    if req.path == "/close-mid-chunked":
        await send(writer, CHUNKED_HEAD + chunk(b"kept") + b"10\r\npart")
        return False
    if req.path == "/garbage":
        await send(writer, b"SSH-2.0-OpenSSH_9.6\r\nnot: http\r\n\r\n")
        await req.hangup()
        return False
    if req.path == "/silent":
        await req.hangup()
        return False
    raise AssertionError(req.path)


def one_line(exc: BaseException) -> str:
    message = str(exc)
    assert message and "\n" not in message, message
    return message


def test_failures_are_httpx_exceptions_and_lose_no_slot() -> None:
    async def main(server: Server) -> None:
        pool = EnginePool(limit=1)  # one slot: a lost one would hang the next request (guarded)
        async with httpx.AsyncClient(transport=pool) as client:

            async def fine() -> None:
                assert (await client.get(server.url + "/ok")).content == b"fine"
                assert pool.in_flight == 0 and pool.waiting == 0

            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{free_port()}/")
            await fine()

            with pytest.raises(httpx.RemoteProtocolError) as info:
                await client.get(server.url + "/close-at-once")
            assert "without sending a response" in one_line(info.value)
            await fine()

            got = b""
            with pytest.raises(httpx.RemoteProtocolError) as info:
                async with client.stream("GET", server.url + "/close-mid-chunked") as r:
                    async for data in r.aiter_raw():
                        got += data
            assert got == b"kept" + b"part"  # what came before the break is not lost
            assert "chunked" in one_line(info.value)
            await fine()

            with pytest.raises(httpx.RemoteProtocolError) as info:
                await client.get(server.url + "/garbage")
            assert "status line" in one_line(info.value)
            await fine()

            secret = "sk-secret-value-0123456789"
            before = len(server.requests)
            with pytest.raises(httpx.LocalProtocolError) as local:
                await client.get(server.url + "/ok", headers={"X-Key": f"{secret}\r\nX-Injected: 1"})
            assert secret not in one_line(local.value) and "X-Key" in str(local.value)
            assert len(server.requests) == before  # nothing was sent
            await fine()

            # A header name or a method that is not a token (RFC 9110 §5.1, §9.1) would smuggle
            # a header of its own into the request: refused as h11 did, before anything is sent.
            before = len(server.requests)
            for headers, method in [
                ({"X-A\r\nX-Injected": "1"}, "GET"),
                ({"X A": "1"}, "GET"),
                ({"X:A": "1"}, "GET"),
                ({}, "GET / HTTP/1.1\r\nX-Injected: 1\r\nX-Pad:"),
            ]:
                with pytest.raises(httpx.LocalProtocolError) as local:
                    await client.request(method, server.url + "/ok", headers=headers)
                one_line(local.value)
            assert len(server.requests) == before
            await fine()

            with pytest.raises(httpx.ReadTimeout):
                await client.get(server.url + "/silent", timeout=httpx.Timeout(GUARD, read=0.2))
            await fine()

            with pytest.raises(httpx.UnsupportedProtocol):
                await client.get(f"ftp://127.0.0.1:{server.port}/")
            with pytest.raises(httpx.UnsupportedProtocol):
                await pool.handle_async_request(httpx.Request("GET", f"ftp://127.0.0.1:{server.port}/"))
            await fine()
            assert pool.connections == 1  # only /ok's kept connection
            await pool.aclose()
        await until(lambda: server.open == 0, "every connection closed")

    with Server(hostile) as server:
        run(main(server))


# ----------------------------------------------------------------------------- TLS
SSE = [b'data: {"choices":[{"delta":{"content":"t%d "}}]}\n\n' % i for i in range(5)] + [b"data: [DONE]\n\n"]


async def sse_answer(server: Server, req: Req, writer: asyncio.StreamWriter) -> bool:
    await send(writer, CHUNKED_HEAD)
    for event in SSE:
        await send(writer, chunk(event))
    await send(writer, b"0\r\n\r\n")
    return True


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_server(ca: trustme.CA) -> Server:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return Server(sse_answer, context)


def test_a_streamed_answer_over_tls_with_our_ca(ca: trustme.CA) -> None:
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)

    async def main(server: Server) -> None:
        pool = EnginePool(verify=trusted, keepalive_expiry=GUARD)
        async with httpx.AsyncClient(transport=pool) as client:
            for host in ("127.0.0.1", "localhost", "127.0.0.1"):
                async with client.stream("GET", f"https://{host}:{server.port}/v1/chat") as r:
                    assert r.status_code == 200
                    got = b"".join([d async for d in r.aiter_raw()])
                assert got == b"".join(SSE)
            assert server.accepted == 2  # one per host name: the second 127.0.0.1 reused its own
            await pool.aclose()

    with tls_server(ca) as server:
        run(main(server))


def test_an_untrusted_certificate_is_a_connect_error(ca: trustme.CA) -> None:
    async def main(server: Server) -> None:
        pool = EnginePool()  # the system's (certifi's) roots: our test CA is not among them
        async with httpx.AsyncClient(transport=pool) as client:
            with pytest.raises(httpx.ConnectError) as info:
                await client.get(server.url + "/v1/chat")
            assert "certificate" in one_line(info.value).lower()
            assert pool.in_flight == 0 and pool.connections == 0
        assert server.requests == []

    with tls_server(ca) as server:
        run(main(server))


# ----------------------------------------------------------------------------- the limiter
async def answer_when_let(server: Server, req: Req, writer: asyncio.StreamWriter) -> bool:
    if req.path == "/held":
        await send(writer, CHUNKED_HEAD + chunk(b"held"))
        if not await server.wait_gate("let go", req):
            return False  # the client left
        await send(writer, b"0\r\n\r\n")
        return True
    await send(writer, ok(req.path.encode()))
    return True


def test_a_waiter_handed_the_slot_as_it_is_cancelled_passes_it_on() -> None:
    # test_scale_pool cancels waiters still in the queue; this one is cancelled after the slot
    # was handed to it and before it ran (the race in _acquire's except).
    async def main(server: Server) -> None:
        pool = EnginePool(limit=1, keepalive_expiry=GUARD)
        async with httpx.AsyncClient(transport=pool) as client:
            held = await client.send(client.build_request("GET", server.url + "/held"), stream=True)
            waiter = asyncio.create_task(client.get(server.url + "/waiter"))
            await until(lambda: pool.waiting == 1, "the second request queued")
            await held.aclose()  # gives the slot to the waiter: its future is set ...
            assert pool.in_flight == 1 and pool.waiting == 0
            waiter.cancel()  # ... and it is cancelled before it could run
            with pytest.raises(asyncio.CancelledError):
                await waiter
            assert pool.in_flight == 0 and pool.waiting == 0  # the slot was passed on, not lost
            assert (await client.get(server.url + "/after")).content == b"/after"
            assert [q.path for q in server.requests] == ["/held", "/after"]
            await pool.aclose()

    with Server(answer_when_let) as server:
        run(main(server))


def test_waiters_get_the_slot_in_the_order_they_came() -> None:
    async def main(server: Server) -> None:
        pool = EnginePool(limit=1, keepalive_expiry=GUARD)
        async with httpx.AsyncClient(transport=pool) as client:
            held = await client.send(client.build_request("GET", server.url + "/held"), stream=True)
            tasks = []
            for i in range(6):
                tasks.append(asyncio.create_task(client.get(server.url + f"/q{i}")))
                await until(lambda: pool.waiting == i + 1, f"request {i} queued")  # noqa: B023
            server.release("let go")
            assert b"".join([d async for d in held.aiter_raw()]) == b"held"
            await held.aclose()
            done = await asyncio.gather(*tasks)
            assert [r.content for r in done] == [f"/q{i}".encode() for i in range(6)]
            assert [q.path for q in server.requests] == ["/held"] + [f"/q{i}" for i in range(6)]
            assert server.accepted == 1  # and each handed the kept connection on
            await pool.aclose()

    with Server(answer_when_let) as server:
        run(main(server))


# ----------------------------------------------------------------------------- aclose
def test_nothing_is_left_open_after_aclose() -> None:
    async def main(server: Server) -> None:
        pool = EnginePool(keepalive_expiry=GUARD)
        client = httpx.AsyncClient(transport=pool)
        busy = await client.send(client.build_request("GET", server.url + "/held"), stream=True)
        done = await asyncio.gather(*[client.get(server.url + f"/idle{i}") for i in range(3)])
        assert [r.status_code for r in done] == [200] * 3
        assert pool.in_flight == 1 and pool.idle == 3 and pool.connections == 4
        assert server.accepted == 4 and client_sockets(server.port) == 4
        await pool.aclose()
        assert pool.connections == 0 and pool.idle == 0
        await until(lambda: server.open == 0, "the server saw every connection close")
        assert client_sockets(server.port) == 0
        with pytest.raises(httpx.TransportError):  # the busy stream's body ends in an error
            async for _ in busy.aiter_raw():
                pass
        await busy.aclose()
        await client.aclose()

    with Server(answer_when_let) as server:
        run(main(server))


# ----------------------------------------------------------------------------- request shapes
def test_request_bodies_head_requests_and_a_silent_body_on_one_kept_connection() -> None:
    async def handler(server: Server, req: Req, writer: asyncio.StreamWriter) -> bool:
        if req.path == "/echo":
            await send(writer, ok(req.body))
        elif req.path == "/head":
            await send(writer, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")  # HEAD: no body
        elif req.path == "/goes-silent":
            await send(writer, CHUNKED_HEAD + chunk(b"partial"))
            await req.hangup()
            return False
        return True

    async def chunks() -> AsyncIterator[bytes]:
        for piece in (b'{"a": ', b"1}"):
            yield piece

    async def main(server: Server) -> None:
        pool = EnginePool(limit=1, keepalive_expiry=GUARD)
        async with httpx.AsyncClient(transport=pool) as client:
            r = await client.post(server.url + "/echo", json={"messages": ["hi"]})
            assert r.json() == {"messages": ["hi"]}
            r = await client.post(server.url + "/echo", content=chunks())  # streamed: sent whole
            assert r.content == b'{"a": 1}'
            assert b"content-length: 8" in server.requests[-1].head.lower()
            assert b"transfer-encoding" not in server.requests[-1].head.lower()
            r = await client.head(server.url + "/head")
            assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == "10"
            assert (await client.post(server.url + "/echo", content=b"after")).content == b"after"
            assert [q.conn for q in server.requests] == [1, 1, 1, 1]  # all on one connection

            got = b""
            with pytest.raises(httpx.ReadTimeout):
                async with client.stream(
                    "GET", server.url + "/goes-silent", timeout=httpx.Timeout(GUARD, read=0.2)
                ) as r:
                    async for data in r.aiter_raw():
                        got += data
            assert got == b"partial"  # what came is kept
            assert pool.in_flight == 0 and pool.connections == 0
            assert (await client.post(server.url + "/echo", content=b"x")).content == b"x"  # the slot is free
            await pool.aclose()

    with Server(handler) as server:
        run(main(server))


def test_bytes_on_an_idle_kept_connection_close_it() -> None:
    async def handler(server: Server, req: Req, writer: asyncio.StreamWriter) -> bool:
        await send(writer, ok(b"ok"))
        if req.conn == 1:
            if await server.wait_gate("poke", req):
                await send(writer, b"HTTP/1.1 200 OK\r\n")  # nothing was asked: a broken server
                await req.hangup()
            return False
        return True

    async def main(server: Server) -> None:
        pool = EnginePool(keepalive_expiry=GUARD)
        async with httpx.AsyncClient(transport=pool) as client:
            assert (await client.get(server.url + "/")).content == b"ok"
            assert pool.idle == 1
            server.release("poke")
            await until(lambda: pool.idle == 0 and server.open == 0, "the client dropped the connection")
            assert (await client.get(server.url + "/")).content == b"ok"
            assert [q.conn for q in server.requests] == [1, 2]
            await pool.aclose()

    with Server(handler) as server:
        run(main(server))
