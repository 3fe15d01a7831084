"""``Script``: what the offline server does for one ``/chat/completions`` request, and prompt directives."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

#: Every value ``Script.fault`` accepts.
FAULTS = frozenset(
    {
        "drop",
        "drop_before_headers",
        "stall",
        "stall_keepalive",
        "keepalive_after_answer",
        "eof_no_done",
        "malformed_json",
        "inband_error",
        "html_error",
        "wrong_content_type",
        "split_utf8",
        "big_event",
        "invalid_utf8",
        "plain_text_error",
    }
)

#: Every value ``Script.finish_reason`` accepts (deepseek-api.md §2.5).
FINISH_REASONS = frozenset({"stop", "length", "content_filter", "insufficient_system_resource", "tool_calls"})

USAGE_STYLES = frozenset({"deepseek", "openai"})


@dataclass
class Script:
    """The behaviour of the offline server for one ``/chat/completions`` request.

    Every field is optional; ``Script()`` is the default behaviour. Scripts are consumed in FIFO
    order by requests that pass auth and validation (a request rejected with 400/401 leaves the
    queue alone). A script is never modified by the server, so one object may be enqueued many times.
    """

    #: HTTP status; anything but 200 answers with the documented JSON error body for that status.
    status: int = 200
    #: Replaces the documented error message for ``status``.
    error_message: str | None = None
    #: Extra response headers, e.g. ``{"Retry-After": "2"}``.
    headers: dict[str, str] = field(default_factory=dict)
    #: The answer (``delta.content``); None = the default offline answer.
    text: str | None = None
    #: The thinking text; None = a default sentence when thinking is on, "" = no reasoning tokens.
    reasoning: str | None = None
    #: Seconds from the response headers to the first data event.
    ttft: float = 0.0
    #: ``: keep-alive`` comments (blank lines when not streaming) spread over the ``ttft`` wait.
    keepalives: int = 0
    #: Token pacing; None = as fast as possible.
    tokens_per_second: float | None = None
    finish_reason: str = "stop"
    #: ``[{"name": ..., "arguments": "<json>"}]``, streamed after the content (§2.4).
    tool_calls: list[dict[str, Any]] | None = None
    #: "deepseek": usage on the finish chunk; "openai": a trailing ``choices: []`` usage chunk.
    usage_style: str = "deepseek"
    #: One of ``FAULTS`` (see the package docstring), or None.
    fault: str | None = None
    #: Data events sent before the fault happens (or before the odd event is inserted).
    fault_after: int = 0
    #: Size in bytes of the content of the ``big_event`` event.
    fault_size: int = 5_000_000
    #: Interval of the keep-alives of ``stall_keepalive`` and ``keepalive_after_answer``.
    keepalive_interval: float = 0.5
    #: Seconds before the status line is sent.
    delay_headers: float = 0.0
    #: Length of the default answer in tokens (None = its natural length, 100-160 tokens by the question).
    answer_tokens: int | None = None
    #: Put the last piece of the answer on the finish chunk (seen in real captures, §2.5).
    finish_with_text: bool = False
    #: A regular expression: only a request it matches takes this script (see :func:`take_script`),
    #: so a test can script chosen items of a concurrent batch, or one variant of a comparison.
    match: str | None = None

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; expected one of {sorted(FAULTS)}")
        if self.finish_reason not in FINISH_REASONS:
            raise ValueError(
                f"unknown finish_reason {self.finish_reason!r}; expected one of {sorted(FINISH_REASONS)}"
            )
        if self.usage_style not in USAGE_STYLES:
            raise ValueError(f"usage_style must be 'deepseek' or 'openai', not {self.usage_style!r}")
        if not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status code, not {self.status!r}")
        if self.tokens_per_second is not None and self.tokens_per_second <= 0:
            raise ValueError("tokens_per_second must be > 0 or None")
        if self.ttft < 0 or self.delay_headers < 0 or self.keepalives < 0 or self.fault_after < 0:
            raise ValueError("ttft, delay_headers, keepalives and fault_after must be >= 0")
        if self.keepalive_interval <= 0:
            raise ValueError("keepalive_interval must be > 0")
        if self.answer_tokens is not None and self.answer_tokens < 0:
            raise ValueError("answer_tokens must be >= 0")
        if self.match is not None:
            try:
                re.compile(self.match)
            except re.error as exc:
                raise ValueError(f"match is not a regular expression: {exc}") from None

    @classmethod
    def from_json(cls, data: Any) -> Script:
        """Build a script from a JSON object of its fields (the ``POST /_offline/script`` body)."""
        if not isinstance(data, dict):
            raise ValueError("a script must be a JSON object of Script fields")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown Script fields: {', '.join(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValueError(str(exc)) from None


_DIRECTIVE = re.compile(r"\[\[offline\b(?P<args>[^\]]*)\]\]")

# directive key -> (Script field, converter)
_DIRECTIVE_KEYS: dict[str, tuple[str, type]] = {
    "tokens": ("answer_tokens", int),
    "tps": ("tokens_per_second", float),
    "ttft": ("ttft", float),
    "keepalives": ("keepalives", int),
    "interval": ("keepalive_interval", float),
    "fault": ("fault", str),
    "fault_after": ("fault_after", int),
    "status": ("status", int),
    "finish": ("finish_reason", str),
    "think": ("reasoning", int),
}


def parse_directives(text: str) -> tuple[dict[str, Any], str]:
    """Find ``[[offline key=value ...]]`` in *text*: return (Script field overrides, text without them).

    Raises ValueError with a human-readable message for an unknown key or a bad value.
    """
    overrides: dict[str, Any] = {}
    for match in _DIRECTIVE.finditer(text):
        for item in match.group("args").split():
            key, sep, value = item.partition("=")
            if key == "tool" and sep:
                overrides.setdefault("tool_calls", []).append(_tool_directive(value))
                overrides["text"] = ""  # a tool-calling answer has no text (deepseek-api.md §2.4)
                continue
            if not sep or key not in _DIRECTIVE_KEYS:
                raise ValueError(
                    f"offline directive: cannot use {item!r}; keys are {', '.join(sorted(_DIRECTIVE_KEYS))} (key=value)"
                )
            name, conv = _DIRECTIVE_KEYS[key]
            try:
                converted: Any = conv(value)
            except ValueError:
                raise ValueError(
                    f"offline directive: {key}={value!r} is not a valid {conv.__name__}"
                ) from None
            if key == "think":
                converted = None if converted else ""
            overrides[name] = converted
    stripped = _DIRECTIVE.sub("", text)
    if stripped != text:
        stripped = re.sub(r"[ \t]{2,}", " ", stripped).strip()
    return overrides, stripped


def _tool_directive(value: str) -> dict[str, Any]:
    """``tool=NAME`` or ``tool=NAME:{"json":"without spaces"}``: one scripted tool call."""
    name, _, args = value.partition(":")
    if not name:
        raise ValueError("offline directive: tool= needs a name: tool=NAME or tool=NAME:{json}")
    try:
        parsed = json.loads(args) if args else {}
    except ValueError:
        raise ValueError(
            f"offline directive: tool={value!r}: the arguments are not JSON (no spaces)"
        ) from None
    return {"name": name, "arguments": json.dumps(parsed)}


def apply_overrides(script: Script, overrides: dict[str, Any]) -> Script:
    """A copy of *script* with *overrides* applied (validated again)."""
    if not overrides:
        return script
    return dataclasses.replace(script, **overrides)


def request_text(body: dict[str, Any]) -> str:
    """What ``Script.match`` is searched in: the model, then each message's text, one per line."""
    lines = [str(body.get("model", ""))]
    for msg in body.get("messages") or []:
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        lines.append(content if isinstance(content, str) else "")
    return "\n".join(lines)


def take_script(queue: deque[Script], body: dict[str, Any]) -> Script | None:
    """Remove and return the first queued script for this request: one without ``match``, or one whose
    ``match`` is found (``re.search``) in :func:`request_text`; None when none fits (the default answer)."""
    text: str | None = None
    for k, script in enumerate(queue):
        if script.match is not None:
            text = request_text(body) if text is None else text
            if re.search(script.match, text) is None:
                continue
        del queue[k]
        return script
    return None
