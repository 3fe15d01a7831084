"""``batch``: one prompt template over many items, with bounded, adaptive concurrency.

::

    result = ds_magic.batch("Summarise in one line: {item}", texts, concurrency=16)
    result.wait()                       # or: await result
    result.table()                      # DataFrame (pandas) or list of dicts, in input order

``batch`` returns a :class:`BatchResult` at once; the items run on the engine loop, at most
``concurrency`` at a time, adapting to 429s (batch_schedule.py). The answers come back in input
order whatever order they finish in.

How progress is shown: the notebook layer registers a view with :func:`register_progress_view`
when it is loaded (``%load_ext ds_magic``); the core never imports IPython or a widget library.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

from .batch_progress import Progress, TextProgress
from .batch_result import BatchResult
from .batch_shard import choose_processes
from .client import Client
from .errors import SecretInPromptError
from .interpolate import interpolate
from .request import build_body
from .run_result import RunResult
from .run_start import start_run
from .structured import as_schema
from .structured_result import StructuredItems
from .tools import wants_loop

if TYPE_CHECKING:
    from .tool_batch import ToolBatch
    from .tools import Tool

__all__ = ["batch", "register_progress_view", "ProgressViewFactory"]

#: Makes the progress callback of a notebook view for a batch (and shows the view).
ProgressViewFactory = Callable[[BatchResult], Progress]

_view_factory: ProgressViewFactory | None = None


def register_progress_view(factory: ProgressViewFactory | None) -> None:
    """Use ``factory(result)`` for ``batch(progress=True / "auto" / "widget")``; None removes it.

    The notebook layer registers its progress widget here when it is loaded.
    """
    global _view_factory
    _view_factory = factory


# --------------------------------------------------------------------- inputs
def items_and_index(values: Any, what: str) -> tuple[list[Any], Any]:
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


def render_item(template: str, item: Any) -> str:
    return interpolate(template, {**_fields(item), "item": item})


def _prompt(p: Any) -> str | list[dict[str, Any]]:
    if isinstance(p, str):
        return p
    if isinstance(p, Sequence) and all(isinstance(m, Mapping) for m in p):
        return [dict(m) for m in p]
    return str(p)


def pick_progress(progress: bool | str | Progress | None, result: BatchResult) -> Progress | None:
    if progress is None or progress is False:
        return None
    if callable(progress):
        return progress
    if progress not in (True, "auto", "text", "widget"):
        raise ValueError(f"progress must be True, False, 'text', 'widget' or a callable, got {progress!r}")
    if progress == "widget" and _view_factory is None:
        raise ValueError("progress='widget' needs the notebook layer: run %load_ext ds_magic first")
    if progress == "text":
        return TextProgress()
    if _view_factory is not None:
        return _view_factory(result)
    return TextProgress() if sys.stderr.isatty() else None


# --------------------------------------------------------------------- the function
@overload
def batch(
    template_or_prompts: Any,
    items: Any = None,
    *,
    tools: Sequence[Callable[..., Any] | Tool],
    **params: Any,
) -> ToolBatch: ...


@overload
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
    schema: Any = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    run: None = None,
    sink: None = None,
    when: None = None,
    finish: Literal[False] = False,
    estimate: Literal[False] = False,
    processes: int | str | None = None,
    **params: Any,
) -> BatchResult: ...


@overload
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
    schema: Any = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    run: str | None = None,
    sink: Any = None,
    when: Any = None,
    finish: bool = False,
    estimate: bool | int = False,
    processes: int | str | None = None,
    **params: Any,
) -> BatchResult | RunResult: ...


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
    schema: Any = None,
    tools: Sequence[Any] | None = None,
    run: str | None = None,
    sink: Any = None,
    when: Any = None,
    finish: bool = False,
    estimate: bool | int = False,
    processes: int | str | None = None,
    **params: Any,
) -> Any:
    """Run many prompts (or one template over many items) and return a :class:`BatchResult` at once.

    - ``batch(["Hi", "Hello"])``: a list (or pandas Series) of prompts.
    - ``batch("Translate: {item}", items)``: ``{item}`` is each item; a dict item (or a DataFrame
      row) also offers its keys, ``{name}``, and any item its attributes, ``{item.name}``. Nothing
      else in the template is touched (braces in pasted code are safe).

    ``concurrency`` is the most requests in flight; 429s lower it for a while. ``model``, ``system``,
    ``cache`` and ``params`` (temperature, max_tokens, ...) go to every ``client.chat`` call.
    ``progress``: True (the notebook view once the notebook layer is loaded, else a line on stderr
    in a terminal), False, ``"text"``, ``"widget"``, or a callable that gets a
    :class:`BatchProgress` on the engine thread (keep it quick).
    ``schema``: ``dict``, a JSON Schema, a pydantic model or a dataclass: JSON mode with the schema in
    the system prompt, each answer validated, sent back once with the error; ``result.table()`` has a
    column per field and ``result.values`` the validated values (structured.py).
    ``tools`` of functions make each item a tool loop: a :class:`ToolBatch` (tool_batch.py), not
    started, that ``await`` or ``.run()`` drives from this thread (``max_steps=``, ``approve=`` too).

    ``run="labels-v2"`` persists the run (run_store.py: run it again and only the missing items are
    sent); ``sink="out.parquet"`` / ``".csv"`` streams the rows to a file, for items of any size
    (a generator is read a chunk at a time); ``when="off-peak"`` waits for DeepSeek's off-peak
    window (``finish=True``: do not pause when it ends); ``estimate=True`` projects cost and time
    and does not start (``result.start()``). Any of these returns a :class:`RunResult` (run_result.py);
    with ``schema=`` its rows have a column per field (run_structured.py). ``tools=`` is not taken with them.
    ``processes``: N (or ``"auto"``) runs the items in N worker processes, each with its own engine
    and a share of ``concurrency``; the answers come back here, finished, in input order
    (batch_shard.py). For thousands of streams: one process reads a few tens of thousands of events/s.
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")
    if "conversation" in params:
        raise TypeError("batch items are independent requests: conversation= is not supported")
    streamed = run is not None or sink is not None or when is not None or finish or estimate is not False
    if streamed and tools is not None:
        raise TypeError(
            "run= / sink= / when= / estimate= do not take tools= yet: run a plain batch(..., tools=[...])"
        )
    if processes is not None and (streamed or schema is not None or tools is not None):
        raise TypeError(
            "processes= shards a plain batch: leave out run= / sink= / when= / estimate= / schema= / tools="
        )
    if items is None:
        if isinstance(template_or_prompts, str):
            raise TypeError("one template needs items: batch('... {item} ...', items)")
        if streamed:  # run_start.py reads the items lazily
            return _start_run(None, template_or_prompts, _prompt, locals())
        raw, index = items_and_index(template_or_prompts, "prompts")
        prompts = [_prompt(p) for p in raw]
        inputs = raw
    else:
        if not isinstance(template_or_prompts, str):
            raise TypeError(
                f"with items, the first argument must be a template string, not {type(template_or_prompts).__name__}"
            )
        if streamed:
            template = template_or_prompts
            return _start_run(template, items, lambda x: render_item(template, x), locals())
        inputs, index = items_and_index(items, "items")
        prompts = [render_item(template_or_prompts, x) for x in inputs]
    structured = None
    if schema is not None:
        if "response_format" in params:
            raise TypeError("schema= sets JSON mode itself: leave response_format out")
        structured = StructuredItems(as_schema(schema), prompts)
        system = structured.schema.system_prompt(system)
        params["response_format"] = {"type": "json_object"}
    client = client if client is not None else Client()
    if not params.get("allow_secrets"):
        # The outbound guard (guard.py) once, for every item and the system prompt, before anything
        # is sent; the items' own chat() calls on the engine loop then need not scan them again.
        texts = [(f"item {i}", str(p)) for i, p in enumerate(prompts)]
        if system:
            texts.append(("system prompt", system))
        for text in texts:
            found = client.find_secrets([text])
            if found:
                raise SecretInPromptError(found)
    if wants_loop(tools):
        from .tool_batch import ToolBatch  # tools run in the caller's thread, not on the engine

        kwargs = {**params, "model": model, "system": system, "allow_secrets": True, "tools": tools}
        if cache is not None:
            kwargs["cache"] = cache
        return ToolBatch(prompts, inputs, client=client, concurrency=concurrency, index=index, **kwargs)
    if tools is not None:
        params["tools"] = tools
    # Check the parameters once, here, rather than failing every item on the engine.
    body_params = {k: v for k, v in params.items() if k not in ("beta", "timeout", "allow_secrets")}
    build_body([{"role": "user", "content": "."}], model or client.model, **body_params)
    chat_kwargs: dict[str, Any] = {**params, "model": model, "system": system, "allow_secrets": True}
    if cache is not None:
        chat_kwargs["cache"] = cache
    shards = choose_processes(processes, concurrency, len(prompts))
    result = BatchResult(
        prompts,
        inputs,
        client=client,
        concurrency=concurrency,
        chat_kwargs=chat_kwargs,
        index=index,
        structured=structured,
        processes=shards,
    )
    result.start(pick_progress(progress, result))
    return result


def _start_run(
    template: str | None, items: Any, make_prompt: Callable[[Any], Any], a: dict[str, Any]
) -> RunResult:
    """``batch(..., run= / sink= / when= / estimate=)``: a :class:`RunResult` (run_start.py)."""
    progress = a["progress"]

    def progress_for(result: Any) -> Progress | None:  # a RunResult: the view needs len() and cancel()
        return pick_progress(progress, result)

    return start_run(
        template,
        items,
        make_prompt=make_prompt,
        client=a["client"] if a["client"] is not None else Client(),
        concurrency=a["concurrency"],
        model=a["model"],
        system=a["system"],
        cache=a["cache"],
        params=a["params"],
        run=a["run"],
        sink=a["sink"],
        when=a["when"],
        finish=a["finish"],
        estimate=a["estimate"],
        progress_for=progress_for,
        schema=a["schema"],
    )
