"""``%deepseek explain`` and ``%deepseek fix``: the last exception (last_error.py) as a prompt.

``explain`` streams an explanation like any ``%%deepseek`` cell; ``fix`` asks for the corrected cell
and puts its code block into a new cell below, as ``-f code`` does. Both run the prompt through the
cell path (``run_cell_magic``), with ``--raw`` since the cell's source is full of braces; further
options pass through (``%deepseek explain -c debug --no-history``). With no exception yet each
says so in one line.
"""

from __future__ import annotations

from typing import Any

from .errors import DeepSeekCellError
from .last_error import LastError, last_error
from .settings import Settings

__all__ = ["explain_command", "fix_command", "explain_prompt", "fix_prompt"]

_NO_ERROR = "No exception yet in this kernel: %deepseek {what} works on the last cell that raised one."


def _context(err: LastError) -> str:
    where = f"cell In[{err.execution_count}]" if err.execution_count is not None else "a cell"
    return (
        f"This notebook {where} raised {err.summary}\n\n"
        f"The cell:\n```python\n{err.source}\n```\n\n"
        f"The traceback (library frames trimmed):\n```\n{err.traceback}```\n"
    )


def explain_prompt(err: LastError) -> str:
    return (
        _context(err) + "\nExplain briefly what went wrong and why, pointing at the line that caused it, "
        "then say how to fix it."
    )


def fix_prompt(err: LastError) -> str:
    return (
        _context(err) + "\nReply with the corrected cell as one ```python code block (the whole cell, "
        "ready to run), then one sentence on what you changed."
    )


def _run(settings: Settings, rest: list[str], what: str, line: str) -> Any:
    err = last_error()
    if err is None:
        print(_NO_ERROR.format(what=what))
        return None
    shell = settings.shell
    if shell is None:
        raise DeepSeekCellError(f"%deepseek {what} needs an IPython shell")
    prompt = explain_prompt(err) if what == "explain" else fix_prompt(err)
    return shell.run_cell_magic("deepseek", " ".join([line, *rest]), prompt)  # type: ignore[no-untyped-call]  # untyped upstream


def explain_command(settings: Settings, rest: list[str]) -> Any:
    """``%deepseek explain [options]``: stream an explanation of the last exception."""
    return _run(settings, rest, "explain", "--raw")


def fix_command(settings: Settings, rest: list[str]) -> Any:
    """``%deepseek fix [options]``: the corrected cell goes into a new cell below."""
    return _run(settings, rest, "fix", "--raw -f code")
