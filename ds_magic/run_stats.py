"""Totals over the run records (run_records.py), as numbers for programs and as text for people, and
a plot of each request.

::

    ds_magic.stats()            # requests by status, tokens, cost, TTFT and tokens/s (a dict)
    print(ds_magic.stats())     # ... the same, rounded for people (also its repr in IPython)
    ds_magic.stats(plot=True)   # ... and a matplotlib figure under "figure"
    ds_magic.plot_records()     # latency, tokens/s and cost of each request (needs matplotlib)
"""

from __future__ import annotations

import importlib
import io
from typing import Any

from .pricing import PricesArg, format_usd
from .run_records import RunRecord, get_records

__all__ = ["Stats", "stats", "plot_records", "format_stats", "figure_png"]


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _median(xs: list[float]) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def _secs(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def _rate(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f} tok/s" if x >= 100 else f"{x:.1f} tok/s"


def format_stats(s: dict[str, Any]) -> str:
    """The totals of :func:`stats` as a few lines for people (every figure rounded)."""
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(s["by_status"].items()))
    extra = [f"{s[k]} {k}" for k in ("cached", "retries", "resumes") if s[k]]
    t = s["tokens"]
    cost = format_usd(s["cost"]) + (f" (+{s['cost_unknown']} unknown)" if s["cost_unknown"] else "")
    lines = [
        f"requests:    {s['requests']}"
        + (f" ({statuses})" if statuses else "")
        + (f" · {', '.join(extra)}" if extra else ""),
        f"tokens:      {t['prompt']:,} prompt ({t['cache_hit']:,} cache hit) · {t['completion']:,} "
        f"completion ({t['reasoning']:,} reasoning)",
        f"cost:        {cost} (estimated)",
        f"first token: median {_secs(s['ttft_median'])} · mean {_secs(s['ttft_mean'])}",
        f"speed:       median {_rate(s['tokens_per_second_median'])} · mean "
        f"{_rate(s['tokens_per_second_mean'])}",
    ]
    return "\n".join(lines)


class Stats(dict[str, Any]):
    """The dict :func:`stats` returns: exact numbers for programs; ``str()`` and IPython's display
    show them rounded for people (:func:`format_stats`)."""

    def __str__(self) -> str:
        return format_stats(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # IPython's pretty-printer protocol
        p.text(format_stats(self))


def stats(*, plot: bool = False, prices: PricesArg | None = None) -> Stats:
    """Totals over the kept records.

    ``requests``, ``by_status``, ``cached``, ``retries``, ``tokens`` (prompt, completion, reasoning,
    cache hit/miss), ``cost`` (USD, estimated; requests whose cost is unknown are counted in
    ``cost_unknown``), and the mean and median of TTFT and tokens/s over requests that have them.
    With ``plot=True`` (needs matplotlib) the figure of :func:`plot_records` is added under ``"figure"``.
    """
    recs = get_records(prices)
    by_status: dict[str, int] = {}
    for r in recs:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    ttfts = [r.ttft for r in recs if r.ttft is not None and not r.cached]
    tps = [r.tokens_per_second for r in recs if r.tokens_per_second is not None and not r.cached]
    out = Stats(
        {
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
    )
    if plot:
        out["figure"] = _plot(recs)
    return out


def plot_records(prices: PricesArg | None = None) -> Any:
    """A matplotlib figure of each request: latency (first token and total), tokens/s, and cost."""
    return _plot(get_records(prices))


def figure_png(fig: Any, dpi: int = 100) -> bytes:
    """The figure as PNG bytes: shown as an image by any frontend, whatever matplotlib backend is set
    (a bare ``Figure`` has no IPython display of its own without pyplot's inline backend)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _nan(x: float | None) -> float:
    return float("nan") if x is None else x


def _plot(recs: list[RunRecord]) -> Any:
    try:
        # The Figure class, not pyplot: no global figure state, no backend switching.
        figure = importlib.import_module("matplotlib.figure")
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install matplotlib") from None
    fig = figure.Figure(figsize=(9, 2.8), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    xs = list(range(1, len(recs) + 1))
    ax1.plot(xs, [_nan(r.ttft) for r in recs], ".-", label="first token")
    ax1.plot(xs, [_nan(r.total) for r in recs], ".-", color="tab:gray", label="total")
    ax1.set_title("latency (s)", fontsize=9)
    ax1.legend(fontsize=7, frameon=False)
    ax2.bar(xs, [r.tokens_per_second or 0.0 for r in recs], color="tab:green")
    ax2.set_title("tokens/s", fontsize=9)
    # Micro-dollars: a request costs a small fraction of a cent, and "0.0001" on an axis reads badly.
    ax3.bar(xs, [(r.cost or 0.0) * 1e6 for r in recs], color="tab:orange")
    ax3.set_title("cost (µ$, estimated)", fontsize=9)
    for ax in (ax1, ax2, ax3):
        ax.set_xlabel("request", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
    return fig
