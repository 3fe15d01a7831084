"""Shared pieces of the tests that talk to the offline server."""

from __future__ import annotations

import asyncio

KEY = "sk-test0123456789abcdef0123456789ab"


class Sleeps:
    """Injected retry sleep: records the delays, sleeps only a token amount."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0.001)
