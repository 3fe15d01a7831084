"""What streaming redaction costs per answer delta, next to the cost of receiving a delta at all.

A 20,000-token answer (one delta per token, the offline server's pieces) goes through
``Response._push_many`` as the engine would push it: with no rules, with 5 words, and with 5 words
plus 5 regular expressions. The figure that matters is the per-delta cost against the decoder's
(benchmarks/decode.py: about 6 µs per event) and against tokens arriving every 10-20 ms.

    python benchmarks/redact.py [--tokens 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time

from ds_magic import RedactRules
from ds_magic.response import Response
from ds_magic.testing import split_tokens
from ds_magic.types import AnswerDelta

WORDS = ["titan", "Project X", "acme corp", "hunter2", "blue falcon"]
PATTERNS = [
    r"re:sk-[A-Za-z0-9]{20,}",
    r"re:\b\d{3}-\d{2}-\d{4}\b",
    r"re:AKIA[0-9A-Z]{16}",
    r"re:[\w.+-]+@example\.com",
    r"re:ghp_[A-Za-z0-9]{36}",
]


def answer(tokens: int) -> list[str]:
    base = (
        "The quick brown fox jumps over the lazy dog while the titan of industry emails "
        "someone@example.com about sk-notakeyatall and 555-12-1234 in Project X. "
    )
    pieces = split_tokens(base)
    return [pieces[i % len(pieces)] for i in range(tokens)]


def run(pieces: list[str], rules: RedactRules | None) -> float:
    resp = Response(model="deepseek-flash", redact=rules)
    push = resp._push_many
    t0 = time.perf_counter()
    for p in pieces:
        push((AnswerDelta(p),))
    resp._finish("ok")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    pieces = answer(args.tokens)
    cases = {
        "no rules": None,
        "5 words": RedactRules(WORDS),
        "5 words + 5 patterns": RedactRules(WORDS + PATTERNS),
    }
    base = None
    for name, rules in cases.items():
        best = min(run(pieces, rules) for _ in range(args.repeat))
        per = best / len(pieces) * 1e6
        base = base or per
        print(
            f"{name:>22}: {per:6.2f} µs per delta ({per / base:.1f}× no rules), {len(pieces) / best:,.0f} deltas/s"
        )
    if rules is not None:
        r = rules.stream()
        text = "".join(pieces)
        assert "".join(r.feed(p) for p in pieces) + r.flush() == rules.mask_all(text)


if __name__ == "__main__":
    main()
