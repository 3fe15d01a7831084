"""The options of ``%%deepseek`` (what ``%%deepseek?`` shows), and the line parsed into ``CellOptions``.

IPython builds the parser and the help text from ``@magic_arguments()`` / ``@argument(...)``
decorators (IPython.core.magic_arguments); :func:`deepseek_magic` applies the whole stack at once,
in the order listed here, which is the order the help shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from IPython.core.magic import line_cell_magic
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

__all__ = ["CellOptions", "deepseek_magic", "parse_options"]

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
    allow_secrets: bool
    tools: str | None
    max_steps: int | None
    words: list[str]


def deepseek_magic(func: F) -> F:
    """``@line_cell_magic``, then ``@magic_arguments()`` with an ``@argument(...)`` per option.

    Each of IPython's decorators returns the function it was given (marked, or with the parser
    attached), so F in is F out; upstream they are untyped, or typed as returning a decorator.
    """
    func = line_cell_magic(func)  # type: ignore[assignment]
    for names, kwargs in reversed(_OPTIONS):  # decorators apply bottom-up: last option first
        func = argument(*names, **kwargs)(func)  # type: ignore[no-untyped-call]
    decorated: F = magic_arguments()(func)  # type: ignore[no-untyped-call]
    return decorated


def parse_options(func: Callable[..., Any], line: str) -> CellOptions:
    """Parse a ``%%deepseek`` line with the parser :func:`deepseek_magic` attached to ``func``.

    A bad option raises IPython's ``UsageError`` (one line, as for any magic).
    """
    parsed = parse_argstring(func, line)  # type: ignore[no-untyped-call]  # untyped upstream
    return CellOptions(**vars(parsed))
