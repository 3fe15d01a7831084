"""The kernel's last exception, kept as text for ``%deepseek explain`` / ``fix``: the failing cell's
source and its traceback, stripped of ANSI codes and trimmed to the frames that matter.

A ``post_run_cell`` hook (IPython's public events API) records each failed cell at once as text, so
no frame (and none of the locals it holds, a DataFrame perhaps) is kept alive. Frames that matter:
the user's cells and files. IPython's and ipykernel's own frames (the ``run_code`` that ran the
cell) are dropped; a long run of library frames (pandas calling pandas calling numpy) keeps its
first frame (the user's call into the library) and its last (where it raised), with a line saying
how many were left out, as jupyter-ai's ``%ai error`` does not and a reader of the traceback does.
"""

from __future__ import annotations

import re
import sysconfig
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = ["LastError", "last_error", "format_error", "strip_ansi", "install", "uninstall"]

#: ECMA-48 CSI and OSC sequences (colours, hyperlinks) that IPython and libraries put in messages.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
#: The most frames of one stack shown; the last ones (nearest the raise) are kept.
MAX_FRAMES = 30
#: The most characters of the traceback text and of the cell source.
MAX_TRACEBACK_CHARS = 6_000
MAX_SOURCE_CHARS = 8_000
#: The cells that ask about the last error are not themselves "the last error".
# The lines Python prints between chained exceptions (Lib/traceback.py).
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"
_OWN_CELL = re.compile(r"^\s*%deepseek\s+(explain|fix)\b")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


@dataclass(frozen=True)
class LastError:
    source: str
    traceback: str
    summary: str  # "ZeroDivisionError: division by zero"
    execution_count: int | None


_last: LastError | None = None
_shell: InteractiveShell | None = None


def last_error() -> LastError | None:
    """The last failed cell of this kernel, or None when no cell has failed yet."""
    return _last


def _package_dirs() -> tuple[str, ...]:
    dirs = []
    for mod_name in ("IPython", "ipykernel", "traitlets", "tornado", "asyncio"):
        try:
            mod = __import__(mod_name)
        except ImportError:
            continue
        file = getattr(mod, "__file__", None)
        if file:
            dirs.append(str(Path(file).parent) + "/")
    return tuple(dirs)


def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple(
        {str(Path(paths[k])) + "/" for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    )


def _cut_tail(text: str, limit: int, what: str) -> str:
    if len(text) <= limit:
        return text
    return f"… [{len(text) - limit:,} characters of the {what} cut]\n" + text[len(text) - limit :]


def _frame_name(filename: str, shell: InteractiveShell | None) -> str | None:
    compiler = getattr(shell, "compile", None)
    formatted = getattr(compiler, "format_code_name", None)
    if formatted is None:
        return None
    try:
        named = formatted(filename)
    except Exception:
        return None
    return f"{named[0]} {named[1]}" if named else None


def _stack_lines(stack: traceback.StackSummary, shell: InteractiveShell | None) -> list[str]:
    kernel_dirs = _package_dirs()
    library = _library_dirs()
    frames = [f for f in stack if not f.filename.startswith(kernel_dirs)]
    lines: list[str] = []
    run: list[traceback.FrameSummary] = []

    def flush() -> None:
        if len(run) <= 3:
            kept = run[:]
        else:
            kept = [run[0], run[-1]]
        for i, frame in enumerate(kept):
            if len(run) > 3 and i == 1:
                mods = sorted({_top_package(f.filename, library) for f in run[1:-1]})
                lines.append(f"  … {len(run) - 2} frames in library code ({', '.join(mods)}) left out\n")
            lines.extend(_format_frame(frame, shell))
        run.clear()

    for frame in frames[-MAX_FRAMES:]:
        # Library code: under the interpreter's library folders, or a compiled module's relative
        # name (Cython frames read "pandas/_libs/index.pyx"); a cell has a name IPython gave it.
        if frame.filename.startswith(library) or (
            not Path(frame.filename).is_absolute() and _frame_name(frame.filename, shell) is None
        ):
            run.append(frame)
            continue
        flush()
        lines.extend(_format_frame(frame, shell))
    flush()
    if len(frames) > MAX_FRAMES:
        lines.insert(0, f"  … {len(frames) - MAX_FRAMES} earlier frames left out\n")
    return lines


def _top_package(filename: str, library: tuple[str, ...]) -> str:
    for root in library:
        if filename.startswith(root):
            rest = filename[len(root) :].split("/")
            if rest[0] in ("site-packages", "dist-packages") and len(rest) > 1:
                return rest[1].removesuffix(".py")
            return rest[0].removesuffix(".py")
    return filename.split("/")[0].removesuffix(".py")  # a compiled module: "pandas/_libs/index.pyx"


def _short_path(filename: str) -> str:
    """A library file relative to its site-packages (or stdlib) folder: what a reader needs."""
    for root in _library_dirs():
        if filename.startswith(root):
            rest = filename[len(root) :]
            for marker in ("site-packages/", "dist-packages/"):
                rest = rest.removeprefix(marker)
            return rest
    return filename


def _format_frame(frame: traceback.FrameSummary, shell: InteractiveShell | None) -> list[str]:
    name = _frame_name(frame.filename, shell)
    where = name if name else f'File "{_short_path(frame.filename)}"'
    lines = [f"  {where}, line {frame.lineno}, in {frame.name}\n"]
    if frame.line:
        lines.append(f"    {frame.line.strip()}\n")
    return lines


def format_error(exc: BaseException, shell: InteractiveShell | None = None) -> str:
    """The traceback of ``exc`` (its causes and contexts first, as Python prints them), trimmed."""
    te = traceback.TracebackException.from_exception(exc, capture_locals=False)
    chain: list[tuple[traceback.TracebackException, str]] = []
    seen: set[int] = set()
    current: traceback.TracebackException | None = te
    note = ""
    while current is not None and id(current) not in seen and len(chain) < 5:
        seen.add(id(current))
        chain.append((current, note))
        if current.__cause__ is not None:
            current, note = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, note = current.__context__, _CONTEXT
        else:
            current = None
    parts: list[str] = []
    for item, note_after in reversed(chain):
        lines = ["Traceback (most recent call last):\n", *_stack_lines(item.stack, shell)]
        lines.extend(item.format_exception_only())
        parts.append("".join(lines))
        if note_after:
            parts.append(note_after)
    return _cut_tail(strip_ansi("".join(parts)), MAX_TRACEBACK_CHARS, "traceback")


def record(raw_cell: str, exc: BaseException, execution_count: int | None) -> None:
    """Keep ``exc`` (raised by ``raw_cell``) as the kernel's last error, as text only."""
    global _last
    if _OWN_CELL.match(raw_cell):
        return
    summary = strip_ansi("".join(traceback.format_exception_only(type(exc), exc))).strip()
    _last = LastError(
        source=_cut_tail(raw_cell, MAX_SOURCE_CHARS, "cell"),
        traceback=format_error(exc, _shell),
        summary=summary.splitlines()[-1] if summary else type(exc).__name__,
        execution_count=execution_count,
    )


def _post_run_cell(result: Any) -> None:
    exc = getattr(result, "error_in_exec", None) or getattr(result, "error_before_exec", None)
    if exc is None:
        return
    info = getattr(result, "info", None)
    raw = getattr(info, "raw_cell", None) or ""
    try:
        record(str(raw), exc, getattr(result, "execution_count", None))
    except Exception:  # a hook must never break the kernel's cell loop
        pass


def install(ip: InteractiveShell) -> None:
    global _shell
    _shell = ip
    ip.events.register("post_run_cell", _post_run_cell)


def uninstall(ip: InteractiveShell) -> None:
    global _shell, _last
    try:
        ip.events.unregister("post_run_cell", _post_run_cell)
    except ValueError:
        pass
    _shell = _last = None
