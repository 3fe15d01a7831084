"""``batch(..., run=, sink=, when=, estimate=)``: checks the arguments once and makes the :class:`RunResult`.

batching.py hands over here when any of those is given; the items are then read lazily
(run_result.py), so a generator larger than memory is never made into a list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .batch_progress import Progress
from .client import Client
from .errors import SecretInPromptError
from .offpeak import OffPeak
from .request import build_body
from .run_result import Prompt, RunResult
from .run_rows import Inputs
from .run_store import default_store

__all__ = ["start_run", "run_settings"]

# Parameters that change how a request is delivered, not what it answers: not part of a run's settings.
_DELIVERY = ("timeout", "allow_secrets")


def _gate(when: Any, finish: bool) -> OffPeak | None:
    if isinstance(when, OffPeak):
        if finish:
            when.finish = True
        return when
    if when in (None, "now"):
        if finish:
            raise ValueError("finish=True is for off-peak runs: batch(..., when='off-peak', finish=True)")
        return None
    if when == "off-peak":
        return OffPeak(finish=finish)
    raise ValueError(f"when must be 'off-peak', 'now' or an OffPeak(clock=...), got {when!r}")


def run_settings(
    template: str | None, model: str, system: str | None, params: dict[str, Any]
) -> dict[str, Any]:
    """What decides a run's answers: a run name stays bound to these (run_store.py)."""
    return {
        "template": template,
        "model": model,
        "system": system,
        "params": {k: v for k, v in params.items() if k not in _DELIVERY},
    }


def start_run(
    template: str | None,
    items: Any,
    *,
    make_prompt: Callable[[Any], Prompt],
    client: Client,
    concurrency: int,
    model: str | None,
    system: str | None,
    cache: Any,
    params: dict[str, Any],
    run: str | None,
    sink: Any,
    when: Any,
    finish: bool,
    estimate: bool | int,
    progress_for: Callable[[RunResult], Progress | None],
) -> RunResult:
    """The result of a persisted / streamed / off-peak / estimated batch; started unless ``estimate``."""
    if run is not None and (not isinstance(run, str) or not run.strip()):
        raise ValueError(f"run= must be a non-empty name, e.g. run='labels-v2', got {run!r}")
    gate = _gate(when, finish)
    check = not params.get("allow_secrets")
    if system and check:
        found = client.find_secrets([("system prompt", system)])
        if found:
            raise SecretInPromptError(found)
    body_params = {k: v for k, v in params.items() if k not in ("beta", *_DELIVERY)}
    build_body([{"role": "user", "content": "."}], model or client.model, **body_params)
    chat_kwargs: dict[str, Any] = {**params, "model": model, "system": system, "allow_secrets": True}
    if cache is not None:
        chat_kwargs["cache"] = cache
    inputs = Inputs(items)
    store = None
    if run is not None:
        store = default_store()
        store.open(run, run_settings(template, model or client.model, system, params))
    result = RunResult(
        inputs,
        make_prompt=make_prompt,
        client=client,
        concurrency=concurrency,
        chat_kwargs=chat_kwargs,
        check_secrets=check,
        name=run,
        store=store,
        sink=sink,
        gate=gate,
        progress_for=progress_for,
    )
    if estimate is not False and estimate is not None:
        # estimate=True: a sample of 3 answers, or none when max_tokens bounds the output; estimate=N: N.
        sample = estimate if not isinstance(estimate, bool) else (0 if params.get("max_tokens") else 3)
        result.estimate(sample=sample)
    else:
        result.start()
    return result
