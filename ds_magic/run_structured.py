"""``schema=`` inside a persisted / streamed run: each item's row gets one column per schema field.

``batch(..., schema=Label, run="labels-v2")`` sends every item in JSON mode with the schema in the
system prompt (structured.py), checks each answer, sends a wrong one back once with the error
(structured_result.py, through the chunk's Schedule ``followup`` hook) and then records the error
on the item. The run's rows (run_rows.item_row) get, besides the plain columns:

- one column per top-level field of the schema, after ``input`` (a ``dict`` schema has no fixed
  fields, and a sink's columns are fixed when it opens, so its one column is ``value``, the JSON
  object); a field named like a row column (``status``, say) is the column ``answer.status``;
- ``latency`` and ``attempts``; ``tokens`` and ``cost`` count both attempts (what was billed).

An item whose answer stayed invalid has status ``error``: the next run of the same name sends it again.
"""

from __future__ import annotations

from typing import Any

from .response import Response
from .run_store import ROW_COLUMNS
from .structured import Schema
from .structured_result import StructuredItems, item_cost, item_latency, item_tokens

__all__ = ["StructuredRun", "STRUCTURED_COLUMNS", "settings_of", "columns_of", "columns_and_kinds"]

#: The columns a schema'd run adds after the plain row columns.
STRUCTURED_COLUMNS = ("latency", "attempts")
# Where a field's column goes: after these row columns.
_BEFORE_FIELDS = ROW_COLUMNS.index("input") + 1


def _field_columns(schema: Schema) -> list[tuple[str, str]]:
    """(field, column) pairs: the column is ``answer.<field>`` where a row column has that name."""
    taken = {*ROW_COLUMNS, *STRUCTURED_COLUMNS}
    if not schema.fields:
        return [("", "value")]  # dict: the whole object
    return [(f, f"answer.{f}" if f in taken else f) for f in schema.fields]


def columns_of(field_columns: list[str]) -> list[str]:
    """All the columns of a schema'd run's rows, in order."""
    return [*ROW_COLUMNS[:_BEFORE_FIELDS], *field_columns, *ROW_COLUMNS[_BEFORE_FIELDS:], *STRUCTURED_COLUMNS]


def settings_of(schema: Schema) -> dict[str, Any]:
    """What of the schema decides a run's answers (part of the run's settings fingerprint)."""
    return {"name": schema.name, "json_schema": schema.json_schema}


class StructuredRun:
    """The schema of a run, and what it adds to each row."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._fields = _field_columns(schema)
        #: Every column of the rows, in order (the sink's and ``table()``'s columns).
        self.columns = columns_of([c for _, c in self._fields])
        #: Parquet types of the field columns: "int", "float", "bool" or "str" (other values as JSON).
        self.kinds = {c: _kind(schema.json_schema, f) for f, c in self._fields}

    def items(self, prompts: list[Any]) -> StructuredItems:
        """The per-item checks and retries of one chunk's sent prompts."""
        return StructuredItems(self.schema, prompts)

    def finish_row(
        self, row: dict[str, Any], items: StructuredItems, j: int, resp: Response
    ) -> dict[str, Any]:
        """``row`` (run_rows.item_row of the final response) with the fields and both attempts' totals."""
        value, err = items.outcome(j, resp)
        attempts = items.attempts(j, resp)
        fields = self.schema.row(value) if value is not None else {}
        for f, c in self._fields:
            row[c] = (fields or None) if not f else fields.get(f)
        if err is not None:
            row["status"], row["error"] = "error", str(err)
        row["tokens"] = item_tokens(attempts)
        row["cost"] = item_cost(attempts)
        row["latency"] = item_latency(attempts)
        row["attempts"] = len(attempts)
        return row

    def blank(self, row: dict[str, Any]) -> dict[str, Any]:
        """An item that was never sent (refused before sending): no fields, no attempts."""
        row.update({c: None for _, c in self._fields})
        row["latency"], row["attempts"] = None, 0
        return row


def columns_and_kinds(structured: StructuredRun | None) -> tuple[list[str], dict[str, str] | None]:
    """A run's row columns, and its field columns' kinds (None without ``schema=``)."""
    if structured is None:
        return list(ROW_COLUMNS), None
    return structured.columns, structured.kinds


def _kind(json_schema: dict[str, Any], field: str) -> str:
    props = json_schema.get("properties") or {}
    sub = props.get(field) if field else None
    kind = sub.get("type") if isinstance(sub, dict) else None
    return {"integer": "int", "number": "float", "boolean": "bool", "string": "str"}.get(str(kind), "json")
