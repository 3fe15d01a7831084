"""The schedule of one batch on the engine loop: at most ``limit`` requests in flight, adapted (AIMD).

The items run as tasks on the engine loop (no thread per item). 429 is DeepSeek's per-account
concurrency cap (deepseek-api.md §3.3), so a 429 lowers the number of requests in flight (not below
1) and sends that item again after a backoff; the limit then grows by one per few successes, up to
the batch's ``concurrency``. The 429 body is the only signal the API gives, and it may say by how
much the account is over its cap ("Your current concurrency is 40, which exceeds your concurrency
limit of 39"): then the limit drops by that excess; otherwise it is halved. Several 429s from
requests that were already in flight when the limit was cut count as one signal. Other transient
failures (5xx, 408/409, connection errors, timeouts before any text) are retried as the client's
``RetryPolicy`` says; anything else is recorded on its item and the batch goes on. An item is only
ever sent again after a failure that produced no answer, so nothing that succeeded is sent twice.

Everything here but :meth:`Schedule.cancel` and :meth:`Schedule.snapshot` runs on the engine loop.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from .batch_progress import BatchProgress
from .client import Client
from .engine import get_engine
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    DeepSeekError,
    RateLimitError,
    StreamInterruptedError,
)
from .response import Response, ResponseWriter
from .retry import RetryPolicy, is_retryable_status

__all__ = ["Schedule", "MAX_RATE_LIMIT_RETRIES", "Followup"]

#: ``followup(i, response)`` on the engine loop after item ``i`` ended ok: a new prompt to send for
#: the same item instead (its result replaces this one), or None to keep it.
Followup = Callable[[int, Response], "str | list[dict[str, Any]] | None"]

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


def _transient(err: DeepSeekError | None) -> bool:
    """Errors that produced no answer and may well not happen again (the runner's own rules)."""
    if isinstance(err, APIStatusError):
        return is_retryable_status(err.status_code)
    return isinstance(err, (APIConnectionError, APITimeoutError, StreamInterruptedError))


class Schedule:
    """The items of one batch and their state; :class:`BatchResult` is the handle users hold."""

    def __init__(
        self,
        prompts: list[str | list[dict[str, Any]]],
        *,
        client: Client,
        concurrency: int,
        chat_kwargs: dict[str, Any],
        item_kwargs: list[dict[str, Any]] | None = None,
        followup: Followup | None = None,
        may_start: Callable[[int], bool] | None = None,
    ) -> None:
        self.prompts = prompts
        # compare(): each (item, variant) pair has its own model / system / temperature.
        self._item_kwargs = item_kwargs
        # schema=: an ok answer that is invalid is sent once more (structured_result.py).
        self._followup = followup
        #: Asked before item ``i`` starts (offpeak.py's gate): False holds it and the rest back for now.
        self.may_start = may_start
        self.max_concurrency = concurrency
        self.limit = concurrency
        #: (seconds since the start, limit) at each change of the limit.
        self.history: list[tuple[float, int]] = [(0.0, concurrency)]
        # Items run with no retries of their own: the batch decides (and frees the slot meanwhile).
        self._retry: RetryPolicy = client.retry
        self._client = copy.copy(client)
        self._client.retry = dataclasses.replace(client.retry, max_retries=0)
        self._chat_kwargs = chat_kwargs
        self._model: str = chat_kwargs.get("model") or client.model
        n = len(prompts)
        #: One per item once it is sent (or, at the end, made for those never sent).
        self.responses: list[Response | None] = [None] * n
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
        self.cancel_requested = False
        self._t0 = time.perf_counter()
        self._t_end: float | None = None
        self._engine = get_engine()

    # ----------------------------------------------------------------- from any thread
    def cancel(self) -> None:
        """Start nothing more and close every open stream; what finished is kept. Thread-safe."""
        with self._lock:
            if self.cancel_requested or self._t_end is not None:
                return
            self.cancel_requested = True
        for r in list(self.responses):  # close the streams at once, from this thread
            if r is not None and not r.done:
                r.cancel()
        self._engine.call_soon(self._cancel_on_loop)

    def snapshot(self) -> BatchProgress:
        """Counts, tokens/s and ETA right now."""
        c = self._counts
        end = self._t_end
        elapsed = (end if end is not None else time.perf_counter()) - self._t0
        live = sum(r.timing.tokens for r in list(self._live.values()))
        tokens = self._tokens_done + live
        return BatchProgress.of(
            total=len(self.prompts),
            done=c["ok"],
            failed=c["failed"],
            cancelled=c["cancelled"],
            running=c["running"],
            retrying=c["retrying"],
            concurrency=self.limit,
            max_concurrency=self.max_concurrency,
            tokens=tokens,
            elapsed=elapsed,
            finished=end is not None,
        )

    # ----------------------------------------------------------------- on the engine loop
    async def run(self, tick: Callable[[], None]) -> None:
        """Run every item; ``tick()`` after each round of the driver (progress). Ends when all have."""
        self._t0 = time.perf_counter()
        try:
            while not self.cancel_requested:
                while self._queue and self._counts["running"] < self.limit and not self.cancel_requested:
                    if self.may_start is not None and not self.may_start(self._queue[0]):
                        break  # held back (a peak window): asked again at the next round
                    self._start_item(self._queue.popleft())
                if not self._queue and not self._tasks:
                    break
                tick()
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), _TICK)
                except asyncio.TimeoutError:
                    pass
            if self._tasks:  # cancelled: the open streams are closing, the sleepers are woken
                self._cancel_on_loop()
                await asyncio.wait(list(self._tasks))
        finally:
            for i in range(len(self.responses)):
                if self._state[i] in ("pending", "retrying"):
                    self.responses[i] = self._never_sent(i)
                    self._state[i] = "cancelled"
                    self._counts["cancelled"] += 1
            self._counts["retrying"] = 0
            with self._lock:
                self._t_end = time.perf_counter()

    def _cancel_on_loop(self) -> None:
        for r in self.responses:  # anything started meanwhile
            if r is not None and not r.done:
                r.cancel()
        for t in list(self._sleepers):
            t.cancel()
        self._wake.set()

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
        if value != self.limit:
            self.limit = value
            self.history.append((time.perf_counter() - self._t0, value))

    def _never_sent(self, i: int) -> Response:
        """A cancelled ``Response`` for an item the cancel caught before (or between) its attempts."""
        prompt = self.prompts[i]
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        resp = Response(model=self._model, request={"model": self._model, "messages": messages})
        resp.retries = self._rate_limited[i] + self._transient[i]
        ResponseWriter(resp).finish("cancelled")
        return resp

    def _start_item(self, i: int) -> None:
        self._state[i] = "running"
        self._counts["running"] += 1
        self._spawn(self._attempt(i, self._epoch))

    async def _attempt(self, i: int, epoch: int) -> None:
        try:
            try:
                kwargs = self._chat_kwargs
                if self._item_kwargs is not None:
                    kwargs = {**kwargs, **self._item_kwargs[i]}
                resp = self._client.chat(self.prompts[i], **kwargs)
            except Exception as exc:  # e.g. a malformed message list for this one item
                resp = Response(model=self._model)
                err = exc if isinstance(exc, DeepSeekError) else DeepSeekError(f"{type(exc).__name__}: {exc}")
                ResponseWriter(resp).finish("error", err)
            resp.retries = self._rate_limited[i] + self._transient[i]  # read by its run record
            self.responses[i] = self._live[i] = resp
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
        if status == "ok" and self._followup is not None and not self.cancel_requested:
            again = self._followup(i, resp)
            if again is not None:  # sent again at once, first in line; the answer so far is replaced
                self.prompts[i] = again
                self._state[i] = "pending"
                self._queue.appendleft(i)
                return
        if status == "ok":
            self._state[i] = "ok"
            self._counts["ok"] += 1
            self._successes += 1
            if self.limit < self.max_concurrency and self._successes >= max(
                _MIN_INCREASE_EVERY, self.limit // 4
            ):
                self._set_limit(self.limit + 1)
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
        new = self.limit // 2
        m = _CAP_HINT.search(err.server_message)
        if m is not None:
            current, cap = int(m.group(1)), int(m.group(2))
            if current > cap:
                # Other clients of the account may hold part of ``current``: shed the excess from ours.
                in_flight = self._counts["running"] + 1  # this one was in flight when it got the 429
                new = min(self.limit - 1, in_flight - (current - cap))
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
