"""The ``%deepseek`` line that is not a subcommand: ``[options] PROMPT`` or ``[options] -- PROMPT``.

Issue 13: the line form is as safe as the cell. Its options work as in ``%%deepseek`` (``%deepseek
--dry-run x`` sends nothing), and a first word close to a subcommand (``%deepseek histroy``) is
refused with "did you mean", not sent as a paid one-word prompt; ``--`` sends such a line anyway.

Only the leading options are split like a shell line; the prompt after them is kept exactly as
typed (an apostrophe in "what's" is not an unclosed quote).
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import DeepSeekCellError
from .options import OPTIONS_HINT, takes_value

__all__ = ["LineForm", "LineError", "prompt_line", "split_line", "close_subcommand"]

# One shell-like word: quoted parts and plain characters up to the next blank.
_WORD = re.compile(r"""(?:"(?:\\.|[^"\\])*"|'[^']*'|[^\s"'])+""")

#: How close (difflib's ratio) an unknown first word must be to a subcommand to be refused:
#: "histroy" → history is 0.86, "stat" → stats 0.89, while "hello" → help-like names stay below.
CLOSE = 0.8


class LineError(ValueError):
    """The options part of the line cannot be read (an unclosed quote)."""


@dataclass(frozen=True)
class LineForm:
    #: The leading option words, unquoted, for the options parser.
    options: list[str]
    #: The rest of the line, as typed.
    prompt: str
    #: The line said ``--``: the prompt is sent whatever its first word.
    explicit: bool


def split_line(line: str) -> LineForm:
    """Split ``line`` into its leading options and the prompt; raises :class:`LineError`."""
    options: list[str] = []
    pos = 0
    want_value = False
    while True:
        while pos < len(line) and line[pos].isspace():
            pos += 1
        if pos >= len(line):
            return LineForm(options, "", False)
        starts_option = line[pos] == "-" and pos + 1 < len(line) and not line[pos + 1].isspace()
        if not want_value and not starts_option:
            return LineForm(options, line[pos:].rstrip(), False)
        m = _WORD.match(line, pos)
        end = m.end() if m else pos
        if end < len(line) and not line[end].isspace():  # the word ran into an unclosed quote
            raise LineError(f"an unclosed quote in the options — {OPTIONS_HINT}")
        raw = line[pos:end]
        pos = end
        if raw == "--" and not want_value:
            return LineForm(options, line[pos:].strip(), True)
        try:
            options.extend(shlex.split(raw))
        except ValueError as exc:
            raise LineError(f"{exc} in the options — {OPTIONS_HINT}") from None
        if want_value:
            want_value = False
        elif "=" not in raw and not (len(raw) > 2 and raw[1] != "-"):  # --model=x, -mx: value attached
            want_value = takes_value(raw)


def close_subcommand(word: str, names: Iterable[str]) -> str | None:
    """The subcommand ``word`` is probably a typo of, or None."""
    found = difflib.get_close_matches(word.lower(), list(names), n=1, cutoff=CLOSE)
    return found[0] if found else None


def prompt_line(line: str, subcommands: Iterable[str]) -> LineForm:
    """The line as a prompt to send, or the one-line reason it is not sent."""
    try:
        form = split_line(line)
    except LineError as exc:
        raise DeepSeekCellError(str(exc)) from None
    first = form.prompt.split(maxsplit=1)[:1]
    near = close_subcommand(first[0], subcommands) if first and not form.explicit else None
    if near is not None:
        raise DeepSeekCellError(
            f"Unknown subcommand {first[0]!r} — did you mean `%deepseek {near}`? Nothing was sent; "
            f"to send it as a prompt: %deepseek -- {form.prompt}"
        )
    if not form.prompt:
        raise DeepSeekCellError("No prompt after the options: %deepseek [options] PROMPT")
    return form
