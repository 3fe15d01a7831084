"""JSON mode answers shaped by the schema a system prompt states (how ds_magic's ``schema=`` asks).

A real model follows the JSON Schema in its system prompt (DeepSeek does not enforce it,
deepseek-api.md §4.5); the offline stand-in, which is not a model, answers a value of that shape
instead of its generic JSON object, so a ``schema=`` batch or a comparison runs without a script.
Enum values and alternatives are picked by a hash of the model, the temperature, the system prompt
and the question: the same request always gets the same answer, and two variants of a comparison
(another model, system prompt or temperature) usually get different ones.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from ..structured import example_value

__all__ = ["shaped_answer"]

# The last ```json fence of the system prompt holds the schema (structured.Schema.system_prompt).
_FENCE = re.compile(r"```json\s*\n(.*?)\n\s*```", re.DOTALL)


def _schema_in(system: str) -> dict[str, Any] | None:
    for block in reversed(_FENCE.findall(system)):
        try:
            value = json.loads(block)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and isinstance(value.get("properties"), dict) and value["properties"]:
            return value
    return None


def shaped_answer(body: dict[str, Any], question: str) -> str | None:
    """The JSON text of a value shaped by the system prompt's schema; None when it states none (or
    one with no properties, like ``schema=dict``: then the generic JSON answer)."""
    system = "\n".join(
        m["content"]
        for m in body.get("messages") or []
        if isinstance(m, dict) and m.get("role") == "system" and isinstance(m.get("content"), str)
    )
    schema = _schema_in(system)
    if schema is None:
        return None
    seed = f"{body.get('model')}|{body.get('temperature')}|{system}|{question}".encode()
    state = [int.from_bytes(hashlib.sha256(seed).digest()[:8], "big")]

    def choose(options: list[Any]) -> Any:
        state[0] = (state[0] * 6364136223846793005 + 1442695040888963407) % (1 << 64)  # an LCG step
        return options[(state[0] >> 33) % len(options)]

    return json.dumps(example_value(schema, choose), ensure_ascii=False)
