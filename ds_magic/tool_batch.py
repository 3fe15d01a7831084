"""``batch(..., tools=[...])``: one tool loop per item, at most ``concurrency`` at a time.

::

    result = ds_magic.batch("Look up {item} and summarise it", ids, tools=[lookup])
    await result            # in a notebook; result.run() in a script
    result.table()          # input, text, state, steps, calls, tokens, cost, note per item

A plain batch runs on the engine loop (batch_schedule.py). A tool batch cannot: its tools run in the
caller's thread, never on the engine thread (tool_loop.py). So it is driven from the caller: the
items' loops are tasks on the caller's event loop (``await result``, or ``run()``, which makes one
with ``asyncio.run``), their requests stream on the engine meanwhile, and each tool runs in this
thread when its loop gets to it. Nothing is sent until it is run. There is no one to ask in a batch
unless ``approve=`` is given: calls of tools that are not ``safe`` are denied, and the table says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

from .tables import as_table
from .tool_loop import ToolLoop
from .types import Usage

if TYPE_CHECKING:
    from .client import Client

__all__ = ["ToolBatch", "TOOL_TABLE_COLUMNS"]

TOOL_TABLE_COLUMNS = ("input", "text", "state", "steps", "calls", "tokens", "cost", "note")


class ToolBatch:
    """The items' tool loops (``loops``, in input order) and their totals."""

    def __init__(
        self,
        prompts: Sequence[Any],
        inputs: Sequence[Any],
        *,
        client: Client,
        concurrency: int,
        index: Any = None,
        **chat_kwargs: Any,
    ) -> None:
        self.inputs = list(inputs)
        self.index = index
        self.concurrency = concurrency
        self.loops: list[ToolLoop] = [ToolLoop(client, p, **chat_kwargs) for p in prompts]
        self._started = False

    def __len__(self) -> int:
        return len(self.loops)

    def __repr__(self) -> str:
        states = [lp.state for lp in self.loops]
        done = sum(s not in ("pending", "running") for s in states)
        return f"<ToolBatch {done}/{len(states)} done>"

    # ----------------------------------------------------------------------------- running
    async def arun(self) -> ToolBatch:
        """Run every loop on this event loop, at most ``concurrency`` at a time."""
        if self._started:
            raise RuntimeError("this batch has already run; start a new one")
        self._started = True
        gate = asyncio.Semaphore(self.concurrency)

        async def one(loop: ToolLoop) -> None:
            async with gate:
                if not loop.cancel_requested:
                    await loop.arun()

        tasks = [asyncio.ensure_future(one(lp)) for lp in self.loops]
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            self.cancel()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        for lp in self.loops:
            if lp.state == "pending":  # cancelled before its turn came
                lp.run()  # ends it "cancelled" at once: nothing is sent
        return self

    def run(self) -> ToolBatch:
        """Run every loop from this thread (a script). Where an event loop already runs in this
        thread (a notebook cell), the loops run one after another: ``await`` the batch there to
        run them concurrently."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.arun())
        self._started = True
        for lp in self.loops:
            lp.run()
        return self

    def __await__(self) -> Generator[Any, None, ToolBatch]:
        return self.arun().__await__()

    def cancel(self) -> None:
        """Cancel every loop: running ones stop (tool_loop.py), waiting ones never start."""
        for lp in self.loops:
            lp.cancel()

    # ----------------------------------------------------------------------------- results
    @property
    def done(self) -> bool:
        return all(lp.done for lp in self.loops)

    @property
    def texts(self) -> list[str]:
        return [lp.text for lp in self.loops]

    def usage(self) -> Usage:
        """Tokens summed over every item's every step."""
        return sum((lp.usage() for lp in self.loops), Usage())

    def cost(self) -> float | None:
        costs = [c for c in (lp.cost() for lp in self.loops) if c is not None]
        return sum(costs) if costs else None

    def table(self, *, as_dataframe: bool | None = None) -> Any:
        """One row per item: input, text, state, steps, calls, tokens, cost (USD), note."""
        rows = []
        for item, lp in zip(self.inputs, self.loops, strict=True):
            values = (
                item,
                lp.text,
                lp.state,
                len(lp.steps),
                len(lp.calls),
                lp.usage().total_tokens,
                lp.cost(),
                lp.note or "; ".join(sorted({r.note for r in lp.calls if r.status == "denied"})),
            )
            rows.append(dict(zip(TOOL_TABLE_COLUMNS, values, strict=True)))
        return as_table(rows, list(TOOL_TABLE_COLUMNS), as_dataframe, index=self.index)
