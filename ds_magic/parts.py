"""``AnswerParts``: one answer assembled from its events: text, thinking, tool calls, usage, clocks;
and :func:`own_turn`, what a finished answer keeps of the request it sent.

Not thread-safe on its own: a ``Response`` holds its lock around every call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .stopwatch import Stopwatch
from .types import (
    AnswerDelta,
    Event,
    ReasoningDelta,
    StatusEvent,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageEvent,
)

__all__ = ["AnswerParts", "own_turn"]


class AnswerParts:
    """The pieces so far; ``compact`` joins them once the answer is final."""

    __slots__ = ("text", "reasoning", "calls", "usage", "status_message", "chars", "clock")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[int, ToolCall] = {}
        self.usage: Usage | None = None
        self.status_message = ""
        self.chars = 0  # answer + thinking characters, counted without joining the pieces
        self.clock = Stopwatch()

    def add(self, events: Sequence[Event], now: float) -> None:
        for ev in events:
            kind = ev.kind
            if kind == "answer" or kind == "reasoning":
                text: str = ev.text  # type: ignore[union-attr]
                (self.text if kind == "answer" else self.reasoning).append(text)
                self.chars += len(text)
                self.clock.piece(now, kind == "answer")
            elif isinstance(ev, ToolCallDelta):
                self.clock.piece(now, False)
                call = self.calls.get(ev.index)
                if call is None:
                    call = self.calls[ev.index] = ToolCall(index=ev.index)
                call.add(ev)
            elif isinstance(ev, UsageEvent):
                self.usage = ev.usage
            elif isinstance(ev, StatusEvent):
                self.status_message = ev.message

    def end(self) -> None:
        """The answer is final: the clocks stop, and the pieces are joined. A finished answer is kept
        (Out[], history) long after its stream: one string instead of a piece per token (soak.py)."""
        self.clock.stop()
        if len(self.text) > 1:
            self.text = ["".join(self.text)]
        if len(self.reasoning) > 1:
            self.reasoning = ["".join(self.reasoning)]

    def tool_calls(self) -> list[ToolCall]:
        return [self.calls[i] for i in sorted(self.calls)]

    def snapshot(self) -> list[Event]:
        """Everything so far as a few merged events: what a reader that starts late gets first."""
        snap: list[Event] = []
        if self.reasoning:
            snap.append(ReasoningDelta("".join(self.reasoning)))
        if self.text:
            snap.append(AnswerDelta("".join(self.text)))
        for c in self.tool_calls():
            snap.append(ToolCallDelta(index=c.index, id=c.id, name=c.name, arguments=c.arguments))
        if self.usage is not None:
            snap.append(UsageEvent(self.usage))
        return snap


def own_turn(body: dict[str, Any], chat: str | None) -> dict[str, Any]:
    """The request body a finished turn of conversation ``chat`` keeps: its own messages only.

    A conversation's request carries the whole history (deepseek-api.md §4.1), and Out[] keeps
    every cell's ``Response``: kept whole, the bodies held the history once per cell, so memory grew
    with the square of the session's length (issue 14, benchmarks/soak.py). The history is the
    conversation's, up to this turn; the body keeps the system message it was sent with and the
    prompt, every other field as sent. A body without a conversation (``chat`` None: messages the
    caller gave) is kept as it is. ``Client.request_body`` (``--dry-run``) shows a whole body.
    """
    msgs = body.get("messages")
    if chat is None or not isinstance(msgs, list) or len(msgs) <= 2:
        return body
    head = [m for m in msgs[:1] if isinstance(m, dict) and m.get("role") == "system"]
    return {**body, "messages": [*head, msgs[-1]]}
