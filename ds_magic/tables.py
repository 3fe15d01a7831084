"""Tables of results (run records, batch items): a pandas DataFrame when pandas is there, else rows.

A DataFrame is what a person looks at, so its figures are rounded for people (issue 13, "every
figure rounded for people"): seconds to the millisecond, tokens/s to one decimal, dollars to the
micro-dollar, times to the second. The rows (``as_dataframe=False``) keep the exact values, for
programs; the exact figures of every request are also in ``ds_magic.records(as_dataframe=False)``.
"""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import Any

__all__ = ["ANSWER_COLUMNS", "as_table", "ROUNDING", "rounded"]

#: The columns of one answer in a table: ``BatchResult.table()``, and between a run's ``item`` and
#: ``window`` in its rows (run_store.ROW_COLUMNS).
ANSWER_COLUMNS = (
    "input",
    "text",
    "status",
    "error",
    "tokens",
    "ttft",
    "tokens/s",
    "cost",
    "cached",
    "retries",
)

#: Decimals kept in a DataFrame, by column name (run records and batch tables share these names).
ROUNDING: dict[str, int] = {
    "ttft": 3,
    "total": 3,
    "latency": 3,  # batch / schema / compare tables (seconds)
    "score": 3,  # compare()'s mean score per variant
    "tokens_per_second": 1,
    "tokens/s": 1,
    "cost": 6,
}


def rounded(row: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``row`` with the figures of :data:`ROUNDING` rounded and datetimes to the second."""
    out = dict(row)
    for key, value in row.items():
        if isinstance(value, float) and key in ROUNDING:
            out[key] = round(value, ROUNDING[key])
        elif isinstance(value, datetime):
            out[key] = value.replace(microsecond=0)
    return out


def as_table(
    rows: list[dict[str, Any]], columns: list[str], as_dataframe: bool | None, index: Any = None
) -> Any:
    """A DataFrame of ``rows`` (rounded for people) when pandas is installed (or asked for:
    ImportError without it), else the rows themselves, exact; ``as_dataframe=False`` always gives
    the rows."""
    if as_dataframe is False:
        return rows
    try:
        pd = importlib.import_module("pandas")  # optional, and never at import time
    except ImportError:
        if as_dataframe:
            raise ImportError("a DataFrame needs pandas: pip install pandas") from None
        return rows
    return pd.DataFrame([rounded(r) for r in rows], columns=columns, index=index)
