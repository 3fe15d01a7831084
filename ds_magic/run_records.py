"""Run records: one small record per request, kept in this process.

::

    ds_magic.records()          # a DataFrame when pandas is installed, else a list of dicts
    ds_magic.stats()            # totals: requests by status, tokens, cost, TTFT and tokens/s (run_stats.py)
    ds_magic.clear_records()

``Client.chat`` tracks every request: :func:`track` makes :func:`record_response` part of the
response's bookkeeping, run before it reports done, so whoever sees an answer done finds its record
(a cache hit too, marked ``cached`` and costing nothing). Only the last ``max_records`` (10,000 by
default) are kept. Costs are estimates from ``ds_magic.pricing`` (deepseek-api.md §5); pass
``prices=`` to recompute them with other prices, or ``ds_magic.pricing.set_prices`` to change them
for this process.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .pricing import PricesArg, cost_of
from .tables import as_table
from .types import Usage

if TYPE_CHECKING:
    from .response import Response, ResponseWriter

__all__ = [
    "RunRecord",
    "DEFAULT_MAX_RECORDS",
    "track",
    "record_response",
    "records",
    "get_records",
    "clear_records",
    "set_max_records",
    "add_hook",
    "remove_hook",
]

DEFAULT_MAX_RECORDS = 10_000

_log = logging.getLogger("ds_magic")

_lock = threading.Lock()
_records: deque[RunRecord] = deque(maxlen=DEFAULT_MAX_RECORDS)
_hooks: tuple[Callable[[RunRecord], None], ...] = ()


@dataclass(frozen=True)
class RunRecord:
    """What one request did. Times in seconds; ``cost`` in USD (None when it cannot be estimated)."""

    time: datetime
    model: str
    chat: str | None
    status: str
    retries: int
    ttft: float | None
    total: float | None
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cache_hit_tokens: int
    cache_miss_tokens: int
    tokens_per_second: float | None
    cost: float | None
    cached: bool
    error_type: str | None
    #: Times a dropped stream was resumed by prefix completion.
    resumes: int = 0
    #: The price window the request started in, "peak" or "off-peak" (offpeak.py); None for a
    #: model without the split, or when the cost is unknown.
    window: str | None = None

    @property
    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            reasoning_tokens=self.reasoning_tokens,
            cache_hit_tokens=self.cache_hit_tokens,
            cache_miss_tokens=self.cache_miss_tokens,
        )

    @property
    def created(self) -> float:
        """When the request started, in epoch seconds (as ``Response.created``)."""
        return self.time.timestamp()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_response(cls, resp: Response) -> RunRecord:
        usage = resp.usage or Usage()
        timing = resp.timing
        cost = cost_of(resp)
        return cls(
            time=datetime.fromtimestamp(resp.created, timezone.utc),
            model=resp.model,
            chat=resp.chat,
            status=resp.status,
            retries=resp.retries,
            ttft=timing.time_to_first_token,
            total=timing.total,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cache_hit_tokens=usage.cache_hit_tokens,
            cache_miss_tokens=usage.cache_miss_tokens,
            tokens_per_second=timing.tokens_per_second,
            cost=cost.usd if cost is not None else None,
            cached=resp.cached,
            error_type=type(resp.error).__name__ if resp.error is not None else None,
            resumes=resp.resumes,
            window=None if cost is None or cost.peak is None else ("peak" if cost.peak else "off-peak"),
        )

    def repriced(self, prices: PricesArg) -> RunRecord:
        """The same record with its cost estimated from ``prices`` (a cache hit stays $0)."""
        cost = cost_of(self, prices=prices)
        return replace(self, cost=cost.usd if cost is not None else None)


# --------------------------------------------------------------------- the hook
def track(writer: ResponseWriter) -> None:
    """Record the response when it ends (``Client.chat`` calls this for every request).

    The record is part of the response's bookkeeping (``ResponseWriter.before_done``): it is made
    before the response reports done, so a caller that has just seen the answer finds it.
    """
    writer.before_done(record_response)


def record_response(resp: Response) -> None:
    """Append the record of a finished request and feed the hooks."""
    rec = RunRecord.from_response(resp)
    with _lock:
        _records.append(rec)
        hooks = _hooks
    for fn in hooks:
        try:
            fn(rec)
        except Exception:  # a broken exporter must not cost the other hooks their record
            _log.exception("ds_magic: a run-record hook failed")


def add_hook(fn: Callable[[RunRecord], None]) -> None:
    """Call ``fn(record)`` for every new record (on the engine thread: keep it quick)."""
    global _hooks
    with _lock:
        if fn not in _hooks:
            _hooks = (*_hooks, fn)


def remove_hook(fn: Callable[[RunRecord], None]) -> None:
    global _hooks
    with _lock:
        _hooks = tuple(f for f in _hooks if f != fn)  # == so that a bound method matches a new one


# --------------------------------------------------------------------- reading
def get_records(prices: PricesArg | None = None) -> list[RunRecord]:
    """The kept records, oldest first (costs recomputed with ``prices`` if given)."""
    with _lock:
        out = list(_records)
    return [r.repriced(prices) for r in out] if prices is not None else out


_COLUMNS = list(RunRecord.__dataclass_fields__)


def records(*, as_dataframe: bool | None = None, prices: PricesArg | None = None) -> Any:
    """The run records as a pandas DataFrame if pandas is installed, else a list of dicts."""
    return as_table([r.to_dict() for r in get_records(prices)], _COLUMNS, as_dataframe)


def clear_records() -> None:
    """Forget every record."""
    with _lock:
        _records.clear()


def set_max_records(n: int) -> None:
    """Keep only the last ``n`` records from now on (default 10,000)."""
    global _records
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"max_records must be a positive integer, got {n!r}")
    with _lock:
        _records = deque(_records, maxlen=n)
