"""Scrubbing API keys out of text and parsed JSON: the one way every error, log line and stored
server body is made safe to show (errors.py builds every message through :func:`redact`).

The configured key itself is removed first, whatever its shape, then anything shaped like a key;
:func:`scrubbing` sets the exact secrets of the request being run, per thread and asyncio task.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = ["MIN_SECRET_CHARS", "redact", "redact_json", "scrubbing"]

# DeepSeek keys look like "sk-" + 32 hex; be generous so that other bearer-like secrets are caught too.
_KEY_RE = re.compile(r"(sk-[A-Za-z0-9_\-]{6,}|Bearer\s+[A-Za-z0-9_\-\.]{8,})")


# A configured key shorter than this is not a real key; replacing it everywhere would garble
# every message ("x" in "Unexpected") while hiding nothing.
MIN_SECRET_CHARS = 8


# The exact secrets of the request being run (the configured key): per thread and per asyncio
# task, so each request scrubs its own key and no other request sees it.
_secrets: ContextVar[tuple[str, ...]] = ContextVar("ds_magic_secrets", default=())


@contextmanager
def scrubbing(*secrets: str | None) -> Iterator[None]:
    """Inside this block (this thread, or this asyncio task), :func:`redact`, and so every error
    made, also removes these exact values: the configured API key, whatever its shape."""
    token = _secrets.set(tuple(s for s in secrets if s and len(s) >= MIN_SECRET_CHARS))
    try:
        yield
    finally:
        _secrets.reset(token)


def redact(text: str, *secrets: str | None) -> str:
    """Remove API keys from ``text``: the given secrets and those of :func:`scrubbing` first, then
    anything shaped like a key."""
    for s in (*secrets, *_secrets.get()):
        if s and len(s) >= MIN_SECRET_CHARS:
            text = text.replace(s, "****")
    return _KEY_RE.sub("****", text)


def redact_json(value: Any, *secrets: str | None) -> Any:
    """:func:`redact` on every string (keys included) of a parsed JSON value, in place where it can.

    Iterative, so that a body nested as deep as the JSON decoder allows cannot raise RecursionError.
    """
    if isinstance(value, str):
        return redact(value, *secrets)
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            for i, v in enumerate(node):
                if isinstance(v, str):
                    node[i] = redact(v, *secrets)
                elif isinstance(v, (list, dict)):
                    stack.append(v)
        elif isinstance(node, dict):
            items = list(node.items())
            node.clear()
            for k, v in items:
                if isinstance(v, str):
                    v = redact(v, *secrets)
                elif isinstance(v, (list, dict)):
                    stack.append(v)
                node[redact(k, *secrets) if isinstance(k, str) else k] = v
    return value
