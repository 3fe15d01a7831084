"""``RunResult``: a batch that survives restarts, streams to a sink, waits for off-peak, or is estimated first.

``batch(..., run=, sink=, when=, estimate=)`` returns one. The items are read lazily, a chunk at
a time; each chunk runs under the batch's bounded, adaptive schedule (batch_schedule.py), and its
rows then go, in input order, to the sink (sinks.py) and the run's SQLite file (run_store.py).
Memory holds one chunk: no list of ``Response`` objects is kept, so the run's size is bounded by
the disk, not by memory. A persisted run also saves each answer as it finishes (every
``_SAVE_EVERY`` s), so a kernel killed mid-chunk loses only the answers of the last moments: the
next run of the same cell sends only the items without an ``ok`` answer.

Like ``BatchResult``: ``wait()`` / ``await``, ``cancel()``, ``progress``, ``table()`` (``schema=``: a column
per field, run_structured.py), ``texts``, ``failed``. An error of the run itself ends it; wait() raises it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Generator
from typing import Any

from .batch_progress import BatchProgress, Progress, format_progress
from .batch_schedule import Schedule
from .client import Client
from .engine import get_engine
from .errors import RunError
from .estimate import Estimate
from .offpeak import OffPeak
from .response import Response
from .run_rows import Inputs, error_row, item_row, secret_error
from .run_sample import sample_and_project
from .run_store import RunStore, prompt_hash
from .run_structured import StructuredRun, columns_and_kinds
from .sinks import MemorySink, Sink, open_sink
from .structured_result import StructuredItems
from .tables import as_table
from .waitable import Completion

__all__ = ["RunResult", "CHUNK"]

_log = logging.getLogger("ds_magic")

#: Items per chunk: what memory holds at once (and the sink's row-group size).
CHUNK = 1000
# A persisted run saves the answers that finished at most this often (and at each chunk's end).
_SAVE_EVERY = 0.5

Prompt = str | list[dict[str, Any]]


class RunResult:
    """The handle of a persisted, streamed, off-peak or estimated batch (see the module docstring)."""

    def __init__(
        self,
        inputs: Inputs,
        *,
        make_prompt: Callable[[Any], Prompt],
        client: Client,
        concurrency: int,
        chat_kwargs: dict[str, Any],
        check_secrets: bool,
        name: str | None,
        store: RunStore | None,
        sink: Any,
        gate: OffPeak | None,
        progress_for: Callable[[RunResult], Progress | None] | None = None,
        chunk: int = CHUNK,
        structured: StructuredRun | None = None,
    ) -> None:
        self.name = name
        self.index = inputs.index
        self.max_concurrency = self._limit = concurrency
        self.gate = gate
        self.store = store
        self.error: BaseException | None = None
        self._inputs = inputs
        self._make_prompt = make_prompt
        self._client = client
        self._chat_kwargs = chat_kwargs
        self._check_secrets = check_secrets
        self._sink_spec = sink
        self._sink: Sink | None = None
        self._progress_for = progress_for
        self._chunk = chunk
        self.structured = structured  # schema=: fields, checks and the one retry (run_structured.py)
        self.columns, self._kinds = columns_and_kinds(structured)
        self._prefilled: dict[int, dict[str, Any]] = {}  # rows of the estimate's sample
        self._estimate: Estimate | None = None
        self._progress: Progress | None = None
        self._started = False
        self._cancel_requested = False
        self._engine = get_engine()
        self._completion: Completion[RunResult] = Completion(self, self.cancel)
        # The chunk in progress, and the totals of those before it.
        self._current: Schedule | None = None
        self._checks: StructuredItems | None = None  # schema=: the chunk's checks and retries
        self._values: list[Any] = []  # the chunk's items, and their prompts' hashes
        self._hashes: list[str] = []
        self._sent: list[int] = []  # chunk-local index of each scheduled item
        self._base = 0
        self._unsaved: set[int] = set()
        self._made: dict[int, dict[str, Any]] = {}
        self._chunk_done = 0
        self._counts = {"ok": 0, "failed": 0, "cancelled": 0}
        self._seen = self._tokens = 0
        self._t0 = time.perf_counter()
        self._t_end: float | None = None
        self._last_save = 0.0

    # ----------------------------------------------------------------- before the start
    def estimate(self, sample: int = 3, *, account_concurrency: int | None = None) -> Estimate:
        """Cost and time of sending the items, from ``sample`` answers sent now (kept), or max_tokens."""
        if self._started:
            raise RuntimeError("estimate() is for a batch that has not started: batch(..., estimate=True)")
        seq = self._inputs.sequence
        if seq is None:
            raise ValueError(
                "an estimate needs the items in a list (a generator can be read only once): pass list(items)"
            )
        done = set(self.store.done(self.name, 0, len(seq))) if self.store and self.name else set()
        todo = [i for i in range(len(seq)) if i not in done and i not in self._prefilled]
        self._estimate, rows = sample_and_project(
            [(i, seq[i], self._make_prompt(seq[i])) for i in todo],
            sample=sample,
            client=self._client,
            chat_kwargs=self._chat_kwargs,
            blocked=self._blocked,
            structured=self.structured,
            concurrency=self.max_concurrency,
            account_concurrency=account_concurrency,
        )
        self._prefilled.update((row["item"], row) for row in rows)
        if self.store is not None and self.name is not None:
            self.store.put(self.name, rows)
        return self._estimate

    def start(self, progress: Progress | None = None) -> None:
        """Send the items (once). ``progress`` gets each snapshot; default: what ``batch(progress=)`` said."""
        if self._started:
            raise RuntimeError("this batch has already started")
        self._started = True
        if progress is None and self._progress_for is not None:
            progress = self._progress_for(self)
        self._progress = progress
        spec = self._sink_spec
        self._sink = open_sink(spec, self.columns, self._kinds) if spec is not None else None
        if self._sink is None and self.store is None:
            self._sink = MemorySink(self.columns)
        self._t0 = time.perf_counter()
        self._engine.submit(self._run())

    # ----------------------------------------------------------------- on the engine loop
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self._cancel_requested:
                if self._inputs.sequence is not None:
                    chunk = self._inputs.take(self._chunk)
                else:  # a generator may block (it reads a file, say): not on the engine loop
                    chunk = await loop.run_in_executor(None, self._inputs.take, self._chunk)
                if not chunk:
                    break
                self._seen += len(chunk)
                await self._run_chunk(chunk)
                self._base += len(chunk)
        except Exception as exc:
            self.error = exc
            _log.error("ds_magic: the run stopped: %s", exc)
        finally:
            try:
                if self._sink is not None:
                    self._sink.close()
            except Exception as exc:
                self.error = self.error or exc
            self._t_end = time.perf_counter()
            self._current = None
            self._emit()
            self._completion.set()

    async def _run_chunk(self, values: list[Any]) -> None:
        base, n = self._base, len(values)
        done = self.store.done(self.name, base, base + n) if self.store and self.name else {}
        done.update({k: v for k, v in self._prefilled.items() if base <= k < base + n})
        prompts = [self._make_prompt(v) for v in values]
        hashes = [prompt_hash(p) for p in prompts]
        for pos, row in done.items():
            if row["prompt_hash"] != hashes[pos - base]:
                name = self.name or ""
                raise RunError(
                    f"Item {pos} is not the item that run {name!r} answered (the items changed)",
                    f"keep the items in the same order, or use a new run name, or ds_magic.run({name!r}).delete()",
                    name,
                )
        rows: dict[int, dict[str, Any]] = {pos - base: row for pos, row in done.items()}
        blocked: list[int] = []
        for i in range(n):
            if i not in rows:
                err = self._blocked(base + i, prompts[i])
                if err is not None:
                    row = error_row(base + i, values[i], hashes[i], err)
                    rows[i] = self.structured.blank(row) if self.structured is not None else row
                    blocked.append(i)
        self._values, self._hashes = values, hashes
        self._sent = sent = [i for i in range(n) if i not in rows]
        self._unsaved, self._made = set(range(len(sent))), {}
        self._chunk_done = len(done)
        gate = self.gate
        checks = self._checks = self.structured.items([prompts[i] for i in sent]) if self.structured else None
        sched = Schedule(
            [prompts[i] for i in sent],
            client=self._client,
            concurrency=self.max_concurrency,
            chat_kwargs=self._chat_kwargs,
            may_start=(lambda j: gate.may_start(base + sent[j])) if gate is not None else None,
            followup=checks.followup if checks is not None else None,
        )
        sched.limit = self._limit  # what 429s taught the last chunk holds for this one too
        self._current = sched
        if self._cancel_requested:
            sched.cancel()
        await sched.run(self._tick)
        self._current, self._limit = None, sched.limit  # its counts move to the totals below
        for j, i in enumerate(sent):
            resp = sched.responses[j]
            if resp is not None:
                rows[i] = self._made.get(j) or self._row(base + i, values[i], resp, hashes[i], j)
        ordered = [rows[i] for i in range(n)]
        # Not saved yet: what finished since the last save (a cancelled item is simply missing, so
        # the next run sends it) and the items refused before sending.
        new = [rows[i] for j, i in enumerate(sent) if j in self._unsaved and rows[i]["status"] != "cancelled"]
        new += [rows[i] for i in blocked]
        if self.store is not None and self.name is not None:
            self.store.put(self.name, new)
        if self._sink is not None:
            self._sink.write(ordered)
        for row in ordered:
            self._counts[{"ok": "ok", "cancelled": "cancelled"}.get(row["status"], "failed")] += 1
        self._tokens += sum(rows[i]["tokens"] or 0 for i in sent)

    def _row(self, pos: int, value: Any, resp: Response, phash: str, j: int) -> dict[str, Any]:
        window, at = self.gate.take(pos) if self.gate is not None else (None, None)
        row = item_row(pos, value, resp, phash, window, at)
        if self.structured is not None and self._checks is not None:
            row = self.structured.finish_row(row, self._checks, j, resp)
        return row

    def _blocked(self, pos: int, prompt: Prompt) -> Exception | None:
        return secret_error(self._client, pos, prompt) if self._check_secrets else None

    def _tick(self) -> None:
        now = time.monotonic()
        if self.store is not None and now - self._last_save >= _SAVE_EVERY:
            self._last_save = now
            self._save_finished()
        self._emit()

    def _save_finished(self) -> None:
        """Save the answers that finished ok since the last save (a crash then loses none of them)."""
        sched, base, sent = self._current, self._base, self._sent
        if sched is None or self.store is None or self.name is None:
            return
        values = self._values
        rows = []
        for j in list(self._unsaved):
            resp = sched.responses[j]
            if resp is None or not resp.done or resp.status != "ok":
                continue
            if self._checks is None or self._checks.final(j, resp):  # schema=: not one to be retried
                i = sent[j]  # the hash of the item's own prompt: sched.prompts[j] may be its retry's
                row = self._made[j] = self._row(base + i, values[i], resp, self._hashes[i], j)
                rows.append(row)
                self._unsaved.discard(j)
        if rows:
            self.store.put(self.name, rows)

    def _emit(self) -> None:
        fn = self._progress
        if fn is None:
            return
        try:
            fn(self.snapshot())
        except Exception:
            _log.exception("ds_magic: a batch progress callback failed")

    # ----------------------------------------------------------------- from any thread
    def snapshot(self) -> BatchProgress:
        """Counts over the whole run (earlier chunks, answers it already had, the chunk now)."""
        sched, c = self._current, self._counts
        s = sched.snapshot() if sched is not None else None
        ok = c["ok"] + (s.done + self._chunk_done if s is not None else 0)
        failed, cancelled = c["failed"] + (s.failed if s else 0), c["cancelled"] + (s.cancelled if s else 0)
        total = self._inputs.total if self._inputs.total is not None else self._seen
        end = self._t_end
        elapsed = ((end if end is not None else time.perf_counter()) - self._t0) if self._started else 0.0
        tokens = self._tokens + (s.tokens if s is not None else 0)
        running, retrying = (s.running, s.retrying) if s is not None else (0, 0)
        return BatchProgress.of(
            total=total,
            done=ok,
            failed=failed,
            cancelled=cancelled,
            running=running,
            retrying=retrying,
            concurrency=s.concurrency if s is not None else self.max_concurrency,
            max_concurrency=self.max_concurrency,
            tokens=tokens,
            elapsed=elapsed,
            finished=end is not None,
            waiting=self.gate.seconds_left() if self.gate is not None and end is None else None,
        )

    @property
    def progress(self) -> BatchProgress:
        return self.snapshot()

    def cancel(self) -> None:
        """Stop: start nothing more (a wait for off-peak ends too), keep what finished. Thread-safe."""
        if self._completion.done:
            return
        self._cancel_requested = True
        sched = self._current
        if sched is not None:
            sched.cancel()
        if not self._started:
            self._completion.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_requested

    def add_done_callback(self, fn: Callable[[RunResult], None]) -> None:
        self._completion.add_done_callback(fn)

    @property
    def done(self) -> bool:
        return self._completion.done

    def wait(self, timeout: float | None = None) -> RunResult:
        """Block until the run ends (Ctrl-C / ■ cancels it); raise the run's own error if it had one."""
        if self._engine.in_engine_thread():
            raise RuntimeError("RunResult.wait() cannot be called from the engine thread")
        if not self._started:
            raise RuntimeError("this batch has not started: call result.start()")
        if not self._completion.wait(timeout):
            raise TimeoutError(f"the batch did not finish within {timeout} s")
        if self.error is not None:
            raise self.error
        return self

    def __await__(self) -> Generator[Any, None, RunResult]:
        yield from self._completion.wait_async().__await__()
        if self.error is not None:
            raise self.error
        return self

    # ----------------------------------------------------------------- results
    def __len__(self) -> int:
        return self._inputs.total if self._inputs.total is not None else self._seen

    def rows(self) -> list[dict[str, Any]]:
        """The rows, in input order (waits): from the sink, else from the run's file."""
        self.wait()
        if self._sink is not None:
            return self._sink.read()
        assert self.store is not None and self.name is not None
        return [r for r in self.store.rows(self.name) if r["item"] < self._seen]

    def table(self, *, as_dataframe: bool | None = None) -> Any:
        """item, input, text, status, error, tokens, ttft, tokens/s, cost, cached, retries, window (waits).

        A pandas DataFrame (indexed like the input Series/DataFrame) when pandas is installed.
        """
        rows = [{c: r.get(c) for c in self.columns} for r in self.rows()]
        index = self.index if self.index is not None and len(self.index) == len(rows) else None
        return as_table(rows, self.columns, as_dataframe, index=index)

    @property
    def texts(self) -> list[str]:
        return [r["text"] or "" for r in self.rows()]

    @property
    def failed(self) -> list[int]:
        """Items that ended in an error (waits)."""
        return [int(r["item"]) for r in self.rows() if r["status"] in ("error", "interrupted")]

    def __repr__(self) -> str:
        what = f"run {self.name!r}" if self.name else "batch"
        if not self._started:
            text = f"<{what}, not started: result.start() sends it>"
            return f"{self._estimate}\n{text}" if self._estimate is not None else text
        p = self.snapshot()
        state = "finished" if p.finished else ("cancelling" if self._cancel_requested else "running")
        return f"<{what} {state}: {format_progress(p)}>"
