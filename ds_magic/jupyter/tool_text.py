"""Tool calls as text for the views: the live call line, the arguments as ``k=v``, the ``python``
tool's code and its highlighting tokens. Pure functions: no widget library, so the cell code can
use them (terminal IPython, ``input()`` approval) without loading anywidget.
"""

from __future__ import annotations

import json
import re

__all__ = ["call_preview", "call_args_text", "code_tokens", "code_of"]

_PREVIEW_CHARS = 200


def call_preview(name: str, arguments: str) -> str:
    """A streaming call as a line: ``calling get_weather(city="Pa…`` (JSON keys shown as ``k=``)."""
    text = call_args_text(name, arguments)
    try:
        json.loads(arguments)
        done = True
    except ValueError:
        done = False
    line = f"calling {name}({text}" + (")" if done else "…")
    return line if len(line) <= _PREVIEW_CHARS else line[: _PREVIEW_CHARS - 1] + "…"


def call_args_text(name: str, arguments: str) -> str:
    """The arguments as ``k="v", n=3``; partial JSON is shown as far as it came."""
    try:
        parsed = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        if name == "python" and set(parsed) == {"code"}:
            return "…" if parsed["code"] else ""  # the code is shown below, highlighted
        return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in parsed.items())
    text = arguments.strip().removeprefix("{")
    out = []
    i = 0
    # '"key": ' -> 'key=', the rest as it came
    for m in re.finditer(r'"([A-Za-z_][A-Za-z0-9_]*)"\s*:\s*', text):
        out.append(text[i : m.start()])
        out.append(m.group(1) + "=")
        i = m.end()
    out.append(text[i:])
    return "".join(out).replace(",", ", ").replace(",  ", ", ")


#: pygments token types → the front end's classes (tool_widget.js checks them against its list).
_TOKEN_CLASS = (
    ("Token.Comment", "c"),
    ("Token.Literal.String", "s"),
    ("Token.Literal.Number", "n"),
    ("Token.Keyword", "k"),
    ("Token.Operator", "o"),
    ("Token.Name.Function", "f"),
    ("Token.Name.Class", "f"),
    ("Token.Name.Builtin", "b"),
)


def code_tokens(code: str) -> list[list[str]]:
    """``[[css class, text], ...]`` of Python code (pygments' lexer; pygments comes with IPython)."""
    try:
        from pygments import lex
        from pygments.lexers import PythonLexer
    except ImportError:
        return [["", code]]
    tokens: list[list[str]] = []
    for kind, text in lex(code, PythonLexer()):
        name = str(kind)
        cls = next((c for prefix, c in _TOKEN_CLASS if name.startswith(prefix)), "")
        if tokens and tokens[-1][0] == cls:
            tokens[-1][1] += text
        else:
            tokens.append([cls, text])
    if tokens and tokens[-1][1].endswith("\n") and not code.endswith("\n"):
        tokens[-1][1] = tokens[-1][1][:-1]
    return tokens


def code_of(name: str, arguments: str) -> str | None:
    if name != "python":
        return None
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return None
    code = parsed.get("code") if isinstance(parsed, dict) else None
    return code if isinstance(code, str) else None
