"""The offline DeepSeek-compatible HTTP server: asyncio streams and a small hand-written HTTP/1.1 layer.

The server runs its own event loop on a daemon thread, so synchronous code (tests, notebooks) can
start it, script it and read what it saw. Everything it records is guarded by one lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ._script import Script, apply_overrides, parse_directives
from ._wire import (
    ChunkMaker,
    canonical,
    default_answer,
    default_reasoning,
    dumps,
    estimate_tokens,
    message_tokens,
    new_tool_call_id,
    split_tokens,
    sse,
    usage_dict,
)

V4_MODELS = ("deepseek-flash", "deepseek-v4-pro", "deepseek-v4-flash", "deepseek-v4-flash-vision-exp")
LEGACY_MODELS = ("deepseek-chat", "deepseek-reasoner")

CHAT_PATHS = frozenset({"/chat/completions", "/v1/chat/completions", "/beta/chat/completions"})
MODELS_PATHS = frozenset({"/models", "/v1/models"})
BALANCE_PATHS = frozenset({"/user/balance", "/v1/user/balance"})

MAX_TOKENS_LIMIT = 393_216
LEGACY_MAX_TOKENS_LIMIT = 8192

REASONING_PASSBACK = "The `reasoning_content` in the thinking mode must be passed back to the API."
CONCURRENCY_MESSAGE = (
    "Your current concurrency is {current}, which exceeds your concurrency limit of {limit} based on your "
    "remaining balance. Please top up your balance to restore your concurrency."
)

# status -> (documented message, error type)
ERRORS: dict[int, tuple[str, str]] = {
    400: ("Invalid Format", "invalid_request_error"),
    401: ("Authentication Fails, Your api key: {key} is invalid", "authentication_error"),
    402: ("Insufficient Balance", "unknown_error"),
    404: ("Not Found", "invalid_request_error"),
    422: ("Invalid Parameters", "invalid_request_error"),
    429: (CONCURRENCY_MESSAGE, "rate_limit_error"),
    500: ("Server Error", "server_error"),
    502: ("Bad Gateway", "server_error"),
    503: ("Server Overloaded", "server_error"),
    504: ("Gateway Timeout", "server_error"),
}

HTML_PAGE = (
    "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
PLAIN_422 = (
    "Failed to deserialize the JSON body into the target type: missing field `messages` at line 4 column 1"
)

# faults that end the normal stream at event number `fault_after`
_STOPPING = frozenset({"drop", "stall", "stall_keepalive", "eof_no_done", "malformed_json", "inband_error"})
# faults that insert one odd event at position `fault_after` and go on
_INSERTING = frozenset({"big_event", "invalid_utf8"})

_KEEPALIVE = b": keep-alive\n\n"
_INVALID_MARK = "\u0000OFFLINE-INVALID-UTF8\u0000"


# ---------------------------------------------------------------- records


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


# ---------------------------------------------------------------- HTTP layer


class _BadHTTP(Exception):
    pass


@dataclass
class _Request:
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


class _Conn:
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

    async def read_request(self) -> _Request | None:
        while self.buf[:2] == b"\r\n":  # stray CRLF between requests (RFC 9112 §2.2)
            del self.buf[:2]
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self.buf) > 65536:
                raise _BadHTTP("request head too large")
            if not await self.fill():
                return None
            while self.buf[:2] == b"\r\n":
                del self.buf[:2]
        received = time.monotonic()
        head = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[: end + 4]
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadHTTP("malformed request line")
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise _BadHTTP("malformed header line")
            key = name.lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked()
        else:
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                raise _BadHTTP("bad Content-Length") from None
            if length < 0:
                raise _BadHTTP("bad Content-Length")
            body = await self._read_exact(length)
        if body is None:
            return None
        path = target.split("?", 1)[0]
        if path.startswith(("http://", "https://")):  # absolute form
            path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
        return _Request(method.upper(), target, path, version, headers, body, received)

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
                raise _BadHTTP("chunk line too long")
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
                raise _BadHTTP("bad chunk size") from None
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


def _head(status: int, headers: Iterable[tuple[str, str]]) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [f"HTTP/1.1 {status} {phrase}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Exchange:
    """One /chat/completions request being answered: the disconnect flag and the data-event count."""

    def __init__(self, index: int, conn: _Conn) -> None:
        self.index = index
        self.conn = conn
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


class _Reject(Exception):
    """A request the API would reject: status, message, error type, and whether the body is plain text."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", plain: bool = False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.plain = plain


@dataclass
class _ToolCall:
    id: str
    name: str
    arguments: str
    pieces: list[str]


@dataclass
class _Plan:
    """Everything that will be sent for one successful request, decided before the first byte."""

    model: str
    thinking: bool
    include_usage: bool
    reasoning: list[str]
    answer: list[str]
    tool_calls: list[_ToolCall]
    finish_reason: str
    usage: dict[str, Any]

    @property
    def token_count(self) -> int:
        return int(self.usage["completion_tokens"])


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, (int, float)):
        return f"number `{value}`"
    if isinstance(value, str):
        return f"string {json.dumps(value)}"
    if isinstance(value, list):
        return "sequence"
    return "map"


# ---------------------------------------------------------------- the server


class OfflineServer:
    """A local stand-in for the DeepSeek API on 127.0.0.1 (not a model). See the package docstring."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        legacy: bool = False,
        *,
        tokens_per_second: float | None = None,
        ttft: float = 0.0,
        verbose: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.api_key = api_key
        self.legacy = legacy
        #: Pacing and first-token delay of requests that have no script queued.
        self.default_tokens_per_second = tokens_per_second
        self.default_ttft = ttft
        self.verbose = verbose
        self._requested_port = port
        self._cond = threading.Condition()
        self._queue: deque[Script] = deque()
        self._requests: list[RecordedRequest] = []
        self._disconnects: list[Disconnect] = []
        self._disconnect_cursor = 0
        self._completed: list[int] = []
        self._active = 0
        self._max_active = 0
        self._connections = 0
        self._cache: deque[tuple[str, tuple[str, ...]]] = deque(maxlen=2000)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> OfflineServer:
        """Bind and serve on a daemon thread; returns self. Raises OSError if the port is taken."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._on_connection, self.host, self._requested_port)
                )
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
                errors.append(exc)
                ready.set()
                loop.close()
                return
            sock = self._server.sockets[0]
            self.port = int(sock.getsockname()[1])
            ready.set()
            try:
                loop.run_forever()
            finally:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name="ds_magic-offline-server", daemon=True)
        self._thread = thread
        thread.start()
        ready.wait()
        if errors:
            self._thread = None
            self._loop = None
            raise errors[0]
        return self

    def stop(self) -> None:
        """Close the listening socket and every connection, and end the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if not loop.is_closed():
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            with contextlib.suppress(Exception):
                fut.result(timeout=5)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        self._thread = None
        self._loop = None
        self._server = None
        with self._cond:
            self._cond.notify_all()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def __enter__(self) -> OfflineServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._thread is not None else "stopped"
        return f"<OfflineServer {self.url} {state} (offline stand-in, not a model)>"

    # ------------------------------------------------------------ public state

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:PORT`` (use it as DEEPSEEK_BASE_URL)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None

    def enqueue(self, *scripts: Script) -> None:
        """Queue scripts; each later /chat/completions request that passes validation takes the next one."""
        for script in scripts:
            if not isinstance(script, Script):
                raise TypeError(f"enqueue() takes Script objects, not {type(script).__name__}")
        with self._cond:
            self._queue.extend(scripts)

    @property
    def queued(self) -> int:
        """Scripts not consumed yet."""
        with self._cond:
            return len(self._queue)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._cond:
            return list(self._requests)

    @property
    def disconnects(self) -> list[Disconnect]:
        with self._cond:
            return list(self._disconnects)

    @property
    def completed(self) -> list[int]:
        """Indexes of the requests whose response ran to the end (``[DONE]`` written, or the whole JSON)."""
        with self._cond:
            return list(self._completed)

    @property
    def active(self) -> int:
        """/chat/completions requests in flight now."""
        with self._cond:
            return self._active

    @property
    def max_active(self) -> int:
        """The most /chat/completions requests in flight at once since start or reset()."""
        with self._cond:
            return self._max_active

    @property
    def connections(self) -> int:
        """TCP connections accepted so far (not cleared by reset())."""
        with self._cond:
            return self._connections

    def wait_for_disconnect(self, timeout: float = 5.0) -> Disconnect | None:
        """Block until a client disconnect not returned by an earlier call is recorded; None on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._disconnects) <= self._disconnect_cursor:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            found = self._disconnects[self._disconnect_cursor]
            self._disconnect_cursor += 1
            return found

    def reset(self) -> None:
        """Clear the script queue, the records, the prompt cache and the peak concurrency."""
        with self._cond:
            self._queue.clear()
            self._requests.clear()
            self._disconnects.clear()
            self._disconnect_cursor = 0
            self._completed.clear()
            self._max_active = self._active
            self._cache.clear()

    # ------------------------------------------------------------ connections

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        with self._cond:
            self._connections += 1
            cid = self._connections
        conn = _Conn(reader, writer, cid)
        try:
            while True:
                try:
                    req = await conn.read_request()
                except _BadHTTP as exc:
                    body = f"Bad Request: {exc}\n".encode()
                    conn.write(
                        _head(
                            400,
                            [
                                ("Content-Type", "text/plain"),
                                ("Content-Length", str(len(body))),
                                ("Connection", "close"),
                            ],
                        )
                        + body
                    )
                    await conn.drain()
                    return
                if req is None:
                    return
                keep = await self._dispatch(conn, req)
                if not keep or req.wants_close or conn.eof:
                    return
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            conn.close()
            if task is not None:
                self._tasks.discard(task)

    async def _dispatch(self, conn: _Conn, req: _Request) -> bool:
        if req.path.startswith("/_offline/"):
            return await self._control(conn, req)
        index = self._record(conn, req)
        status: int | str = "?"
        try:
            if req.path in CHAT_PATHS:
                if req.method != "POST":
                    status = 405
                    return await self._send_error(conn, 405, f"Method Not Allowed: use POST {req.path}")
                status = "chat"
                return await self._chat_entry(conn, req, index)
            if req.path in MODELS_PATHS or req.path in BALANCE_PATHS:
                if req.method != "GET":
                    status = 405
                    return await self._send_error(conn, 405, f"Method Not Allowed: use GET {req.path}")
                auth = self._auth_error(req)
                if auth is not None:
                    status = 401
                    return await self._send_error(conn, 401, auth, "authentication_error")
                status = 200
                return await self._send_json(
                    conn, 200, self._models() if req.path in MODELS_PATHS else self._balance()
                )
            status = 404
            return await self._send_error(
                conn,
                404,
                f"Not Found: {req.method} {req.path} (the offline server serves POST /chat/completions, "
                "GET /models and GET /user/balance)",
            )
        finally:
            if self.verbose and status != "chat":
                self._log(f"{req.method} {req.path} -> {status}")

    def _record(self, conn: _Conn, req: _Request) -> int:
        body: Any = None
        if req.body:
            try:
                body = json.loads(req.body)
            except (ValueError, UnicodeDecodeError):
                body = None
        with self._cond:
            index = len(self._requests)
            self._requests.append(
                RecordedRequest(
                    index, req.method, req.path, dict(req.headers), body, req.body, req.received, conn.id
                )
            )
        return index

    def _log(self, line: str) -> None:
        print(f"[offline] {line}", file=sys.stderr, flush=True)

    # ------------------------------------------------------------ responses

    async def _send(self, conn: _Conn, data: bytes, ex: _Exchange | None = None) -> None:
        if ex is not None:
            self._end(ex)  # the last bytes of this response: it is no longer in flight
        conn.write(data)
        await conn.drain()

    async def _send_json(
        self,
        conn: _Conn,
        status: int,
        obj: Any,
        headers: Iterable[tuple[str, str]] = (),
        ex: _Exchange | None = None,
    ) -> bool:
        body = dumps(obj).encode()
        hdrs = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers]
        await self._send(conn, _head(status, hdrs) + body, ex)
        return True

    async def _send_error(
        self,
        conn: _Conn,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        headers: Iterable[tuple[str, str]] = (),
        plain: bool = False,
        ex: _Exchange | None = None,
    ) -> bool:
        if plain:
            body = message.encode()
            hdrs = [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))),
                *headers,
            ]
            await self._send(conn, _head(status, hdrs) + body, ex)
            return True
        err = {"error": {"message": message, "type": type_, "param": None, "code": "invalid_request_error"}}
        return await self._send_json(conn, status, err, headers, ex)

    def _models(self) -> dict[str, Any]:
        ids = V4_MODELS[:2] + (LEGACY_MODELS if self.legacy else ())
        return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "deepseek"} for m in ids]}

    @staticmethod
    def _balance() -> dict[str, Any]:
        return {
            "is_available": True,
            "balance_infos": [
                {
                    "currency": "CNY",
                    "total_balance": "110.00",
                    "granted_balance": "10.00",
                    "topped_up_balance": "100.00",
                }
            ],
        }

    @staticmethod
    def _bearer_key(req: _Request) -> str:
        scheme, _, key = req.headers.get("authorization", "").partition(" ")
        return key.strip() if scheme.lower() == "bearer" else ""

    def _auth_error(self, req: _Request) -> str | None:
        key = self._bearer_key(req)
        if not key or (self.api_key is not None and key != self.api_key):
            return ERRORS[401][0].format(key="****" + key[-4:])
        return None

    # ------------------------------------------------------------ control endpoints

    async def _control(self, conn: _Conn, req: _Request) -> bool:
        route = (req.method, req.path.rstrip("/"))
        if route == ("POST", "/_offline/script"):
            try:
                data = json.loads(req.body or b"null")
                items = data if isinstance(data, list) else [data]
                scripts = [Script.from_json(item) for item in items]
            except ValueError as exc:
                return await self._send_error(conn, 400, f"bad script: {exc}")
            self.enqueue(*scripts)
            return await self._send_json(conn, 200, {"queued": self.queued})
        if route == ("GET", "/_offline/requests"):
            return await self._send_json(conn, 200, [r.to_json() for r in self.requests])
        if route == ("GET", "/_offline/disconnects"):
            return await self._send_json(conn, 200, [d.to_json() for d in self.disconnects])
        if route == ("GET", "/_offline/state"):
            with self._cond:
                state = {
                    "active": self._active,
                    "max_active": self._max_active,
                    "completed": list(self._completed),
                    "queued": len(self._queue),
                    "connections": self._connections,
                    "requests": len(self._requests),
                }
            return await self._send_json(conn, 200, state)
        if route == ("POST", "/_offline/reset"):
            self.reset()
            return await self._send_json(conn, 200, {"ok": True})
        return await self._send_error(
            conn,
            404,
            "Not Found: control endpoints are POST /_offline/script, GET /_offline/requests, "
            "GET /_offline/disconnects, GET /_offline/state, POST /_offline/reset",
        )

    # ------------------------------------------------------------ /chat/completions

    async def _chat_entry(self, conn: _Conn, req: _Request, index: int) -> bool:
        with self._cond:
            self._active += 1
            self._max_active = max(self._max_active, self._active)
        ex = _Exchange(index, conn)
        watcher = asyncio.create_task(self._watch(ex))
        try:
            return await self._chat(conn, req, ex)
        except (ConnectionError, OSError):
            self._record_disconnect(ex)
            return False
        finally:
            self._end(ex)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    def _end(self, ex: _Exchange) -> None:
        """The response is complete (or abandoned): no longer in flight; a client closing now cancels nothing."""
        ex.done = True
        if not ex.ended:
            ex.ended = True
            with self._cond:
                self._active -= 1

    async def _watch(self, ex: _Exchange) -> None:
        """Read the socket while the response is prepared and written, to see a client leave at once."""
        while not ex.done:
            if not await ex.conn.fill():
                if not ex.done:
                    self._record_disconnect(ex)
                return

    def _record_disconnect(self, ex: _Exchange) -> None:
        if ex.gone.is_set() or ex.done:
            ex.gone.set()
            return
        now = time.monotonic()
        ex.gone.set()
        with self._cond:
            self._disconnects.append(Disconnect(ex.index, now, ex.chunks))
            self._cond.notify_all()
        if self.verbose:
            self._log(f"request {ex.index}: client went away after {ex.chunks} data events")

    def _mark_completed(self, ex: _Exchange) -> None:
        with self._cond:
            self._completed.append(ex.index)

    async def _chat(self, conn: _Conn, req: _Request, ex: _Exchange) -> bool:
        auth = self._auth_error(req)
        if auth is not None:
            self._vlog(ex, 401)
            return await self._send_error(conn, 401, auth, "authentication_error", ex=ex)
        beta = req.path.startswith("/beta/")
        try:
            body = self._validate(req.body, beta)
            overrides, question = self._directives(body["messages"])
            with self._cond:
                script = self._queue.popleft() if self._queue else None
            if script is None:
                script = Script(tokens_per_second=self.default_tokens_per_second, ttft=self.default_ttft)
            try:
                script = apply_overrides(script, overrides)
            except (TypeError, ValueError) as exc:
                raise _Reject(400, f"offline directive: {exc}") from None
        except _Reject as rej:
            self._vlog(ex, rej.status)
            return await self._send_error(conn, rej.status, rej.message, rej.type, plain=rej.plain, ex=ex)

        extra = list(script.headers.items())
        if script.delay_headers and not await ex.pause(script.delay_headers):
            return False
        fault = script.fault
        self._vlog(ex, script.status, fault)
        if fault == "drop_before_headers":
            return False
        if fault == "html_error":
            page = HTML_PAGE.format(status=script.status, phrase=_phrase(script.status)).encode()
            hdrs = [("Content-Type", "text/html"), ("Content-Length", str(len(page))), *extra]
            await self._send(conn, _head(script.status, hdrs) + page, ex)
            return True
        if fault == "plain_text_error":
            status = 422 if script.status == 200 else script.status
            return await self._send_error(
                conn, status, script.error_message or PLAIN_422, headers=extra, plain=True, ex=ex
            )
        if script.status != 200:
            message, type_ = self._error_for(script, req)
            return await self._send_error(conn, script.status, message, type_, headers=extra, ex=ex)

        plan = self._plan(body, script, question, beta)
        if body.get("stream") is True and fault != "wrong_content_type":
            return await self._stream(conn, ex, plan, script)
        return await self._whole(conn, ex, plan, script)

    def _vlog(self, ex: _Exchange, status: int, fault: str | None = None) -> None:
        if self.verbose:
            self._log(f"request {ex.index}: chat -> {status}" + (f" (fault {fault})" if fault else ""))

    def _error_for(self, script: Script, req: _Request) -> tuple[str, str]:
        message, type_ = ERRORS.get(
            script.status,
            (_phrase(script.status), "server_error" if script.status >= 500 else "invalid_request_error"),
        )
        if script.status == 401:
            message = message.format(key="****" + self._bearer_key(req)[-4:])
        elif script.status == 429:
            current = max(self.active, 2)
            message = message.format(current=current, limit=current - 1)
        return script.error_message or message, type_

    # ------------------------------------------------------------ validation

    def _validate(self, raw: bytes, beta: bool) -> dict[str, Any]:
        legacy = self.legacy

        def deser(detail: str) -> _Reject:
            msg = f"Failed to deserialize the JSON body into the target type: {detail}"
            return _Reject(422, msg, plain=True) if legacy else _Reject(400, msg)

        try:
            body = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            detail = str(exc).split(": line")[0] if isinstance(exc, json.JSONDecodeError) else "invalid UTF-8"
            msg = f"Failed to parse the request body as JSON: {detail.lower()} at line 1 column 1"
            raise _Reject(400, msg, plain=legacy) from None
        if not isinstance(body, dict):
            raise deser(
                f"invalid type: {_kind(body)}, expected struct ChatCompletionRequest at line 1 column 1"
            )
        end = f"at line 1 column {len(raw)}"
        for name in ("messages", "model"):
            if name not in body:
                raise deser(f"missing field `{name}` {end}")
        messages = body["messages"]
        if not isinstance(messages, list):
            raise deser(f"messages: invalid type: {_kind(messages)}, expected a sequence {end}")
        roles = ("system", "user", "assistant", "tool")
        for i, msg in enumerate(messages):
            if not isinstance(msg, dict):
                raise deser(f"messages[{i}]: invalid type: {_kind(msg)}, expected a message object {end}")
            if "role" not in msg:
                raise deser(f"messages[{i}]: missing field `role` {end}")
            if msg["role"] not in roles:
                raise deser(
                    f"messages[{i}]: unknown variant `{msg['role']}`, expected one of `system`, `user`, `assistant`, `tool` {end}"
                )
            content = msg.get("content")
            if content is not None and not isinstance(content, (str, list)):
                raise deser(f"messages[{i}].content: invalid type: {_kind(content)}, expected a string {end}")
        model = body["model"]
        if not isinstance(model, str):
            raise deser(f"model: invalid type: {_kind(model)}, expected a string {end}")
        thinking = body.get("thinking")
        if thinking is not None:
            if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled"):
                value = thinking.get("type") if isinstance(thinking, dict) else thinking
                raise deser(
                    f"thinking.type: unknown variant `{value}`, expected `enabled` or `disabled` {end}"
                )
        stop = body.get("stop")
        if stop is not None and not (
            isinstance(stop, str)
            or (isinstance(stop, list) and len(stop) <= 16 and all(isinstance(s, str) for s in stop))
        ):
            raise deser(f"stop: invalid type: {_kind(stop)}, expected a string or up to 16 strings {end}")

        if not messages:
            raise _Reject(400, "Invalid Format: `messages` must not be empty")
        allowed = V4_MODELS + (LEGACY_MODELS if legacy else ())
        if model not in allowed:
            raise _Reject(400, "Model Not Exist")
        max_tokens = body.get("max_tokens")
        limit = LEGACY_MAX_TOKENS_LIMIT if model in LEGACY_MODELS else MAX_TOKENS_LIMIT
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= limit
        ):
            raise _Reject(400, f"Invalid max_tokens value, the valid range of max_tokens is [1, {limit}]")

        for i, msg in enumerate(messages):
            if msg.get("prefix") is True:
                if not beta:
                    raise _Reject(
                        400,
                        "Invalid Format: `prefix` (chat prefix completion) is only supported on the beta "
                        "endpoint; use the base URL https://api.deepseek.com/beta",
                    )
                if i != len(messages) - 1 or msg["role"] != "assistant":
                    raise _Reject(
                        400,
                        "Invalid Format: only the last message may be an assistant message with `prefix: true`",
                    )
        thinking_on = self._thinking_on(model, body)
        if legacy:  # R1-era rule: reasoning is never sent back as input
            for i, msg in enumerate(messages):
                if "reasoning_content" in msg and not msg.get("prefix"):
                    raise _Reject(
                        400,
                        f"Invalid Format: messages[{i}] has a `reasoning_content` field; remove it from the input "
                        "messages (the model's reasoning is not sent back as context)",
                    )
        if model == "deepseek-reasoner":
            chat = [m for m in messages if m["role"] != "system"]
            if chat and chat[0]["role"] != "user":
                raise _Reject(
                    400,
                    "The first message (except the system message) of deepseek-reasoner must be a user message, "
                    "but an assistant message detected.",
                )
            for a, b in zip(chat, chat[1:], strict=False):
                if a["role"] == b["role"] and a["role"] in ("user", "assistant"):
                    raise _Reject(
                        400,
                        "deepseek-reasoner does not support successive user or assistant messages. You should "
                        "interleave the user/assistant messages in the message sequence.",
                    )
        if body.get("tools") and thinking_on:
            for msg in messages:
                if msg["role"] == "assistant" and msg.get("tool_calls") and "reasoning_content" not in msg:
                    raise _Reject(400, REASONING_PASSBACK)
        return body

    @staticmethod
    def _thinking_on(model: str, body: dict[str, Any]) -> bool:
        if model == "deepseek-reasoner":
            return True
        if model == "deepseek-chat":
            return False
        thinking = body.get("thinking")
        return not (isinstance(thinking, dict) and thinking.get("type") == "disabled")

    @staticmethod
    def _directives(messages: list[Any]) -> tuple[dict[str, Any], str]:
        """Directives of the last user message, and its text without them."""
        for msg in reversed(messages):
            if msg.get("role") == "user":
                content = msg.get("content")
                if isinstance(content, list):
                    content = "".join(
                        p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
                    )
                try:
                    return parse_directives(content if isinstance(content, str) else "")
                except ValueError as exc:
                    raise _Reject(400, str(exc)) from None
        return {}, ""

    # ------------------------------------------------------------ planning

    def _plan(self, body: dict[str, Any], script: Script, question: str, beta: bool) -> _Plan:
        model: str = body["model"]
        messages: list[dict[str, Any]] = body["messages"]
        thinking = self._thinking_on(model, body)
        opts = body.get("stream_options")
        include_usage = bool(isinstance(opts, dict) and opts.get("include_usage"))

        reasoning = ""
        if thinking:
            reasoning = script.reasoning if script.reasoning is not None else default_reasoning(question)
        answer = script.text if script.text is not None else default_answer(question, script.answer_tokens)

        last = messages[-1]
        if beta and last.get("prefix") is True and last.get("role") == "assistant":
            prefix = last.get("content")
            if isinstance(prefix, str) and prefix and answer.startswith(prefix):
                answer = answer[len(prefix) :]
            rprefix = last.get("reasoning_content")
            if thinking and isinstance(rprefix, str) and rprefix and reasoning.startswith(rprefix):
                reasoning = reasoning[len(rprefix) :]

        finish = script.finish_reason
        if script.tool_calls and finish == "stop":
            finish = "tool_calls"
        stop = body.get("stop")
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        cuts = [answer.find(s) for s in stops if s and s in answer]
        if cuts:
            answer = answer[: min(cuts)]
            finish = "stop"

        r_pieces = split_tokens(reasoning)
        a_pieces = split_tokens(answer)
        calls: list[_ToolCall] = []
        for i, call in enumerate(script.tool_calls or []):
            name = str(call.get("name", "tool"))
            args = call.get("arguments", "{}")
            args_text = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
            calls.append(_ToolCall(new_tool_call_id(i), name, args_text, split_tokens(args_text)))
        tool_tokens = sum(len(c.pieces) + len(split_tokens(c.name)) for c in calls)

        budget = body.get("max_tokens")
        if isinstance(budget, int):
            if len(r_pieces) >= budget:
                r_pieces, a_pieces, calls, tool_tokens, finish = r_pieces[:budget], [], [], 0, "length"
            elif len(r_pieces) + len(a_pieces) > budget:
                a_pieces, calls, tool_tokens, finish = a_pieces[: budget - len(r_pieces)], [], 0, "length"
            elif len(r_pieces) + len(a_pieces) + tool_tokens > budget:
                calls, tool_tokens, finish = [], 0, "length"

        counts = [message_tokens(m) for m in messages]
        prompt = sum(counts)
        if body.get("tools"):
            prompt += estimate_tokens(json.dumps(body["tools"], ensure_ascii=False))
        keys = tuple(canonical(m) for m in messages)
        hit = min(self._cache_hit(model, keys, counts), prompt)
        sent_answer = "".join(a_pieces)
        with self._cond:
            self._cache.append((model, keys))
            self._cache.append((model, (*keys, canonical({"role": "assistant", "content": sent_answer}))))
        completion = len(r_pieces) + len(a_pieces) + tool_tokens
        usage = usage_dict(prompt, hit, completion, len(r_pieces), thinking)
        return _Plan(model, thinking, include_usage, r_pieces, a_pieces, calls, finish, usage)

    def _cache_hit(self, model: str, keys: tuple[str, ...], counts: list[int]) -> int:
        best = 0
        with self._cond:
            earlier = list(self._cache)
        for m, seq in earlier:
            if m != model:
                continue
            n = 0
            for a, b in zip(seq, keys, strict=False):
                if a != b:
                    break
                n += 1
            best = max(best, n)
        return sum(counts[:best]) // 64 * 64

    # ------------------------------------------------------------ streaming

    def _events(self, plan: _Plan, script: Script, maker: ChunkMaker) -> list[tuple[bytes, bool]]:
        """The data events of a normal stream (without [DONE]); the flag marks paced token events."""
        events: list[tuple[bytes, bool]] = []
        if plan.thinking:
            events.append(
                (sse(maker.chunk({"role": "assistant", "content": None, "reasoning_content": ""})), False)
            )
        else:
            events.append((sse(maker.chunk({"role": "assistant", "content": ""})), False))
        for piece in plan.reasoning:
            events.append((sse(maker.chunk({"content": None, "reasoning_content": piece})), True))
        answer = list(plan.answer)
        last = answer.pop() if script.finish_with_text and answer and not plan.tool_calls else ""
        for piece in answer:
            delta = {"content": piece, "reasoning_content": None} if plan.thinking else {"content": piece}
            events.append((sse(maker.chunk(delta)), True))
        for i, call in enumerate(plan.tool_calls):
            first = {
                "index": i,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            events.append((sse(maker.chunk({"tool_calls": [first]})), True))
            for frag in call.pieces:
                events.append(
                    (sse(maker.chunk({"tool_calls": [{"index": i, "function": {"arguments": frag}}]})), True)
                )
        final = {"content": last, "reasoning_content": None} if plan.thinking else {"content": last}
        if script.usage_style == "openai":
            events.append((sse(maker.chunk(final, plan.finish_reason)), bool(last)))
            events.append((sse(maker.usage_chunk(plan.usage)), False))
        else:
            events.append((sse(maker.chunk(final, plan.finish_reason, plan.usage)), bool(last)))
        return events

    def _odd_event(self, plan: _Plan, script: Script, maker: ChunkMaker) -> bytes:
        if script.fault == "big_event":
            big = ("offline big event " * (script.fault_size // 18 + 1))[: script.fault_size]
            delta = {"content": big, "reasoning_content": None} if plan.thinking else {"content": big}
            return sse(maker.chunk(delta))
        delta = (
            {"content": _INVALID_MARK, "reasoning_content": None}
            if plan.thinking
            else {"content": _INVALID_MARK}
        )
        raw = sse(maker.chunk(delta))
        return raw.replace(dumps(_INVALID_MARK)[1:-1].encode(), b"bad \xff\xfe bytes")

    async def _stream(self, conn: _Conn, ex: _Exchange, plan: _Plan, script: Script) -> bool:
        hdrs = [
            ("Content-Type", "text/event-stream; charset=utf-8"),
            ("Cache-Control", "no-cache"),
            ("Transfer-Encoding", "chunked"),
            *script.headers.items(),
        ]
        out = _ChunkedOut(self, conn, ex, split=script.fault == "split_utf8")
        if not await out.raw(_head(200, hdrs)):
            return False
        if not await self._first_wait(ex, out, script, _KEEPALIVE):
            return False
        maker = ChunkMaker(plan.model, plan.include_usage)
        events = self._events(plan, script, maker)
        fault = script.fault
        tps = script.tokens_per_second
        t0: float | None = None
        k = 0
        for i, (payload, paced) in enumerate(events):
            if fault in _STOPPING and i == script.fault_after:
                return await self._stream_fault(out, ex, script)
            if (
                fault in _INSERTING
                and i == script.fault_after
                and not await out.event(self._odd_event(plan, script, maker))
            ):
                return False
            if paced and tps:
                if t0 is None:
                    t0 = time.monotonic()
                elif not await ex.pause_until(t0 + k / tps):
                    return False
                k += 1
            if not await out.event(payload):
                return False
        if fault in _STOPPING:
            return await self._stream_fault(out, ex, script)
        if fault in _INSERTING and script.fault_after >= len(events):
            if not await out.event(self._odd_event(plan, script, maker)):
                return False
        if fault == "keepalive_after_answer":
            return await self._keepalives_forever(out, ex, script)
        if not await out.finish(b"data: [DONE]\n\n", completed=True):
            return False
        return True

    async def _first_wait(self, ex: _Exchange, out: _ChunkedOut, script: Script, keepalive: bytes) -> bool:
        """The ttft wait, with ``script.keepalives`` keep-alives spread over it (the first at once)."""
        start = time.monotonic()
        n = script.keepalives
        for k in range(n):
            if not await ex.pause_until(start + script.ttft * k / n):
                return False
            if not await out.raw(keepalive, chunk=True):
                return False
        return await ex.pause_until(start + script.ttft)

    async def _keepalives_forever(self, out: _ChunkedOut, ex: _Exchange, script: Script) -> bool:
        while await ex.pause(script.keepalive_interval):
            if not await out.raw(_KEEPALIVE, chunk=True):
                return False
        return False

    async def _stream_fault(self, out: _ChunkedOut, ex: _Exchange, script: Script) -> bool:
        fault = script.fault
        if fault == "drop":
            return False
        if fault == "stall":
            await ex.gone.wait()
            return False
        if fault == "stall_keepalive":
            return await self._keepalives_forever(out, ex, script)
        if fault == "malformed_json":
            if not await out.event(b'data: {"id": broken\n\n'):
                return False
        elif fault == "inband_error":
            err = {
                "error": {
                    "message": script.error_message
                    or "Server Error: the inference was interrupted (offline in-band error)",
                    "type": "server_error",
                    "param": None,
                    "code": "server_error",
                }
            }
            if not await out.event(sse(err)):
                return False
        return await out.finish(b"")  # eof_no_done and the two above: a clean end of the body, no [DONE]

    # ------------------------------------------------------------ non-streaming

    def _completion(self, plan: _Plan) -> dict[str, Any]:
        maker = ChunkMaker(plan.model, False)
        message: dict[str, Any] = {"role": "assistant", "content": "".join(plan.answer)}
        if plan.thinking:
            message["reasoning_content"] = "".join(plan.reasoning)
        if plan.tool_calls:
            message["tool_calls"] = [
                {
                    "index": i,
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for i, c in enumerate(plan.tool_calls)
            ]
        return {
            "id": maker.id,
            "object": "chat.completion",
            "created": maker.created,
            "model": plan.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": plan.finish_reason}
            ],
            "usage": plan.usage,
            "system_fingerprint": maker.fingerprint,
        }

    async def _whole(self, conn: _Conn, ex: _Exchange, plan: _Plan, script: Script) -> bool:
        """A non-streaming answer (also the ``wrong_content_type`` fault of a streaming request)."""
        fault = script.fault
        data = dumps(self._completion(plan)).encode()
        if fault == "malformed_json":
            data = b'{"id": broken'
        tps = script.tokens_per_second
        gen = (max(plan.token_count - 1, 0) / tps) if tps else 0.0
        base = [("Content-Type", "application/json"), *script.headers.items()]
        if script.keepalives > 0 or fault in ("stall", "stall_keepalive"):
            out = _ChunkedOut(self, conn, ex, split=fault == "split_utf8")
            if not await out.raw(_head(200, [*base, ("Transfer-Encoding", "chunked")])):
                return False
            if not await self._first_wait(ex, out, script, b"\n"):
                return False
            if fault == "stall":
                await ex.gone.wait()
                return False
            if fault == "stall_keepalive":
                while await ex.pause(script.keepalive_interval):
                    if not await out.raw(b"\n", chunk=True):
                        return False
                return False
            if not await ex.pause(gen):
                return False
            if fault == "drop":
                await out.raw(data[: len(data) // 2], chunk=True)
                return False
            if not await out.finish(data, completed=True):
                return False
            return True
        if fault == "stall":
            await ex.gone.wait()
            return False
        if not await ex.pause(script.ttft + gen):
            return False
        head = _head(200, [*base, ("Content-Length", str(len(data)))])
        if fault == "drop":
            await self._send(conn, head + data[: len(data) // 2])
            return False
        self._mark_completed(ex)
        await self._send(conn, head + data, ex)
        return True


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class _ChunkedOut:
    """Writes a chunked body, noticing a client that went away (on a failed write or via the watcher)."""

    def __init__(self, server: OfflineServer, conn: _Conn, ex: _Exchange, split: bool) -> None:
        self.server = server
        self.conn = conn
        self.ex = ex
        self.split = split

    async def _flush(self) -> bool:
        try:
            await self.conn.drain()
            await asyncio.sleep(0)  # let the watcher run between events
        except (ConnectionError, OSError):
            self.server._record_disconnect(self.ex)
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
                    self.server._record_disconnect(self.ex)
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
            self.server._mark_completed(self.ex)
        self.server._end(self.ex)  # the last bytes: a client closing now has not cancelled anything
        self.conn.write(tail)
        try:
            await self.conn.drain()
        except (ConnectionError, OSError):
            return False
        return True
