"""How a ``Comparison`` shows as a cell's value: a compact grid, a row per item and a column per
variant, with a summary row (score, latency, tokens, cost per variant).

Registered with IPython's HTML formatter when the extension loads; the core's ``Comparison`` knows
nothing about HTML. Answers are model output, so they go through render.py's safe renderer (raw
HTML escaped, only http(s)/mailto links); item texts and variant names are escaped. A comparison
still running shows its one-line ``repr`` (the formatter returns None, so only text/plain is sent).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from ..comparison import Cell, Comparison, VariantSummary
from .render import markdown_to_safe_html

__all__ = ["comparison_html", "register", "unregister", "MAX_ROWS"]

#: Items shown in the grid; the rest are counted in a last line (the table() has them all).
MAX_ROWS = 200
_ITEM_CHARS = 160

_STYLE = (
    "<style>"
    ".ds-compare{max-height:32em;overflow:auto;font-size:12px}"
    ".ds-compare table{border-collapse:collapse;width:100%}"
    ".ds-compare th,.ds-compare td{border:1px solid rgba(128,128,128,.35);padding:2px 6px;"
    "vertical-align:top;text-align:left}"
    ".ds-compare td>div{max-height:8em;overflow:auto}"
    ".ds-compare td p{margin:0}"
    # the header and the summary row stay in view while the grid scrolls (JupyterLab's theme colour)
    ".ds-compare th{position:sticky;top:0;background:var(--jp-layout-color0,#fff)}"
    ".ds-compare .ds-sum td{font-weight:600;border-top:2px solid rgba(128,128,128,.6);"
    "position:sticky;bottom:0;background:var(--jp-layout-color0,#fff)}"
    ".ds-compare .ds-err{opacity:.75;font-style:italic}"
    ".ds-compare small{opacity:.7;font-weight:normal}"
    "</style>"
)


def _short(value: Any) -> str:
    text = str(value)
    if len(text) > _ITEM_CHARS:
        text = text[: _ITEM_CHARS - 1] + "…"
    return html.escape(text)


def _item(item: Any) -> str:
    """An item as text; a dict (a DataFrame row) as its fields, one a line."""
    if isinstance(item, Mapping):
        return "<br>".join(f"<small>{_short(k)}</small> {_short(v)}" for k, v in item.items())
    return _short(item)


def _answer(cell: Cell, structured: bool, accuracy: bool) -> str:
    if cell.status != "ok":
        return f'<div class="ds-err">{html.escape(cell.status)}: {html.escape(cell.error or "")}</div>'
    shown = cell.shown or ""
    body = html.escape(shown) if structured else markdown_to_safe_html(shown)
    score = ""
    if cell.score is not None:
        mark = {1.0: "✓", 0.0: "✗"}.get(cell.score) if accuracy else None
        score = f" <small>{mark or f'score {cell.score:g}'}</small>"
    return f"<div>{body}{score}</div>"


def _summary(s: VariantSummary) -> str:
    bits = []
    if s.score is not None:
        bits.append(f"score {s.score:.2f}")
    if s.latency is not None:
        bits.append(f"{s.latency:.2f} s")
    bits.append(f"{s.tokens:,} tokens")
    bits.append(f"${s.cost:.6f}" if s.cost is not None else "cost unknown")
    if s.errors:
        bits.append(f"{s.errors} errors")
    return html.escape(" · ".join(bits))


def comparison_html(cmp: Comparison) -> str | None:
    """The grid of a finished comparison; None while it runs (then the text repr is shown)."""
    if not cmp.done:
        return None
    structured = cmp.batch.structured is not None
    accuracy = cmp.scores_accuracy
    labels = list(cmp.index) if cmp.index is not None else None
    head = "".join(
        f"<th>{html.escape(v)}<br><small>{html.escape(m)}</small></th>"
        for v, m in zip(cmp.variants, cmp.models, strict=True)
    )
    rows = []
    for i, (item, cells) in enumerate(zip(cmp.inputs, cmp.cells(), strict=True)):
        if i == MAX_ROWS:
            rows.append(
                f'<tr><td colspan="{len(cells) + 1}">… {len(cmp.inputs) - MAX_ROWS} more items</td></tr>'
            )
            break
        answers = "".join(f"<td>{_answer(c, structured, accuracy)}</td>" for c in cells)
        label = f"<small>{_short(labels[i])}</small><br>" if labels is not None else ""
        rows.append(f"<tr><td>{label}{_item(item)}</td>{answers}</tr>")
    summary = "".join(f"<td>{_summary(s)}</td>" for s in cmp.summaries())
    rows.append(f'<tr class="ds-sum"><td>all {len(cmp.inputs)} items</td>{summary}</tr>')
    return (
        f'{_STYLE}<div class="ds-compare"><table><thead><tr><th>item</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def register(ip: Any) -> None:
    """Show ``Comparison`` values as the grid in this shell."""
    ip.display_formatter.formatters["text/html"].for_type(Comparison, comparison_html)


def unregister(ip: Any) -> None:
    ip.display_formatter.formatters["text/html"].pop(Comparison, None)
