"""``batch``: one prompt template over many items, with bounded, adaptive concurrency.

::

    result = ds_magic.batch("Summarise in one line: {item}", texts, concurrency=16)
    result.wait()                       # or: await result
    result.table()                      # DataFrame (pandas) or list of dicts, in input order
    result[3].text                      # each item is an ordinary Response

``batch`` returns at once; the items run on the engine loop (no thread per item), at most
``concurrency`` at a time. The answers come back in input order whatever order they finish in.

429 is DeepSeek's per-account concurrency cap (deepseek-api.md §3.3), so the batch adapts (AIMD):
a 429 lowers the number of requests in flight (not below 1) and sends that item again after a
backoff; the limit then grows by one per few successes, up to ``concurrency``. The 429 body is the
only signal the API gives, and it may say by how much the account is over its cap ("Your current
concurrency is 40, which exceeds your concurrency limit of 39"): then the limit drops by that
excess; otherwise it is halved. Several 429s from requests that were already in flight when the
limit was cut count as one signal. Other transient
failures (5xx, 408/409, connection errors, timeouts before any text) are retried as the client's
``RetryPolicy`` says; anything else is recorded on its item and the batch goes on. An item is only
ever sent again after a failure that produced no answer, so nothing that succeeded is sent twice.

``cancel()`` (or the Cancel button, or Ctrl-C / ■ while waiting) stops starting new items, closes
every open stream and keeps every finished answer.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import inspect
import logging
import re
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Callable, Coroutine, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TextIO

from .client import Client
from .engine import get_engine
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    DeepSeekError,
    RateLimitError,
    SecretInPromptError,
    StreamInterruptedError,
)
from .guard import find_secrets
from .interpolate import interpolate
from .pricing import estimate_cost
from .request import build_body
from .response import Response
from .retry import RetryPolicy, is_retryable_status

__all__ = ["batch", "BatchResult", "BatchProgress", "TextProgress", "format_progress"]

_log = logging.getLogger("ds_magic")

# A 429 item is sent again at most this many times; the limit is lowered on the way, so this only
# runs out when other clients of the same account keep the cap full for minutes.
MAX_RATE_LIMIT_RETRIES = 10
# The limit grows by one after this many successes (scaled with the limit: slow near the top).
_MIN_INCREASE_EVERY = 2
# The driver wakes at least this often to refresh tokens/s and the ETA.
_TICK = 0.25
# The documented 429 body (deepseek-api.md §3.3): how many requests the account has in flight and
# its cap, which scales with the remaining balance.
_CAP_HINT = re.compile(r"current concurrency is (\d+)\D{1,80}?concurrency limit of (\d+)", re.IGNORECASE)

Progress = Callable[["BatchProgress"], None]


@dataclass(frozen=True)
class BatchProgress:
    """A snapshot of a batch for progress displays; ``eta`` and ``tokens_per_second`` may be None."""

    total: int
    done: int  # finished ok
    failed: int
    cancelled: int
    running: int
    retrying: int  # waiting to be sent again
    pending: int  # not sent yet
    concurrency: int  # the current limit
    max_concurrency: int
    tokens: int  # completion tokens so far, in-flight ones included
    tokens_per_second: float | None  # over the whole batch
    elapsed: float
    eta: float | None
    finished: bool  # the batch has ended (this is the last snapshot)

    @property
    def settled(self) -> int:
        return self.done + self.failed + self.cancelled


def _fmt_secs(s: float) -> str:
    if s < 60:
        return f"{s:.1f}s" if s < 10 else f"{s:.0f}s"
    m, s = divmod(int(s), 60)
    return f"{m}m{s:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"


def format_progress(p: BatchProgress) -> str:
    """One line: ``batch 120/200 done · 2 failed · 3 retrying · 30 running (limit 32) · 900 tok/s · ETA 12s``."""
    parts = [f"batch {p.done}/{p.total} done"]
    if p.failed:
        parts.append(f"{p.failed} failed")
    if p.cancelled:
        parts.append(f"{p.cancelled} cancelled")
    if p.retrying:
        parts.append(f"{p.retrying} retrying")
    if not p.finished:
        limit = (
            f"limit {p.concurrency}"
            if p.concurrency == p.max_concurrency
            else f"limit {p.concurrency}/{p.max_concurrency}"
        )
        parts.append(f"{p.running} running ({limit})")
    if p.tokens_per_second is not None:
        parts.append(f"{p.tokens_per_second:,.0f} tok/s")
    parts.append(_fmt_secs(p.elapsed))
    if not p.finished and p.eta is not None:
        parts.append(f"ETA {_fmt_secs(p.eta)}")
    return " · ".join(parts)


class TextProgress:
    """A progress renderer for terminals: one line on stderr, rewritten at most every ``interval`` s."""

    def __init__(self, stream: TextIO | None = None, interval: float = 0.2) -> None:
        self.stream = stream
        self.interval = interval
        self._last = -float("inf")
        self._width = 0

    def __call__(self, p: BatchProgress) -> None:
        now = time.monotonic()
        if not p.finished and now - self._last < self.interval:
            return
        self._last = now
        line = format_progress(p)
        out = self.stream if self.stream is not None else sys.stderr
        pad = max(self._width - len(line), 0)
        self._width = len(line)
        try:
            out.write("\r" + line + " " * pad + ("\n" if p.finished else ""))
            out.flush()
        except (OSError, ValueError):  # a closed stream must not break the batch
            pass


def _in_kernel() -> bool:
    """True inside a Jupyter kernel; never imports IPython itself."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    return shell is not None and getattr(shell, "kernel", None) is not None


# --------------------------------------------------------------------- inputs
def _as_list(values: Any, what: str) -> tuple[list[Any], Any]:
    """A list and, for a pandas Series / DataFrame (duck-typed), its index."""
    if isinstance(values, (str, bytes)) or isinstance(values, Mapping):
        raise TypeError(f"{what} must be a list (or a pandas Series), not a {type(values).__name__}")
    if hasattr(values, "columns") and hasattr(values, "to_dict"):  # a DataFrame: one dict per row
        return list(values.to_dict("records")), values.index
    if hasattr(values, "tolist") and hasattr(values, "dtype"):  # a Series or an array
        index = getattr(values, "index", None)
        return list(values.tolist()), None if callable(index) else index
    try:
        return list(values), None
    except TypeError:
        raise TypeError(
            f"{what} must be a list (or a pandas Series), not a {type(values).__name__}"
        ) from None


def _fields(item: Any) -> dict[str, Any]:
    """Names an item offers to a template besides ``{item}``: dict keys, namedtuple/dataclass fields."""
    if isinstance(item, Mapping):
        return {k: v for k, v in item.items() if isinstance(k, str)}
    asdict = getattr(item, "_asdict", None)
    if callable(asdict):
        return dict(asdict())
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}
    return {}


def _render(template: str, item: Any) -> str:
    return interpolate(template, {**_fields(item), "item": item})


def _prompt(p: Any) -> str | list[dict[str, Any]]:
    if isinstance(p, str):
        return p
    if isinstance(p, Sequence) and all(isinstance(m, Mapping) for m in p):
        return [dict(m) for m in p]
    return str(p)


def _transient(err: DeepSeekError | None) -> bool:
    """Errors that produced no answer and may well not happen again (the runner's own rules)."""
    if isinstance(err, APIStatusError):
        return is_retryable_status(err.status_code)
    return isinstance(err, (APIConnectionError, APITimeoutError, StreamInterruptedError))


# --------------------------------------------------------------------- the result
class BatchResult:
    """The answers of a :func:`batch`, in input order, and the handle to wait for or cancel it.

    ``responses``, ``texts``, ``table()``, ``result[i]`` and iteration wait for the end, like
    ``Response.text``; ``progress``, ``done`` and ``concurrency`` never wait.
    """

    def __init__(
        self,
        prompts: list[str | list[dict[str, Any]]],
        inputs: list[Any],
        *,
        client: Client,
        concurrency: int,
        chat_kwargs: dict[str, Any],
        index: Any = None,
    ) -> None:
        self.inputs = inputs
        self.prompts = prompts
        self.index = index
        self.max_concurrency = concurrency
        self._limit = concurrency
        self.concurrency_history: list[tuple[float, int]] = [(0.0, concurrency)]
        # Items run with no retries of their own: the batch decides (and frees the slot meanwhile).
        self._retry: RetryPolicy = client.retry
        self._client = copy.copy(client)
        self._client.retry = dataclasses.replace(client.retry, max_retries=0)
        self._chat_kwargs = chat_kwargs
        self._model: str = chat_kwargs.get("model") or client.model
        n = len(prompts)
        self._responses: list[Response | None] = [None] * n
        self._live: dict[int, Response] = {}  # in flight now, for the live token count
        self._state = ["pending"] * n
        self._rate_limited = [0] * n
        self._transient = [0] * n
        self._counts = {"ok": 0, "failed": 0, "cancelled": 0, "running": 0, "retrying": 0}
        self._queue: deque[int] = deque(range(n))
        self._tasks: set[asyncio.Task[None]] = set()
        self._sleepers: set[asyncio.Task[None]] = set()
        self._epoch = 0
        self._successes = 0
        self._tokens_done = 0
        self._wake = asyncio.Event()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._callbacks: list[Callable[[BatchResult], None]] = []
        self._progress: Progress | None = None
        self.cancel_requested = False
        self._t0 = time.perf_counter()
        self._t_end: float | None = None
        self._engine = get_engine()
        self._future: Any = None

    # ----------------------------------------------------------------- control
    def _start(self, progress: Progress | None) -> None:
        self._progress = progress
        self._t0 = time.perf_counter()
        self._future = self._engine.submit(self._run())

    def cancel(self) -> None:
        """Stop: start nothing more, close every open stream, keep what finished. Thread-safe."""
        with self._lock:
            if self.cancel_requested or self._done.is_set():
                return
            self.cancel_requested = True
        for r in list(self._responses):  # close the streams at once, from this thread
            if r is not None and not r.done:
                r.cancel()
        self._engine.call_soon(self._cancel_on_loop)

    def _cancel_on_loop(self) -> None:
        for r in self._responses:  # anything started meanwhile
            if r is not None and not r.done:
                r.cancel()
        for t in list(self._sleepers):
            t.cancel()
        self._wake.set()

    def add_done_callback(self, fn: Callable[[BatchResult], None]) -> None:
        """Call ``fn(result)`` when the batch ends (at once if it has)."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(fn)
                return
        fn(self)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> BatchResult:
        """Block until the batch ends (in 0.1 s slices: Ctrl-C / ■ cancels it and re-raises)."""
        if self._engine.in_engine_thread():
            raise RuntimeError("BatchResult.wait() cannot be called from the engine thread")
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not self._done.wait(0.1):
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"the batch did not finish within {timeout} s")
        except KeyboardInterrupt:
            self.cancel()
            raise
        return self

    async def _await_done(self) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def wake(_: BatchResult) -> None:
            def set_result() -> None:
                if not fut.done():
                    fut.set_result(None)

            try:
                loop.call_soon_threadsafe(set_result)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass

        self.add_done_callback(wake)
        try:
            # 100 ms slices, as Response does: an interrupt must not wait for unrelated I/O.
            while not fut.done():
                await asyncio.wait({fut}, timeout=0.1)
        except asyncio.CancelledError:
            self.cancel()
            raise

    def __await__(self) -> Generator[Any, None, BatchResult]:
        yield from self._await_done().__await__()
        return self

    # ----------------------------------------------------------------- results
    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def responses(self) -> list[Response]:
        """One ``Response`` per item, in input order (waits for the end)."""
        self.wait()
        return [r for r in self._responses if r is not None]

    @property
    def texts(self) -> list[str]:
        """The answers in input order; partial or empty for items that did not finish (waits)."""
        return [r.text_so_far for r in self.responses]

    def __getitem__(self, i: int) -> Response:
        return self.responses[i]

    def __iter__(self) -> Iterator[Response]:
        return iter(self.responses)

    @property
    def failed(self) -> list[int]:
        """Indices of the items that ended in an error (waits)."""
        return [i for i, r in enumerate(self.responses) if r.status in ("error", "interrupted")]

    @property
    def concurrency(self) -> int:
        """The current limit on requests in flight (lowered by 429s, raised back by successes)."""
        return self._limit

    def table(self, *, as_dataframe: bool | None = None) -> Any:
        """input, text, status, error, tokens, ttft, tokens/s, cost, cached, retries per item (waits).

        A pandas DataFrame (indexed like the input Series/DataFrame) when pandas is installed, else
        a list of dicts. ``cost`` is an estimate in USD, 0 for cache hits.
        """
        rows = []
        for item, r in zip(self.inputs, self.responses, strict=True):
            t = r.timing
            usage = r.usage
            if r.cached:
                cost: float | None = 0.0
            else:
                c = estimate_cost(r.model, usage, datetime.fromtimestamp(r.created, timezone.utc))
                cost = c.usd if c is not None else None
            rows.append(
                {
                    "input": item,
                    "text": r.text_so_far,
                    "status": r.status,
                    "error": str(r.error) if r.error is not None else None,
                    "tokens": usage.completion_tokens if usage is not None else t.tokens,
                    "ttft": t.time_to_first_token,
                    "tokens/s": t.tokens_per_second,
                    "cost": cost,
                    "cached": r.cached,
                    "retries": r.retries,
                }
            )
        from .records import _table

        columns = [
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
        ]
        return _table(rows, columns, as_dataframe, index=self.index)

    @property
    def progress(self) -> BatchProgress:
        """Counts, tokens/s and ETA right now (never waits)."""
        return self._snapshot()

    def __repr__(self) -> str:
        p = self._snapshot()
        state = "finished" if p.finished else ("cancelling" if self.cancel_requested else "running")
        return f"<BatchResult {state}: {format_progress(p)}>"

    # ----------------------------------------------------------------- progress
    def _snapshot(self) -> BatchProgress:
        c = self._counts
        end = self._t_end
        elapsed = (end if end is not None else time.perf_counter()) - self._t0
        live = sum(r.timing.tokens for r in list(self._live.values()))
        tokens = self._tokens_done + live
        settled = c["ok"] + c["failed"] + c["cancelled"]
        total = len(self.prompts)
        eta = None
        if settled and end is None and elapsed > 0:
            eta = (total - settled) * elapsed / settled
        return BatchProgress(
            total=total,
            done=c["ok"],
            failed=c["failed"],
            cancelled=c["cancelled"],
            running=c["running"],
            retrying=c["retrying"],
            pending=max(total - settled - c["running"] - c["retrying"], 0),
            concurrency=self._limit,
            max_concurrency=self.max_concurrency,
            tokens=tokens,
            tokens_per_second=tokens / elapsed if tokens and elapsed > 0 else None,
            elapsed=elapsed,
            eta=eta,
            finished=end is not None,
        )

    def _emit(self) -> None:
        fn = self._progress
        if fn is None:
            return
        try:
            fn(self._snapshot())
        except Exception:
            _log.exception("ds_magic: a batch progress callback failed")

    # ----------------------------------------------------------------- on the engine loop
    def _spawn(self, coro: Coroutine[Any, Any, None], sleeper: bool = False) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        if sleeper:
            self._sleepers.add(task)

        def forget(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            self._sleepers.discard(t)
            self._wake.set()

        task.add_done_callback(forget)

    def _set_limit(self, value: int) -> None:
        if value != self._limit:
            self._limit = value
            self.concurrency_history.append((time.perf_counter() - self._t0, value))

    async def _run(self) -> None:
        try:
            while not self.cancel_requested:
                while self._queue and self._counts["running"] < self._limit and not self.cancel_requested:
                    self._start_item(self._queue.popleft())
                if not self._queue and not self._tasks:
                    break
                self._emit()
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), _TICK)
                except asyncio.TimeoutError:
                    pass
            if self._tasks:  # cancelled: the open streams are closing, the sleepers are woken
                self._cancel_on_loop()
                await asyncio.wait(list(self._tasks))
        finally:
            for i in range(len(self._responses)):
                if self._state[i] in ("pending", "retrying"):
                    self._responses[i] = self._never_sent(i)
                    self._state[i] = "cancelled"
                    self._counts["cancelled"] += 1
            self._counts["retrying"] = 0
            self._t_end = time.perf_counter()
            self._emit()
            with self._lock:
                self._done.set()
                callbacks, self._callbacks = self._callbacks, []
            for cb in callbacks:
                try:
                    cb(self)
                except Exception:
                    _log.exception("ds_magic: a batch done-callback failed")

    def _never_sent(self, i: int) -> Response:
        """A cancelled ``Response`` for an item the cancel caught before (or between) its attempts."""
        prompt = self.prompts[i]
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        resp = Response(model=self._model, request={"model": self._model, "messages": messages})
        resp.retries = self._rate_limited[i] + self._transient[i]
        resp._finish("cancelled")
        return resp

    def _start_item(self, i: int) -> None:
        self._state[i] = "running"
        self._counts["running"] += 1
        self._spawn(self._attempt(i, self._epoch))

    async def _attempt(self, i: int, epoch: int) -> None:
        try:
            try:
                resp = self._client.chat(self.prompts[i], **self._chat_kwargs)
            except Exception as exc:  # e.g. a malformed message list for this one item
                resp = Response(model=self._model, request={})
                err = exc if isinstance(exc, DeepSeekError) else DeepSeekError(f"{type(exc).__name__}: {exc}")
                resp._finish("error", err)
            resp.retries = self._rate_limited[i] + self._transient[i]  # read by its run record
            self._responses[i] = self._live[i] = resp
            if self.cancel_requested:
                resp.cancel()
            await _finished(resp)
        finally:
            self._live.pop(i, None)
            self._counts["running"] -= 1
        self._settle(i, resp, epoch)

    def _settle(self, i: int, resp: Response, epoch: int) -> None:
        usage = resp.usage
        self._tokens_done += usage.completion_tokens if usage is not None else resp.timing.tokens
        status, err = resp.status, resp.error
        if status == "ok":
            self._state[i] = "ok"
            self._counts["ok"] += 1
            self._successes += 1
            if self._limit < self.max_concurrency and self._successes >= max(
                _MIN_INCREASE_EVERY, self._limit // 4
            ):
                self._set_limit(self._limit + 1)
                self._successes = 0
        elif status == "cancelled":
            self._state[i] = "cancelled"
            self._counts["cancelled"] += 1
        elif status == "error" and isinstance(err, RateLimitError) and not self.cancel_requested:
            if epoch == self._epoch:
                # The first 429 among requests sent under the current limit: lower it. 429s of
                # requests sent before the cut are the same signal, already acted on.
                self._set_limit(self._lowered(err))
                self._epoch += 1
                self._successes = 0
            self._rate_limited[i] += 1
            if self._rate_limited[i] > MAX_RATE_LIMIT_RETRIES:
                self._fail(i)
            else:
                n = self._rate_limited[i] - 1
                self._retry_later(i, max(err.retry_after or 0.0, self._retry.backoff(n)))
        elif (
            status == "error"
            and _transient(err)
            and self._transient[i] < self._retry.max_retries
            and not self.cancel_requested
        ):
            self._transient[i] += 1
            wait = self._retry.backoff(self._transient[i] - 1)
            if isinstance(err, RateLimitError) and err.retry_after:
                wait = max(wait, err.retry_after)
            self._retry_later(i, wait)
        else:
            self._fail(i)

    def _lowered(self, err: RateLimitError) -> int:
        """The limit after a 429: less the excess the body reports, else half."""
        new = self._limit // 2
        m = _CAP_HINT.search(err.server_message)
        if m is not None:
            current, cap = int(m.group(1)), int(m.group(2))
            if current > cap:
                # Other clients of the account may hold part of ``current``: shed the excess from ours.
                in_flight = self._counts["running"] + 1  # this one was in flight when it got the 429
                new = min(self._limit - 1, in_flight - (current - cap))
        return max(1, new)

    def _fail(self, i: int) -> None:
        self._state[i] = "failed"
        self._counts["failed"] += 1

    def _retry_later(self, i: int, delay: float) -> None:
        self._state[i] = "retrying"
        self._counts["retrying"] += 1

        async def later() -> None:
            try:
                await self._retry.sleep(delay)
            finally:
                self._counts["retrying"] -= 1
            if self.cancel_requested:
                return
            self._state[i] = "pending"
            self._queue.appendleft(i)  # a retried item goes first: results come in roughly in order

        self._spawn(later(), sleeper=True)


async def _finished(resp: Response) -> None:
    """Wait on the engine loop for ``resp`` to end (its done-callbacks run on this thread)."""
    if resp.done:
        return
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def wake(_: Response) -> None:
        loop.call_soon_threadsafe(lambda: None if fut.done() else fut.set_result(None))

    resp.add_done_callback(wake)
    await fut


# --------------------------------------------------------------------- the function
def _pick_progress(progress: bool | str | Progress | None, result: BatchResult) -> Progress | None:
    if progress is None or progress is False:
        return None
    if callable(progress):
        return progress
    if progress not in (True, "auto", "text", "widget"):
        raise ValueError(f"progress must be True, False, 'text', 'widget' or a callable, got {progress!r}")
    if progress == "widget" or (progress in (True, "auto") and _in_kernel()):
        try:
            from .jupyter.batch_view import BatchProgressView  # ipywidgets: only inside a kernel
        except ImportError:
            if progress == "widget":
                raise
        else:
            view = BatchProgressView(result)
            view.show()
            return view.update
    if progress == "text" or sys.stderr.isatty():
        return TextProgress()
    return None


def batch(
    template_or_prompts: Any,
    items: Any = None,
    *,
    client: Client | None = None,
    concurrency: int = 8,
    model: str | None = None,
    system: str | None = None,
    cache: Any = None,
    progress: bool | str | Progress | None = True,
    **params: Any,
) -> BatchResult:
    """Run many prompts (or one template over many items) and return a :class:`BatchResult` at once.

    - ``batch(["Hi", "Hello"])``: a list (or pandas Series) of prompts.
    - ``batch("Translate: {item}", items)``: ``{item}`` is each item; a dict item (or a DataFrame
      row) also offers its keys, ``{name}``, and any item its attributes, ``{item.name}``. Nothing
      else in the template is touched (braces in pasted code are safe).

    ``concurrency`` is the most requests in flight; 429s lower it for a while. ``model``, ``system``,
    ``cache`` and ``params`` (temperature, max_tokens, ...) go to every ``client.chat`` call.
    ``progress``: True (a widget in a notebook, a line on stderr in a terminal), False, ``"text"``,
    ``"widget"``, or a callable that gets a :class:`BatchProgress` on the engine thread (keep it quick).
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")
    if "conversation" in params:
        raise TypeError("batch items are independent requests: conversation= is not supported")
    if items is None:
        if isinstance(template_or_prompts, str):
            raise TypeError("one template needs items: batch('... {item} ...', items)")
        raw, index = _as_list(template_or_prompts, "prompts")
        prompts = [_prompt(p) for p in raw]
        inputs = raw
    else:
        if not isinstance(template_or_prompts, str):
            raise TypeError(
                f"with items, the first argument must be a template string, not {type(template_or_prompts).__name__}"
            )
        inputs, index = _as_list(items, "items")
        prompts = [_render(template_or_prompts, x) for x in inputs]
    client = client if client is not None else Client()
    if not params.get("allow_secrets"):
        # The outbound guard (guard.py) once, for every item, before anything is sent.
        for i, p in enumerate(prompts):
            found = find_secrets(str(p), api_key=client._api_key, where=f"item {i}")
            if found:
                raise SecretInPromptError(found)
    # Check the parameters once, here, rather than failing every item on the engine.
    body_params = {k: v for k, v in params.items() if k not in ("beta", "timeout", "allow_secrets")}
    build_body([{"role": "user", "content": "."}], model or client.model, **body_params)
    chat_kwargs: dict[str, Any] = {**params, "model": model, "system": system}
    if cache is not None:
        chat_kwargs["cache"] = cache
    result = BatchResult(
        prompts, inputs, client=client, concurrency=concurrency, chat_kwargs=chat_kwargs, index=index
    )
    result._start(_pick_progress(progress, result))
    return result


# ``ds_magic.batch`` is this module, callable: the package exports a function and has a submodule of
# the same name, and importing the submodule rebinds the package attribute to the module (the import
# system does that after the module runs). So the module is the one object behind the name, whether
# it was reached as ``ds_magic.batch``, ``from ds_magic import batch`` or ``import ds_magic.batch``;
# calling it runs the function. Type checkers see the function.
_batch = batch


class _BatchModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> BatchResult:
        return _batch(*args, **kwargs)


if not TYPE_CHECKING:
    batch = sys.modules[__name__]
    batch.__signature__ = inspect.signature(_batch)  # for help() and ``ds_magic.batch?``

sys.modules[__name__].__class__ = _BatchModule
