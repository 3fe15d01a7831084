"""``{name}`` interpolation of prompts from a namespace: one pass, lookups only, never raises.

Unlike ``str.format`` (jupyter-ai#27: a prompt with pasted code full of braces raised KeyError), a
brace group that is not a plain lookup of a known name is left exactly as written. ``{{`` and ``}}``
are escapes for literal braces. Nothing is ever called: only names, attributes (not private ones)
and ``[int]`` / ``['key']`` indexing, so ``{In[3]}``, ``{Out[3]}`` and ``{_}`` work in a notebook.

With ``max_chars`` a rich value (DataFrame, Series, ndarray, dict, list, a long string) is
summarised by summarize.py instead of dumped; ``{name!s}`` and ``{name!r}`` ask for today's raw
``str``/``repr`` text (the conversions of ``str.format``, PEP 3101).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .summarize import summarize

__all__ = ["interpolate"]

_TOKEN = re.compile(
    r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[(?:-?\d+|'[^'\]]*'|\"[^\"\]]*\")\])*)(?:!([rs]))?\}"
)
_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(-?\d+|'[^'\]]*'|\"[^\"\]]*\")\]")

_MISSING = object()


def _lookup(expr: str, ns: Mapping[str, Any]) -> Any:
    m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", expr)
    assert m is not None
    name = m.group(0)
    if name not in ns:
        return _MISSING
    value = ns[name]
    for part in _PART.finditer(expr, m.end()):
        attr, index = part.groups()
        try:
            if attr is not None:
                if attr.startswith("_"):
                    return _MISSING
                # getattr on a property can run code; that is a lookup the user asked for by name.
                value = getattr(value, attr)
            elif index is not None:
                key: Any = int(index) if index.lstrip("-").isdigit() else index[1:-1]
                value = value[key]
        except Exception:
            return _MISSING
    return value


def interpolate(text: str, ns: Mapping[str, Any], *, max_chars: int | None = None) -> str:
    """Replace ``{name}``, ``{obj.attr}``, ``{seq[0]}``, ``{d['k']}`` with values from ``ns``.

    ``max_chars``: summarise rich values, each to at most this many characters (None: ``str``).
    """

    def sub(m: re.Match[str]) -> str:
        tok = m.group(0)
        if tok == "{{":
            return "{"
        if tok == "}}":
            return "}"
        value = _lookup(m.group(1), ns)
        if value is _MISSING:
            return tok
        conversion = m.group(2)
        try:
            if conversion == "r":
                return repr(value)
            if conversion == "s" or max_chars is None:
                return str(value)
            return summarize(value, max_chars)
        except Exception:
            return tok

    return _TOKEN.sub(sub, text)
