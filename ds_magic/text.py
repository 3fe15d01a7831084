"""Text that can always be encoded: lone surrogates become U+FFFD where deltas enter a ``Response``.

JSON lets a server send ``"\\ud800"``, a UTF-16 half with no partner; Python decodes it to a str
that cannot be encoded as UTF-8, so the display, the saved notebook, the history sent with the
next request and the cache would each fail on it in their own way (issue 14). ``ResponseWriter``
runs every delta through :func:`clean_events` once, so all of them see the same, encodable text.
The SSE decoder never makes surrogates (bytes are decoded with U+FFFD for bad sequences), so only
such JSON escapes bring them in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .types import AnswerDelta, Event, ReasoningDelta, ToolCallDelta

__all__ = ["clean_text", "clean_events"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (ASCII text returns at once)."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub("\ufffd", text)


def _dirty(text: str | None) -> bool:
    return text is not None and not text.isascii() and _SURROGATE.search(text) is not None


def clean_events(events: Sequence[Event]) -> Sequence[Event]:
    """The events with their text cleaned; ``events`` itself when nothing needed it (the usual case)."""
    out: list[Event] | None = None
    for i, ev in enumerate(events):
        if isinstance(ev, (AnswerDelta, ReasoningDelta)):
            if not _dirty(ev.text):
                continue
            new: Event = type(ev)(clean_text(ev.text))
        elif isinstance(ev, ToolCallDelta):
            if not (_dirty(ev.id) or _dirty(ev.name) or _dirty(ev.arguments)):
                continue
            new = ev._replace(
                id=clean_text(ev.id) if ev.id is not None else None,
                name=clean_text(ev.name) if ev.name is not None else None,
                arguments=clean_text(ev.arguments),
            )
        else:
            continue
        if out is None:
            out = list(events)
        out[i] = new
    return events if out is None else out
