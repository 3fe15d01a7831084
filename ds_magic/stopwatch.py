"""``Stopwatch``: the clocks of one answer, read as a :class:`~ds_magic.types.Timing` snapshot.

Times come from ``time.perf_counter()`` on the engine thread, which cells never stall. The clock
starts when the request really starts (``start``), not when it was asked for, so a turn queued
behind an earlier turn of its conversation does not count that wait as time to first token.
"""

from __future__ import annotations

import time

from .types import Timing

__all__ = ["Stopwatch"]


class Stopwatch:
    """Start, first token (thinking or answer), first answer token, end, and pieces counted."""

    __slots__ = ("t0", "first", "first_answer", "end", "pieces")

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.first: float | None = None
        self.first_answer: float | None = None
        self.end: float | None = None
        self.pieces = 0

    def start(self) -> None:
        self.t0 = time.perf_counter()

    def piece(self, now: float, answer: bool) -> None:
        """One streamed piece (a delta of text, thinking or a tool call) arrived at ``now``."""
        self.pieces += 1
        if self.first is None:
            self.first = now
        if answer and self.first_answer is None:
            self.first_answer = now

    def stop(self) -> None:
        self.end = time.perf_counter()

    def restore(self, ttft: float | None, ttfa: float | None, total: float | None, pieces: int) -> None:
        """Set the times of an answer measured elsewhere (``Timing``'s fields), ending now."""
        self.end = time.perf_counter()
        self.t0 = self.end - (total or 0.0)
        self.first = None if ttft is None else self.t0 + ttft
        self.first_answer = None if ttfa is None else self.t0 + ttfa
        self.pieces = pieces

    def timing(self, completion_tokens: int | None) -> Timing:
        """A snapshot; ``completion_tokens`` (from usage, once ended) replaces the piece count."""
        end = self.end
        now = end if end is not None else time.perf_counter()
        first = self.first
        tokens = completion_tokens if (completion_tokens is not None and end is not None) else self.pieces
        tps = None
        if first is not None and now - first > 0 and tokens > 1:
            # The first token marks the start of generation, so it is not counted in the rate.
            tps = (tokens - 1) / (now - first)
        return Timing(
            time_to_first_token=None if first is None else first - self.t0,
            time_to_first_answer_token=None if self.first_answer is None else self.first_answer - self.t0,
            elapsed=now - self.t0,
            total=None if end is None else end - self.t0,
            tokens=tokens,
            tokens_per_second=tps,
        )
