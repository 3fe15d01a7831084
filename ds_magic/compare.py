"""``compare``: the same items through several variants (models, system prompts, temperatures,
templates), side by side, with latency, tokens, cost and an optional score per variant.

::

    cmp = ds_magic.compare(
        "Label this review: {text}", df,
        variants={"flash": {"model": "deepseek-flash"}, "pro": {"model": "deepseek-v4-pro"}},
        schema=Label, score="label",
    ).wait()
    cmp.table()      # a row per item, an answer (and a score) per variant
    cmp.summary()    # a row per variant: score, latency, tokens, cost
    cmp.plot()       # cost vs quality vs latency (matplotlib)

Every (item, variant) pair is one item of a single batch, so the pairs share batch's bounded,
adaptive concurrency (batch_schedule.py): a 429 lowers the limit for all of them. The pairs are
sent item by item (item 0 in every variant, then item 1...), so a Cancel leaves the variants
compared on the same items.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .batch_progress import Progress
from .batch_result import BatchResult
from .batching import items_and_index, pick_progress, render_item
from .client import Client
from .comparison import Comparison
from .errors import SecretInPromptError
from .request import build_body
from .structured import as_schema
from .structured_result import StructuredItems

__all__ = ["compare", "VARIANT_KEYS"]

#: What a variant may set; anything else is a typo to point out, not a parameter to drop.
VARIANT_KEYS = frozenset(
    {
        "model",
        "system",
        "template",
        "temperature",
        "top_p",
        "max_tokens",
        "thinking",
        "reasoning_effort",
        "stop",
    }
)


def _variants(variants: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(variants, Mapping) or not variants:
        raise TypeError(
            "variants= must be a non-empty dict of {name: {model=/system=/temperature=/template=}}"
        )
    out: dict[str, dict[str, Any]] = {}
    for name, spec in variants.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"variant names must be non-empty strings, not {name!r}")
        if not isinstance(spec, Mapping):
            raise TypeError(f"variant {name!r} must be a dict of settings, not {type(spec).__name__}")
        unknown = sorted(set(spec) - VARIANT_KEYS)
        if unknown:
            raise TypeError(
                f"variant {name!r}: unknown setting {unknown[0]!r}; a variant sets {', '.join(sorted(VARIANT_KEYS))}"
            )
        if "template" in spec and not isinstance(spec["template"], str):
            raise TypeError(f"variant {name!r}: template must be a string")
        out[name] = dict(spec)
    return out


def compare(
    template: str,
    items: Any,
    variants: Mapping[str, Mapping[str, Any]],
    *,
    score: Callable[[Any, Any], float] | str | None = None,
    schema: Any = None,
    client: Client | None = None,
    concurrency: int = 8,
    model: str | None = None,
    system: str | None = None,
    cache: Any = None,
    progress: bool | str | Progress | None = True,
    **params: Any,
) -> Comparison:
    """Run ``template`` over ``items`` once per variant and return a :class:`Comparison` at once.

    ``variants``: ``{name: {"model": ..., "system": ..., "temperature": ..., "template": ...}}``;
    what a variant leaves out comes from ``model``, ``system``, ``template`` and ``params``.
    ``score``: ``score(item, answer) -> number`` (``answer`` is the text, or the validated value with
    ``schema=``), or the name of a schema field: compared with the item's own field of that name
    when it has one (1.0 when equal: accuracy), else the field's value is the score.
    ``schema``, ``concurrency``, ``cache``, ``progress``: as for :func:`ds_magic.batch`.
    """
    if not isinstance(template, str):
        raise TypeError(f"the template must be a string, not {type(template).__name__}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")
    if "conversation" in params or "response_format" in params:
        raise TypeError("compare() sends independent requests: leave conversation= and response_format= out")
    specs = _variants(variants)
    parsed = as_schema(schema) if schema is not None else None
    if isinstance(score, str) and (parsed is None or (parsed.fields and score not in parsed.fields)):
        raise ValueError(f"score={score!r} names a schema field: pass schema= with a field {score!r}")
    if score is not None and not isinstance(score, str) and not callable(score):
        raise TypeError("score= must be a function (item, answer) -> number, or a schema field name")
    inputs, index = items_and_index(items, "items")
    client = client if client is not None else Client()
    names = list(specs)

    per_variant: list[dict[str, Any]] = []
    for name in names:
        spec = specs[name]
        kwargs = {k: v for k, v in spec.items() if k != "template"}
        kwargs["model"] = spec.get("model") or model or client.model
        own_system = spec.get("system", system)
        kwargs["system"] = parsed.system_prompt(own_system) if parsed is not None else own_system
        body = {
            k: v for k, v in {**params, **kwargs}.items() if k not in ("model", "system", "beta", "timeout")
        }
        body.pop("allow_secrets", None)
        try:  # each variant's parameters checked once, here, rather than failing every pair
            build_body([{"role": "user", "content": "."}], kwargs["model"], **body)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"variant {name!r}: {exc}") from None
        per_variant.append(kwargs)

    prompts: list[str | list[dict[str, Any]]] = []
    item_kwargs: list[dict[str, Any]] = []
    pair_inputs: list[Any] = []
    for item in inputs:
        for j, name in enumerate(names):
            prompts.append(render_item(specs[name].get("template", template), item))
            item_kwargs.append(per_variant[j])
            pair_inputs.append(item)
    if not params.get("allow_secrets"):
        # The outbound guard (guard.py), once per prompt and per system prompt, before anything is sent.
        texts = [(f"item {k // len(names)} ({names[k % len(names)]})", str(p)) for k, p in enumerate(prompts)]
        texts += [
            (f"system prompt of {n!r}", kw["system"])
            for n, kw in zip(names, per_variant, strict=True)
            if kw["system"]
        ]
        for text in texts:
            found = client.find_secrets([text])
            if found:
                raise SecretInPromptError(found)

    chat_kwargs: dict[str, Any] = {**params, "allow_secrets": True}
    if cache is not None:
        chat_kwargs["cache"] = cache
    if parsed is not None:
        chat_kwargs["response_format"] = {"type": "json_object"}
    result = BatchResult(
        prompts,
        pair_inputs,
        client=client,
        concurrency=concurrency,
        chat_kwargs=chat_kwargs,
        item_kwargs=item_kwargs,
        structured=StructuredItems(parsed, prompts) if parsed is not None else None,
    )
    comparison = Comparison(
        result, inputs, names, index=index, score=score, models=[kw["model"] for kw in per_variant]
    )
    result.start(pick_progress(progress, result))
    return comparison
