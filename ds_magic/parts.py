"""``AnswerParts``: one answer assembled from its events: text, thinking, tool calls, usage, clocks.

Not thread-safe on its own: a ``Response`` holds its lock around every call.
"""

from __future__ import annotations

from collections.abc import Sequence

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

__all__ = ["AnswerParts"]


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

    def compact(self) -> None:
        """A finished answer is kept (Out[], history) long after its stream: one string instead of
        a piece per token (benchmarks/soak.py)."""
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
