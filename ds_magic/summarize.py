"""A value as a prompt can carry it: a DataFrame, Series, ndarray, dict, list or long string is
summarised (shape, dtypes, head and tail rows as a Markdown table, what was cut), capped in size.

Dumping ``str(df)`` of a million-row frame into a prompt costs tokens and says less than its shape,
dtypes and a few rows (issue 16, "the notebook as context"). pandas and numpy are never imported
here: a value can only be a DataFrame if pandas is already loaded, so their types are looked up in
``sys.modules``, which keeps ``import ds_magic`` light.
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["summarize", "is_rich", "markdown_table", "DEFAULT_MAX_CHARS"]

#: The default cap of one summary, in characters (``DeepSeekMagics.context_max_chars``).
DEFAULT_MAX_CHARS = 4_000
#: Head and tail rows shown at most; fewer when the cap needs it.
EDGE_ROWS = 5
#: The widest one cell of a table may be.
CELL_CHARS = 60
#: A dict or list whose ``str`` is this short is pasted as it is: a summary would only be longer.
SHORT_CONTAINER = 500


def _type_of(module: str, name: str) -> type | None:
    mod = sys.modules.get(module)
    found = getattr(mod, name, None) if mod is not None else None
    return found if isinstance(found, type) else None


def _kind(value: Any) -> str | None:
    for module, name in (("pandas", "DataFrame"), ("pandas", "Series"), ("numpy", "ndarray")):
        cls = _type_of(module, name)
        if cls is not None and isinstance(value, cls):
            return name
    if isinstance(value, Mapping):
        return "dict"
    if isinstance(value, (list, tuple, set, frozenset)):
        return "list"
    return None


def is_rich(value: Any, max_chars: int = DEFAULT_MAX_CHARS) -> bool:
    """True when :func:`summarize` would change the value's text: a table, an array, a container,
    or a string longer than the cap."""
    if isinstance(value, str):
        return len(value) > max_chars
    kind = _kind(value)
    if kind in ("dict", "list"):
        try:
            return len(str(value)) > min(SHORT_CONTAINER, max_chars)
        except Exception:
            return True
    return kind is not None


def _cell(value: Any) -> str:
    try:
        if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
            text = f"{float(value):.6g}"  # what pandas shows, not 17 digits
        else:
            text = str(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    text = text.replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    if len(text) > CELL_CHARS:
        text = text[: CELL_CHARS - 1] + "…"
    return text


def markdown_table(header: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; cells on one line, ``|`` escaped, each cut to 60 chars."""
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _cap(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    note = f"\n… [{len(text) - max_chars:,} more characters cut]"
    return text[: max(0, max_chars - len(note))] + note


def _rows_note(total: int, shown: int) -> str:
    return f"({total - shown:,} rows not shown)" if total > shown else ""


def _frame(df: Any, n: int) -> str:
    rows, cols = df.shape
    dtypes = ", ".join(f"{_cell(c)}: {t}" for c, t in df.dtypes.items())
    head = f"DataFrame: {rows:,} rows × {cols:,} columns\ndtypes: {dtypes}\n"
    if rows == 0:
        return head + "(no rows)"
    part = df if rows <= 2 * n else None
    header = ["", *map(str, df.columns)]

    def table_rows(sub: Any) -> list[list[Any]]:
        return [
            [idx, *vals] for idx, vals in zip(sub.index, sub.itertuples(index=False, name=None), strict=True)
        ]

    if part is not None:
        return head + markdown_table(header, table_rows(part))
    body = table_rows(df.head(n)) + [["…"] * len(header)] + table_rows(df.tail(n))
    return head + markdown_table(header, body) + "\n" + _rows_note(rows, 2 * n)


def _series(s: Any, n: int) -> str:
    length = len(s)
    head = f"Series {s.name!r}: {length:,} values, dtype {s.dtype}\n"
    if length == 0:
        return head + "(empty)"
    header = ["", str(s.name) if s.name is not None else "value"]
    if length <= 2 * n:
        return head + markdown_table(header, list(s.items()))
    body = list(s.head(n).items()) + [("…", "…")] + list(s.tail(n).items())
    return head + markdown_table(header, body) + "\n" + _rows_note(length, 2 * n)


def _array(a: Any, n: int) -> str:
    head = f"ndarray: shape {tuple(a.shape)}, dtype {a.dtype}\n"
    if a.ndim == 2 and a.shape[1] <= 30:
        header = ["", *range(a.shape[1])]
        rows = a.shape[0]
        if rows <= 2 * n:
            return head + markdown_table(header, [[i, *a[i]] for i in range(rows)])
        body = [[i, *a[i]] for i in range(n)] + [["…"] * len(header)]
        body += [[i, *a[i]] for i in range(rows - n, rows)]
        return head + markdown_table(header, body) + "\n" + _rows_note(rows, 2 * n)
    np = sys.modules["numpy"]
    # array2string ignores its threshold= argument on numpy 2 (seen); printoptions is honoured.
    with np.printoptions(threshold=4 * n, edgeitems=min(n, 3), linewidth=120):
        return head + str(np.array2string(a))


def _short_repr(value: Any, width: int = 200) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= width else text[: width - 1] + "…"


def _mapping(d: Mapping[Any, Any], n: int) -> str:
    items = list(d.items())
    head = f"{type(d).__name__} with {len(items):,} keys\n"
    shown = items if len(items) <= 4 * n else items[: 4 * n]
    lines = [f"- {_short_repr(k, 80)}: {_short_repr(v)}" for k, v in shown]
    if len(items) > len(shown):
        lines.append(f"(… {len(items) - len(shown):,} more keys not shown)")
    return head + "\n".join(lines)


def _sequence(seq: Any, n: int) -> str:
    items = list(seq)
    head = f"{type(seq).__name__} of {len(items):,} items\n"
    if len(items) <= 4 * n:
        return head + "\n".join(f"- {_short_repr(v)}" for v in items)
    lines = [f"- [{i}] {_short_repr(v)}" for i, v in enumerate(items[:n])]
    lines.append(f"(… {len(items) - 2 * n:,} items not shown)")
    lines += [f"- [{i}] {_short_repr(v)}" for i, v in enumerate(items[-n:], len(items) - n)]
    return head + "\n".join(lines)


def _long_str(text: str, max_chars: int) -> str:
    cut = len(text) - max_chars
    if cut <= 0:
        return text
    note = f"\n… [{cut:,} characters cut from the middle of a {len(text):,}-character string] …\n"
    keep = max(0, max_chars - len(note))
    return text[: keep - keep // 3] + note + text[len(text) - keep // 3 :]


def summarize(value: Any, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """The value as prompt text: rich values summarised (see the module docstring), anything else
    ``str(value)``; never longer than ``max_chars`` for a rich value, the cut always said."""
    if isinstance(value, str):
        return _long_str(value, max_chars) if is_rich(value, max_chars) else value
    if not is_rich(value, max_chars):
        return str(value)
    kind = _kind(value)
    assert kind is not None
    render = {"DataFrame": _frame, "Series": _series, "ndarray": _array, "dict": _mapping, "list": _sequence}[
        kind
    ]
    # Fewer edge rows until it fits; the last resort is a plain cut that says how much went.
    text = ""
    for n in (EDGE_ROWS, 3, 2, 1):
        try:
            text = render(value, n)
        except Exception:
            return _cap(_short_repr(value, max_chars), max_chars)
        if len(text) <= max_chars:
            return text
    return _cap(text, max_chars)
