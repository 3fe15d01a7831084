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
from .run_structured import StructuredRun, settings_of
from .structured import as_schema

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
    template: str | None,
    model: str,
    system: str | None,
    params: dict[str, Any],
    structured: StructuredRun | None = None,
) -> dict[str, Any]:
    """What decides a run's answers: a run name stays bound to these (run_store.py).

    ``system`` is the user's own system prompt; with ``schema=`` the schema and the run's columns are
    added (a run without one keeps the settings, and so the fingerprint, it always had).
    """
    settings: dict[str, Any] = {
        "template": template,
        "model": model,
        "system": system,
        "params": {k: v for k, v in params.items() if k not in _DELIVERY},
    }
    if structured is not None:
        settings["schema"] = settings_of(structured.schema)
        settings["columns"] = structured.columns  # StoredRun.table() gives them back
    return settings


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
    schema: Any = None,
) -> RunResult:
    """The result of a persisted / streamed / off-peak / estimated batch; started unless ``estimate``."""
    if run is not None and (not isinstance(run, str) or not run.strip()):
        raise ValueError(f"run= must be a non-empty name, e.g. run='labels-v2', got {run!r}")
    gate = _gate(when, finish)
    structured = None
    own_system = system
    if schema is not None:  # JSON mode, the schema in the system prompt (structured.py)
        if "response_format" in params:
            raise TypeError("schema= sets JSON mode itself: leave response_format out")
        structured = StructuredRun(as_schema(schema))
        system = structured.schema.system_prompt(system)
        params = {**params, "response_format": {"type": "json_object"}}
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
        store.open(run, run_settings(template, model or client.model, own_system, params, structured))
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
        structured=structured,
    )
    if estimate is not False and estimate is not None:
        # estimate=True: a sample of 3 answers, or none when max_tokens bounds the output; estimate=N: N.
        sample = estimate if not isinstance(estimate, bool) else (0 if params.get("max_tokens") else 3)
        result.estimate(sample=sample)
    else:
        result.start()
    return result
