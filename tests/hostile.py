"""A tiny HTTP/1.1 server for the shapes the offline server cannot send: whatever bytes a test wants.

The offline server (ds_magic.testing) speaks DeepSeek's wire format and its documented faults. A
hostile server or proxy sends anything: chunks of the wrong shape, an endless line, a redirect, an
echo of the Authorization header. ``RawServer(reply)`` runs on its own loop in a thread on
127.0.0.1; for each request it records the request, then writes the byte pieces that
``reply(request)`` yields and closes the connection (the body is close-delimited, so no
Content-Length is needed). A reply that never ends is ended by the client hanging up, which the
server records (``disconnected``) along with the bytes it managed to write (``sent``).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Reply = Callable[["RawRequest"], AsyncIterator[bytes]]


@dataclass
class RawRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RawServer:
    reply: Reply
    requests: list[RawRequest] = field(default_factory=list)
    sent: int = 0
    disconnected: threading.Event = field(default_factory=threading.Event)
    active: int = 0  # connections being answered now (0 once every socket is closed)

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RawServer:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self.port = started.result(5)
        return self

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in others:  # replies still waiting for a client that never hung up
                t.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self) -> RawServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.active += 1
        try:
            await self._answer(reader, writer)
        except asyncio.CancelledError:
            writer.close()  # stop() ends a reply still waiting: quietly (asyncio.streams would log it)
        finally:
            self.active -= 1

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.close()
            return
        req = RawRequest(method, path, headers, body)
        self.requests.append(req)

        async def send() -> None:
            async for piece in self.reply(req):
                writer.write(piece)
                await writer.drain()
                self.sent += len(piece)

        sending = asyncio.ensure_future(send())
        hangup = asyncio.ensure_future(reader.read(1))  # b"" once the client closes its side
        try:
            await asyncio.wait({sending, hangup}, return_when=asyncio.FIRST_COMPLETED)
            if not sending.done():
                self.disconnected.set()  # the client left while we still had things to say
        except ConnectionError:
            self.disconnected.set()
        finally:
            for t in (sending, hangup):
                t.cancel()
            await asyncio.gather(sending, hangup, return_exceptions=True)
            if (
                sending.done()
                and not sending.cancelled()
                and isinstance(sending.exception(), ConnectionError)
            ):
                self.disconnected.set()
            writer.close()


HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
    b"Cache-Control: no-cache\r\nConnection: close\r\n\r\n"
)


def chunk(delta: Any = None, *, finish: Any = None, usage: Any = None, **top: Any) -> dict[str, Any]:
    """A chat.completion.chunk with these values in their places (any JSON value at all)."""
    obj: dict[str, Any] = {
        "id": "x",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "deepseek-flash",
        "choices": [{"index": 0, "delta": delta if delta is not None else {}, "finish_reason": finish}],
    }
    if usage is not None:
        obj["usage"] = usage
    obj.update(top)
    return obj


def sse(objs: Iterable[Any], *, done: bool = True) -> bytes:
    """The event stream of these chunks (dicts are JSON-encoded, NaN and Infinity allowed; bytes and
    strings go in as they are), then ``[DONE]``."""
    out = []
    for o in objs:
        data = o if isinstance(o, (bytes, str)) else json.dumps(o)
        out.append(b"data: " + (data.encode() if isinstance(data, str) else data) + b"\n\n")
    if done:
        out.append(b"data: [DONE]\n\n")
    return b"".join(out)


class Queue:
    """A reply per request, in order: ``put(body, stall=...)`` queues the event stream (after HEAD)
    of the next request."""

    def __init__(self) -> None:
        self.bodies: deque[tuple[bytes, bool]] = deque()
        self.lock = threading.Lock()

    def put(self, body: bytes, *, stall: bool = False) -> None:
        with self.lock:
            self.bodies.append((body, stall))

    async def __call__(self, req: RawRequest) -> AsyncIterator[bytes]:
        with self.lock:
            body, stall = self.bodies.popleft()
        yield HEAD + body
        if stall:
            await asyncio.get_running_loop().create_future()  # silent until the client hangs up


def stream_of(*pieces: bytes, stall: bool = False) -> Reply:
    """A reply that sends the head and ``pieces``, then (with ``stall``) keeps the connection open
    and silent until the client hangs up."""

    async def reply(req: RawRequest) -> AsyncIterator[bytes]:
        yield HEAD
        for p in pieces:
            yield p
        if stall:
            await asyncio.get_running_loop().create_future()  # never set: cancelled at the hang-up

    return reply


GOOD = chunk({"role": "assistant", "content": "kept "})


async def endless_line(req: RawRequest) -> AsyncIterator[bytes]:
    """``kept ``, then a ``data:`` line that never ends."""
    yield HEAD
    yield sse([GOOD], done=False)
    yield b'data: {"choices":[{"delta":{"content":"'
    while True:
        yield b"a" * 65536


def answer(text: str) -> bytes:
    """A whole, well-formed answer: role chunk, ``text``, finish chunk with usage."""
    return sse(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": text}),
            chunk({}, finish="stop", usage={"prompt_tokens": 3, "completion_tokens": 2}),
        ]
    )


def redirect(status: int, location: str) -> Reply:
    """A bare redirect to ``location``."""

    async def reply(req: RawRequest) -> AsyncIterator[bytes]:
        reason = {302: "Found", 307: "Temporary Redirect"}[status]
        yield (
            f"HTTP/1.1 {status} {reason}\r\nLocation: {location}\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n"
        ).encode()

    return reply


def echo_key(status: int) -> Reply:
    """An error answer that echoes the Authorization header, with and without "Bearer", in the
    message, in nested values and as an object key (a proxy or server that quotes the request)."""

    async def reply(req: RawRequest) -> AsyncIterator[bytes]:
        auth = req.headers.get("authorization", "")
        bare = auth.removeprefix("Bearer ")  # a proxy that quotes the key alone, no "Bearer"
        body = json.dumps(
            {
                "error": {"message": f"key {bare} rejected", "type": "auth"},
                "echo": {"headers": [auth, {"authorization": bare}], bare: 1},
            }
        ).encode()
        yield (
            f"HTTP/1.1 {status} Error\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode() + body

    return reply
