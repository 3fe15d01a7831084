"""Progress of a batch: the :class:`BatchProgress` snapshot, its one-line text, and the terminal renderer.

A batch calls its progress callback on the engine thread with a fresh snapshot at least every
quarter second while it runs, and once more, with ``finished`` set, when it ends. Which callback a
``batch(progress=True)`` gets is decided in batching.py (a registered notebook view, else this
module's :class:`TextProgress` on a terminal).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

__all__ = ["BatchProgress", "Progress", "TextProgress", "format_progress"]


@dataclass(frozen=True)
class BatchProgress:
    """A snapshot of a batch for progress displays; ``eta`` and ``tokens_per_second`` may be None."""

    total: int
    done: int  # finished ok
    failed: int
    cancelled: int
    running: int
    retrying: int  # waiting to be sent again
    pending: int  # not sent yet
    concurrency: int  # the current limit
    max_concurrency: int
    tokens: int  # completion tokens so far, in-flight ones included
    tokens_per_second: float | None  # over the whole batch
    elapsed: float
    eta: float | None
    finished: bool  # the batch has ended (this is the last snapshot)
    #: Seconds until the off-peak window a ``when="off-peak"`` run waits for (offpeak.py); None if not waiting.
    waiting: float | None = None

    @property
    def settled(self) -> int:
        return self.done + self.failed + self.cancelled

    @classmethod
    def of(
        cls,
        *,
        total: int,
        done: int,
        failed: int,
        cancelled: int,
        running: int,
        retrying: int,
        concurrency: int,
        max_concurrency: int,
        tokens: int,
        elapsed: float,
        finished: bool,
        waiting: float | None = None,
    ) -> BatchProgress:
        """A snapshot from its counts, with what follows from them derived in one place: the items not
        sent yet, tokens/s over the whole batch, and the ETA (none once the batch has ended)."""
        settled = done + failed + cancelled
        eta = (total - settled) * elapsed / settled if settled and not finished and elapsed > 0 else None
        return cls(
            total=total,
            done=done,
            failed=failed,
            cancelled=cancelled,
            running=running,
            retrying=retrying,
            pending=max(total - settled - running - retrying, 0),
            concurrency=concurrency,
            max_concurrency=max_concurrency,
            tokens=tokens,
            tokens_per_second=tokens / elapsed if tokens and elapsed > 0 else None,
            elapsed=elapsed,
            eta=eta,
            finished=finished,
            waiting=waiting,
        )


#: A progress callback: gets each snapshot, on the engine thread (keep it quick).
Progress = Callable[[BatchProgress], None]


def _fmt_secs(s: float) -> str:
    if s < 60:
        return f"{s:.1f}s" if s < 10 else f"{s:.0f}s"
    m, s = divmod(int(s), 60)
    return f"{m}m{s:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"


def format_progress(p: BatchProgress) -> str:
    """One line: ``batch 120/200 done · 2 failed · 3 retrying · 30 running (limit 32) · 900 tok/s · ETA 12s``."""
    parts = [f"batch {p.done}/{p.total} done"]
    if p.waiting is not None and not p.finished:  # the countdown of an off-peak run
        parts.append(f"waiting for off-peak: starts in {_fmt_secs(p.waiting)}")
    if p.failed:
        parts.append(f"{p.failed} failed")
    if p.cancelled:
        parts.append(f"{p.cancelled} cancelled")
    if p.retrying:
        parts.append(f"{p.retrying} retrying")
    if not p.finished:
        limit = (
            f"limit {p.concurrency}"
            if p.concurrency == p.max_concurrency
            else f"limit {p.concurrency}/{p.max_concurrency}"
        )
        parts.append(f"{p.running} running ({limit})")
    if p.tokens_per_second is not None:
        parts.append(f"{p.tokens_per_second:,.0f} tok/s")
    parts.append(_fmt_secs(p.elapsed))
    if not p.finished and p.eta is not None:
        parts.append(f"ETA {_fmt_secs(p.eta)}")
    return " · ".join(parts)


class TextProgress:
    """A progress renderer for terminals: one line on stderr, rewritten at most every ``interval`` s."""

    def __init__(self, stream: TextIO | None = None, interval: float = 0.2) -> None:
        self.stream = stream
        self.interval = interval
        self._last = -float("inf")
        self._width = 0

    def __call__(self, p: BatchProgress) -> None:
        now = time.monotonic()
        if not p.finished and now - self._last < self.interval:
            return
        self._last = now
        line = format_progress(p)
        out = self.stream if self.stream is not None else sys.stderr
        pad = max(self._width - len(line), 0)
        self._width = len(line)
        try:
            out.write("\r" + line + " " * pad + ("\n" if p.finished else ""))
            out.flush()
        except (OSError, ValueError):  # a closed stream must not break the batch
            pass
