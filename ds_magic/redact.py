"""Streaming redaction: mask configured words and patterns in an answer as it streams.

A match can be split across chunks ("sk-ab" | "c123…"), so a streaming masker has to hold back text
that might still become part of a match, and only that: the shortest tail that could be the start
of one (found with the ``regex`` module's partial matching, which the standard ``re`` lacks), and
never more than the longest possible match needs. Everything before it is final and is emitted at
once. The result is the same as masking the whole text at the end, whatever the chunking (tested
on every split point in tests/test_redact.py).

When a stream ends early (cancel, interrupt, error), the held-back tail may be the start of a secret:
it is masked rather than shown, so nothing leaks through an early end.

Rules: a plain string is a word, matched case-insensitively and as a whole word where it starts or
ends with a letter or digit ("titan" masks "Titan" but not "titanium"); ``re:<pattern>`` or a
compiled ``re.Pattern`` is a regular expression (Python ``re`` syntax). A pattern that can match
empty text is refused. A pattern with no upper bound (``sk-\\w{20,}``) holds a match back only until
a character arrives that it cannot take.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Sequence
from typing import Any

from .types import AnswerDelta, Event, ReasoningDelta

__all__ = ["MASK", "EventMasker", "RedactRules", "Redactor"]

MASK = "[redacted]"  # the same whatever the length, so a mask does not tell how long the secret was
_CONTEXT = 64  # raw characters kept before the pending text, for look-behinds and \b

# The stdlib's own regex parser tells a pattern's shortest match (to refuse empty ones).
try:
    _sre_parse: Any = importlib.import_module("re._parser")  # Python 3.11+
except ImportError:  # pragma: no cover - Python 3.10
    _sre_parse = importlib.import_module("sre_parse")


def _check(pattern: str, flags: int, shown: str) -> None:
    try:
        lo, _hi = _sre_parse.parse(pattern, flags).getwidth()
    except re.error as exc:
        raise ValueError(f"redact rule {shown!r} is not a valid regular expression: {exc}") from None
    if lo == 0:
        raise ValueError(f"redact rule {shown!r} can match empty text; make it match at least one character")


def _word(word: str) -> str:
    pat = re.escape(word)
    if re.match(r"\w", word[0]):
        pat = r"(?<!\w)" + pat
    if re.match(r"\w", word[-1]):
        pat += r"(?!\w)"
    return pat


_FLAG_LETTERS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"), (re.VERBOSE, "x"))


class RedactRules:
    """Compiled words and patterns; cheap to share. Each stream gets its own :meth:`stream`."""

    def __init__(self, rules: Iterable[str | re.Pattern[str]], mask: str = MASK) -> None:
        import regex  # partial matching (see the module docstring)

        parts: list[str] = []
        self.rules: list[str] = []
        for rule in rules:
            if isinstance(rule, re.Pattern):
                pat, flags, shown = rule.pattern, rule.flags, rule.pattern
            elif isinstance(rule, str) and rule.startswith("re:"):
                pat, flags, shown = rule[3:], 0, rule
            elif isinstance(rule, str):
                if not rule.strip():
                    raise ValueError("redact rules must not be empty or blank")
                pat, flags, shown = _word(rule), re.IGNORECASE, rule
            else:
                raise TypeError(
                    f"a redact rule is a word, 're:<pattern>' or a compiled re.Pattern, not {rule!r}"
                )
            _check(pat, flags, shown)
            letters = "".join(ch for flag, ch in _FLAG_LETTERS if flags & flag)
            parts.append(f"(?{letters}:{pat})" if letters else f"(?:{pat})")
            self.rules.append(shown)
        if not parts:
            raise ValueError("no redact rules given")
        self.mask = mask
        self.pattern: Any = regex.compile("|".join(parts), regex.VERSION0)

    def __repr__(self) -> str:
        return f"RedactRules({len(self.rules)} rules)"

    def stream(self) -> Redactor:
        return Redactor(self)

    @property
    def fingerprint(self) -> str:
        """What the rules mask, as one string: part of a cache key, so that an answer masked by
        one set of rules is never served to a client with other rules (or none)."""
        return f"{self.mask}\x00{self.pattern.pattern}"

    def mask_all(self, text: str) -> str:
        """The whole text at once: what a stream of it must come to, however it is split."""
        return str(self.pattern.sub(lambda _m: self.mask, text))

    @classmethod
    def coerce(cls, value: RedactRules | Sequence[str | re.Pattern[str]] | str | None) -> RedactRules | None:
        if value is None or isinstance(value, RedactRules):
            return value
        if isinstance(value, (str, re.Pattern)):
            value = [value]
        return cls(value) if len(value) else None


class Redactor:
    """One stream's masking state: ``feed`` each delta, ``flush`` once at the end."""

    __slots__ = ("rules", "pending", "context")

    def __init__(self, rules: RedactRules) -> None:
        self.rules = rules
        self.pending = ""  # raw text not emitted yet (it could be the start of a match)
        self.context = ""  # the last raw characters before ``pending``

    @property
    def held(self) -> int:
        """How many characters are held back right now."""
        return len(self.pending)

    def feed(self, text: str) -> str:
        """Add raw text; return the part that is final now, masked."""
        if not text:
            return ""
        self.pending += text
        return self._emit(end=None)

    def flush(self, complete: bool = True) -> str:
        """The rest, at the end of the stream. ``complete=False`` (cancelled, interrupted, failed):
        a held-back tail that could be the start of a match is masked, not shown."""
        if not self.pending:
            return ""
        return self._emit(end="complete" if complete else "early")

    def _emit(self, end: str | None) -> str:
        rules = self.rules
        pat = rules.pattern
        mask = rules.mask
        buf = self.context + self.pending
        start = pos = len(self.context)
        n = len(buf)
        # At an early end nothing from the first place a match could still begin is final: it gets
        # masked. Otherwise a match is final once no match starting where it starts could run past
        # what has arrived (so it can neither grow nor give way to a longer alternative).
        final_before = self._hold_from(buf, pos, n) if end == "early" else n
        out: list[str] = []
        hold: int | None = None  # where a match could still begin, for the current ``pos``
        while True:
            m = pat.search(buf, pos)
            if m is None or m.start() >= final_before:
                break
            if end is None:
                hold = self._hold_from(buf, pos, n, m)
                if hold < m.start() or pat.fullmatch(buf, m.start(), partial=True) is not None:
                    break  # an earlier match may still form, or this one may still grow
            out.append(buf[pos : m.start()])
            out.append(mask)
            pos = m.end()
            hold = None
        if end == "complete":
            out.append(buf[pos:])
            hold = n
        elif end == "early":
            hold = max(pos, final_before)
            out.append(buf[pos:hold])
            if hold < n:
                out.append(mask)  # it might have been a secret: do not show its beginning
            hold = n
        else:
            if hold is None:
                hold = self._hold_from(buf, pos, n, m)
            out.append(buf[pos:hold])
        consumed = buf[start:hold]
        self.context = (self.context + consumed)[-_CONTEXT:]
        self.pending = buf[hold:]
        return "".join(out)

    def _hold_from(self, buf: str, pos: int, n: int, first: Any = False) -> int:
        """The earliest place at or after ``pos`` from which a match is still possible.

        The first complete match there (which the loop in ``_emit`` left alone because it might
        still grow) bounds it. Before that, a partial match (one that runs into the end of what has
        arrived) also counts; ``regex`` reports a complete match in preference to a partial one
        further left, so candidates before the bound are looked for in the text cut at the bound
        and then confirmed against the whole text. ``first`` is ``pat.search(buf, pos)`` when the
        caller has it already.
        """
        pat = self.rules.pattern
        if first is False:
            first = pat.search(buf, pos)
        limit = first.start() if first is not None else n
        s = pos
        while s < limit:
            cand = pat.search(buf, s, limit, partial=True)
            if cand is None:
                break
            real = pat.match(buf, cand.start(), partial=True)
            if real is not None and (real.partial or real.end() == n):
                return int(cand.start())
            s = cand.start() + 1
        return limit


class EventMasker:
    """Masks one response's events as they arrive: the answer and the thinking each have their own
    :class:`Redactor`, other events pass through. What it holds back comes out at :meth:`flush`."""

    __slots__ = ("answer", "reasoning")

    def __init__(self, rules: RedactRules) -> None:
        self.answer = rules.stream()
        self.reasoning = rules.stream()

    def feed(self, events: Sequence[Event]) -> list[Event]:
        out: list[Event] = []
        for ev in events:
            if isinstance(ev, AnswerDelta):
                text = self.answer.feed(ev.text)
                if text:
                    out.append(AnswerDelta(text))
            elif isinstance(ev, ReasoningDelta):
                text = self.reasoning.feed(ev.text)
                if text:
                    out.append(ReasoningDelta(text))
            else:
                out.append(ev)
        return out

    def flush(self, complete: bool) -> list[Event]:
        """The held-back tails, at the end: masked conservatively unless the answer completed."""
        rest: list[Event] = []
        text = self.reasoning.flush(complete)
        if text:
            rest.append(ReasoningDelta(text))
        text = self.answer.flush(complete)
        if text:
            rest.append(AnswerDelta(text))
        return rest
