"""``LoopThread``: an asyncio TCP server on its own event loop in a daemon thread.

Synchronous code (tests, notebooks) starts and stops it; stopping closes the listening socket and
cancels every connection task, so that no handler outlives the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Any

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class LoopThread:
    """Serves *handler* on one connection task per client, on a daemon thread named *name*."""

    def __init__(self, handler: Handler, name: str) -> None:
        self._handler = handler
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, host: str, port: int) -> int:
        """Bind and serve; returns the port bound. Raises OSError if the port is taken."""
        ready = threading.Event()
        errors: list[BaseException] = []
        bound: list[int] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                # A listen backlog for the account's whole cap (2,500 streams opened at once): asyncio's
                # default of 100 drops the SYNs beyond it, and a client then waits out TCP's SYN
                # retransmits (1 s, 3 s, 7 s...) into its connect timeout on a loaded machine.
                server = asyncio.start_server(self._serve, host, port, backlog=4096)
                self._server = loop.run_until_complete(server)
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
                errors.append(exc)
                ready.set()
                loop.close()
                return
            sock = self._server.sockets[0]
            bound.append(int(sock.getsockname()[1]))
            ready.set()
            try:
                loop.run_forever()
            finally:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name=self._name, daemon=True)
        self._thread = thread
        thread.start()
        ready.wait()
        if errors:
            self._thread = None
            self._loop = None
            raise errors[0]
        return bound[0]

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

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._handler(reader, writer)
        finally:
            if task is not None:
                self._tasks.discard(task)

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
