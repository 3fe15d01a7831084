"""When and how long to wait before retrying a request that has not started streaming.

Policy (sse-and-retries.md §1.3 and §2.4, deepseek-api.md §3.4): retry 408, 409, 429 and 5xx answers,
connection errors and timeouts, only before the first byte of the body; exponential backoff with
jitter from 1 s, capped at 30 s; a server-given delay (``retry-after-ms``, ``Retry-After`` in seconds
or as an HTTP date, ``X-RateLimit-Reset``) wins when it is in (0, 120] s, and a longer one means
"do not retry" (as openai-python ≥ 2.52 does).
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

__all__ = ["RetryPolicy", "RETRY_STATUSES", "is_retryable_status", "parse_retry_after"]

RETRY_STATUSES = frozenset({408, 409, 429})

_DURATION = re.compile(
    r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$"
)


def is_retryable_status(status: int) -> bool:
    return status in RETRY_STATUSES or status >= 500


def _float(v: str) -> float | None:
    v = v.strip()
    # Python's float() accepts "inf", "nan" and "1_0"; a header value must be a plain number.
    if not re.fullmatch(r"-?\d+(\.\d+)?", v):
        return None
    return float(v)


def _duration(v: str) -> float | None:
    """A plain number of seconds, or a Go-style duration such as "1m30s" or "250ms"."""
    plain = _float(v)
    if plain is not None:
        return plain
    m = _DURATION.fullmatch(v.strip())
    if not m or not any(m.groups()):
        return None
    h, mi, s, ms = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + s + ms / 1000


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the server asks us to wait, or None when it says nothing usable.

    ``now`` is the wall clock (``time.time()``), needed for HTTP dates and epoch reset times.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lower:
        ms = _float(lower["retry-after-ms"])
        if ms is not None:
            return ms / 1000
    if "retry-after" in lower:
        raw = lower["retry-after"]
        secs = _float(raw)
        if secs is not None:
            return secs
        try:
            parsed = email.utils.parsedate_tz(raw)
            if parsed is not None:
                return float(email.utils.mktime_tz(parsed)) - now
        except (TypeError, ValueError, OverflowError, OSError):
            pass
    if "x-ratelimit-reset" in lower:
        val = _duration(lower["x-ratelimit-reset"])
        if val is not None:
            # Some servers send an epoch timestamp, others a number of seconds until the reset.
            return val - now if val > 1e9 else val
    return None


async def _asyncio_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


@dataclass
class RetryPolicy:
    """Retry settings; ``sleep``, ``clock`` and ``random`` are injectable for tests."""

    max_retries: int = 2
    initial_delay: float = 1.0
    max_delay: float = 30.0
    max_retry_after: float = 120.0
    sleep: Callable[[float], Awaitable[None]] = field(default=_asyncio_sleep, repr=False)
    clock: Callable[[], float] = field(default=time.time, repr=False)
    random: Callable[[], float] = field(default=random.random, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(f"max_retries must be an integer ≥ 0, got {self.max_retries!r}")

    def backoff(self, retries_taken: int) -> float:
        """1 s, 2 s, 4 s … capped at ``max_delay``, times a jitter factor in (0.75, 1]."""
        base = min(self.initial_delay * 2.0 ** min(retries_taken, 60), self.max_delay)
        return base * (1.0 - 0.25 * self.random())

    def delay(self, retries_taken: int, headers: Mapping[str, str] | None = None) -> float | None:
        """Seconds to wait before the next attempt, or None if the server asked for too long a wait."""
        if headers:
            server = parse_retry_after(headers, self.clock())
            if server is not None and math.isfinite(server):
                if server > self.max_retry_after:
                    return None
                if server > 0:
                    return server
        return self.backoff(retries_taken)
