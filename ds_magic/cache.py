"""An opt-in on-disk cache of complete answers: ask the same thing twice, pay once.

::

    client = Client(cache=True)          # $XDG_CACHE_HOME/ds_magic/responses.sqlite3
    client.chat("Hi").text               # a request
    client.chat("Hi").cached             # True: replayed from disk, no request, costs nothing

The key is the SHA-256 of the canonical request: the model, the messages (for a conversation, the
full list the request sends) and every parameter that changes the answer. Never the API key or
headers, and not ``stream``/``stream_options``/``user_id``, which change how the answer is
delivered or billed, not what it says. Only answers that ended ``ok`` are stored.

The file is SQLite in WAL mode with a busy timeout, so two kernels can share it; its folder is
created 0700 and the file 0600 (answers can be private), and a folder or file another user could
read or write, or a symlink, is refused (private_file.py). Entries are evicted least recently used
first once the stored answers pass ``max_bytes``. Any failure of the file (refused, damaged,
locked) is a one-line :class:`CacheError`; a request whose cache fails is sent without it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import CacheError
from .private_db import connect_private
from .response import Response, ResponseWriter
from .types import AnswerDelta, ReasoningDelta, ToolCallDelta, Usage, UsageEvent

__all__ = [
    "ResponseCache",
    "CachedAnswer",
    "request_key",
    "default_cache_path",
    "default_cache",
    "lookup",
    "store",
    "replay",
]

_log = logging.getLogger("ds_magic")

DEFAULT_MAX_BYTES = 200 * 1024 * 1024
_KEY_VERSION = "ds_magic.cache/1"
# Fields that do not change what the model says (deepseek-api.md §1.5): how it is streamed, and the
# per-user id used for rate limits.
_NOT_IN_KEY = frozenset({"stream", "stream_options", "user_id"})
_BUSY_TIMEOUT_MS = 10_000
# Replay: at most this many pieces, this far apart, so a view sees a (quick) stream.
_REPLAY_PIECES = 40
_REPLAY_DELAY = 0.004

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    created REAL NOT NULL,
    last_used INTEGER NOT NULL,
    size INTEGER NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0,
    value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_last_used ON responses (last_used);
"""


def default_cache_path() -> Path:
    """``$XDG_CACHE_HOME/ds_magic/responses.sqlite3``, or ``~/.cache/ds_magic/...``."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    return root / "ds_magic" / "responses.sqlite3"


def request_key(body: Mapping[str, Any], *, scope: tuple[str, ...] = ()) -> str:
    """The cache key of a request body: SHA-256 of its canonical JSON, delivery options left out.

    ``scope`` is whatever else decides the answer a client gets: the endpoint (``"beta"``) and its
    redaction rules (``RedactRules.fingerprint``), so one client is never served another's masked
    answer, nor a client without rules a masked one.
    """
    canon = {k: v for k, v in body.items() if k not in _NOT_IN_KEY}
    payload = json.dumps(
        [_KEY_VERSION, *scope, canon],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedAnswer:
    """What is stored for one request."""

    text: str
    reasoning: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage | None = None
    finish_reason: str | None = None
    model: str = ""
    created: float = 0.0

    @classmethod
    def from_response(cls, resp: Response) -> CachedAnswer:
        return cls(
            text=resp.text_so_far,
            reasoning=resp.reasoning,
            tool_calls=[{"index": c.index, **c.to_message()} for c in resp.tool_calls],
            usage=resp.usage,
            finish_reason=resp.finish_reason,
            model=resp.model,
            created=resp.created,
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "text": self.text,
                "reasoning": self.reasoning,
                "tool_calls": self.tool_calls,
                "usage": self.usage.to_dict() if self.usage is not None else None,
                "finish_reason": self.finish_reason,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_row(cls, value: str, model: str, created: float) -> CachedAnswer:
        data = json.loads(value)
        usage = data.get("usage")
        return cls(
            text=str(data.get("text") or ""),
            reasoning=str(data.get("reasoning") or ""),
            tool_calls=[c for c in data.get("tool_calls") or [] if isinstance(c, dict)],
            usage=Usage(**{k: int(v) for k, v in usage.items()}) if isinstance(usage, dict) else None,
            finish_reason=data.get("finish_reason"),
            model=model,
            created=created,
        )


class ResponseCache:
    """A SQLite store of complete answers, shared safely between threads and processes.

    ``stats()`` gives entries and bytes on disk and this object's hits and misses.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes must be an integer ≥ 0, got {max_bytes!r}")
        self.path = Path(path) if path is not None else default_cache_path()
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._refused_key: str | None = None  # its lookup failed and said so: its store says nothing

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r}, max_bytes={self.max_bytes})"

    @contextmanager
    def _using(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; any SQLite failure becomes one line (CacheError)."""
        with self._lock:
            try:
                yield self._conn()
            except sqlite3.Error as exc:
                raise _db_error(exc, self.path) from None

    def _conn(self) -> sqlite3.Connection:
        # Called with self._lock held.
        if self._db is None:
            self._db = connect_private(self.path, _SCHEMA, _BUSY_TIMEOUT_MS)
        return self._db

    # ----------------------------------------------------------------- lookups
    def get(self, key: str) -> CachedAnswer | None:
        """The stored answer for ``key`` (and mark it used), or None."""
        with self._using() as db:
            row = db.execute("SELECT value, model, created FROM responses WHERE key = ?", (key,)).fetchone()
            if row is None:
                self.misses += 1
                return None
            db.execute(
                "UPDATE responses SET last_used = ?, hits = hits + 1 WHERE key = ?", (time.time_ns(), key)
            )
            self.hits += 1
        try:
            return CachedAnswer.from_row(row[0], row[1], row[2])
        except (ValueError, TypeError, AttributeError, RecursionError):
            _log.warning("ds_magic: unreadable cache entry %s… ignored", key[:12])
            return None

    def put(self, key: str, answer: CachedAnswer | Response) -> bool:
        """Store an answer; a ``Response`` only if it ended ``ok``. Returns whether it was stored."""
        if isinstance(answer, Response):
            if answer.status != "ok":
                return False
            answer = CachedAnswer.from_response(answer)
        value = answer.to_json()
        size = len(value.encode("utf-8")) + len(key) + len(answer.model) + 32
        if size > self.max_bytes:
            return False
        with self._using() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT OR REPLACE INTO responses (key, model, created, last_used, size, hits, value) "
                    "VALUES (?, ?, ?, ?, ?, 0, ?)",
                    (key, answer.model, answer.created or time.time(), time.time_ns(), size, value),
                )
                self._evict(db)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return True

    def _evict(self, db: sqlite3.Connection) -> None:
        total = db.execute("SELECT COALESCE(SUM(size), 0) FROM responses").fetchone()[0]
        if total <= self.max_bytes:
            return
        doomed: list[tuple[str]] = []
        for key, size in db.execute("SELECT key, size FROM responses ORDER BY last_used ASC"):
            if total <= self.max_bytes:
                break
            doomed.append((key,))
            total -= size
        db.executemany("DELETE FROM responses WHERE key = ?", doomed)

    # ----------------------------------------------------------------- housekeeping
    def stats(self) -> dict[str, Any]:
        """``entries`` and ``bytes`` stored (all processes), ``hits`` and ``misses`` (this object)."""
        with self._using() as db:
            entries, size = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM responses").fetchone()
        return {
            "entries": int(entries),
            "bytes": int(size),
            "hits": self.hits,
            "misses": self.misses,
            "max_bytes": self.max_bytes,
            "path": str(self.path),
        }

    def clear(self) -> None:
        """Remove every entry and give the space back."""
        with self._using() as db:
            db.execute("DELETE FROM responses")
            db.execute("VACUUM")
            self.hits = self.misses = 0

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _db_error(exc: sqlite3.Error, path: Path) -> CacheError:
    if isinstance(exc, sqlite3.OperationalError):  # locked, read-only, disk I/O, out of space
        return CacheError(
            f"The response cache file {path} could not be used ({exc})",
            "check the disk and that no other program holds the file, then try again",
            str(path),
        )
    return CacheError(
        f"The response cache file {path} is damaged or not a cache ({exc})",
        "delete it: a new one is made with the next answer",
        str(path),
    )


_defaults: dict[Path, ResponseCache] = {}
_defaults_lock = threading.Lock()


def default_cache() -> ResponseCache:
    """The process-wide cache at the default path (what ``cache=True`` means)."""
    path = default_cache_path()
    with _defaults_lock:
        cache = _defaults.get(path)
        if cache is None:
            cache = _defaults[path] = ResponseCache(path)
        return cache


def resolve(cache: ResponseCache | bool | None) -> ResponseCache | None:
    """``True`` → the default cache, ``False``/``None`` → none, a ``ResponseCache`` → itself."""
    if cache is None or cache is False:
        return None
    if cache is True:
        return default_cache()
    if isinstance(cache, ResponseCache):
        return cache
    raise TypeError(f"cache must be True, False, None or a ResponseCache, got {type(cache).__name__}")


# --------------------------------------------------------------------- on the engine loop
async def lookup(cache: ResponseCache, key: str) -> CachedAnswer | None:
    """The stored answer, read off the engine loop; a cache that cannot be read is a miss."""
    try:
        return await asyncio.to_thread(cache.get, key)
    except (CacheError, OSError) as exc:
        cache._refused_key = key
        _log.warning("ds_magic: %s; the request is sent without the cache", exc)
        return None


async def store(cache: ResponseCache, key: str, resp: Response, finish_reason: str | None) -> None:
    """Store a complete answer before it reports done, so the next identical request hits."""
    answer = replace(CachedAnswer.from_response(resp), finish_reason=finish_reason)
    try:
        await asyncio.to_thread(cache.put, key, answer)
    except (CacheError, OSError) as exc:
        if cache._refused_key != key:  # one line per request: its lookup did not say it already
            _log.warning("ds_magic: %s; the answer was not stored", exc)
    cache._refused_key = None


def _pieces(text: str) -> list[str]:
    if not text:
        return []
    size = max(8, -(-len(text) // _REPLAY_PIECES))
    return [text[i : i + size] for i in range(0, len(text), size)]


async def replay(writer: ResponseWriter, answer: CachedAnswer) -> None:
    """Push a stored answer through the normal event path, in small pieces, as a quick stream."""
    writer.response.cached = True
    for piece in _pieces(answer.reasoning):
        writer.push(ReasoningDelta(piece))
        await asyncio.sleep(_REPLAY_DELAY)
    for piece in _pieces(answer.text):
        writer.push(AnswerDelta(piece))
        await asyncio.sleep(_REPLAY_DELAY)
    calls = []
    for i, call in enumerate(answer.tool_calls):  # a hand-edited file may hold anything: text only
        fn = call.get("function")
        fn = fn if isinstance(fn, dict) else {}
        index = call.get("index", i)
        calls.append(
            ToolCallDelta(
                index=index if type(index) is int else i,
                id=str(call.get("id") or "") or None,
                name=str(fn.get("name") or "") or None,
                arguments=str(fn.get("arguments") or ""),
            )
        )
    if calls:
        writer.push_many(calls)
    if answer.usage is not None:
        writer.push(UsageEvent(answer.usage))
