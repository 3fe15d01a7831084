"""Shared pieces of the tests that talk to the offline server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

KEY = "sk-test0123456789abcdef0123456789ab"


class Sleeps:
    """Injected retry sleep: records the delays, sleeps only a token amount."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0.001)  # a token pause so the retry still yields; waits for nothing


def wait_until(cond: Callable[[], object], seconds: float) -> bool:
    """Poll ``cond`` until it is true or ``seconds`` pass; return whether it became true."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.002)  # the poll interval of this condition wait (the hang guard is ``seconds``)
    return bool(cond())
