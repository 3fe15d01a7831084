"""Tables of results (run records, batch items): a pandas DataFrame when pandas is there, else rows."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["as_table"]


def as_table(
    rows: list[dict[str, Any]], columns: list[str], as_dataframe: bool | None, index: Any = None
) -> Any:
    """A DataFrame of ``rows`` when pandas is installed (or asked for: ImportError without it), else
    the rows themselves; ``as_dataframe=False`` always gives the rows."""
    if as_dataframe is False:
        return rows
    try:
        pd = importlib.import_module("pandas")  # optional, and never at import time
    except ImportError:
        if as_dataframe:
            raise ImportError("a DataFrame needs pandas: pip install pandas") from None
        return rows
    return pd.DataFrame(rows, columns=columns, index=index)
