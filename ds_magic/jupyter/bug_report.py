"""An exception ds_magic did not anticipate, shown as what it is: a bug in ds_magic, with its traceback
and how to report it (issue 13). The expected failures are one line (errors.py); hiding the
traceback of a real bug would leave nothing to report.

The traceback is IPython's own (the shell's ``InteractiveTB``, in the user's ``%xmode``), through
``_render_traceback_`` like the one-line errors, and scrubbed of the API key: a frame's source line
or a local variable (``%xmode Verbose``) may hold it.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform

from ..errors import redact
from .session import session

__all__ = ["DeepSeekBugError", "REPORT_HINT"]

#: What to do with it. The project has no public tracker URL yet: the maintainers are whoever
#: installed it, so the line says what to send rather than where.
REPORT_HINT = (
    "please report it to the ds_magic maintainers with this traceback, the cell and the output of "
    "%deepseek config (none of them holds your API key)"
)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


class DeepSeekBugError(Exception):
    """Wraps the unexpected exception (``__cause__``); the cell fails and shows its real traceback."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(redact(f"ds_magic bug: {type(exc).__name__}: {exc}", *_keys()))
        self.original = exc

    def _render_traceback_(self) -> list[str]:
        exc = self.original
        versions = (
            f"ds_magic {_version('ds_magic')}, IPython {_version('ipython')}, "
            f"ipykernel {_version('ipykernel')}, Python {platform.python_version()}"
        )
        head = [
            f"ds_magic bug: this {type(exc).__name__} was not expected; {REPORT_HINT} ({versions}).",
            "",
        ]
        try:
            from IPython import get_ipython

            shell = get_ipython()
            tb = shell.InteractiveTB.structured_traceback(type(exc), exc, exc.__traceback__)
        except Exception:  # no shell, or its formatter failed: Python's own traceback then
            import traceback

            tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        keys = _keys()
        return [redact(line, *keys) for line in head + list(tb)]


def _keys() -> tuple[str | None, ...]:
    return session.api_key, os.environ.get("DEEPSEEK_API_KEY")
