"""``%deepseek stats``: the totals rounded for people, then a plot of each request; and the lines of
``%deepseek cache stats``.

The plot (run_stats.plot_records: latency, tokens/s and cost per request) is sent as a PNG mime
bundle rather than as the matplotlib ``Figure``: IPython shows a bare ``Figure`` as
``<Figure size 900x280 with 3 Axes>`` unless pyplot's inline backend has been set up, which is
how the plot went missing in the main job's notebook (issue 13). A PNG shows in every frontend,
and in a saved notebook.
"""

from __future__ import annotations

import base64

from ..run_stats import figure_png, format_stats, plot_records, stats
from .display import show_output
from .errors import DeepSeekCellError

__all__ = ["show_stats", "format_cache_stats"]


def show_stats() -> None:
    totals = stats()
    if not totals["requests"]:
        raise DeepSeekCellError(
            "No run records: no request has ended in this kernel yet (or the records were cleared) "
            "— run a %%deepseek cell, then %deepseek stats"
        )
    print(format_stats(totals))
    try:
        figure = plot_records()
    except ImportError:
        print("(pip install matplotlib for a plot of each request)")
        return
    png = base64.b64encode(figure_png(figure)).decode("ascii")
    n = totals["requests"]
    alt = f"a plot of {n} request{'s' if n != 1 else ''}: latency, tokens/s and cost"
    show_output({"image/png": png, "text/plain": f"<{alt}>"}, raw=True)


def _size(n: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{n} B"


def format_cache_stats(st: dict[str, object]) -> str:
    """The response cache's numbers (ResponseCache.stats) as lines for people."""
    size, limit = st["bytes"], st["max_bytes"]
    assert isinstance(size, int) and isinstance(limit, int)
    return "\n".join(
        [
            f"entries: {st['entries']}",
            f"size: {_size(size)} (limit {_size(limit)})",
            f"hits: {st['hits']} · misses: {st['misses']} (this kernel)",
            f"path: {st['path']}",
        ]
    )
