"""Request building: the JSON body of a chat request, validated, in one place.

``Client.chat`` sends what :func:`plan_request` builds, and ``Client.request_body`` returns the same
body without sending it, so a dry run (``%%deepseek --dry-run``) shows exactly what would go on the
wire. Values are checked here, in the caller's thread, so a bad parameter is a clear ``ValueError``
now, not a failed request later (deepseek-api.md §1.5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .conversation import Conversation

__all__ = ["build_body", "check_messages", "plan_request", "RequestPlan", "thinking_value"]

_EFFORTS = ("minimal", "low", "medium", "high", "xhigh", "max", "ultra")


def thinking_value(value: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, bool):
        return {"type": "enabled" if value else "disabled"}
    if value in ("enabled", "disabled"):
        return {"type": str(value)}
    raise ValueError(f"thinking must be True, False, 'enabled' or 'disabled', got {value!r}")


def build_body(
    messages: list[dict[str, Any]],
    model: str,
    *,
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
    stop: str | Sequence[str] | None = None,
    response_format: Mapping[str, Any] | str | None = None,
    thinking: bool | str | Mapping[str, Any] | None = None,
    reasoning_effort: str | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: str | Mapping[str, Any] | None = None,
    user_id: str | None = None,
    extra_body: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body of a streaming chat request (deepseek-api.md §1.5), with clear errors for bad values."""
    if not isinstance(model, str) or not model:
        raise ValueError("model must be a model name such as 'deepseek-flash'")
    if not messages:
        raise ValueError("messages is empty: give a prompt or a list of {'role': ..., 'content': ...} dicts")
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if temperature is not None:
        if not 0 <= float(temperature) <= 2:
            raise ValueError(f"temperature must be between 0 and 2, got {temperature}")
        body["temperature"] = float(temperature)
    if top_p is not None:
        if not 0 < float(top_p) <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        body["top_p"] = float(top_p)
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        body["max_tokens"] = max_tokens
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else list(stop)
        if len(stops) > 16 or not all(isinstance(s, str) and s for s in stops):
            raise ValueError("stop must be a string or a list of at most 16 non-empty strings")
        body["stop"] = stops if len(stops) > 1 else stops[0]
    if response_format is not None:
        body["response_format"] = (
            {"type": response_format} if isinstance(response_format, str) else dict(response_format)
        )
    if thinking is not None:
        body["thinking"] = thinking_value(thinking)
    if reasoning_effort is not None:
        if reasoning_effort not in _EFFORTS:
            raise ValueError(
                f"reasoning_effort must be one of {', '.join(_EFFORTS)}, got {reasoning_effort!r}"
            )
        body["reasoning_effort"] = reasoning_effort
    if tools is not None:
        body["tools"] = [dict(t) for t in tools]
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    if user_id is not None:
        body["user_id"] = user_id
    if extra_body:
        body.update(extra_body)
    return body


def check_messages(messages: Any) -> list[dict[str, Any]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    if not isinstance(messages, Sequence) or not all(
        isinstance(m, Mapping) and "role" in m for m in messages
    ):
        raise ValueError("messages must be a prompt string or a list of {'role': ..., 'content': ...} dicts")
    return [dict(m) for m in messages]


@dataclass(frozen=True)
class RequestPlan:
    """A validated request. For a conversation the history is added by :meth:`final_body`, on the
    engine loop once the previous turn of that conversation is stored (it is queued behind it)."""

    body: dict[str, Any]
    conversation: Conversation | None = None
    prompt: str | None = None
    system: str | None = None
    thinking: bool = True
    tools: bool = False

    def final_body(self, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """The body as it is sent: for a conversation, its history and the prompt as of now."""
        body = self.body if body is None else body
        if self.conversation is None:
            return body
        msgs = self.conversation.messages(
            self.prompt, system=self.system, thinking=self.thinking, tools=self.tools
        )
        return {**body, "messages": msgs}


def plan_request(
    messages: str | Sequence[Mapping[str, Any]] | None,
    model: str,
    *,
    conversation: Conversation | None = None,
    system: str | None = None,
    **params: Any,
) -> RequestPlan:
    """Check ``messages`` and ``params`` and build the body that ``Client.chat`` sends.

    With ``conversation``, ``messages`` is the new prompt (a string) and the history comes from the
    conversation when the request starts; ``system`` overrides its system prompt for this request.
    """
    if conversation is not None:
        if messages is not None and not isinstance(messages, str):
            raise ValueError("with conversation=..., pass the new prompt as a string")
        # None: no new prompt, the conversation goes on from its last turn (a tool loop's next step,
        # after the tool results: tool_loop.py); the body's messages are filled in by final_body.
        first = messages if messages is not None else ""
        body = build_body([{"role": "user", "content": first}], model, **params)
        return RequestPlan(
            body,
            conversation,
            messages,
            system,
            thinking=thinking_value(params.get("thinking", True)).get("type") != "disabled",
            tools=bool(params.get("tools")),
        )
    if messages is None:
        raise ValueError("messages is None: give a prompt (None goes on with a conversation=... only)")
    msgs = check_messages(messages)
    if system is not None:
        msgs = [{"role": "system", "content": system}, *[m for m in msgs if m.get("role") != "system"]]
    return RequestPlan(build_body(msgs, model, **params))
