"""Resume after a dropped stream: what was received, the continuation request, and the stitch.

A stream that breaks after text arrived is continued by chat prefix completion on the beta
endpoint (deepseek-api.md §4.3): the same history plus the partial answer as an assistant message
with ``prefix: true``. The continuation is joined to what was shown without repeating it.
The runner (runner.py) decides when; this module holds the pure parts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .conversation import estimate_tokens
from .text import clean_text
from .types import AnswerDelta, Event, ReasoningDelta, Usage, UsageEvent

__all__ = ["Received", "Stitch", "add_usage", "dropped_usage", "resume_body", "why_no_resume"]


@dataclass
class Received:
    """What the server sent, as sent: the prefix for a resume. Response may show a masked copy
    (a content filter), so the runner keeps its own."""

    answer: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tool_calls: bool = False
    pieces: int = 0
    usage: Usage | None = None

    def note(self, events: Sequence[Event]) -> None:
        for ev in events:
            kind = ev.kind
            if kind == "answer":
                self.answer.append(ev.text)  # type: ignore[union-attr]
                self.pieces += 1
            elif kind == "reasoning":
                self.reasoning.append(ev.text)  # type: ignore[union-attr]
                self.pieces += 1
            elif kind == "tool_call":
                self.tool_calls = True
            elif kind == "usage":
                self.usage = ev.usage  # type: ignore[union-attr]


class _PrefixStrip:
    """Drops the prefix if a continuation starts by repeating it.

    deepseek-api.md §4.3: the continuation is believed to hold only the new text, "verify; the
    client should cope with either". Text is held only while it still matches the prefix; the
    first differing character releases it. Prefixes shorter than ``MIN`` are never stripped: a
    continuation that happens to start with the same few characters is more likely than an echo.
    """

    MIN = 8

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.buf = ""
        self.deciding = len(prefix) >= self.MIN

    def feed(self, text: str) -> str:
        if not self.deciding:
            return text
        self.buf += text
        n = min(len(self.buf), len(self.prefix))
        if self.buf[:n] != self.prefix[:n]:
            return self.flush()
        if len(self.buf) >= len(self.prefix):
            self.deciding = False
            out, self.buf = self.buf[len(self.prefix) :], ""
            return out
        return ""

    def flush(self) -> str:
        self.deciding = False
        out, self.buf = self.buf, ""
        return out


class Stitch:
    """Joins a resumed stream to what was already shown: no repeated prefix, no second reasoning."""

    def __init__(self, answer: str, reasoning: str, dropped: Usage | None) -> None:
        self.answer = _PrefixStrip(answer)
        self.reasoning = _PrefixStrip(reasoning)
        # The drop came after the answer had started: the reasoning was complete, so any reasoning
        # the resumed request sends is not part of this answer.
        self.reasoning_done = bool(answer)
        self.dropped = dropped

    def __call__(self, events: Sequence[Event]) -> list[Event]:
        out: list[Event] = []
        for ev in events:
            kind = ev.kind
            if kind == "answer":
                text = self.answer.feed(ev.text)  # type: ignore[union-attr]
                if text:
                    out.append(AnswerDelta(text))
            elif kind == "reasoning":
                if self.reasoning_done:
                    continue
                text = self.reasoning.feed(ev.text)  # type: ignore[union-attr]
                if text:
                    out.append(ReasoningDelta(text))
            elif kind == "usage" and self.dropped is not None:
                out.append(UsageEvent(add_usage(ev.usage, self.dropped)))  # type: ignore[union-attr]
            else:
                out.append(ev)
        return out

    def flush(self) -> list[Event]:
        out: list[Event] = []
        text = self.reasoning.flush()
        if text and not self.reasoning_done:
            out.append(ReasoningDelta(text))
        text = self.answer.flush()
        if text:
            out.append(AnswerDelta(text))
        return out


def add_usage(a: Usage, b: Usage) -> Usage:
    return Usage(
        prompt_tokens=a.prompt_tokens + b.prompt_tokens,
        completion_tokens=a.completion_tokens + b.completion_tokens,
        reasoning_tokens=a.reasoning_tokens + b.reasoning_tokens,
        cache_hit_tokens=a.cache_hit_tokens + b.cache_hit_tokens,
        cache_miss_tokens=a.cache_miss_tokens + b.cache_miss_tokens,
    )


def dropped_usage(received: Received, body: dict[str, Any]) -> Usage:
    """What the broken attempt cost, for the total: its own usage if it got that far, else an
    estimate (a dropped stream rarely reaches its usage chunk). The prompt was billed in full and
    each streamed piece is about one token; counting the prompt as cache misses errs on the side
    of a higher estimate, never a lower one."""
    if received.usage is not None:
        return received.usage
    prompt = sum(estimate_tokens(str(m.get("content") or "")) for m in body.get("messages", ()))
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=received.pieces,
        reasoning_tokens=len(received.reasoning),
        cache_miss_tokens=prompt,
    )


def resume_body(body: dict[str, Any], answer: str, reasoning: str) -> dict[str, Any]:
    """The request that continues ``body`` from a partial answer by chat prefix completion.

    deepseek-api.md §4.3: the same history plus a last ``{"role": "assistant", "content": <partial>,
    "prefix": true}``; a drop during the reasoning passes the partial ``reasoning_content`` too. A
    request that already ended in a prefix message (the user's own prefix completion) gets the
    partial answer appended to that prefix. The partial text goes out cleaned as the Response shows
    it (text.py): a lone surrogate the server sent could not be encoded as UTF-8.
    """
    messages = [dict(m) for m in body.get("messages", ())]
    answer, reasoning = clean_text(answer), clean_text(reasoning)
    content = answer
    if messages and messages[-1].get("role") == "assistant" and messages[-1].get("prefix") is True:
        content = str(messages.pop().get("content") or "") + answer
    last: dict[str, Any] = {"role": "assistant", "content": content, "prefix": True}
    if reasoning and not answer:
        last["reasoning_content"] = reasoning
    return {**body, "messages": [*messages, last]}


def why_no_resume(allowed: int, url: str | None, received: Received, resumes: int) -> str | None:
    """Why a dropped stream is not resumed (None: it is): ``allowed`` resumes per answer to ``url``."""
    if not allowed or url is None:
        return "resume is off"
    if resumes >= allowed:
        return f"already resumed {resumes} times"
    if received.tool_calls:
        return "prefix completion cannot continue a tool call"
    if not received.answer and not received.reasoning:
        return "nothing had arrived"
    return None
