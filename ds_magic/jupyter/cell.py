"""One ``%%deepseek`` cell: from the parsed line and the prompt to a started request, the view that
shows it, the wait, and the cell's value.

The request itself always runs on the core's engine thread; how the cell waits for it is the wait
mode (kernel_hooks.py, kernel-and-widgets.md §9.2).
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..batch_result import BatchResult
from ..batching import batch
from ..conversation import Conversation
from ..errors import DeepSeekError
from ..interpolate import interpolate
from ..request import RequestPlan, plan_request
from ..response import Response
from ..run_result import RunResult
from .display import mark_shown
from .errors import DeepSeekCellError, batch_stopped_error, cell_error, stopped_error
from .kernel_hooks import block_hint, in_kernel
from .model_names import request_failed
from .options import CellOptions
from .session import session
from .settings import Settings, body_params, chat_params
from .stream_view import StreamView
from .text_view import TextView

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = [
    "CellCall",
    "prepare",
    "dry_run",
    "start",
    "start_batch",
    "wait",
    "wait_async",
    "wait_batch",
    "wait_batch_async",
    "result",
]

_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)


@dataclass
class CellCall:
    """A checked cell, ready to start."""

    options: CellOptions
    prompt: str
    #: ``Client.chat`` keyword parameters (settings.chat_params), ``model`` included.
    params: dict[str, Any]
    #: The conversation it continues; None with --no-history / --each, which send ``messages``.
    conversation: Conversation | None
    messages: list[dict[str, Any]] | None
    #: The request as ``Client.chat`` builds it (same code): checked now, printed by --dry-run.
    plan: RequestPlan


def prepare(settings: Settings, shell: InteractiveShell, options: CellOptions, cell: str) -> CellCall:
    if options.words:
        raise DeepSeekCellError(
            f"Unexpected words after %%deepseek: {' '.join(options.words)!r} — put the prompt in the cell body"
        )
    if options.schema and not options.each:
        raise DeepSeekCellError(
            f"--schema {options.schema} needs --each VAR: a schema'd answer per item of VAR "
            "(for one answer, use --json)"
        )
    if options.run and not options.each:
        raise DeepSeekCellError(
            f"--run {options.run} needs --each VAR: a run keeps one answer per item of VAR"
        )
    if options.schema and options.json:
        raise DeepSeekCellError(f"--schema {options.schema} sets JSON mode itself: leave --json out")
    prompt = cell.strip("\n").rstrip()
    if not prompt.strip():
        raise DeepSeekCellError("The cell is empty: write your prompt on the lines below %%deepseek")
    if settings.interpolate and not options.raw and not options.each:
        # With --each the batch fills {item} (and an item's keys) itself.
        # Rich values (a DataFrame, a long list) are summarised, not dumped (summarize.py).
        prompt = interpolate(prompt, shell.user_ns, max_chars=settings.context_max_chars)
    # DeepSeek's JSON mode needs the word "json" in the prompt (deepseek-api.md §4.5).
    if options.json and "json" not in prompt.lower():
        prompt += "\n\nAnswer with a JSON object."
    params = chat_params(
        settings,
        model=options.model,
        temperature=options.temperature,
        max_tokens=options.max_tokens,
        stop=options.stop or None,
        thinking=options.thinking,
        reasoning_effort=options.effort,
        response_format={"type": "json_object"} if options.json else None,
        cache=True if options.cache else None,
        allow_secrets=True if options.allow_secrets else None,
    )
    system = options.system
    conversation = None
    messages = None
    if options.no_history or options.each:
        sys_prompt = system or settings.system
        messages = [{"role": "system", "content": sys_prompt}] if sys_prompt else []
        messages.append({"role": "user", "content": prompt})
    else:
        conversation = session.store.get(options.chat or "default")
        if options.new:
            conversation.clear()
            if not system:
                conversation.system = settings.system or None
        if system:
            conversation.system = system
        elif conversation.system is None and settings.system and not conversation.turns:
            conversation.system = settings.system
        conversation.max_history_tokens = settings.max_history_tokens
    try:  # clear errors before sending
        plan = plan_request(
            prompt if conversation is not None else messages or [],
            params["model"],
            conversation=conversation,
            **body_params(params),
        )
    except (ValueError, TypeError) as exc:
        raise cell_error(exc) from None
    return CellCall(options, prompt, params, conversation, messages, plan)


def dry_run(call: CellCall) -> dict[str, Any]:
    """``--dry-run``: print the exact body ``Client.chat`` would send now; send nothing."""
    body = call.plan.final_body()
    print(json.dumps(body, indent=2, ensure_ascii=False))
    return body


def start_batch(settings: Settings, shell: InteractiveShell, call: CellCall) -> BatchResult | RunResult:
    """``--each VAR``: the cell as a template over VAR, one request per item, no history.

    ``--run NAME``: a persisted run (run_store.py), so a :class:`RunResult`.
    """
    name = call.options.each
    assert name is not None
    if name not in shell.user_ns:
        raise DeepSeekCellError(f"--each {name}: no variable named {name!r} in the namespace")
    params = dict(call.params)
    model = params.pop("model")
    msgs = call.messages or []
    system = msgs[0]["content"] if msgs and msgs[0]["role"] == "system" else None
    if call.options.schema:
        params["schema"] = schema_named(shell, call.options.schema)
    if call.options.run:
        params["run"] = call.options.run
    try:
        result: BatchResult | RunResult = batch(  # no tools here (a tool batch is a ToolBatch)
            call.prompt,
            shell.user_ns[name],
            client=session.client(settings),
            concurrency=settings.batch_concurrency,
            model=model,
            system=system,
            **params,
        )
    except (DeepSeekError, ValueError, TypeError) as exc:
        raise cell_error(exc) from None
    if call.options.out:
        shell.user_ns[call.options.out] = result
    return result


def schema_named(shell: InteractiveShell, name: str) -> Any:
    """``--schema NAME``: the namespace's NAME (``dict`` means any JSON object)."""
    if name in shell.user_ns:
        return shell.user_ns[name]
    if name == "dict":
        return dict
    raise DeepSeekCellError(f"--schema {name}: no variable named {name!r} in the namespace")


def wait_batch(shell: InteractiveShell, result: BatchResult | RunResult) -> BatchResult | RunResult:
    """The blocking wait of ``--each``; ■ cancels the batch and says so in one line."""
    shell.user_ns["_ds_batch"] = result
    try:
        return result.wait()
    except KeyboardInterrupt:
        raise _batch_stopped(result) from None


async def wait_batch_async(
    shell: InteractiveShell, result: BatchResult | RunResult
) -> BatchResult | RunResult:
    """The ``await`` wait of ``--each``: the same line as :func:`wait_batch` on ■."""
    shell.user_ns["_ds_batch"] = result
    try:
        return await result
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise _batch_stopped(result) from None


def _batch_stopped(result: BatchResult | RunResult) -> DeepSeekCellError:
    result.cancel()  # the wait has cancelled it already; idempotent
    progress = result.progress
    return batch_stopped_error(progress.done, progress.total)


def start(
    settings: Settings, shell: InteractiveShell, call: CellCall, mode: str
) -> tuple[Response, StreamView | TextView]:
    """Start the request and show it: a live view in a kernel, printed text in terminal IPython."""
    params = dict(call.params)
    model = params.pop("model")
    try:
        client = session.client(settings)
        if call.conversation is not None:
            resp = client.chat(call.prompt, model=model, conversation=call.conversation, **params)
        else:
            resp = client.chat(call.messages or [], model=model, **params)
    except (DeepSeekError, ValueError, TypeError) as exc:
        raise cell_error(exc) from None
    session.track(resp)
    if call.options.out:
        shell.user_ns[call.options.out] = resp
    if not in_kernel(shell):
        return resp, TextView(resp, show_reasoning=settings.show_reasoning)
    view = StreamView(
        resp,
        fmt="text" if call.options.format == "code" else call.options.format,
        show_reasoning=settings.show_reasoning,
        throttle_ms=settings.throttle_ms,
        cancel_hint=block_hint() if mode == "block" else "",
    )
    view.show()
    return resp, view


def wait(resp: Response, view: StreamView | TextView) -> bool:
    """The ``block`` wait: 100 ms slices (``join``), so ■ still cancels. True if ■ / Ctrl-C stopped it.

    The KeyboardInterrupt is not let out: :func:`result` says "Stopped after N tokens" in one line,
    the same words as the ``await`` wait (issue 13; it used to be a bare KeyboardInterrupt here).
    """
    stopped = False
    if isinstance(view, TextView):
        return view.run()  # terminal: print as it streams; Ctrl-C cancels
    try:
        resp.join()  # an interrupted join cancels the request (waitable.py)
    except KeyboardInterrupt:
        stopped = True
        _settle(resp)
    view.wait_finalized()
    return stopped


def _settle(resp: Response) -> None:
    """After ■: let the cancelled request end, so the token count said is the final one."""
    resp.cancel()
    try:
        resp.join(5)
    except KeyboardInterrupt:  # ■ pressed twice: the request is already cancelled
        pass


async def wait_async(resp: Response, view: StreamView | TextView) -> bool:
    """The ``await`` wait: the kernel handles clicks and ■ meanwhile. True if ■ stopped it."""
    assert isinstance(view, StreamView)  # await mode runs only in a kernel
    interrupted = False
    try:
        await resp.finished()
    except (asyncio.CancelledError, KeyboardInterrupt):
        # ■: ipykernel cancels the cell's task and finished() has already cancelled the request.
        # The user asked for it, so say what happened in one line rather than show a traceback
        # through asyncio; the cell still fails, so Run All stops here.
        interrupted = True
    finally:
        for _ in range(100):
            if view.wait_finalized(0):
                break
            await asyncio.sleep(0.01)
    return interrupted


def result(
    settings: Settings, shell: InteractiveShell, call: CellCall, resp: Response, *, stopped: bool = False
) -> Any:
    """The cell's value once the answer ended: the Response (or the parsed JSON with --json).

    In terminal IPython a Response is not returned: the text view has printed it, and a value whose
    display prints nothing would still get an empty ``Out[n]:`` prompt (issue 13).
    """
    shell.user_ns["_ds_last"] = resp
    if stopped and resp.status != "ok":
        raise stopped_error(resp, history=call.conversation is not None)
    if resp.status in ("error", "interrupted"):
        raise request_failed(resp, session.client(settings))
    value: Any = resp
    if call.options.json and resp.status == "ok":
        try:
            value = json.loads(resp.text_so_far)
        except ValueError as exc:
            raise DeepSeekCellError(
                f"The answer is not valid JSON ({exc}); the raw Response is in _ds_last — raise max_tokens or ask for JSON explicitly"
            ) from None
        if call.options.out:
            shell.user_ns[call.options.out] = value
    if call.options.format == "code":
        m = _FENCE.search(resp.text_so_far)
        code = m.group(1) if m else resp.text_so_far
        shell.set_next_input(code.rstrip("\n"), replace=False)
    if isinstance(value, Response):
        if not in_kernel(shell):
            return None
        mark_shown(value)
    return value
