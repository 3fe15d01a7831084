"""The conversation file as untrusted input: read within a size cap, parsed within a depth cap, and
every field checked against the export schema before anything is stored.

What an exported file holds (``ConversationStore.export``, ``Conversation.to_dict``)::

    {"format": "ds_magic.conversations", "version": 1, "conversations": [
      {"name": str, "system": str | null, "max_history_tokens": int | null, "turns": [
        {"role": "user" | "assistant" | "tool", "content": str, "reasoning": str | null,
         "tool_calls": [{"id": str, "type": "function",
                         "function": {"name": str, "arguments": str}}] | null,
         "tool_call_id": str | null, "status": "ok" | "cancelled" | "interrupted" | "error",
         "model": str | null, "created": number, "meta": {...}}]}]}

A hostile or damaged file must not get past import (issue 14): a 120 MB file took 360 MB, 100k-deep
JSON raised ``RecursionError``, and an imported ``tool_calls: "zzz"`` broke every later request of
its conversation. Here each of those is one ``ValueError`` line that names the field
(``conversations[0].turns[3].tool_calls: must be a list of tool calls, not a string``). Lone
surrogates are replaced by U+FFFD as in a streamed answer (text.py), so the history, the next
request and a re-export can always be encoded. Tool calls are rebuilt from their checked fields
only: whatever else a file puts in them never reaches the wire.
"""

from __future__ import annotations

import json
import math
import os
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import json_kind
from .text import clean_text

__all__ = [
    "ROLES",
    "STATUSES",
    "MAX_IMPORT_BYTES",
    "MAX_META_DEPTH",
    "MAX_NAME_CHARS",
    "CheckedConversation",
    "FileTooLargeError",
    "read_capped",
    "load_json",
    "check_conversation",
    "check_turn",
]

ROLES = frozenset({"user", "assistant", "tool"})
#: How an assistant answer ended.
STATUSES = frozenset({"ok", "cancelled", "interrupted", "error"})
#: Largest file ``import_`` reads; the largest real export is far smaller (a long chat is ~1 MB).
MAX_IMPORT_BYTES = 32 * 1024 * 1024
#: ``meta`` is free-form JSON; ours is two levels deep.
MAX_META_DEPTH = 32
#: Names: conversations, models, tool call ids and function names.
MAX_NAME_CHARS = 200
#: Counts and seconds in ``meta.usage`` / ``meta.timing`` (types.Usage reads counts the same way).
_MAX_NUMBER = 1e15
#: datetime's year 9999: a later ``created`` cannot be shown or priced.
_MAX_CREATED = 253402300800.0
#: Not shown in a name: control and format characters (bidi overrides, zero-width), line separators.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


@dataclass(frozen=True)
class CheckedConversation:
    """One conversation's fields, checked; ``turns`` are ``Turn(**kwargs)`` keyword arguments."""

    name: str
    system: str | None
    max_history_tokens: int | None
    turns: list[dict[str, Any]]


# --------------------------------------------------------------------------------- reading


class FileTooLargeError(ValueError):
    """A file over the import cap: ``what`` says so; the message adds how to raise the cap in core
    terms (``max_bytes=``); the notebook layer says it in its own."""

    def __init__(self, what: str, limit: int) -> None:
        self.what = what
        self.limit = limit
        super().__init__(f"{what} (max_bytes= raises the cap)")


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


def read_capped(path: str | os.PathLike[str], max_bytes: int = MAX_IMPORT_BYTES) -> bytes:
    """The file's bytes; a ValueError, before it is read whole, if it holds more than ``max_bytes``.

    The size is checked twice: ``os.stat`` first, then at most ``max_bytes + 1`` bytes are read,
    for files whose size the stat does not tell (a pipe, /proc) or that grow meanwhile.
    """
    cap = f"more than the {_mb(max_bytes)} an import reads"
    size = os.stat(path).st_size
    if size > max_bytes:
        raise FileTooLargeError(f"the file is {_mb(size)}, {cap}", max_bytes)
    with open(path, "rb") as f:
        raw = f.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise FileTooLargeError(f"the file holds {cap}", max_bytes)
    return raw


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_json(text: str | bytes, expected: str) -> Any:
    """The JSON document in ``text``; a one-line ValueError naming the ``expected`` format if it is
    not JSON, holds NaN/Infinity, or is nested too deeply for the parser (``RecursionError``)."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError(f"not a {expected!r} document: nested too deeply to read") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors, one line each
        raise ValueError(f"not JSON (expected a {expected!r} document): {exc}") from None


# --------------------------------------------------------------------------------- checking


def _at(where: str, field: str) -> str:
    return f"{where}.{field}" if where else field


def _fail(path: str, want: str, value: Any) -> ValueError:
    return ValueError(f"{path}: must be {want}, not {json_kind(value)}")


def _text(value: Any, path: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _fail(path, "a string or null" if optional else "a string", value)
    return clean_text(value)


def _name(value: Any, path: str, *, optional: bool = False) -> Any:
    """A name: a non-empty string of at most MAX_NAME_CHARS characters, none of them a control one."""
    text = _text(value, path, optional=optional)
    if text is None:
        return None
    if not text:
        raise ValueError(f"{path}: must not be empty")
    if len(text) > MAX_NAME_CHARS:
        raise ValueError(f"{path}: must be at most {MAX_NAME_CHARS} characters, not {len(text)}")
    for ch in text:
        if unicodedata.category(ch) in _BAD_CATEGORIES:
            raise ValueError(f"{path}: must not hold control characters (found U+{ord(ch):04X})")
    return text


def _number(value: Any, path: str, *, whole: bool = False, upper: float = _MAX_NUMBER, span: str = "") -> Any:
    """A finite number in [0, upper) (``span`` says what that is), or null."""
    if value is None:
        return None
    want = "a whole number" if whole else "a number"
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (whole and not isinstance(value, int))
    ):
        raise _fail(path, f"{want} or null", value)
    if not (math.isfinite(value) and 0 <= value < upper):
        raise ValueError(f"{path}: must be {span or f'{want} from 0 to {upper:g}'}, not {value!r}")
    return value


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(path, "an object or null", value)
    return value


def _free_json(value: Any, path: str, depth: int = 0) -> Any:
    """Free-form JSON (``meta``): no deeper than MAX_META_DEPTH, its strings cleaned."""
    if depth > MAX_META_DEPTH:
        raise ValueError(f"{path}: nested more than {MAX_META_DEPTH} levels deep")
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [_free_json(v, path, depth + 1) for v in value]
    if isinstance(value, Mapping):
        return {clean_text(k): _free_json(v, path, depth + 1) for k, v in value.items()}
    return value


def _meta(value: Any, path: str) -> dict[str, Any]:
    """``meta`` is free-form, but the footer of a stored answer reads usage, timing and error."""
    meta: dict[str, Any] = _free_json(_object(value, path), path)
    for key, whole in (("usage", True), ("timing", False)):
        part = _object(meta.get(key), f"{path}.{key}")
        for k, v in part.items():
            _number(v, f"{path}.{key}.{k}", whole=whole)
    _text(meta.get("error"), f"{path}.error", optional=True)
    return meta


def _tool_calls(value: Any, path: str) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise _fail(path, "a list of tool calls", value)
    calls = []
    for i, call in enumerate(value):
        at = f"{path}[{i}]"
        if not isinstance(call, Mapping):
            raise _fail(at, 'a tool call object {"id", "type", "function"}', call)
        if call.get("type") != "function":
            raise ValueError(f'{at}.type: must be "function"')
        fn = call.get("function")
        if not isinstance(fn, Mapping):
            raise _fail(f"{at}.function", 'an object {"name", "arguments"}', fn)
        calls.append(
            {
                "id": _name(call.get("id"), f"{at}.id"),
                "type": "function",
                "function": {
                    "name": _name(fn.get("name"), f"{at}.function.name"),
                    "arguments": _text(fn.get("arguments"), f"{at}.function.arguments"),
                },
            }
        )
    return calls or None


def check_turn(data: Any, where: str = "") -> dict[str, Any]:
    """The checked fields of one stored turn, as ``Turn`` keyword arguments."""
    if not isinstance(data, Mapping):
        raise _fail(where or "turn", "a turn object", data)
    role = data.get("role")
    if not isinstance(role, str) or role not in ROLES:  # a list is unhashable: no `in` before the type
        shown = repr(role) if isinstance(role, str) and len(role) <= 40 else json_kind(role)
        raise ValueError(f"{_at(where, 'role')}: must be one of {', '.join(sorted(ROLES))}, not {shown}")
    status = data.get("status")
    if status is not None and (not isinstance(status, str) or status not in STATUSES):
        raise ValueError(f"{_at(where, 'status')}: must be one of {', '.join(sorted(STATUSES))}")
    calls = _tool_calls(data.get("tool_calls"), _at(where, "tool_calls"))
    if calls and role != "assistant":
        raise ValueError(f"{_at(where, 'tool_calls')}: only an assistant turn has tool calls")
    call_id = _name(data.get("tool_call_id"), _at(where, "tool_call_id"), optional=role != "tool")
    if call_id is not None and role != "tool":
        raise ValueError(f"{_at(where, 'tool_call_id')}: only a tool turn has a tool_call_id")
    when = "seconds since 1970 before the year 10000"
    created = _number(data.get("created"), _at(where, "created"), upper=_MAX_CREATED, span=when)
    return {
        "role": role,
        "content": _text(data.get("content"), _at(where, "content")),
        "reasoning": _text(data.get("reasoning"), _at(where, "reasoning"), optional=True) or None,
        "tool_calls": calls,
        "tool_call_id": call_id,
        "status": status or "ok",
        "model": _name(data.get("model"), _at(where, "model"), optional=True),
        "created": float(created) if created is not None else time.time(),
        "meta": _meta(data.get("meta"), _at(where, "meta")),
    }


def check_conversation(data: Any, where: str = "") -> CheckedConversation:
    """The checked fields of one conversation object (its ``format`` is checked by the caller)."""
    if not isinstance(data, Mapping):
        raise _fail(where or "conversation", "a conversation object", data)
    name = data.get("name")
    limit = _number(data.get("max_history_tokens"), _at(where, "max_history_tokens"), whole=True)
    turns = data.get("turns")
    if turns is not None and not isinstance(turns, list):
        raise _fail(_at(where, "turns"), "a list of turns", turns)
    return CheckedConversation(
        name=_name(name, _at(where, "name")) if name not in (None, "") else "default",
        system=_text(data.get("system"), _at(where, "system"), optional=True),
        max_history_tokens=limit,
        turns=[check_turn(t, f"{_at(where, 'turns')}[{i}]") for i, t in enumerate(turns or ())],
    )
