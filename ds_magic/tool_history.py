"""A tool loop's messages in the history, kept whole (deepseek-api.md §1.5, §4.2, §4.6).

The assistant message of a step keeps its ``content``, ``reasoning_content`` and ``tool_calls``; each
call gets a ``tool`` message with its ``tool_call_id``. In V4 thinking mode the reasoning of a tool
turn must be sent back in every later request, or the API answers 400 (§3.2): without a conversation
the loop's own messages carry it; with one, ``Conversation.messages`` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .conversation import Conversation
    from .response import Response
    from .tool_call import ToolCallRecord

__all__ = ["assistant_message", "tool_message", "store_results", "backfill"]


def assistant_message(resp: Response, thinking: bool) -> dict[str, Any]:
    """A step's answer as the next request sends it back."""
    msg: dict[str, Any] = {
        "role": "assistant",
        "content": resp.text_so_far,
        "tool_calls": [c.to_message() for c in resp.tool_calls],
    }
    if thinking:
        msg["reasoning_content"] = resp.reasoning
    return msg


def tool_message(rec: ToolCallRecord) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": rec.call.id, "content": rec.content}


def store_results(conversation: Conversation, records: Sequence[ToolCallRecord]) -> None:
    """One tool turn per call; a call that was not run is marked ``cancelled``, and ``meta`` keeps
    what happened (decision, note, duration, error) for the history view and exports."""
    for rec in records:
        status = "ok" if rec.status in ("ok", "error", "denied") else "cancelled"
        meta: dict[str, Any] = {
            "tool": rec.name,
            "status": rec.status,
            "decision": rec.decision,
            "note": rec.note,
        }
        if rec.duration is not None:
            meta["duration"] = rec.duration
        if rec.error is not None:
            meta["error"] = rec.error
        conversation.add_tool_result(rec.call.id, rec.content, status=status, meta=meta)


def backfill(messages: Any) -> Any:
    """The caller's own messages, each assistant one with a ``reasoning_content`` (empty if it had
    none): with tools and thinking on, the API wants the field on every assistant message
    (deepseek-api.md §4.2 [obs]; vercel/ai back-fills '' the same way)."""
    if isinstance(messages, str) or messages is None:
        return messages
    return [
        {**m, "reasoning_content": ""}
        if isinstance(m, Mapping) and m.get("role") == "assistant" and "reasoning_content" not in m
        else m
        for m in messages
    ]
