"""Run records: one small record per request, kept in this process, and totals over them.

::

    ds_magic.records()          # a DataFrame when pandas is installed, else a list of dicts
    ds_magic.stats()            # totals: requests by status, tokens, cost, TTFT and tokens/s
    ds_magic.records.clear()

``Client.chat`` adds :func:`record_response` as a done-callback, so every request leaves a record
when it ends (a cache hit too, marked ``cached`` and costing nothing). Only the last
``max_records`` (10,000 by default) are kept. Costs are estimates from ``ds_magic.pricing``
(deepseek-api.md §5); pass ``prices=`` to recompute them with other prices, or :func:`set_prices`
to change them for this process.

``ds_magic.records`` is this module, made callable (see the end of the file for why).
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import types
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from .pricing import PricesArg, estimate_cost
from .pricing import set_prices as _pricing_set_prices
from .types import Usage

if TYPE_CHECKING:
    from .response import Response

__all__ = [
    "RunRecord",
    "DEFAULT_MAX_RECORDS",
    "track",
    "record_response",
    "records",
    "table",
    "get_records",
    "clear",
    "set_max_records",
    "set_prices",
    "add_hook",
    "remove_hook",
    "stats",
    "plot",
]

DEFAULT_MAX_RECORDS = 10_000

_log = logging.getLogger("ds_magic")

_lock = threading.Lock()
_records: deque[RunRecord] = deque(maxlen=DEFAULT_MAX_RECORDS)
_hooks: tuple[Callable[[RunRecord], None], ...] = ()
_pending: set[Response] = set()  # tracked requests not recorded yet


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

    @property
    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            reasoning_tokens=self.reasoning_tokens,
            cache_hit_tokens=self.cache_hit_tokens,
            cache_miss_tokens=self.cache_miss_tokens,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_response(cls, resp: Response) -> RunRecord:
        when = datetime.fromtimestamp(resp.created, timezone.utc)
        usage = resp.usage or Usage()
        timing = resp.timing
        cost: float | None
        if resp.cached:
            cost = 0.0  # replayed from the response cache: no request, no bill
        else:
            c = estimate_cost(resp.model, resp.usage, when)
            cost = c.usd if c is not None else None
        return cls(
            time=when,
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
            cost=cost,
            cached=resp.cached,
            error_type=type(resp.error).__name__ if resp.error is not None else None,
            resumes=resp.resumes,
        )

    def repriced(self, prices: PricesArg) -> RunRecord:
        if self.cached:
            return self
        c = estimate_cost(self.model, self.usage, self.time, prices=prices)
        return _replace_cost(self, c.usd if c is not None else None)


def _replace_cost(rec: RunRecord, cost: float | None) -> RunRecord:
    return replace(rec, cost=cost)


# --------------------------------------------------------------------- the hook
def track(resp: Response) -> None:
    """Record ``resp`` when it ends (``Client.chat`` calls this for every request).

    ``Response`` sets ``done`` before it runs its done-callbacks, so a caller that has just seen
    the answer could read the records before the callback has run; ``get_records`` therefore
    settles any tracked response that has ended first. Each is recorded once.
    """
    with _lock:
        _pending.add(resp)
    resp.add_done_callback(record_response)


def record_response(resp: Response) -> None:
    """Append the record of a finished request and feed the hooks (once per tracked response)."""
    with _lock:
        if resp not in _pending:
            return
        _pending.discard(resp)
    rec = RunRecord.from_response(resp)
    with _lock:
        _records.append(rec)
        hooks = _hooks
    for fn in hooks:
        try:
            fn(rec)
        except Exception:  # a broken exporter must not cost the other hooks their record
            _log.exception("ds_magic: a run-record hook failed")


def _settle_finished() -> None:
    with _lock:
        ended = [r for r in _pending if r.done]
    for r in sorted(ended, key=lambda r: r.created):
        record_response(r)


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
    _settle_finished()
    with _lock:
        out = list(_records)
    return [r.repriced(prices) for r in out] if prices is not None else out


def _table(
    rows: list[dict[str, Any]], columns: list[str], as_dataframe: bool | None, index: Any = None
) -> Any:
    """A DataFrame of ``rows`` when pandas is there (or asked for), else the rows themselves."""
    if as_dataframe is False:
        return rows
    try:
        pd = importlib.import_module("pandas")  # optional, and never at import time
    except ImportError:
        if as_dataframe:
            raise ImportError("a DataFrame needs pandas: pip install pandas") from None
        return rows
    return pd.DataFrame(rows, columns=columns, index=index)


_COLUMNS = list(RunRecord.__dataclass_fields__)


def table(*, as_dataframe: bool | None = None, prices: PricesArg | None = None) -> Any:
    """The run records as a pandas DataFrame if pandas is installed, else a list of dicts."""
    return _table([r.to_dict() for r in get_records(prices)], _COLUMNS, as_dataframe)


def clear() -> None:
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


def set_prices(prices: PricesArg | None) -> None:
    """Use these prices for new records (and cost footers) in this process; None restores the built-in ones.

    Same forms as ``ds_magic.pricing.set_prices``, e.g. ``{"deepseek-flash": {"hit": 0.003, "miss": 0.15, "out": 0.6}}``.
    """
    _pricing_set_prices(prices)


# --------------------------------------------------------------------- totals
def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _median(xs: list[float]) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def stats(*, plot: bool = False, prices: PricesArg | None = None) -> dict[str, Any]:
    """Totals over the kept records.

    ``requests``, ``by_status``, ``cached``, ``retries``, ``tokens`` (prompt, completion, reasoning,
    cache hit/miss), ``cost`` (USD, estimated; requests whose cost is unknown are counted in
    ``cost_unknown``), and the mean and median of TTFT and tokens/s over requests that have them.
    With ``plot=True`` (needs matplotlib) a small figure is added under ``"figure"``.
    """
    recs = get_records(prices)
    by_status: dict[str, int] = {}
    for r in recs:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    ttfts = [r.ttft for r in recs if r.ttft is not None and not r.cached]
    tps = [r.tokens_per_second for r in recs if r.tokens_per_second is not None and not r.cached]
    out: dict[str, Any] = {
        "requests": len(recs),
        "by_status": by_status,
        "cached": sum(r.cached for r in recs),
        "retries": sum(r.retries for r in recs),
        "resumes": sum(r.resumes for r in recs),
        "tokens": {
            "prompt": sum(r.prompt_tokens for r in recs),
            "completion": sum(r.completion_tokens for r in recs),
            "reasoning": sum(r.reasoning_tokens for r in recs),
            "cache_hit": sum(r.cache_hit_tokens for r in recs),
            "cache_miss": sum(r.cache_miss_tokens for r in recs),
        },
        "cost": sum(r.cost for r in recs if r.cost is not None),
        "cost_unknown": sum(1 for r in recs if r.cost is None and r.status != "error"),
        "ttft_mean": _mean(ttfts),
        "ttft_median": _median(ttfts),
        "tokens_per_second_mean": _mean(tps),
        "tokens_per_second_median": _median(tps),
    }
    if plot:
        out["figure"] = _plot(recs)
    return out


def plot(prices: PricesArg | None = None) -> Any:
    """A small matplotlib figure: TTFT and tokens/s of each request (needs matplotlib)."""
    return _plot(get_records(prices))


def _plot(recs: list[RunRecord]) -> Any:
    try:
        # The Figure class, not pyplot: no global figure state, no backend switching.
        figure = importlib.import_module("matplotlib.figure")
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install matplotlib") from None
    fig = figure.Figure(figsize=(7, 2.6), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    xs = list(range(1, len(recs) + 1))
    ax1.plot(xs, [r.ttft if r.ttft is not None else float("nan") for r in recs], ".-")
    ax1.set_title("time to first token (s)", fontsize=9)
    ax1.set_xlabel("request", fontsize=8)
    ax2.plot(xs, [r.tokens_per_second or float("nan") for r in recs], ".-", color="tab:green")
    ax2.set_title("tokens/s", fontsize=9)
    ax2.set_xlabel("request", fontsize=8)
    for ax in (ax1, ax2):
        ax.tick_params(labelsize=8)
    return fig


# ``ds_magic.records`` is this module, callable: the package exports a function and has a submodule
# of the same name, and importing the submodule (client.py does) rebinds the package attribute to
# the module. So the module is the one object behind the name: ``ds_magic.records()`` is
# ``table()``, ``ds_magic.records.clear()`` is ``clear()``, however the name was first reached.
class _RecordsModule(types.ModuleType):
    def __call__(self, *, as_dataframe: bool | None = None, prices: PricesArg | None = None) -> Any:
        return table(as_dataframe=as_dataframe, prices=prices)

    def __repr__(self) -> str:
        return f"<ds_magic.records: {len(_records)} run records kept; call it for the table>"


if TYPE_CHECKING:

    class _RecordsAPI(Protocol):
        """What type checkers see for ``ds_magic.records``."""

        def __call__(self, *, as_dataframe: bool | None = None, prices: PricesArg | None = None) -> Any: ...
        def table(self, *, as_dataframe: bool | None = None, prices: PricesArg | None = None) -> Any: ...
        def get_records(self, prices: PricesArg | None = None) -> list[RunRecord]: ...
        def clear(self) -> None: ...
        def set_max_records(self, n: int) -> None: ...
        def set_prices(self, prices: PricesArg | None) -> None: ...
        def stats(self, *, plot: bool = False, prices: PricesArg | None = None) -> dict[str, Any]: ...
        def plot(self, prices: PricesArg | None = None) -> Any: ...

    records: _RecordsAPI
else:
    records = sys.modules[__name__]

sys.modules[__name__].__class__ = _RecordsModule
