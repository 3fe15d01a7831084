"""``Turn``: one stored message of a conversation (conversation.py), and how it is saved."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

from .conversation_file import ROLES, STATUSES, check_turn

__all__ = ["Turn", "ROLES", "STATUSES"]


@dataclass
class Turn:
    """One stored message: a user prompt, an assistant answer (with its thinking) or a tool result.

    ``status`` is the end status of an assistant answer ("ok", "cancelled", "interrupted", "error").
    ``meta`` is free-form and must stay JSON-serialisable (usage numbers, timing, error text).
    """

    role: str
    content: str
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    status: str = "ok"
    model: str | None = None
    created: float = field(default_factory=time.time)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"Turn role must be one of {sorted(ROLES)}, not {self.role!r}")
        if self.status not in STATUSES:
            raise ValueError(f"Turn status must be one of {sorted(STATUSES)}, not {self.status!r}")
        if not isinstance(self.content, str):
            raise TypeError(f"Turn content must be a str, not {type(self.content).__name__}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "content": self.content,
            "reasoning": self.reasoning,
            "tool_calls": copy.deepcopy(self.tool_calls),
            "tool_call_id": self.tool_call_id,
            "status": self.status,
            "model": self.model,
            "created": self.created,
            "meta": copy.deepcopy(self.meta),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Turn:
        """A turn from its saved form, every field checked (conversation_file.py): a ValueError
        naming the field otherwise."""
        return cls(**check_turn(data))
