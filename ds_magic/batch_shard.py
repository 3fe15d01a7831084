"""Sharded batch: ``batch(..., processes=N)`` runs the items in N worker processes, each with its own engine.

One engine loop reads a few tens of thousands of events per second per core (benchmarks/scale.py);
the account's cap (2,500 streams × 50 tokens/s = 125,000 events/s for deepseek-flash,
deepseek-api.md §3.3) needs several cores. So the items are dealt out round-robin to worker processes
(``spawn``: safe from a kernel with threads), each running an ordinary :class:`Schedule` on its own
engine with its share of the concurrency, its own 429 adaptation included. The kernel gets only
finished answers and a merged progress snapshot a few times a second, never the events; each answer
is rebuilt here as an ordinary, ended ``Response`` with the worker's timings, in input order.
``cancel()`` reaches every worker (a shared event); what finished is kept, as in one process.

A distributed engine is not needed: the account's cap, not the machine, bounds the throughput.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import pickle
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from . import errors
from .batch_progress import BatchProgress
from .batch_schedule import Schedule
from .client import Client
from .engine import get_engine
from .errors import DeepSeekError
from .response import Response, ResponseWriter
from .types import AnswerDelta, Event, ReasoningDelta, ToolCallDelta, UsageEvent

__all__ = ["ShardedSchedule", "choose_processes"]

#: Streams one worker is given before ``processes="auto"`` adds another (one core's comfortable load).
STREAMS_PER_PROCESS = 250
# How often a worker sends its progress (the kernel's view redraws about as often).
_PROGRESS_EVERY = 0.25
_POLL = 0.25


def choose_processes(processes: int | str | None, concurrency: int, items: int) -> int:
    """How many worker processes: 0 means in this process (``processes=None``, or one would do)."""
    if processes is None:
        return 0
    if processes == "auto":
        n = min(os.cpu_count() or 1, math.ceil(concurrency / STREAMS_PER_PROCESS))
    elif isinstance(processes, int) and not isinstance(processes, bool) and processes >= 1:
        n = processes
    else:
        raise ValueError(f"processes must be a positive integer, 'auto' or None, got {processes!r}")
    n = min(n, items, concurrency)
    return n if n > 1 else 0


def _shares(total: int, n: int) -> list[int]:
    base, extra = divmod(total, n)
    return [base + (1 if w < extra else 0) for w in range(n)]


class ShardedSchedule:
    """The items of a batch run in worker processes; the surface ``BatchResult`` uses of a ``Schedule``."""

    def __init__(
        self,
        prompts: list[str | list[dict[str, Any]]],
        *,
        client: Client,
        concurrency: int,
        chat_kwargs: dict[str, Any],
        processes: int,
    ) -> None:
        self.prompts = prompts
        self.max_concurrency = self.limit = concurrency
        self.history: list[tuple[float, int]] = [(0.0, concurrency)]
        self.processes = processes
        self.responses: list[Response | None] = [None] * len(prompts)
        self.cancel_requested = False
        self._model: str = chat_kwargs.get("model") or client.model
        try:  # checked now, so a client that cannot travel fails at batch(), not in a worker
            self._payload = pickle.dumps((client, chat_kwargs))
        except Exception as exc:
            raise ValueError(
                f"batch(processes=...) sends the client to worker processes, and this one cannot be sent "
                f"({type(exc).__name__}: {exc}); use a Client without http_client= (and a cache by path), "
                "or processes=None"
            ) from None
        self._ctx = multiprocessing.get_context("spawn")
        self._stop = self._ctx.Event()
        self._snaps: dict[int, BatchProgress] = {}
        self._lock = threading.Lock()
        self._t0 = time.perf_counter()
        self._t_end: float | None = None

    # ----------------------------------------------------------------- from any thread
    def cancel(self) -> None:
        with self._lock:
            if self.cancel_requested or self._t_end is not None:
                return
            self.cancel_requested = True
        self._stop.set()  # every worker cancels its own schedule (_worker's watcher)

    def snapshot(self) -> BatchProgress:
        snaps = list(self._snaps.values())
        total = len(self.prompts)
        end = self._t_end
        elapsed = (end if end is not None else time.perf_counter()) - self._t0

        def total_of(name: str) -> int:
            return sum(int(getattr(s, name)) for s in snaps)

        done, failed, cancelled = total_of("done"), total_of("failed"), total_of("cancelled")
        running, retrying, tokens = total_of("running"), total_of("retrying"), total_of("tokens")
        if end is not None:  # what the workers never reported (a worker that died) is settled here
            states = [r.status for r in self.responses if r is not None]
            done, running, retrying = states.count("ok"), 0, 0
            cancelled = states.count("cancelled")
            failed = len(states) - done - cancelled
        return BatchProgress.of(
            total=total,
            done=done,
            failed=failed,
            cancelled=cancelled,
            running=running,
            retrying=retrying,
            concurrency=total_of("concurrency") if snaps else self.limit,
            max_concurrency=self.max_concurrency,
            tokens=tokens,
            elapsed=elapsed,
            finished=end is not None,
        )

    # ----------------------------------------------------------------- on the engine loop
    async def run(self, tick: Callable[[], None]) -> None:
        self._t0 = time.perf_counter()
        loop = asyncio.get_running_loop()
        n = len(self.prompts)
        shards = [list(range(w, n, self.processes)) for w in range(self.processes)]
        results = self._ctx.Queue()
        procs = []
        for w, (idx, share) in enumerate(
            zip(shards, _shares(self.max_concurrency, self.processes), strict=True)
        ):
            args = (w, self._payload, [self.prompts[i] for i in idx], idx, share, results, self._stop)
            procs.append(self._ctx.Process(target=_worker, args=args, name=f"ds-batch-{w}", daemon=True))
        try:
            await loop.run_in_executor(None, _each, procs, "start")
            running = set(range(self.processes))
            while running:
                for msg in await loop.run_in_executor(None, _get_many, results, _POLL):
                    self._receive(msg, running)
                for w in list(running):
                    if procs[w].exitcode is not None and results.empty():
                        running.discard(w)  # it died without saying it was done: see _missing
                self.limit = sum(s.concurrency for s in self._snaps.values()) or self.limit
                tick()
        finally:
            if any(p.is_alive() for p in procs):
                self._stop.set()  # this engine task was cancelled (engine shutdown): stop them too
            await loop.run_in_executor(None, _each, procs, "join")
            for i, r in enumerate(self.responses):
                if r is None:
                    self.responses[i] = self._missing(i)
            with self._lock:
                self._t_end = time.perf_counter()

    def _receive(self, msg: tuple[Any, ...], running: set[int]) -> None:
        kind, w, body = msg
        if kind == "progress":
            self._snaps[w] = body
        elif kind == "answer":
            self.responses[body["i"]] = _rebuild(body)
        elif kind == "done":
            running.discard(w)
        elif kind == "failed":  # the worker could not run at all: its items fail with its reason
            for i in body["indices"]:
                if self.responses[i] is None:
                    self.responses[i] = self._missing(i, body["error"])

    def _missing(self, i: int, why: str | None = None) -> Response:
        """The answer of an item no worker reported: cancelled, or failed with the worker's reason."""
        prompt = self.prompts[i]
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        resp = Response(model=self._model, request={"model": self._model, "messages": messages})
        if self.cancel_requested and why is None:
            ResponseWriter(resp).finish("cancelled")
        else:
            why = why or "the batch's worker process ended before this item finished"
            ResponseWriter(resp).finish("error", DeepSeekError(why))
        return resp


def _each(procs: list[Any], what: str) -> None:
    """Start (or join, 10 s at most each) the worker processes: blocking, so in an executor thread."""
    for p in procs:
        p.start() if what == "start" else p.join(10)


def _get_many(results: Any, timeout: float) -> list[tuple[Any, ...]]:
    """Everything queued now, or the first message within ``timeout`` (run in an executor thread)."""
    try:
        out = [results.get(True, timeout)]
    except queue.Empty:
        return []
    while True:
        try:
            out.append(results.get_nowait())
        except queue.Empty:
            return out


# ------------------------------------------------------------------ both ends of one answer
def _payload(i: int, r: Response) -> dict[str, Any]:
    c = r.timing
    return {
        "i": i,
        "model": r.model,
        "request": r.request,
        "status": r.status,
        "error": _pack_error(r.error),
        "finish_reason": r.finish_reason,
        "text": r.text_so_far,
        "reasoning": r.reasoning,
        "tool_calls": r.tool_calls,
        "usage": r.usage,
        "timing": (c.time_to_first_token, c.time_to_first_answer_token, c.total, c.tokens),
        "retries": r.retries,
        "resumes": r.resumes,
        "cached": r.cached,
    }


def _pack_error(err: DeepSeekError | None) -> tuple[str, tuple[Any, ...], dict[str, Any]] | str | None:
    """An error as its class name, args and attributes: ours take keyword-only arguments, which
    plain pickling of an exception (``cls(*args)``) cannot call back."""
    if err is None:
        return None
    packed = (type(err).__name__, err.args, dict(vars(err)))
    try:
        pickle.dumps(packed)
    except Exception:
        return str(err)  # an attribute that cannot travel: the message does
    return packed


def _unpack_error(packed: tuple[str, tuple[Any, ...], dict[str, Any]] | str | None) -> DeepSeekError | None:
    if packed is None:
        return None
    if isinstance(packed, str):
        return DeepSeekError(packed)
    name, args, attrs = packed
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, DeepSeekError)):
        return DeepSeekError(str(args[0]) if args else name)
    err = cls.__new__(cls)  # the state as it was, without running __init__ again
    err.args = args
    vars(err).update(attrs)
    return err


def _rebuild(p: dict[str, Any]) -> Response:
    """An ended ``Response`` in the kernel, as the worker's was (text, usage, timings, status)."""
    resp = Response(model=p["model"], request=p["request"])
    writer = ResponseWriter(resp)
    writer.start()
    events: list[Event] = []
    if p["reasoning"]:
        events.append(ReasoningDelta(p["reasoning"]))
    if p["text"]:
        events.append(AnswerDelta(p["text"]))
    for k, call in enumerate(p["tool_calls"]):
        events.append(ToolCallDelta(k, call.id, call.name, call.arguments))
    if p["usage"] is not None:
        events.append(UsageEvent(p["usage"]))
    if events:
        writer.push_many(events)
    resp.retries, resp.resumes, resp.cached = p["retries"], p["resumes"], p["cached"]
    writer.finish(p["status"], _unpack_error(p["error"]), p["finish_reason"])
    ttft, ttfa, total, pieces = p["timing"]
    writer.restore_clock(ttft, ttfa, total, pieces)
    return resp


# ------------------------------------------------------------------ the worker process
def _worker(
    w: int,
    payload: bytes,
    prompts: list[str | list[dict[str, Any]]],
    indices: list[int],
    concurrency: int,
    results: Any,
    stop: Any,
) -> None:
    """One shard on this process's own engine: answers as they finish, progress every 0.25 s."""
    try:
        client, chat_kwargs = pickle.loads(payload)
        schedule = Schedule(prompts, client=client, concurrency=concurrency, chat_kwargs=chat_kwargs)
    except Exception as exc:
        results.put(("failed", w, {"indices": indices, "error": f"{type(exc).__name__}: {exc}"}))
        return
    sent: list[Response | None] = [None] * len(prompts)
    last = 0.0

    def send_finished() -> None:
        for k, r in enumerate(schedule.responses):
            if r is not None and r is not sent[k] and r.done:
                sent[k] = r  # a retried item sends its later answer again; the kernel keeps the last
                results.put(("answer", w, _payload(indices[k], r)))

    def tick() -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= _PROGRESS_EVERY:
            last = now
            send_finished()
            results.put(("progress", w, schedule.snapshot()))

    def watch() -> None:
        # Polled, never stop.wait(): a multiprocessing Event counts its sleepers, and one whose
        # process has exited makes the kernel's later set() wait for it forever.
        pause = threading.Event()
        while not stop.is_set():
            if pause.wait(_POLL) or schedule.cancel_requested:
                return
        schedule.cancel()

    threading.Thread(target=watch, name="ds-batch-cancel", daemon=True).start()
    try:
        get_engine().run(schedule.run(tick))
    finally:
        send_finished()
        results.put(("progress", w, schedule.snapshot()))
        results.put(("done", w, None))
        results.close()
        results.join_thread()
