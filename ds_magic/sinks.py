"""Where a streamed run writes its rows, in input order, as it goes: Parquet, CSV, or memory.

::

    ds_magic.batch("Label: {item}", read_rows(), sink="labels.parquet")   # an iterable of any size
    ds_magic.batch("Label: {item}", read_rows(), sink="labels.csv", run="labels-v2")

A run hands its sink the rows of each chunk of items once the whole chunk has ended, so rows
arrive in input order and memory holds one chunk, never the whole run. ``sink.read()`` gives the
rows back (``RunResult.table()`` uses it). A persisted run (``run=``) also keeps every row in its
SQLite file (run_store.py); with no ``sink=`` that is where its rows are.

Parquet needs pyarrow (the ``parquet`` extra): a columnar file that pandas, polars and DuckDB read
directly, written one row group per chunk, so a 200,000-row run never holds more than a chunk.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from .run_store import ROW_COLUMNS

__all__ = ["Sink", "ParquetSink", "CsvSink", "MemorySink", "open_sink", "input_text"]


class Sink(Protocol):
    """What a run writes to: ``write`` the rows of a chunk (in order), ``close`` at the end."""

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None: ...
    def close(self) -> None: ...
    def read(self) -> list[dict[str, Any]]: ...


def input_text(value: Any) -> str:
    """An input as one text cell: a string as it is, anything else as JSON (or its ``str``)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _cell(value: Any) -> Any:
    """A schema field's value in a text or string cell: a list or an object as JSON."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value


class MemorySink:
    """Rows in a list: for a run of a size that fits in memory (``when=`` or ``estimate=`` alone)."""

    def __init__(self, columns: Sequence[str] = ROW_COLUMNS) -> None:
        self.rows: list[dict[str, Any]] = []
        self.columns = list(columns)

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self.rows.extend({c: r.get(c) for c in self.columns} for r in rows)

    def close(self) -> None:
        pass

    def read(self) -> list[dict[str, Any]]:
        return list(self.rows)


class CsvSink:
    """A CSV file with a header row, written with the stdlib ``csv`` module (UTF-8, ``\\n`` rows)."""

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[str] = ROW_COLUMNS) -> None:
        self.path = Path(path)
        self._file = open(self.path, "w", newline="", encoding="utf-8")  # closed in close()
        self._writer = csv.DictWriter(self._file, fieldnames=list(columns), extrasaction="ignore")
        self._writer.writeheader()

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self._writer.writerows({k: _cell(v) for k, v in r.items()} for r in rows)
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def read(self) -> list[dict[str, Any]]:
        with open(self.path, newline="", encoding="utf-8") as f:
            return [dict(r) for r in csv.DictReader(f)]


def _pyarrow() -> Any:
    try:
        return importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise ImportError("a Parquet sink needs pyarrow: pip install 'ds_magic[parquet]'") from None


class ParquetSink:
    """A Parquet file, one row group per chunk of the run (pyarrow)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        columns: Sequence[str] = ROW_COLUMNS,
        kinds: Mapping[str, str] | None = None,
    ) -> None:
        """``kinds``: a schema field column's type, "int", "float", "bool", "str" or "json" (a string)."""
        pq = _pyarrow()
        pa = importlib.import_module("pyarrow")
        self.path = Path(path)
        types = {
            "item": pa.int64(),
            "tokens": pa.int64(),
            "retries": pa.int64(),
            "ttft": pa.float64(),
            "tokens/s": pa.float64(),
            "cost": pa.float64(),
            "cached": pa.bool_(),
            "latency": pa.float64(),
            "attempts": pa.int64(),
        }
        by_kind = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
        for c, kind in (kinds or {}).items():
            types[c] = by_kind.get(kind, pa.string())
        self._json = {c for c, kind in (kinds or {}).items() if kind == "json"}
        self._columns = list(columns)
        self._pa = pa
        self._schema = pa.schema([(c, types.get(c, pa.string())) for c in self._columns])
        self._writer = pq.ParquetWriter(str(self.path), self._schema)
        self._closed = False

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            columns = {c: [r.get(c) for r in rows] for c in self._columns}
            for c in self._json:  # any JSON value (a list, an object, a $ref'd enum): its JSON text
                columns[c] = [None if v is None else json.dumps(v, ensure_ascii=False) for v in columns[c]]
            self._writer.write_table(self._pa.table(columns, schema=self._schema))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._writer.close()

    def read(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = _pyarrow().read_table(str(self.path)).to_pylist()
        return rows

    def batches(self, size: int = 10_000) -> Iterator[list[dict[str, Any]]]:
        """The rows back in batches of ``size``, without reading the whole file at once."""
        for batch in _pyarrow().ParquetFile(str(self.path)).iter_batches(batch_size=size):
            yield batch.to_pylist()


def open_sink(
    spec: Any, columns: Sequence[str] = ROW_COLUMNS, kinds: Mapping[str, str] | None = None
) -> Sink:
    """A sink from ``sink=``: a path ending ``.parquet`` / ``.csv``, or an object with ``write``/``close``/``read``.

    ``columns`` / ``kinds``: a schema'd run's columns and its field columns' types (run_structured.py).
    """
    if isinstance(spec, (str, os.PathLike)):
        suffix = Path(spec).suffix.lower()
        if suffix in (".parquet", ".pq"):
            return ParquetSink(spec, columns, kinds)
        if suffix == ".csv":
            return CsvSink(spec, columns)
        raise ValueError(f"sink= needs a file ending .parquet or .csv, got {os.fspath(spec)!r}")
    if all(callable(getattr(spec, m, None)) for m in ("write", "close", "read")):
        sink: Sink = spec
        return sink
    raise TypeError(f"sink= must be a .parquet or .csv path or a Sink, not {type(spec).__name__}")
