"""``{name}`` interpolation of prompts from a namespace: one pass, lookups only, never raises.

Unlike ``str.format`` (jupyter-ai#27: a prompt with pasted code full of braces raised KeyError), a
brace group that is not a plain lookup of a known name is left exactly as written. ``{{`` and ``}}``
are escapes for literal braces. Nothing is ever called: only names, attributes (not private ones)
and ``[int]`` / ``['key']`` indexing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["interpolate"]

_TOKEN = re.compile(
    r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[(?:-?\d+|'[^'\]]*'|\"[^\"\]]*\")\])*)\}"
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


def interpolate(text: str, ns: Mapping[str, Any]) -> str:
    """Replace ``{name}``, ``{obj.attr}``, ``{seq[0]}``, ``{d['k']}`` with values from ``ns``."""

    def sub(m: re.Match[str]) -> str:
        tok = m.group(0)
        if tok == "{{":
            return "{"
        if tok == "}}":
            return "}"
        value = _lookup(m.group(1), ns)
        if value is _MISSING:
            return tok
        try:
            return str(value)
        except Exception:
            return tok

    return _TOKEN.sub(sub, text)
