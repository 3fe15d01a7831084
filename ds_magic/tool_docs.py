"""A tool's descriptions from its docstring: the first line, and each parameter's (Google ``Args:``,
NumPy ``Parameters`` with its underline, or Sphinx ``:param x:``), continuation lines joined."""

from __future__ import annotations

import inspect
import re

__all__ = ["describe"]


_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments)\s*:?\s*$")
_OTHER_SECTION = re.compile(
    r"^\s*(Returns?|Yields?|Raises?|Examples?|Notes?|See Also|References|Attributes|Warnings?)\s*:?\s*$"
)
_GOOGLE_ITEM = re.compile(r"^(\s*)\**(\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_ITEM = re.compile(r"^(\s*)(\w+)\s*(:.*)?$")
_SPHINX = re.compile(r"^\s*:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")


def describe(doc: str | None) -> tuple[str, dict[str, str]]:
    """The first line of a docstring and its parameter descriptions (Google, NumPy or Sphinx)."""
    text = inspect.cleandoc(doc or "")
    lines = text.splitlines()
    first = ""
    for line in lines:
        if line.strip():
            first = line.strip()
            break
    params: dict[str, str] = {}
    current: str | None = None
    indent = 0
    in_section = numpy_style = False
    for line in lines:
        sphinx = _SPHINX.match(line)
        if sphinx:
            current, params[sphinx.group(1)] = sphinx.group(1), sphinx.group(2).strip()
            in_section, indent = False, len(line) - len(line.lstrip())
            continue
        if _SECTION.match(line):
            in_section, current = True, None
            continue
        if _OTHER_SECTION.match(line) or (line.strip() and set(line.strip()) == {"-"} and not in_section):
            in_section = False if _OTHER_SECTION.match(line) else in_section
            current = None
            continue
        if not line.strip():
            continue
        if in_section:
            if set(line.strip()) == {"-"}:  # NumPy's underline: "name : type" items follow
                numpy_style = True
                continue
            google = _GOOGLE_ITEM.match(line)
            numpy = _NUMPY_ITEM.match(line)
            item_indent = len(line) - len(line.lstrip())
            if current is not None and item_indent > indent:
                params[current] = f"{params[current]} {line.strip()}".strip()
            elif google and not numpy_style and (google.group(3) or google.group(4)):
                current, indent = google.group(2), item_indent
                params[current] = google.group(4).strip()
            elif numpy:
                current, indent = numpy.group(2), item_indent
                params[current] = ""
        elif current is not None and len(line) - len(line.lstrip()) > indent:
            params[current] = f"{params[current]} {line.strip()}".strip()  # a Sphinx item's next line
        else:
            current = None
    return first, {k: v for k, v in params.items() if v}
