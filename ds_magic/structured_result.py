"""The structured side of a ``schema=`` batch: each item's answers checked, one retry, and the table.

The schedule (batch_schedule.py) calls :meth:`StructuredItems.followup` on the engine loop when an
item's request ends ``ok``. A valid answer is kept. An invalid one (not JSON, not an object, or not
valid against the schema) is sent again once, as a conversation: the item's prompt, the wrong answer,
and a user turn that says what was wrong (structured.retry_prompt). If that answer is wrong too, the
item gets a :class:`~ds_magic.errors.StructuredOutputError`. Both attempts count in the item's
tokens, cost and latency: the table's costs are what was billed.
"""

from __future__ import annotations

import threading
from typing import Any

from .errors import DeepSeekError, StructuredOutputError
from .pricing import cost_of
from .response import Response
from .structured import Schema, parse_answer, retry_prompt
from .tables import as_table

__all__ = ["StructuredItems", "META_COLUMNS", "item_tokens", "item_cost", "item_latency"]

#: The columns after the fields in :meth:`StructuredItems.table`.
META_COLUMNS = ("status", "error", "tokens", "cost", "latency", "attempts")
# How many times an item is sent in all: the first answer and one retry with the error fed back.
MAX_ATTEMPTS = 2


def item_tokens(attempts: list[Response]) -> int:
    """Completion tokens of every attempt of an item (as run_records counts one)."""
    return sum(r.usage.completion_tokens if r.usage is not None else r.timing.tokens for r in attempts)


def item_cost(attempts: list[Response]) -> float | None:
    """USD of every attempt (pricing.cost_of), None when none of them could be priced."""
    costs = [c.usd for c in (cost_of(r) for r in attempts) if c is not None]
    return sum(costs) if costs else None


def item_latency(attempts: list[Response]) -> float | None:
    """Seconds the item's requests took (``Timing.total``), summed over its attempts."""
    totals = [r.timing.total for r in attempts if r.timing.total is not None]
    return sum(totals) if totals else None


class StructuredItems:
    """Per item: the earlier attempts, the checked answer (value or problem), and the final error."""

    def __init__(self, schema: Schema, prompts: list[str | list[dict[str, Any]]]) -> None:
        self.schema = schema
        self._prompts = list(prompts)  # the original prompts, for the retry conversation
        n = len(prompts)
        self._earlier: list[list[Response]] = [[] for _ in range(n)]
        self._checked: list[tuple[Response, Any, str | None] | None] = [None] * n
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- on the engine loop
    def followup(self, i: int, resp: Response) -> list[dict[str, Any]] | None:
        """The retry conversation for item ``i`` if its ``ok`` answer is invalid and not yet retried."""
        _, problem = self._check(i, resp)
        with self._lock:
            if problem is None or len(self._earlier[i]) + 1 >= MAX_ATTEMPTS:
                return None
            self._earlier[i].append(resp)
        prompt = self._prompts[i]
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        return [
            *messages,
            {"role": "assistant", "content": resp.text_so_far},
            {"role": "user", "content": retry_prompt(problem)},
        ]

    def _check(self, i: int, resp: Response) -> tuple[Any, str | None]:
        with self._lock:
            seen = self._checked[i]
        if seen is not None and seen[0] is resp:
            return seen[1], seen[2]
        value: Any = None
        problem: str | None = None
        try:
            value = parse_answer(resp.text_so_far, self.schema)
        except ValueError as exc:
            problem = str(exc)
            if resp.finish_reason == "length":  # deepseek-api.md §4.5: set max_tokens high enough
                problem += " (the answer was cut off at max_tokens)"
        with self._lock:
            self._checked[i] = (resp, value, problem)
        return value, problem

    def final(self, i: int, resp: Response) -> bool:
        """Whether ``resp``, ended ok, is item ``i``'s last answer: valid, or its one retry is spent.

        A persisted run (run_structured.py) saves an answer as it finishes only if it is final.
        """
        with self._lock:
            if any(r is resp for r in self._earlier[i]):  # superseded by its retry
                return False
            retried = len(self._earlier[i]) + 1 >= MAX_ATTEMPTS
        return retried or self._check(i, resp)[1] is None

    # ----------------------------------------------------------------- after the end
    def attempts(self, i: int, final: Response) -> list[Response]:
        """Every response of item ``i``, the final one last."""
        with self._lock:
            return [*self._earlier[i], final]

    def outcome(self, i: int, final: Response) -> tuple[Any, DeepSeekError | None]:
        """The validated value of item ``i`` (None if none), and its error (None if valid)."""
        if final.status != "ok":
            err = final.error
            if err is None:  # cancelled, say: not an error of the request, but no value either
                return None, None
            return None, err if isinstance(err, DeepSeekError) else DeepSeekError(str(err))
        value, problem = self._check(i, final)
        if problem is not None:
            return None, StructuredOutputError(problem, len(self.attempts(i, final)))
        return value, None

    def values(self, responses: list[Response]) -> list[Any]:
        """The validated value of each item, None where there is none."""
        return [self.outcome(i, r)[0] for i, r in enumerate(responses)]

    def errors(self, responses: list[Response]) -> dict[int, DeepSeekError]:
        """The items that ended with no valid value, and why (a cancelled item is left out)."""
        out = {}
        for i, r in enumerate(responses):
            err = self.outcome(i, r)[1]
            if err is not None:
                out[i] = err
        return out

    def table(self, responses: list[Response], index: Any = None, as_dataframe: bool | None = None) -> Any:
        """One column per field, then status, error, tokens, cost, latency, attempts (see BatchResult)."""
        fields = list(self.schema.fields)
        rows: list[tuple[dict[str, Any], tuple[Any, ...]]] = []
        for i, final in enumerate(responses):
            value, err = self.outcome(i, final)
            row: dict[str, Any] = self.schema.row(value) if value is not None else {}
            fields.extend(k for k in row if k not in fields)  # ``dict``: the keys as they come
            attempts = self.attempts(i, final)
            status = "error" if err is not None else final.status
            meta = (
                status,
                str(err) if err is not None else None,
                item_tokens(attempts),
                item_cost(attempts),
                item_latency(attempts),
                len(attempts),
            )
            rows.append((row, meta))
        names = [f"answer {m}" if m in fields else m for m in META_COLUMNS]  # a field may be "status"
        table_rows = [
            {**{f: row.get(f) for f in fields}, **dict(zip(names, meta, strict=True))} for row, meta in rows
        ]
        return as_table(table_rows, [*fields, *names], as_dataframe, index=index)
