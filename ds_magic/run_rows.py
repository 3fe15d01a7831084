"""The pieces of a streamed run that are plain data: its inputs read lazily, and one row per item."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

from .client import Client
from .errors import SecretInPromptError
from .offpeak import Window, window_at
from .pricing import cost_of, estimate_cost
from .response import Response
from .sinks import input_text

__all__ = ["Inputs", "item_row", "error_row", "take", "secret_error"]


class Inputs:
    """The items of a run, read lazily: a list, a pandas Series or DataFrame, or any iterable.

    ``total`` is the number of items when it is known without reading them (None for a
    generator); ``index`` is a Series' or DataFrame's index, for ``df.join(result.table())``.
    """

    def __init__(self, values: Any) -> None:
        if isinstance(values, (str, bytes)) or isinstance(values, Mapping):
            raise TypeError(
                f"items must be an iterable (a list, a generator, a pandas Series), not a {type(values).__name__}"
            )
        self.index: Any = None
        self.total: int | None = None
        self.sequence: list[Any] | None = None  # the items, when they are in memory anyway
        if hasattr(values, "columns") and hasattr(values, "to_dict"):  # a DataFrame: one dict per row
            self.sequence, self.index = list(values.to_dict("records")), values.index
        elif hasattr(values, "tolist") and hasattr(values, "dtype"):  # a Series or an array
            index = getattr(values, "index", None)
            self.sequence, self.index = list(values.tolist()), None if callable(index) else index
        elif isinstance(values, (list, tuple)):
            self.sequence = list(values)
        else:
            try:
                self._iter: Iterator[Any] = iter(values)
            except TypeError:
                raise TypeError(
                    f"items must be an iterable (a list, a generator, a pandas Series), not a {type(values).__name__}"
                ) from None
            self.total = len(values) if hasattr(values, "__len__") else None
        if self.sequence is not None:
            self.total = len(self.sequence)
            self._iter = iter(self.sequence)

    def take(self, n: int) -> list[Any]:
        """The next ``n`` items (fewer at the end)."""
        return take(self._iter, n)


def take(it: Iterable[Any], n: int) -> list[Any]:
    return list(itertools.islice(it, n))


def item_row(
    item: int,
    value: Any,
    resp: Response,
    phash: str,
    window: Window | None = None,
    priced_at: datetime | None = None,
) -> dict[str, Any]:
    """The row of one finished item. ``priced_at``/``window``: when and in which window it started.

    With an off-peak gate, the window is the gate's (its clock's); otherwise the one the request
    started in. A model without a peak/off-peak split has no window.
    """
    usage = resp.usage
    timing = resp.timing
    cost = cost_of(resp)  # the dialect and cache-hit rules
    if cost is not None and not resp.cached and priced_at is not None:
        cost = estimate_cost(resp.model, usage, priced_at) or cost
    started = priced_at or datetime.fromtimestamp(resp.created, timezone.utc)
    label = None
    if cost is not None and cost.peak is not None:
        label = (window or window_at(started)).label
    return {
        "item": item,
        "prompt_hash": phash,
        "input": input_text(value),
        "text": resp.text_so_far,
        "status": resp.status,
        "error": str(resp.error) if resp.error is not None else None,
        "tokens": usage.completion_tokens if usage is not None else timing.tokens,
        "ttft": timing.time_to_first_token,
        "tokens/s": timing.tokens_per_second,
        "cost": cost.usd if cost is not None else None,
        "cached": resp.cached,
        "retries": resp.retries,
        "window": label,
    }


def error_row(item: int, value: Any, phash: str, error: Exception) -> dict[str, Any]:
    """The row of an item that was not sent (its prompt holds a secret, say)."""
    return {
        "item": item,
        "prompt_hash": phash,
        "input": input_text(value),
        "text": "",
        "status": "error",
        "error": str(error),
        "tokens": 0,
        "ttft": None,
        "tokens/s": None,
        "cost": None,
        "cached": False,
        "retries": 0,
        "window": None,
    }


def secret_error(client: Client, item: int, prompt: Any) -> SecretInPromptError | None:
    """The outbound secret check (guard.py) of one item: the error to record instead of sending it."""
    found = client.find_secrets([(f"item {item}", str(prompt))])
    return SecretInPromptError(found) if found else None
