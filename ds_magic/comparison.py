"""``Comparison``: the result of :func:`ds_magic.compare`, a grid of (item, variant) answers.

``table()`` has a row per item and an answer (and a score) per variant; ``summary()`` a row per
variant with its score, latency, tokens and cost; ``plot()`` draws the variants on cost, quality and
latency. Like ``BatchResult``, these wait for the end; ``wait()``, ``await`` and ``cancel()`` work
the same way (a Comparison is one batch of pairs underneath: ``.batch``).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Callable, Generator, Mapping
from typing import Any

from .batch_result import BatchResult
from .response import Response
from .structured_result import item_cost, item_latency, item_tokens
from .tables import as_table

__all__ = ["Comparison", "Cell", "VariantSummary", "SUMMARY_COLUMNS"]

#: The columns of :meth:`Comparison.summary`.
SUMMARY_COLUMNS = ("variant", "model", "items", "errors", "score", "latency", "tokens", "cost")


@dataclasses.dataclass(frozen=True)
class Cell:
    """One (item, variant) pair once the comparison has ended."""

    answer: Any  # the text, or the validated value with schema=; None when there is none
    shown: str | None  # the answer as one short string (a field, or compact JSON, for a schema)
    status: str  # ok, error, cancelled, interrupted
    error: str | None
    score: float | None
    latency: float | None
    tokens: int
    cost: float | None


@dataclasses.dataclass(frozen=True)
class VariantSummary:
    """One variant over all items: the means and totals of its cells."""

    variant: str
    model: str
    items: int
    errors: int
    score: float | None  # mean over the scored cells
    latency: float | None  # mean seconds per item
    tokens: int  # completion tokens, all items
    cost: float | None  # USD, all items


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _field_of(item: Any, name: str) -> tuple[bool, Any]:
    if isinstance(item, Mapping):
        return (name in item), item.get(name)
    if hasattr(item, name):
        return True, getattr(item, name)
    return False, None


class Comparison:
    """The answers of every (item, variant) pair of :func:`ds_magic.compare`, side by side."""

    def __init__(
        self,
        batch: BatchResult,
        inputs: list[Any],
        variants: list[str],
        *,
        index: Any = None,
        score: Callable[[Any, Any], float] | str | None = None,
        models: list[str] | None = None,
    ) -> None:
        #: The batch of pairs underneath: item 0 in every variant, then item 1, ...
        self.batch = batch
        self.inputs = inputs
        self.variants = variants
        self.models = models or [""] * len(variants)
        self.index = index
        self._score = score
        self._cells: list[list[Cell]] | None = None

    @property
    def scores_accuracy(self) -> bool:
        """Whether each score is 1 or 0, right or wrong: ``score=`` a field the items also have."""
        return isinstance(self._score, str) and all(_field_of(x, self._score)[0] for x in self.inputs)

    # ----------------------------------------------------------------- the batch's handle
    def wait(self, timeout: float | None = None) -> Comparison:
        """Block until every pair has ended (TimeoutError after ``timeout`` s); Ctrl-C / ■ cancels."""
        self.batch.wait(timeout)
        return self

    def __await__(self) -> Generator[Any, None, Comparison]:
        yield from self.batch.__await__()
        return self

    def cancel(self) -> None:
        """Start no more pairs, close open streams, keep what finished."""
        self.batch.cancel()

    @property
    def done(self) -> bool:
        return self.batch.done

    # ----------------------------------------------------------------- cells
    def cells(self) -> list[list[Cell]]:
        """``cells()[i][j]``: item ``i`` in variant ``j`` (waits for the end)."""
        if self._cells is None:
            responses = self.batch.responses
            n = len(self.variants)
            self._cells = [
                [self._cell(i * n + j, responses[i * n + j], item) for j in range(n)]
                for i, item in enumerate(self.inputs)
            ]
        return self._cells

    def _cell(self, k: int, final: Response, item: Any) -> Cell:
        structured = self.batch.structured
        if structured is not None:
            answer, err = structured.outcome(k, final)
            attempts = structured.attempts(k, final)
            row = structured.schema.row(answer) if answer is not None else None
            shown = self._shown_row(row) if row is not None else None
        else:
            err = final.error
            answer = final.text_so_far if final.status == "ok" else None
            attempts = [final]
            row, shown = None, answer
        status = "error" if err is not None else final.status
        return Cell(
            answer=answer,
            shown=shown,
            status=status,
            error=str(err) if err is not None else None,
            score=self._score_of(item, answer, row) if answer is not None else None,
            latency=item_latency(attempts),
            tokens=item_tokens(attempts),
            cost=item_cost(attempts),
        )

    def _shown_row(self, row: dict[str, Any]) -> str:
        if isinstance(self._score, str) and self._score in row:
            return str(row[self._score])
        if len(row) == 1:
            return str(next(iter(row.values())))
        return json.dumps(row, ensure_ascii=False, default=str)

    def _score_of(self, item: Any, answer: Any, row: dict[str, Any] | None) -> float | None:
        score = self._score
        if score is None:
            return None
        if callable(score):
            return float(score(item, answer))
        value = (row or {}).get(score)
        has, truth = _field_of(item, score)
        if has:
            return 1.0 if value == truth else 0.0
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(
                f"score={score!r}: the items have no field {score!r} to compare with, and the answer's "
                f"{score!r} is not a number ({value!r})"
            )
        return float(value)

    # ----------------------------------------------------------------- tables
    def table(self, *, metrics: bool = False, as_dataframe: bool | None = None) -> Any:
        """A row per item: ``input``, an answer column per variant, ``<variant> score`` columns with
        ``score=``, and with ``metrics=True`` ``<variant> latency`` / ``tokens`` / ``cost`` columns;
        indexed like the input Series/DataFrame (waits)."""
        extra = (["score"] if self._score is not None else []) + (
            ["latency", "tokens", "cost"] if metrics else []
        )
        columns = ["input", *self.variants, *[f"{v} {m}" for m in extra for v in self.variants]]
        rows = []
        for item, cells in zip(self.inputs, self.cells(), strict=True):
            row: dict[str, Any] = {"input": item}
            for v, c in zip(self.variants, cells, strict=True):
                row[v] = c.shown if c.status == "ok" else f"[{c.status}] {c.error or ''}".strip()
                for m in extra:
                    row[f"{v} {m}"] = getattr(c, m)
            rows.append({name: row[name] for name in columns})  # the rows (no pandas) in column order
        return as_table(rows, columns, as_dataframe, index=self.index)

    def summaries(self) -> list[VariantSummary]:
        """One :class:`VariantSummary` per variant (waits)."""
        grid = self.cells()
        out = []
        for j, (name, model) in enumerate(zip(self.variants, self.models, strict=True)):
            col = [row[j] for row in grid]
            costs = [c.cost for c in col if c.cost is not None]
            out.append(
                VariantSummary(
                    variant=name,
                    model=model,
                    items=len(col),
                    errors=sum(1 for c in col if c.status != "ok"),
                    score=_mean([c.score for c in col if c.score is not None]),
                    latency=_mean([c.latency for c in col if c.latency is not None]),
                    tokens=sum(c.tokens for c in col),
                    cost=sum(costs) if costs else None,
                )
            )
        return out

    def summary(self, *, as_dataframe: bool | None = None) -> Any:
        """A row per variant: model, items, errors, score (mean), latency (mean s), tokens, cost (USD)."""
        rows = [dataclasses.asdict(s) for s in self.summaries()]
        return as_table(rows, list(SUMMARY_COLUMNS), as_dataframe)

    def plot(self) -> Any:
        """Cost vs quality vs latency per variant: a matplotlib Figure (needs matplotlib; waits).

        Left, the score against the cost per item; right, the score against the mean latency. With no
        ``score=``, one panel: the latency against the cost.
        """
        try:
            # The Figure class, not pyplot: no global figure state (as run_stats does).
            figure = importlib.import_module("matplotlib.figure")
        except ImportError:
            raise ImportError("plotting needs matplotlib: pip install matplotlib") from None
        stats = self.summaries()
        cost = [(s.cost or 0.0) / max(s.items, 1) for s in stats]
        latency = [s.latency if s.latency is not None else float("nan") for s in stats]
        nan = float("nan")
        if self._score is not None:
            quality = [s.score if s.score is not None else nan for s in stats]
            fig = figure.Figure(figsize=(7.5, 2.8), layout="constrained")
            panels = list(
                zip(fig.subplots(1, 2), (cost, latency), ("cost per item (USD)", "latency (s)"), strict=True)
            )
            for ax, xs, label in panels:
                self._points(ax, xs, quality, stats)
                ax.set_xlabel(label, fontsize=8)
                ax.set_ylabel("score", fontsize=8)
        else:
            fig = figure.Figure(figsize=(4.2, 2.8), layout="constrained")
            ax = fig.subplots()
            self._points(ax, cost, latency, stats)
            ax.set_xlabel("cost per item (USD)", fontsize=8)
            ax.set_ylabel("latency (s)", fontsize=8)
        fig.suptitle("variants: cost, quality, latency", fontsize=9)
        return fig

    @staticmethod
    def _points(ax: Any, xs: list[float], ys: list[float], stats: list[VariantSummary]) -> None:
        for x, y, s in zip(xs, ys, stats, strict=True):
            ax.scatter([x], [y], s=40)
            ax.annotate(s.variant, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.margins(0.3)  # room for the names at the edges
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 3))

    def __len__(self) -> int:
        return len(self.inputs)

    def __repr__(self) -> str:
        if not self.done:
            return f"<Comparison of {', '.join(self.variants)}: {self.batch!r}>"
        parts = []
        for s in self.summaries():
            bits = [f"score {s.score:.2f}" if s.score is not None else None]
            bits.append(f"{s.latency:.2f} s" if s.latency is not None else None)
            bits.append(f"{s.tokens} tokens")
            bits.append(f"${s.cost:.6f}" if s.cost is not None else "cost unknown")
            errs = f", {s.errors} errors" if s.errors else ""
            parts.append(f"{s.variant}: {', '.join(b for b in bits if b)}{errs}")
        return f"<Comparison of {len(self.inputs)} items: {'; '.join(parts)}>"
