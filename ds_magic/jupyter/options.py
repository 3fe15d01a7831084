"""The options of ``%%deepseek`` (what ``%%deepseek?`` shows), and the line parsed into ``CellOptions``.

IPython builds the parser and the help text from ``@magic_arguments()`` / ``@argument(...)``
decorators (IPython.core.magic_arguments); :func:`deepseek_magic` applies the whole stack at once,
in the order listed here, which is the order the help shows.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from IPython.core.error import UsageError
from IPython.core.magic import line_cell_magic, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments

__all__ = ["CellOptions", "deepseek_magic", "parse_options", "takes_value", "OPTIONS_HINT"]

#: What an unknown or malformed option points to.
OPTIONS_HINT = "%%deepseek? lists the options"

F = TypeVar("F", bound=Callable[..., Any])


def _opt(*names: str, **kwargs: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    return names, kwargs


_OPTIONS = [
    _opt("-m", "--model", help="Model name (default: DeepSeekMagics.model)."),
    _opt("-s", "--system", help="System prompt for this conversation."),
    _opt("-c", "--chat", metavar="NAME", help="Named conversation to continue (default: 'default')."),
    _opt("--new", action="store_true", help="Start the conversation afresh."),
    _opt("--no-history", action="store_true", help="One-shot: send no history and store nothing."),
    _opt("-o", "--out", metavar="VAR", help="Also store the result in this variable."),
    _opt("-t", "--temperature", type=float, help="Sampling temperature, 0-2."),
    _opt("--max-tokens", type=int, help="Maximum tokens of the answer (thinking included)."),
    _opt("--stop", action="append", help="Stop sequence (repeatable)."),
    _opt("--json", action="store_true", help="JSON mode: the result is parsed into a Python object."),
    _opt(
        "--thinking",
        dest="thinking",
        action="store_const",
        const=True,
        default=None,
        help="Turn thinking on.",
    ),
    _opt("--no-thinking", dest="thinking", action="store_const", const=False, help="Turn thinking off."),
    _opt("--effort", choices=["low", "medium", "high", "max"], help="Reasoning effort (thinking mode)."),
    _opt(
        "-f",
        "--format",
        choices=["markdown", "text", "code"],
        default="markdown",
        help="How to show the answer; 'code' puts its code block in a new cell below.",
    ),
    _opt("--bg", action="store_true", help="Run in the background: the cell returns at once."),
    _opt("--dry-run", action="store_true", help="Show the exact request that would be sent; send nothing."),
    _opt("--raw", action="store_true", help="Do not replace {name} with values from the namespace."),
    _opt(
        "--cache",
        action="store_true",
        help="Use the response cache for this cell (also DeepSeekMagics.cache).",
    ),
    _opt(
        "--each",
        metavar="VAR",
        help="Run the cell as a template over the list/Series VAR ({item} is each element); no history.",
    ),
    _opt(
        "--schema",
        metavar="NAME",
        help="With --each: each answer is JSON valid against NAME (a pydantic model, a dataclass, a JSON "
        "Schema dict, or dict); VAR.table() has a column per field.",
    ),
    _opt(
        "--run",
        metavar="NAME",
        help="With --each: keep the answers in the persisted run NAME; run the cell again (after a "
        "restart too) and only the items without an answer are sent. ds_magic.run(NAME).table().",
    ),
    _opt(
        "--allow-secrets",
        action="store_true",
        help="Send the prompt even if it looks like it holds a secret (an API key, a private key).",
    ),
    _opt(
        "--tools",
        metavar="NAMES",
        help="Let the model call these functions (comma-separated names from the namespace, or the "
        "built-ins python, variables); default: DeepSeekMagics.tools.",
    ),
    _opt("--max-steps", type=int, help="With --tools: at most this many requests (default 8)."),
    _opt("words", nargs="*", help="(line magic) a subcommand or a one-line prompt."),
]


@dataclass(frozen=True)
class CellOptions:
    """The parsed ``%%deepseek`` line: one field per option above (argparse's ``dest`` names)."""

    model: str | None
    system: str | None
    chat: str | None
    new: bool
    no_history: bool
    out: str | None
    temperature: float | None
    max_tokens: int | None
    stop: list[str] | None
    json: bool
    thinking: bool | None
    effort: str | None
    format: str
    bg: bool
    dry_run: bool
    raw: bool
    cache: bool
    each: str | None
    schema: str | None
    run: str | None
    allow_secrets: bool
    tools: str | None
    max_steps: int | None
    words: list[str]


def deepseek_magic(func: F) -> F:
    """``@no_var_expand @line_cell_magic``, then ``@magic_arguments()`` with an ``@argument(...)``
    per option.

    ``no_var_expand``: IPython would otherwise expand ``{expr}`` and ``$name`` in the line before we
    see it, running the code inside the braces (``%deepseek tell me {print('RAN') or 7}``); the
    line then gets the same safe ``{name}`` interpolation as a cell's prompt (interpolate.py).

    Each of IPython's decorators returns the function it was given (marked, or with the parser
    attached), so F in is F out; upstream they are untyped, or typed as returning a decorator.
    """
    func = no_var_expand(func)
    func = line_cell_magic(func)  # type: ignore[assignment]
    for names, kwargs in reversed(_OPTIONS):  # decorators apply bottom-up: last option first
        func = argument(*names, **kwargs)(func)  # type: ignore[no-untyped-call]
    decorated: F = magic_arguments()(func)  # type: ignore[no-untyped-call]
    return decorated


def parse_options(func: Callable[..., Any], line: str | list[str]) -> CellOptions:
    """Parse a ``%%deepseek`` line (or its words) with the parser :func:`deepseek_magic` attached
    to ``func``.

    The words are split like a POSIX shell line (``shlex``), so ``-s "be brief"`` is ``be brief``:
    IPython's ``parse_argstring`` splits with ``arg_split``, which keeps the quotes on POSIX.
    A bad option raises IPython's ``UsageError`` with argparse's words and where to look.
    """
    try:
        argv = shlex.split(line) if isinstance(line, str) else line
        parsed = cast(Any, func).parser.parse_args(argv)  # the parser magic_arguments() attached
    except UsageError as exc:  # IPython's MagicArgumentParser.error raises it
        raise UsageError(f"{str(exc).rstrip('.')} — {OPTIONS_HINT}") from None
    except ValueError as exc:  # shlex: "No closing quotation"
        raise UsageError(f"Could not read the options ({exc}) — {OPTIONS_HINT}") from None
    return CellOptions(**vars(parsed))


def takes_value(option: str) -> bool:
    """Whether ``option`` (``-m``, ``--model``) is followed by a value; False for flags and unknowns."""
    for names, kwargs in _OPTIONS:
        if option in names:
            return kwargs.get("action") not in ("store_true", "store_const")
    return False
