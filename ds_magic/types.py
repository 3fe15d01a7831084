"""Small value objects: stream events, usage and timing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

__all__ = [
    "AnswerDelta",
    "ReasoningDelta",
    "ToolCallDelta",
    "UsageEvent",
    "StatusEvent",
    "Finish",
    "Event",
    "Usage",
    "Timing",
    "ToolCall",
    "Status",
]

Status = Literal["pending", "running", "ok", "cancelled", "interrupted", "error"]


# Events are NamedTuples: they are made once per streamed token, and a frozen dataclass costs
# several times more to construct (benchmarks/decode.py).


class AnswerDelta(NamedTuple):
    """A piece of the answer (``delta.content``)."""

    text: str
    kind: Literal["answer"] = "answer"


class ReasoningDelta(NamedTuple):
    """A piece of the thinking (``delta.reasoning_content``)."""

    text: str
    kind: Literal["reasoning"] = "reasoning"


class ToolCallDelta(NamedTuple):
    """A fragment of a tool call; ``arguments`` is a piece of a JSON string (deepseek-api.md §2.4)."""

    index: int  # type: ignore[assignment]  # shadows tuple.index on purpose: the API's own name
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    kind: Literal["tool_call"] = "tool_call"


class UsageEvent(NamedTuple):
    usage: Usage
    kind: Literal["usage"] = "usage"


class StatusEvent(NamedTuple):
    """Something the user should see while waiting ("retrying in 2 s after 429")."""

    message: str
    kind: Literal["status"] = "status"


class Finish(NamedTuple):
    """The last event: why the model stopped (``finish_reason``) and how the request ended."""

    reason: str | None
    status: Status
    kind: Literal["finish"] = "finish"


Event = AnswerDelta | ReasoningDelta | ToolCallDelta | UsageEvent | StatusEvent | Finish


@dataclass(frozen=True)
class Usage:
    """Token counts of one request; missing fields default to 0 (deepseek-api.md §2.6)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cache_hit_tokens: int = 0
    cache_miss_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        """Counts summed: a tool loop's steps, a batch's loops (``sum(usages, Usage())``)."""
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.cache_hit_tokens + other.cache_hit_tokens,
            self.cache_miss_tokens + other.cache_miss_tokens,
        )

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> Usage:
        def num(v: Any) -> int:
            # A count that cannot be read (NaN, infinite, negative, absurd, not a number) is 0:
            # bad usage must never turn a complete answer into an error (issue 14).
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1e15:
                return 0
            return int(v)

        prompt = num(raw.get("prompt_tokens"))
        details = raw.get("completion_tokens_details") or {}
        pdetails = raw.get("prompt_tokens_details") or {}
        # DeepSeek's own field first; the OpenAI-style cached_tokens is not always present.
        if "prompt_cache_hit_tokens" in raw:
            hit = num(raw.get("prompt_cache_hit_tokens"))
        else:
            hit = num(pdetails.get("cached_tokens") if isinstance(pdetails, dict) else 0)
        miss = (
            num(raw["prompt_cache_miss_tokens"])
            if "prompt_cache_miss_tokens" in raw
            else max(prompt - hit, 0)
        )
        return cls(
            prompt_tokens=prompt,
            completion_tokens=num(raw.get("completion_tokens")),
            reasoning_tokens=num(details.get("reasoning_tokens")) if isinstance(details, dict) else 0,
            cache_hit_tokens=hit,
            cache_miss_tokens=miss,
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cache_hit_tokens": self.cache_hit_tokens,
            "cache_miss_tokens": self.cache_miss_tokens,
        }


@dataclass(frozen=True)
class Timing:
    """How fast one answer came, in seconds, measured on the engine thread (never stalled by cells).

    ``time_to_first_token`` counts thinking too; ``time_to_first_answer_token`` waits for the answer.
    ``total`` is None until the request has ended (``elapsed`` is the time so far).
    ``tokens_per_second`` is the generation speed: completion tokens over the time after the first one.
    """

    time_to_first_token: float | None
    time_to_first_answer_token: float | None
    elapsed: float
    total: float | None
    tokens: int
    tokens_per_second: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        return {
            "time_to_first_token": self.time_to_first_token,
            "time_to_first_answer_token": self.time_to_first_answer_token,
            "elapsed": self.elapsed,
            "total": self.total,
            "tokens": self.tokens,
            "tokens_per_second": self.tokens_per_second,
        }


@dataclass
class ToolCall:
    """A complete tool call, assembled from its deltas."""

    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""
    type: str = "function"
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, delta: ToolCallDelta) -> None:
        """Fold in one streamed fragment: the id and name come first, the arguments in pieces."""
        if delta.id:
            self.id = delta.id
        if delta.name:
            self.name += delta.name
        self.arguments += delta.arguments

    def to_message(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "function": {"name": self.name, "arguments": self.arguments},
        }
