"""A private SQLite file shared by kernels: the response cache's and the runs' (cache.py, run_store.py).

The file and its folder are made private and checked first (private_file.py). WAL mode with a busy
timeout lets two kernels use one file; autocommit, with writers issuing their own
``BEGIN IMMEDIATE``; ``check_same_thread=False`` because callers use the connection from worker
threads, always under their own lock.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .private_file import ensure_private

__all__ = ["connect_private"]


def connect_private(path: Path, schema: str, busy_timeout_ms: int) -> sqlite3.Connection:
    """Open (creating if need be) the private database at ``path`` and run ``schema`` on it."""
    ensure_private(path)
    db = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False)
    try:
        db.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.executescript(schema)
    except BaseException:
        db.close()
        raise
    return db
