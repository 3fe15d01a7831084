"""Totals over the run records (run_records.py), and a small plot of them.

::

    ds_magic.stats()            # requests by status, tokens, cost, TTFT and tokens/s
    ds_magic.stats(plot=True)   # ... and a matplotlib figure under "figure"
"""

from __future__ import annotations

import importlib
from typing import Any

from .pricing import PricesArg
from .run_records import RunRecord, get_records

__all__ = ["stats", "plot_records"]


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


def plot_records(prices: PricesArg | None = None) -> Any:
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
