"""Persistent runs: a ``batch(..., run="labels-v2")`` kept in SQLite next to the response cache.

::

    ds_magic.batch("Label: {item}", rows, run="labels-v2")   # again after a restart: sends only the rest
    ds_magic.runs()                                           # every run: items, ok, failed, settings
    ds_magic.run("labels-v2").table()                         # one run's rows, in input order

The file is ``runs.sqlite3`` in the cache's folder (``$XDG_CACHE_HOME/ds_magic/``), made private
and checked like the cache's file (private_file.py): answers can be private. It holds, per run, its
settings (template, model, system prompt, parameters) and their fingerprint, and per item its
input, the hash of the prompt it was sent as, and its answer or failure. Only items whose answer is
``ok`` count as done: a failed item is sent again by the next run of the same cell.

SQLite in WAL mode with a busy timeout, autocommit and explicit ``BEGIN IMMEDIATE`` for writes, as
in cache.py, so that a kernel killed mid-write loses at most the rows of the write in progress.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .cache import default_cache_path
from .errors import RunError
from .private_db import connect_private
from .tables import ANSWER_COLUMNS, as_table

__all__ = [
    "RunStore",
    "StoredRun",
    "ROW_COLUMNS",
    "fingerprint",
    "prompt_hash",
    "default_runs_path",
    "default_store",
    "runs",
    "run",
]

#: The columns of a run's rows: in the store, in a sink, in ``table()``.
ROW_COLUMNS = ("item", *ANSWER_COLUMNS, "window")

_BUSY_TIMEOUT_MS = 10_000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    name TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    settings TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    run TEXT NOT NULL,
    item INTEGER NOT NULL,
    prompt_hash TEXT NOT NULL,
    input TEXT, text TEXT, status TEXT NOT NULL, error TEXT, tokens INTEGER, ttft REAL, tps REAL,
    cost REAL, cached INTEGER, retries INTEGER, window TEXT, finished REAL NOT NULL,
    PRIMARY KEY (run, item)
);
"""
# Row keys ↔ SQL columns ("tokens/s" is not a valid bare SQL name).
_SQL = {"tokens/s": "tps"}
_VALUE_COLUMNS = [c for c in ROW_COLUMNS if c != "item"]
# A schema'd run's extra keys (its fields, latency, attempts: run_structured.py), as one JSON text;
# added to a runs file made before schema= runs existed.
_EXTRA = "structured"
_ADD_EXTRA = f"ALTER TABLE items ADD COLUMN {_EXTRA} TEXT"


def default_runs_path() -> Path:
    """``runs.sqlite3`` in the response cache's folder."""
    return default_cache_path().parent / "runs.sqlite3"


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def fingerprint(settings: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a run's settings: what decides its answers."""
    return hashlib.sha256(_canon(dict(settings)).encode("utf-8")).hexdigest()


def prompt_hash(prompt: Any) -> str:
    """A short hash of the prompt an item is sent as: a changed item is not mistaken for a done one."""
    return hashlib.sha256(_canon(prompt).encode("utf-8")).hexdigest()[:32]


def _differs(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    keys = sorted(k for k in {*old, *new} if _canon(old.get(k)) != _canon(new.get(k)))
    return ", ".join(keys) or "settings"


class RunStore:
    """The runs file. Thread-safe: one connection, used under a lock (the engine thread writes)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_runs_path()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"<RunStore {self.path}>"

    def _conn(self) -> sqlite3.Connection:
        # Called with self._lock held.
        if self._db is None:
            self._db = connect_private(self.path, _SCHEMA, _BUSY_TIMEOUT_MS)
            if _EXTRA not in {r[1] for r in self._db.execute("PRAGMA table_info(items)")}:
                self._db.execute(_ADD_EXTRA)
        return self._db

    def _query(self, name: str, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return list(self._conn().execute(sql, tuple(args)))
        except sqlite3.Error as exc:
            raise _db_error(exc, self.path, name) from None

    # ----------------------------------------------------------------- runs
    def open(self, name: str, settings: Mapping[str, Any]) -> bool:
        """Create run ``name`` or check that it was made with the same settings; True if it existed.

        Other settings under the same name are a :class:`RunError` that says what differs and what
        to do, so a changed template never mixes two kinds of answers in one table.
        """
        fp = fingerprint(settings)
        rows = self._query(name, "SELECT fingerprint, settings FROM runs WHERE name = ?", (name,))
        if rows:
            if rows[0][0] != fp:
                what = _differs(json.loads(rows[0][1]), json.loads(_canon(dict(settings))))
                raise RunError(
                    f"Run {name!r} was started with another {what}",
                    f"use a new run name, or ds_magic.run({name!r}).delete() to start it over",
                    name,
                )
            return True
        now = time.time()
        self._write(
            name,
            "INSERT OR IGNORE INTO runs (name, fingerprint, settings, created, updated) VALUES (?, ?, ?, ?, ?)",
            [(name, fp, _canon(dict(settings)), now, now)],
        )
        return False

    def settings(self, name: str) -> dict[str, Any] | None:
        rows = self._query(name, "SELECT settings FROM runs WHERE name = ?", (name,))
        return json.loads(rows[0][0]) if rows else None

    def delete(self, name: str) -> None:
        self._write(name, "DELETE FROM items WHERE run = ?", [(name,)])
        self._write(name, "DELETE FROM runs WHERE name = ?", [(name,)])

    def names(self) -> list[str]:
        return [r[0] for r in self._query("", "SELECT name FROM runs ORDER BY created")]

    def summary(self) -> list[dict[str, Any]]:
        """One dict per run: name, created, updated, items, ok, failed, model, template."""
        sql = """SELECT r.name, r.created, r.updated, r.settings, COUNT(i.item),
                        COALESCE(SUM(i.status = 'ok'), 0), COALESCE(SUM(i.status != 'ok'), 0), SUM(i.cost)
                 FROM runs r LEFT JOIN items i ON i.run = r.name GROUP BY r.name ORDER BY r.created"""
        out = []
        for name, created, updated, settings, n, ok, failed, cost in self._query("", sql):
            s = json.loads(settings)
            out.append(
                {
                    "name": name,
                    "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created)),
                    "updated": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(updated)),
                    "items": n,
                    "ok": ok,
                    "failed": failed,
                    "cost": cost,
                    "model": s.get("model"),
                    "template": s.get("template"),
                }
            )
        return out

    # ----------------------------------------------------------------- items
    def put(self, name: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Insert or replace item rows (each with ``item``, ``prompt_hash`` and the ROW_COLUMNS)."""
        now = time.time()
        values = [
            (
                name,
                r["item"],
                r["prompt_hash"],
                *(int(r[c]) if c == "cached" and r[c] is not None else r.get(c) for c in _VALUE_COLUMNS),
                now,
                _extra(r),
            )
            for r in rows
        ]
        if not values:
            return
        cols = ", ".join(_SQL.get(c, c) for c in _VALUE_COLUMNS)
        marks = ", ".join("?" * (len(_VALUE_COLUMNS) + 5))
        self._write(
            name,
            f"INSERT OR REPLACE INTO items (run, item, prompt_hash, {cols}, finished, {_EXTRA}) VALUES ({marks})",
            values,
        )
        self._write(name, "UPDATE runs SET updated = ? WHERE name = ?", [(now, name)])

    def done(self, name: str, lo: int, hi: int) -> dict[int, dict[str, Any]]:
        """The ``ok`` rows of items ``lo <= item < hi`` (with their ``prompt_hash``), by item."""
        return {
            r["item"]: r for r in self._rows(name, "AND item >= ? AND item < ? AND status = 'ok'", (lo, hi))
        }

    def rows(self, name: str) -> list[dict[str, Any]]:
        """Every row of run ``name``, in input order."""
        return self._rows(name, "", ())

    def _rows(self, name: str, where: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        cols = ", ".join(["item", "prompt_hash", *(_SQL.get(c, c) for c in _VALUE_COLUMNS), _EXTRA])
        sql = f"SELECT {cols} FROM items WHERE run = ? {where} ORDER BY item"
        out = []
        for *values, extra in self._query(name, sql, (name, *args)):
            row = dict(zip(["item", "prompt_hash", *_VALUE_COLUMNS], values, strict=True))
            row["cached"] = bool(row["cached"]) if row["cached"] is not None else None
            if extra is not None:
                row.update(json.loads(extra))
            out.append(row)
        return out

    def _write(self, name: str, sql: str, values: list[tuple[Any, ...]]) -> None:
        try:
            with self._lock:
                db = self._conn()
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.executemany(sql, values)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise _db_error(exc, self.path, name) from None

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _extra(row: Mapping[str, Any]) -> str | None:
    """The keys of a row besides the plain columns (a schema'd run's fields), as JSON; None if none."""
    more = {k: v for k, v in row.items() if k not in ROW_COLUMNS and k != "prompt_hash"}
    return _canon(more) if more else None


def _db_error(exc: sqlite3.Error, path: Path, name: str) -> RunError:
    return RunError(
        f"The runs file {path} cannot be used ({exc})",
        "close other programs that hold it, or move it away to start with no runs",
        name,
    )


_stores: dict[Path, RunStore] = {}
_stores_lock = threading.Lock()


def default_store(path: str | os.PathLike[str] | None = None) -> RunStore:
    """The process's store for ``path`` (default: next to the cache), opened once."""
    p = Path(path) if path is not None else default_runs_path()
    with _stores_lock:
        store = _stores.get(p)
        if store is None:
            store = _stores[p] = RunStore(p)
        return store


class StoredRun:
    """A persisted run, as ``ds_magic.run(name)`` loads it back: its settings and its rows."""

    def __init__(self, name: str, store: RunStore) -> None:
        settings = store.settings(name)
        if settings is None:
            raise RunError(f"No run named {name!r}", "ds_magic.runs() lists the runs there are", name)
        self.name = name
        self.store = store
        self.settings = settings

    def table(self, *, as_dataframe: bool | None = None) -> Any:
        """The run's rows in input order: a DataFrame when pandas is installed, else dicts."""
        columns = list(self.settings.get("columns") or ROW_COLUMNS)  # a schema'd run: its field columns
        rows = [{c: r.get(c) for c in columns} for r in self.store.rows(self.name)]
        return as_table(rows, columns, as_dataframe)

    def delete(self) -> None:
        """Forget the run and its answers (a new run of the same name starts from nothing)."""
        self.store.delete(self.name)

    def __repr__(self) -> str:
        mine = [s for s in self.store.summary() if s["name"] == self.name]
        counts = f"{mine[0]['ok']} ok, {mine[0]['failed']} failed" if mine else "gone"
        return f"<run {self.name!r}: {counts}; model {self.settings.get('model')}>"


def runs(*, path: str | os.PathLike[str] | None = None, as_dataframe: bool | None = None) -> Any:
    """Every persisted run: name, created, updated, items, ok, failed, cost, model, template."""
    cols = ["name", "created", "updated", "items", "ok", "failed", "cost", "model", "template"]
    return as_table(default_store(path).summary(), cols, as_dataframe)


def run(name: str, *, path: str | os.PathLike[str] | None = None) -> StoredRun:
    """Load persisted run ``name``: ``.table()``, ``.settings``, ``.delete()``."""
    return StoredRun(name, default_store(path))
