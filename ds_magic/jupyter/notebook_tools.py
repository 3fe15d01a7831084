"""The built-in notebook tools, opt-in (``--tools python,variables`` or ``Chat(tools=["python"])``):

* ``python`` runs code in the user's namespace, as a cell would, and returns what it printed (stdout,
  stderr) and the repr of its last expression, each capped. It is never ``safe``: every call waits
  for approval unless ``DeepSeekMagics.tool_approval = "auto"``, and the view shows the code,
  highlighted, before it runs (tool_view.py).
* ``variables`` lists the user's variables (name, type, shape or length) or describes one; for a
  DataFrame that is its dtypes, head and tail (summarize.py) and ``describe()``, capped. It only
  reads, so it is marked ``safe``.

Both are made per shell by :func:`builtin_tools`, so they close over that shell's namespace.
"""

from __future__ import annotations

import ast
import contextlib
import io
import sys
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..summarize import markdown_table, summarize
from ..tools import tool

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = ["builtin_tools", "BUILTIN_NAMES", "MAX_OUTPUT_CHARS", "list_variables", "describe_variable"]

BUILTIN_NAMES = ("python", "variables")
#: The cap of each of stdout, stderr and the value's repr returned by ``python``.
MAX_OUTPUT_CHARS = 10_000
#: The cap of what ``variables`` returns.
MAX_DESCRIBE_CHARS = 8_000
#: IPython's own names in the user namespace, never the user's variables.
_IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})


def _cap(text: str, limit: int, what: str) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… [{what} cut: {len(text) - limit:,} more characters]"


def run_code(code: str, ns: dict[str, Any], filename: str = "<ds_magic python tool>") -> str:
    """Run ``code`` in ``ns`` as a cell runs: statements, then the last expression's value.

    Returns the report the model gets back: ``stdout``, ``stderr`` and ``value`` sections, each
    capped; an exception is reported the same way (the loop goes on) with its last frames.
    """
    out, err = io.StringIO(), io.StringIO()
    value_text: str | None = None
    error_text: str | None = None
    try:
        tree = ast.parse(code, filename, "exec")
    except SyntaxError as exc:
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    last: ast.expr | None = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = tree.body[-1].value
        tree.body.pop()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            exec(compile(tree, filename, "exec"), ns)  # the user asked for exactly this (approval)
            if last is not None:
                value = eval(compile(ast.Expression(last), filename, "eval"), ns)
                if value is not None:
                    ns["_"] = value
                    try:
                        value_text = repr(value)
                    except Exception as exc:
                        value_text = f"<{type(value).__name__}: repr failed with {type(exc).__name__}>"
        except Exception as exc:
            error_text = _exception_lines(exc)
    parts = []
    if out.getvalue():
        parts.append("stdout:\n" + _cap(out.getvalue(), MAX_OUTPUT_CHARS, "stdout"))
    if err.getvalue():
        parts.append("stderr:\n" + _cap(err.getvalue(), MAX_OUTPUT_CHARS, "stderr"))
    if value_text is not None:
        parts.append("value:\n" + _cap(value_text, MAX_OUTPUT_CHARS, "value"))
    if error_text is not None:
        parts.append("error:\n" + error_text)
    return "\n".join(parts) if parts else "(ran; no output and no value)"


def _exception_lines(exc: BaseException) -> str:
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)[1:]  # the first frame is run_code's own exec
    lines = traceback.format_list(frames[-5:]) + traceback.format_exception_only(type(exc), exc)
    return _cap("".join(lines), 3_000, "traceback")


def _is_user_variable(name: str, value: Any, hidden: Any) -> bool:
    # The user's functions and classes count (they are the notebook's definitions); modules do not.
    if name.startswith("_") or name in _IPYTHON_NAMES or name in hidden:
        return False
    return not isinstance(value, types.ModuleType)


def _shape(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple):
        return "×".join(str(n) for n in shape) or "scalar"
    try:
        return f"len {len(value)}"
    except Exception:
        return ""


def list_variables(ns: dict[str, Any], hidden: Any = ()) -> str:
    """A Markdown table of the namespace's user variables: name, type, shape or length."""
    rows = [
        [name, type(value).__name__, _shape(value)]
        for name, value in sorted(ns.items())
        if _is_user_variable(name, value, hidden)
    ]
    if not rows:
        return "(no user variables yet)"
    return _cap(markdown_table(["name", "type", "shape / len"], rows), MAX_DESCRIBE_CHARS, "list")


def describe_variable(ns: dict[str, Any], name: str) -> str:
    """One variable in detail: its summary (summarize.py), and ``describe()`` for a DataFrame."""
    if name not in ns:
        return f"No variable named {name!r}; call variables() without a name to list them."
    value = ns[name]
    text = f"{name}: {type(value).__module__}.{type(value).__qualname__}\n" + summarize(
        value, MAX_DESCRIBE_CHARS // 2
    )
    pandas = sys.modules.get("pandas")
    frame_type = getattr(pandas, "DataFrame", None)
    if frame_type is not None and isinstance(value, frame_type) and len(value.columns):
        try:
            stats = value.describe(include="all")
            rows = [
                [idx, *vals]
                for idx, vals in zip(stats.index, stats.itertuples(index=False, name=None), strict=True)
            ]
            text += "\n\ndescribe():\n" + markdown_table(["", *map(str, stats.columns)], rows)
        except Exception as exc:  # describe() of an odd frame must not lose the summary
            text += f"\n\n(describe() failed: {type(exc).__name__})"
    return _cap(text, MAX_DESCRIBE_CHARS, "description")


def builtin_tools(shell: InteractiveShell) -> dict[str, Callable[..., Any]]:
    """``python`` and ``variables`` for this shell, as ``ds_magic.tool`` functions."""

    @tool(name="python")
    def python(code: str) -> str:
        """Run Python code in the user's notebook namespace (variables it sets stay there) and return what it printed and the value of its last expression.

        Args:
            code: Python source, as in a notebook cell; the value of its last expression is returned.
        """
        return run_code(code, shell.user_ns)

    @tool(name="variables", safe=True)
    def variables(name: str | None = None) -> str:
        """List the notebook's variables (name, type, shape or length), or describe one in detail.

        Args:
            name: A variable to describe (a DataFrame: dtypes, head, tail and describe()); omit it to list all.
        """
        if name:
            return describe_variable(shell.user_ns, name)
        return list_variables(shell.user_ns, shell.user_ns_hidden)

    return {"python": python, "variables": variables}
