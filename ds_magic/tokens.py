"""Rough token estimates of texts and wire messages (deepseek-api.md §4.8), for history budgets and
``split_text``: no tokenizer, so nothing to download or import.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["estimate_tokens", "estimate_message_tokens"]

# §4.8: "1 English character ≈ 0.3 token; 1 Chinese character ≈ 0.6 token", and about 4 tokens of
# chat-template overhead per message.
_MESSAGE_OVERHEAD = 4
_WIDE = frozenset({"W", "F"})


def estimate_tokens(text: str) -> int:
    """Rough token count of ``text``: 0.3 per ordinary character, 0.6 per wide (CJK) one, rounded up.

    >>> estimate_tokens("hello world")  # 11 × 0.3 = 3.3
    4
    """
    if not text:
        return 0
    if text.isascii():
        wide = 0
    else:
        # Nothing below U+1100 is really wide; the shortcut also skips unassigned code points
        # that some unicodedata versions report as "W".
        wide = sum(1 for ch in text if ord(ch) >= 0x1100 and unicodedata.east_asian_width(ch) in _WIDE)
    narrow = len(text) - wide
    return (3 * narrow + 6 * wide + 9) // 10  # integer ceil of 0.3·narrow + 0.6·wide


def estimate_message_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    """Rough token count of wire messages: their texts (content, thinking, tool calls) + 4 per message."""
    total = 0
    for m in messages:
        total += _MESSAGE_OVERHEAD
        for key in ("content", "reasoning_content"):
            value = m.get(key)
            if isinstance(value, str):
                total += estimate_tokens(value)
        for call in m.get("tool_calls") or ():
            fn = call.get("function") or {}
            total += estimate_tokens(str(fn.get("name") or "")) + estimate_tokens(
                str(fn.get("arguments") or "")
            )
    return total
