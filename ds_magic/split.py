"""``split_text``: cut a long text into pieces that each fit a token budget, losing nothing.

Paragraphs first, then sentences (and lines), then words, and characters only for a "word" that is
longer than the budget on its own (a URL, or CJK text with no spaces). Neighbouring units are packed
greedily, so a piece holds as many whole paragraphs (or sentences) as fit. Each piece is a slice of
the original text with its leading and trailing whitespace trimmed: between two pieces there is only
whitespace, so joining them with the separators they were split on gives the text back.

>>> split_text("One. Two.\\n\\nThree.", max_tokens=3)
['One. Two.', 'Three.']
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .tokens import estimate_tokens

__all__ = ["split_text"]

# A blank line (possibly holding spaces) separates paragraphs.
_PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n\s*")
# A sentence ends with . ! ? … (plus closing quotes/brackets) before whitespace, or with CJK
# full stops, which need no space after them; a single line break also ends a unit at this level.
_SENTENCE = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+|(?<=[。！？])[”’」』）]*\s*|\s*\n\s*")
_WORD = re.compile(r"\s+")

Span = tuple[int, int]


def _trim(text: str, a: int, b: int) -> Span | None:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return (a, b) if a < b else None


def _units(text: str, a: int, b: int, sep: re.Pattern[str]) -> list[Span]:
    """The non-blank pieces of ``text[a:b]`` between matches of ``sep``, as trimmed spans."""
    out: list[Span] = []
    start = a
    for m in sep.finditer(text, a, b):
        # Trimming drops the separator's whitespace; closing quotes stay with their sentence.
        span = _trim(text, start, m.end())
        if span:
            out.append(span)
        start = m.end()
    span = _trim(text, start, b)
    if span:
        out.append(span)
    return out


def _by_chars(text: str, a: int, b: int, budget: int) -> list[Span]:
    """Longest prefixes that fit, found by bisection (the estimate grows with the length)."""
    out: list[Span] = []
    while a < b:
        lo, hi = a + 1, b  # a single character always fits a budget of ≥ 1 token
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if estimate_tokens(text[a:mid]) <= budget:
                lo = mid
            else:
                hi = mid - 1
        span = _trim(text, a, lo)
        if span:
            out.append(span)
        a = lo
    return out


def split_text(text: str, max_tokens: int = 1000) -> list[str]:
    """Split ``text`` into pieces of at most ``max_tokens`` (by ``estimate_tokens``), in order.

    Nothing is lost or reordered: only the whitespace between pieces is dropped. Blank input gives
    ``[]``.
    """
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
    if not isinstance(text, str):
        raise TypeError(f"split_text needs a str, got {type(text).__name__}")

    levels: list[Callable[[int, int], list[Span]]] = [
        lambda a, b: _units(text, a, b, _PARAGRAPH),
        lambda a, b: _units(text, a, b, _SENTENCE),
        lambda a, b: _units(text, a, b, _WORD),
    ]

    def pack(a: int, b: int, level: int) -> list[Span]:
        if level == len(levels):
            return _by_chars(text, a, b, max_tokens)
        out: list[Span] = []
        cur: Span | None = None
        cur_tokens = 0
        for ua, ub in levels[level](a, b):
            size = estimate_tokens(text[ua:ub])
            if size > max_tokens:
                if cur:
                    out.append(cur)
                    cur, cur_tokens = None, 0
                out.extend(pack(ua, ub, level + 1))
                continue
            if cur is not None:
                # ceil() is subadditive, so the sum of the parts bounds the estimate of the whole;
                # only when that bound is over budget is the joined text measured. Each measure
                # resets the running bound to the truth, so few are needed per piece.
                joined = cur_tokens + estimate_tokens(text[cur[1] : ua]) + size
                if joined > max_tokens:
                    joined = estimate_tokens(text[cur[0] : ub])
                if joined <= max_tokens:
                    cur, cur_tokens = (cur[0], ub), joined
                    continue
                out.append(cur)
            cur, cur_tokens = (ua, ub), size
        if cur:
            out.append(cur)
        return out

    whole = _trim(text, 0, len(text))
    if whole is None:
        return []
    return [text[a:b] for a, b in pack(whole[0], whole[1], 0)]
