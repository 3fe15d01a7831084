"""``BatchResult``: the answers of a ``batch`` in input order, and the handle to wait for or cancel it.

::

    result.wait()                       # or: await result
    result.table()                      # DataFrame (pandas) or list of dicts, in input order
    result[3].text                      # each item is an ordinary Response

The items run on the engine loop (batch_schedule.py). ``cancel()`` (or the Cancel button, or
Ctrl-C / ■ while waiting) stops starting new items, closes every open stream and keeps every
finished answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

from .batch_progress import BatchProgress, Progress, format_progress
from .batch_schedule import Schedule
from .client import Client
from .engine import get_engine
from .pricing import cost_of
from .response import Response
from .structured_result import StructuredItems
from .tables import ANSWER_COLUMNS, as_table
from .waitable import Completion

if TYPE_CHECKING:
    from .batch_shard import ShardedSchedule

__all__ = ["BatchResult", "TABLE_COLUMNS"]

_log = logging.getLogger("ds_magic")

#: The columns of :meth:`BatchResult.table`.
TABLE_COLUMNS = ANSWER_COLUMNS


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
        item_kwargs: list[dict[str, Any]] | None = None,
        structured: StructuredItems | None = None,
        processes: int = 0,
    ) -> None:
        self.inputs = inputs
        self.prompts = list(prompts)  # the schedule replaces a retried item's prompt in its own list
        self.index = index
        self.max_concurrency = concurrency
        #: schema=: each item's answer checked against the schema (structured_result.py), else None.
        self.structured = structured
        self._schedule: Schedule | ShardedSchedule
        if processes:  # the items run in worker processes (batch_shard.py, issue 17)
            from .batch_shard import ShardedSchedule

            self._schedule = ShardedSchedule(
                prompts, client=client, concurrency=concurrency, chat_kwargs=chat_kwargs, processes=processes
            )
        else:
            self._schedule = Schedule(
                prompts,
                client=client,
                concurrency=concurrency,
                chat_kwargs=chat_kwargs,
                item_kwargs=item_kwargs,
                followup=structured.followup if structured is not None else None,
            )
        self._completion: Completion[BatchResult] = Completion(self, self.cancel)
        self._progress: Progress | None = None
        self._started = False
        self._engine = get_engine()

    def start(self, progress: Progress | None = None) -> None:
        """Send the items (once; ``batch()`` calls this). ``progress`` gets each snapshot."""
        if self._started:
            raise RuntimeError("this batch has already started")
        self._started = True
        self._progress = progress
        self._engine.submit(self._run())

    async def _run(self) -> None:
        try:
            await self._schedule.run(self._emit)
        finally:
            self._emit()  # the last snapshot, ``finished`` set
            self._completion.set()

    def _emit(self) -> None:
        fn = self._progress
        if fn is None:
            return
        try:
            fn(self._schedule.snapshot())
        except Exception:
            _log.exception("ds_magic: a batch progress callback failed")

    # ----------------------------------------------------------------- control
    def cancel(self) -> None:
        """Stop: start nothing more, close every open stream, keep what finished. Thread-safe."""
        if not self._completion.done:
            self._schedule.cancel()

    @property
    def cancel_requested(self) -> bool:
        return self._schedule.cancel_requested

    def add_done_callback(self, fn: Callable[[BatchResult], None]) -> None:
        """Call ``fn(result)`` when the batch ends (at once if it has)."""
        self._completion.add_done_callback(fn)

    @property
    def done(self) -> bool:
        return self._completion.done

    def wait(self, timeout: float | None = None) -> BatchResult:
        """Block until the batch ends; TimeoutError after ``timeout`` s. Ctrl-C / ■ cancels it."""
        if self._engine.in_engine_thread():
            raise RuntimeError("BatchResult.wait() cannot be called from the engine thread")
        if not self._completion.wait(timeout):
            raise TimeoutError(f"the batch did not finish within {timeout} s")
        return self

    def __await__(self) -> Generator[Any, None, BatchResult]:
        yield from self._completion.wait_async().__await__()
        return self

    # ----------------------------------------------------------------- results
    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def responses(self) -> list[Response]:
        """One ``Response`` per item, in input order (waits for the end)."""
        self.wait()
        return [r for r in self._schedule.responses if r is not None]

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
        """Indices of the items that ended in an error (waits); with ``schema=``, also invalid answers."""
        if self.structured is not None:
            return sorted(self.structured.errors(self.responses))
        return [i for i, r in enumerate(self.responses) if r.status in ("error", "interrupted")]

    @property
    def values(self) -> list[Any]:
        """``schema=``: each item's validated value (a dict, model or dataclass), None if it has none."""
        if self.structured is None:
            raise AttributeError("values needs a batch with schema=; use texts for plain answers")
        return self.structured.values(self.responses)

    @property
    def concurrency(self) -> int:
        """The current limit on requests in flight (lowered by 429s, raised back by successes)."""
        return self._schedule.limit

    @property
    def concurrency_history(self) -> list[tuple[float, int]]:
        """``(seconds since the start, limit)`` at the start and at each change of the limit."""
        return self._schedule.history

    def table(self, *, as_dataframe: bool | None = None) -> Any:
        """input, text, status, error, tokens, ttft, tokens/s, cost, cached, retries per item (waits).

        A pandas DataFrame (indexed like the input Series/DataFrame) when pandas is installed, else
        a list of dicts. ``cost`` is an estimate in USD, 0 for cache hits.
        With ``schema=``: one column per field, then status, error, tokens, cost, latency, attempts
        (StructuredItems.table), so that ``df.join(result.table())`` lines up with the input.
        """
        if self.structured is not None:
            return self.structured.table(self.responses, self.index, as_dataframe)
        rows = []
        for item, r in zip(self.inputs, self.responses, strict=True):
            t = r.timing
            usage = r.usage
            cost = cost_of(r)
            values = (
                item,
                r.text_so_far,
                r.status,
                str(r.error) if r.error is not None else None,
                usage.completion_tokens if usage is not None else t.tokens,
                t.time_to_first_token,
                t.tokens_per_second,
                cost.usd if cost is not None else None,
                r.cached,
                r.retries,
            )
            rows.append(dict(zip(TABLE_COLUMNS, values, strict=True)))
        return as_table(rows, list(TABLE_COLUMNS), as_dataframe, index=self.index)

    @property
    def progress(self) -> BatchProgress:
        """Counts, tokens/s and ETA right now (never waits)."""
        return self._schedule.snapshot()

    def __repr__(self) -> str:
        p = self._schedule.snapshot()
        state = "finished" if p.finished else ("cancelling" if self.cancel_requested else "running")
        return f"<BatchResult {state}: {format_progress(p)}>"
