"""``OfflineServer``: the offline DeepSeek stand-in's lifecycle, records and routes.

The server runs its own event loop on a daemon thread (``LoopThread``), so synchronous code (tests, notebooks) can
start it, script it and read what it saw. Everything it records is guarded by one lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
import time
from collections import deque
from typing import Any

from ..dialect import PROBE_PATH, remember
from .answers import fail, stream, whole
from .fim import FIM_PATH, answer_fim, check_fim
from .framing import Conn, Exchange, Hooks, Request, send_error, send_json, serve
from .loop import LoopThread
from .plans import PromptCache, directives, make_plan
from .records import Disconnect, RecordedRequest
from .script import Script, apply_overrides
from .validate import Reject, auth_error, check_openai, models, validate

CHAT_PATHS = frozenset({"/chat/completions", "/v1/chat/completions", "/beta/chat/completions"})
MODELS_PATHS = frozenset({"/models", "/v1/models"})
BALANCE_PATHS = frozenset({"/user/balance", "/v1/user/balance"})

# the GET /user/balance answer
BALANCE: dict[str, Any] = {
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
        dialect: str = "deepseek",
    ) -> None:
        if dialect not in ("deepseek", "openai"):
            raise ValueError(f"dialect must be 'deepseek' or 'openai', got {dialect!r}")
        #: ``openai``: act as a plain OpenAI-compatible server (no /beta, DeepSeek-only fields → 422).
        self.dialect = dialect
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
        self._cache = PromptCache(self._cond)
        self._hooks = Hooks(self._on_ended, self._on_lost, self._on_completed)
        self._runner = LoopThread(self._on_connection, "ds_magic-offline-server")

    # ------------------------------------------------------------ lifecycle

    def start(self) -> OfflineServer:
        """Bind and serve on a daemon thread; returns self. Raises OSError if the port is taken."""
        if not self._runner.running:
            self.port = self._runner.start(self.host, self._requested_port)
            remember(self.url, self.dialect)  # a client in this process knows it without asking
        return self

    def stop(self) -> None:
        """Close the listening socket and every connection, and end the thread."""
        if not self._runner.running:
            return
        self._runner.stop()
        with self._cond:
            self._cond.notify_all()

    def __enter__(self) -> OfflineServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<OfflineServer {self.url} {state} (offline stand-in, not a model)>"

    # ------------------------------------------------------------ public state

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:PORT`` (use it as DEEPSEEK_BASE_URL)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._runner.running

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
        with self._cond:
            self._connections += 1
            cid = self._connections
        await serve(Conn(reader, writer, cid), self._dispatch)

    async def _dispatch(self, conn: Conn, req: Request) -> bool:
        if req.path.startswith("/_offline/"):
            return await self._control(conn, req)
        index = self._record(conn, req)
        status: int | str = "?"
        try:
            if req.path in CHAT_PATHS:
                if req.method != "POST":
                    status = 405
                    return await send_error(conn, 405, f"Method Not Allowed: use POST {req.path}")
                status = "chat"
                return await self._chat_entry(conn, req, index)
            if req.path == FIM_PATH and req.method == "POST" and self.dialect == "deepseek":
                status = await self._fim(conn, req)
                return True
            balance = req.path in BALANCE_PATHS and self.dialect == "deepseek"  # DeepSeek's own
            if req.path in MODELS_PATHS or balance:
                if req.method != "GET":
                    status = 405
                    return await send_error(conn, 405, f"Method Not Allowed: use GET {req.path}")
                auth = auth_error(req, self.api_key)
                if auth is not None:
                    status = 401
                    return await send_error(conn, 401, auth, "authentication_error")
                status = 200
                return await send_json(
                    conn, 200, models(self.legacy) if req.path in MODELS_PATHS else BALANCE
                )
            status = 404
            return await send_error(
                conn,
                404,
                f"Not Found: {req.method} {req.path} (the offline server serves POST /chat/completions, "
                "GET /models and GET /user/balance)",
            )
        finally:
            if self.verbose and status != "chat":
                self._log(f"{req.method} {req.path} -> {status}")

    async def _fim(self, conn: Conn, req: Request) -> int:
        """FIM completion (fim.py): the status it answered."""
        auth = auth_error(req, self.api_key)
        if auth is not None:
            await send_error(conn, 401, auth, "authentication_error")
            return 401
        try:
            body = check_fim(req.body, self.legacy)
        except Reject as rej:
            await send_error(conn, rej.status, rej.message, rej.type)
            return rej.status
        await answer_fim(conn, body)
        return 200

    def _record(self, conn: Conn, req: Request) -> int:
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

    # ------------------------------------------------------------ control endpoints

    async def _control(self, conn: Conn, req: Request) -> bool:
        route = (req.method, req.path.rstrip("/"))
        if route == ("GET", PROBE_PATH) and self.dialect == "deepseek":  # who we are (dialect.py)
            return await send_json(conn, 200, {"dialect": "deepseek"}, [("X-DS-Magic-Dialect", "deepseek")])
        if route == ("POST", "/_offline/script"):
            try:
                data = json.loads(req.body or b"null")
                items = data if isinstance(data, list) else [data]
                scripts = [Script.from_json(item) for item in items]
            except ValueError as exc:
                return await send_error(conn, 400, f"bad script: {exc}")
            self.enqueue(*scripts)
            return await send_json(conn, 200, {"queued": self.queued})
        if route == ("GET", "/_offline/requests"):
            return await send_json(conn, 200, [r.to_json() for r in self.requests])
        if route == ("GET", "/_offline/disconnects"):
            return await send_json(conn, 200, [d.to_json() for d in self.disconnects])
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
            return await send_json(conn, 200, state)
        if route == ("POST", "/_offline/reset"):
            self.reset()
            return await send_json(conn, 200, {"ok": True})
        return await send_error(
            conn,
            404,
            "Not Found: control endpoints are POST /_offline/script, GET /_offline/requests, "
            "GET /_offline/disconnects, GET /_offline/state, POST /_offline/reset",
        )

    # ------------------------------------------------------------ /chat/completions

    async def _chat_entry(self, conn: Conn, req: Request, index: int) -> bool:
        with self._cond:
            self._active += 1
            self._max_active = max(self._max_active, self._active)
        ex = Exchange(index, conn, self._hooks)
        watcher = asyncio.create_task(ex.watch())
        try:
            return await self._chat(conn, req, ex)
        except (ConnectionError, OSError):
            ex.lost()
            return False
        finally:
            ex.end()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    # The Exchange's hooks: the books of the response it follows.

    def _on_ended(self, ex: Exchange) -> None:
        with self._cond:
            self._active -= 1

    def _on_lost(self, ex: Exchange, at: float) -> None:
        with self._cond:
            self._disconnects.append(Disconnect(ex.index, at, ex.chunks))
            self._cond.notify_all()
        if self.verbose:
            self._log(f"request {ex.index}: client went away after {ex.chunks} data events")

    def _on_completed(self, ex: Exchange) -> None:
        with self._cond:
            self._completed.append(ex.index)

    async def _chat(self, conn: Conn, req: Request, ex: Exchange) -> bool:
        auth = auth_error(req, self.api_key)
        if auth is not None:
            self._vlog(ex, 401)
            return await send_error(conn, 401, auth, "authentication_error", ex=ex)
        beta = req.path.startswith("/beta/")
        if self.dialect == "openai" and beta:
            return await send_json(conn, 404, {"detail": "Not Found"}, ex=ex)
        try:
            body = validate(req.body, beta, self.legacy, deepseek=self.dialect != "openai")
            if self.dialect == "openai":
                check_openai(body)
            overrides, question = directives(body["messages"])
            with self._cond:
                script = self._queue.popleft() if self._queue else None
            if script is None:
                script = Script(tokens_per_second=self.default_tokens_per_second, ttft=self.default_ttft)
            try:
                script = apply_overrides(script, overrides)
            except (TypeError, ValueError) as exc:
                raise Reject(400, f"offline directive: {exc}") from None
        except Reject as rej:
            self._vlog(ex, rej.status)
            if self.dialect == "openai" and rej.status == 422:  # FastAPI's shape, as transformers serve
                return await send_json(conn, 422, {"detail": rej.message}, ex=ex)
            return await send_error(conn, rej.status, rej.message, rej.type, plain=rej.plain, ex=ex)

        if script.delay_headers and not await ex.pause(script.delay_headers):
            return False
        fault = script.fault
        self._vlog(ex, script.status, fault)
        if fault == "drop_before_headers":
            return False
        if fault in ("html_error", "plain_text_error") or script.status != 200:
            return await fail(conn, ex, req, script, self.active)
        plan = make_plan(body, script, question, beta, self._cache, self.dialect == "openai")
        if body.get("stream") is True and fault != "wrong_content_type":
            return await stream(conn, ex, plan, script)
        return await whole(conn, ex, plan, script)

    def _vlog(self, ex: Exchange, status: int, fault: str | None = None) -> None:
        if self.verbose:
            self._log(f"request {ex.index}: chat -> {status}" + (f" (fault {fault})" if fault else ""))
