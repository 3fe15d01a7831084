"""The estimate of a run (``batch(..., run=..., estimate=True)``): a few items sent now, the rest projected.

The sample's answers are kept (the run does not send those items again) when they are ``ok`` and,
with ``schema=``, valid: a sample item gets no retry here, so an invalid one is sent again by the
run, retry included. The projection (estimate.py) counts the system prompt each item is sent with,
the schema's included (run_start.py puts it there).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .client import Client
from .estimate import Estimate, project
from .response import Response
from .run_rows import item_row
from .run_store import prompt_hash
from .run_structured import StructuredRun

__all__ = ["sample_and_project"]


def sample_and_project(
    todo: list[tuple[int, Any, Any]],
    *,
    sample: int,
    client: Client,
    chat_kwargs: dict[str, Any],
    blocked: Callable[[int, Any], Exception | None],
    structured: StructuredRun | None,
    concurrency: int,
    account_concurrency: int | None,
) -> tuple[Estimate, list[dict[str, Any]]]:
    """Send the first ``sample`` of ``todo`` (position, item, prompt) and project the others.

    Returns the estimate and the rows worth keeping. An item whose prompt ``blocked`` refuses (a
    secret in it) raises before anything more is sent.
    """
    prompts = [p for _, _, p in todo]
    checks = structured.items(prompts) if structured is not None else None
    taken: list[Response] = []
    rows = []
    for k, (pos, value, prompt) in enumerate(todo[: max(sample, 0)]):
        err = blocked(pos, prompt)
        if err is not None:
            raise err
        resp = client.chat(prompt, **chat_kwargs)
        resp.wait()
        taken.append(resp)
        row = item_row(pos, value, resp, prompt_hash(prompt))
        if structured is not None and checks is not None:
            row = structured.finish_row(row, checks, k, resp)
        if row["status"] == "ok":
            rows.append(row)
    estimate = project(
        prompts[len(taken) :],
        model=chat_kwargs.get("model") or client.model,
        system=chat_kwargs.get("system"),
        max_tokens=chat_kwargs.get("max_tokens"),
        sample=taken,
        sample_usd=sum(r["cost"] or 0.0 for r in rows),
        concurrency=concurrency,
        account_concurrency=account_concurrency,
    )
    return estimate, rows
