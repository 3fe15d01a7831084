"""The engine: one daemon thread with its own asyncio loop and one pooled ``httpx.AsyncClient``.

Why a thread (kernel-and-widgets.md §9.1): the kernel's own loop stalls while other cells run,
which would freeze streams and falsify the timing; a private loop needs no nest-asyncio (which
drops kernel messages on ipykernel 7) and behaves the same on every ipykernel version.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx

from .engine_http import EngineHTTP
from .http_pool import EnginePool

__all__ = ["Engine", "get_engine"]

T = TypeVar("T")


class Engine:
    """Runs coroutines on a private loop; safe to call from any thread, including inside a running loop."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._http: httpx.AsyncClient | None = None
        self._pool: EnginePool | None = None
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        self._ensure_started()
        assert self._loop is not None
        return self._loop

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def in_engine_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def _ensure_started(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=run, name="ds-engine", daemon=True)
            thread.start()
            ready.wait()
            self._loop, self._thread = loop, thread

    @property
    def http(self) -> httpx.AsyncClient:
        """The shared pooled client; only to be used on the engine loop."""
        if self._http is None:
            # Timeouts are set per request (Client); connection reuse across requests is the point.
            # Redirects are never followed (each request also says so, for a user's own client):
            # the prompt, the history and the key must not go to another host (issue 14).
            # The pool is ours (http_pool.py): one connection per stream up to the account's cap,
            # over our own HTTP/1.1, the rest waiting in our own O(1) queue (issue 17).
            self._pool = EnginePool()
            self._http = EngineHTTP(self._pool)
        return self._http

    @property
    def pool(self) -> EnginePool:
        """The transport under ``http``: its ``in_flight``, ``waiting``, ``connections`` (tests, benchmarks)."""
        self.http  # noqa: B018 - made with the client
        assert self._pool is not None
        return self._pool

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the engine loop; the task is tracked until it ends."""

        async def tracked() -> T:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            try:
                return await coro
            finally:
                self._tasks.discard(task)

        return asyncio.run_coroutine_threadsafe(tracked(), self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the engine and wait for its result (not from the engine thread itself)."""
        if self.in_engine_thread():
            coro.close()
            raise RuntimeError("Engine.run() cannot be called from the engine thread")
        fut = self.submit(coro)
        try:
            return fut.result(timeout)
        except BaseException:
            fut.cancel()
            raise

    def call_soon(self, fn: Any, *args: Any) -> None:
        """Thread-safe ``call_soon`` on the engine loop."""
        self.loop.call_soon_threadsafe(fn, *args)

    @property
    def active_tasks(self) -> int:
        return len(self._tasks)

    def close(self, timeout: float = 5.0) -> None:
        """Cancel everything, close the HTTP pool and stop the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return

        async def shutdown() -> None:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=timeout)
            if self._http is not None:
                await self._http.aclose()
                self._http = self._pool = None

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout)
        except Exception:
            pass
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._loop = self._thread = None


_engine: Engine | None = None
_engine_lock = threading.Lock()


def get_engine() -> Engine:
    """The process-wide engine, started on first use."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = Engine()
            atexit.register(_engine.close)
        return _engine
