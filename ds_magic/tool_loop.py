"""``ToolLoop``: ask, run the tools the model calls, send their results back, until a final answer.

::

    loop = client.chat("Weather in Paris?", tools=[get_weather], approve=lambda call, tool: "run")
    loop.run()                   # or: await loop.arun() / await loop
    loop.text, len(loop.steps), loop.usage(), loop.cost()

Each step is one streaming request, a :class:`Response` as any other (tool-call deltas included), on
the engine thread. The tools run where ``run()`` or ``arun()`` is called, the caller's thread (the
kernel's main thread in a notebook, where user code runs), never on the engine thread: a tool may
touch the user's namespace, plot, or be interrupted by ■.

Approval, per call: a tool marked ``safe`` and a name answered "always" run without asking; any other
call asks ``approve(call, tool)``, which returns (or resolves to) "run", "deny" or "always". With no
approver every such call is denied, with the note "no approver: denied" (headless runs are safe).

The history keeps every message whole (deepseek-api.md §4.2, §4.6): the assistant message with its
``content``, ``reasoning_content`` and ``tool_calls``, and a ``tool`` message per call with its
``tool_call_id``. With a ``Conversation`` the turns are stored there (Conversation.messages sends
the reasoning of tool turns back in V4 thinking mode); without one the loop keeps the messages.
While a loop runs on a conversation, send nothing else to that conversation (its tool results
belong right after its calls): a view that queues turns waits for the loop, not just its step.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from .errors import SecretInPromptError
from .request import plan_request, thinking_value
from .tool_call import (
    DEFAULT_MAX_RESULT_CHARS,
    ToolCallRecord,
    fail,
    finish_sync,
    finish_value,
    prepare,
    screen,
)
from .tool_drivers import Waiter, drive_async, drive_sync
from .tool_history import assistant_message, backfill, store_results, tool_message
from .tools import Tool, as_tools
from .types import ToolCall, Usage

if TYPE_CHECKING:
    from .client import Client
    from .conversation import Conversation
    from .response import Response

_log = logging.getLogger("ds_magic")

__all__ = ["ToolLoop", "Decision", "Approver", "LoopState", "DEFAULT_MAX_STEPS", "ToolCallRecord"]

Decision = Literal["run", "deny", "always"]
Approver = Callable[[ToolCall, Tool], "Decision | Awaitable[Decision]"]
LoopState = Literal["pending", "running", "done", "cancelled", "max_steps", "error"]

DEFAULT_MAX_STEPS = 8


class ToolLoop:
    """One question answered with tools: the requests (``steps``) and the calls (``calls``)."""

    def __init__(
        self,
        client: Client,
        messages: str | Sequence[Mapping[str, Any]] | None,
        tools: Sequence[Callable[..., Any] | Tool],
        *,
        conversation: Conversation | None = None,
        system: str | None = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        approve: Approver | None = None,
        allowed: set[str] | None = None,
        max_result_chars: int = DEFAULT_MAX_RESULT_CHARS,
        **chat_kwargs: Any,
    ) -> None:
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"max_steps must be a whole number of requests >= 1, got {max_steps!r}")
        if (
            isinstance(max_result_chars, bool)
            or not isinstance(max_result_chars, int)
            or max_result_chars < 100
        ):
            raise ValueError(f"max_result_chars must be a whole number >= 100, got {max_result_chars!r}")
        self.client = client
        self.tools = as_tools(tools)
        self._by_name = {t.name: t for t in self.tools}
        self.conversation = conversation
        self.system = system
        self.max_steps = max_steps
        self.approve = approve
        #: Names the user answered "always" for; pass a shared set to remember it beyond this loop.
        self.allowed: set[str] = allowed if allowed is not None else set()
        self.max_result_chars = max_result_chars
        self.steps: list[Response] = []
        self.calls: list[ToolCallRecord] = []
        self.state: LoopState = "pending"
        #: One line when the loop stopped short: max_steps, cancelled, the step's error.
        self.note = ""
        self.error: BaseException | None = None
        self.on_step: Callable[[Response], None] | None = None
        self.on_call: Callable[[ToolCallRecord], None] | None = None
        self.on_result: Callable[[ToolCallRecord], None] | None = None
        self._prompt = backfill(messages) if self._thinking_of(chat_kwargs) else messages
        self._messages: list[dict[str, Any]] | None = None  # without a conversation: the history
        self._thinking = self._thinking_of(chat_kwargs)
        specs = [t.spec() for t in self.tools]
        chat_kwargs["tools"] = specs
        if any(t.strict for t in self.tools):
            chat_kwargs["beta"] = True  # strict schemas are a beta feature (deepseek-api.md §4.6)
        self._chat_kwargs = chat_kwargs
        self._check_now(messages)
        self._lock = threading.Lock()
        self._cancelled = False
        self._started = False
        #: What an async driver awaits now (an approval, an async tool): cancel() cancels it.
        self.waiter = Waiter()
        self._t0: float | None = None
        self._t1: float | None = None

    def _check_now(self, messages: Any) -> None:
        """A bad parameter or a secret in the prompt fails here, as ``Client.chat`` would, not at run."""
        kw = self._chat_kwargs
        params = {
            k: v for k, v in kw.items() if k not in ("model", "beta", "timeout", "cache", "allow_secrets")
        }
        model = kw.get("model") or self.client.model
        plan_request(messages, model, conversation=self.conversation, system=self.system, **params)
        if not kw.get("allow_secrets") and isinstance(messages, str):
            found = self.client.find_secrets([("prompt", messages)])
            if found:
                raise SecretInPromptError(found)

    def __repr__(self) -> str:
        return f"<ToolLoop {self.state} steps={len(self.steps)} calls={len(self.calls)}>"

    # ------------------------------------------------------------------------------ results
    @property
    def text(self) -> str:
        """The final answer's text ('' until the loop is done)."""
        if self.state != "done" or not self.steps:
            return ""
        return self.steps[-1].text_so_far

    @property
    def done(self) -> bool:
        return self.state not in ("pending", "running")

    def usage(self) -> Usage:
        """Tokens summed over every step."""
        return sum((r.usage for r in self.steps if r.usage is not None), Usage())

    def cost(self) -> float | None:
        """The estimated cost in USD summed over every step (pricing.cost_of); None if none is known."""
        from .pricing import cost_of

        costs = [c.usd for c in (cost_of(r) for r in self.steps) if c is not None]
        return sum(costs) if costs else None

    @property
    def elapsed(self) -> float:
        """Seconds from the first request to the end (so far, while running): requests and tools."""
        if self._t0 is None:
            return 0.0
        return (self._t1 if self._t1 is not None else time.perf_counter()) - self._t0

    def summary(self) -> dict[str, Any]:
        """For footers and records: the state, steps, calls, summed tokens, time and cost."""
        return {
            "state": self.state,
            "steps": len(self.steps),
            "calls": len(self.calls),
            "usage": self.usage().to_dict(),
            "elapsed": self.elapsed,
            # the requests' own time, summed (elapsed minus this: tools, approvals, gaps)
            "request_time": sum(r.timing.total or r.timing.elapsed for r in self.steps),
            "cost": self.cost(),
            "note": self.note,
        }

    # ------------------------------------------------------------------------------- cancel
    def cancel(self) -> None:
        """Stop at any phase, from any thread: the streaming request is closed, a waiting approval
        counts as denied, no later call runs and no further request is sent. A running sync tool is
        interrupted by the notebook layer (■ raises KeyboardInterrupt in it); an async one is
        cancelled here. What happened so far stays in ``steps``, ``calls`` and the history."""
        with self._lock:
            self._cancelled = True
            current = self.steps[-1] if self.steps else None
        if current is not None:
            current.cancel()
        self.waiter.cancel()

    # ------------------------------------------------------------------------------ drivers
    def run(self) -> ToolLoop:
        """Run every step in this thread: requests stream on the engine, tools run here. Ctrl-C / ■
        cancels the loop (the loop ends "cancelled"; it does not raise)."""
        drive_sync(self._drive(), self)
        return self

    async def arun(self) -> ToolLoop:
        """Run every step, awaiting in the caller's loop: sync tools run in this thread, async
        tools and approvers that return awaitables are awaited here. If the awaiting task is
        cancelled, the loop is cancelled, ends "cancelled", and the CancelledError goes on."""
        await drive_async(self._drive(), self)
        return self

    def __await__(self) -> Generator[Any, None, ToolLoop]:
        return self.arun().__await__()

    @property
    def cancel_requested(self) -> bool:
        return self._cancelled

    # ------------------------------------------------------------------------------ the loop
    def _drive(self) -> Generator[tuple[str, Any], Any, None]:
        with self._lock:
            if self._started:
                raise RuntimeError("this ToolLoop has already run; start a new one")
            self._started = True
            if self._cancelled:
                self.state, self.note = "cancelled", "cancelled before the first request"
                return
            self.state = "running"
        self._t0 = time.perf_counter()
        try:
            yield from self._steps()
        finally:
            self._t1 = time.perf_counter()

    def _steps(self) -> Generator[tuple[str, Any], Any, None]:
        while True:
            try:
                resp = self._start_step()
            except Exception as exc:  # a request that cannot be made (a bad parameter, a secret)
                self.error = exc
                self._stop("error", f"step {len(self.steps) + 1} could not start: {exc}")
                raise
            if resp is None:
                self._stop("cancelled", "cancelled before the next request")
                return
            yield ("step", resp)
            if resp.status != "ok":
                if resp.status == "cancelled" or self._cancelled:
                    self._stop("cancelled", f"cancelled during step {len(self.steps)}")
                else:
                    self.error = resp.error
                    self._stop("error", f"step {len(self.steps)} ended {resp.status}: {resp.error}")
                return
            calls = resp.tool_calls
            if not calls:
                self.state = "done"
                return
            step = len(self.steps) - 1
            records = [ToolCallRecord(c, self._by_name.get(c.name), step) for c in calls]
            self.calls.extend(records)
            last = len(self.steps) >= self.max_steps
            for rec in records:
                _notify(self.on_call, rec)
            for rec in records:
                if last:
                    rec.status, rec.note = "skipped", f"max_steps={self.max_steps} reached"
                elif self._cancelled:
                    rec.status, rec.note = "cancelled", "the loop was cancelled"
                else:
                    yield from self._one_call(rec)
                    if not self._chat_kwargs.get("allow_secrets"):
                        screen(rec, self.client.find_secrets)
                _notify(self.on_result, rec)
            self._store(resp, records)
            if last:
                self._stop(
                    "max_steps",
                    f"stopped after max_steps={self.max_steps} requests: the model still wanted "
                    f"{len(records)} tool call(s); raise max_steps= to let it go on",
                )
                return
            if self._cancelled:
                self._stop("cancelled", "cancelled while running tools")
                return

    def _one_call(self, rec: ToolCallRecord) -> Generator[tuple[str, Any], Any, None]:
        tool = rec.tool
        if tool is not None and (tool.safe or tool.name in self.allowed):
            rec.decision, rec.note = "run", "safe" if tool.safe else "always allowed"
        elif tool is not None:
            if self.approve is None:
                rec.decision, rec.note = "deny", "no approver: denied"
            else:
                decision = yield ("approve", (rec.call, tool))
                if self._cancelled or decision == "cancelled":
                    rec.status, rec.decision = "denied", "deny"
                    rec.note = "cancelled while waiting for approval: denied"
                    return
                if isinstance(decision, tuple):  # the approver raised
                    rec.decision, rec.note = "deny", f"the approver failed: {decision[1]!r}"
                elif decision not in ("run", "deny", "always"):
                    rec.decision, rec.note = "deny", f"approver answered {decision!r}: denied"
                else:
                    rec.decision = str(decision)
            if rec.decision == "always":
                self.allowed.add(tool.name)
            if rec.decision == "deny":
                rec.status = "denied"
                return
        bound = prepare(rec)
        if bound is None:
            return
        started = time.perf_counter()
        try:
            pending = finish_sync(rec, bound, self.max_result_chars)
        except KeyboardInterrupt:  # ■ while a sync tool runs: the call and the loop stop here
            rec.status, rec.note = "cancelled", "interrupted while running"
            rec.duration = time.perf_counter() - started
            self.cancel()
            return
        if pending is None:
            return
        kind, value, output = yield ("await", pending)
        if kind == "value":
            finish_value(rec, value, rec.output + output, started, self.max_result_chars)
        elif kind == "raised":
            fail(rec, value, started)
        else:
            rec.status, rec.note = "cancelled", "interrupted while running"
            rec.duration = time.perf_counter() - started

    def _stop(self, state: LoopState, note: str) -> None:
        self.state, self.note = state, note
        if self.calls and state == "max_steps":
            self.calls[-1].note = f"{self.calls[-1].note}; {note}" if self.calls[-1].note else note

    # --------------------------------------------------------------------------- requests
    def _start_step(self) -> Response | None:
        resp: Response
        with self._lock:
            if self._cancelled:
                return None
            if not self.steps:
                resp = self.client.chat(
                    self._prompt,
                    conversation=self.conversation,
                    system=self.system,
                    **self._chat_kwargs,
                )
                if self.conversation is None:
                    self._messages = list(resp.request.get("messages", []))
            elif self.conversation is not None:
                resp = self.client.chat(
                    None, conversation=self.conversation, system=self.system, **self._chat_kwargs
                )
            else:
                resp = self.client.chat(list(self._messages or ()), **self._chat_kwargs)
            self.steps.append(resp)
        _notify(self.on_step, resp)
        return resp

    def _store(self, resp: Response, records: list[ToolCallRecord]) -> None:
        """The step's assistant message (whole) and one tool message per call, into the history."""
        if self.conversation is not None:  # the assistant turn was stored by the request itself
            store_results(self.conversation, records)
            return
        history = self._messages if self._messages is not None else []
        history.append(assistant_message(resp, self._thinking))
        history.extend(tool_message(rec) for rec in records)
        self._messages = history

    @staticmethod
    def _thinking_of(chat_kwargs: Mapping[str, Any]) -> bool:
        thinking = chat_kwargs.get("thinking", True)
        return thinking_value(thinking if thinking is not None else True).get("type") != "disabled"

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The history so far, as sent (without a conversation; with one, see conversation.turns)."""
        return list(self._messages or ())


def _notify(hook: Callable[[Any], None] | None, value: Any) -> None:
    """A view's hook: its failure is logged, never the end of the loop (the request is under way)."""
    if hook is not None:
        try:
            hook(value)
        except Exception:
            _log.exception("ds_magic: a tool loop listener failed")
