"""split_text on a large document: is it linear? (moved here from a timed assertion in tests/test_batch.py)

The text is 500 paragraphs of 40 sentences (about 0.4 MB); it is split into 500-token pieces. Peer in
the same run: a naive word splitter (``str.split`` into words, a join per 300 words).
The former test allowed 2 s; the figure to watch is the ratio, and how it grows when the text doubles
(linear: about ×2).

    python benchmarks/split_text.py [--paragraphs 500]
"""

from __future__ import annotations

import argparse
import timeit

from ds_magic import split_text


def best(fn) -> float:
    """The best of three single runs (timeit: the least disturbed by the rest of the machine)."""
    return min(timeit.repeat(fn, number=1, repeat=3))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--paragraphs", type=int, default=500)
    args = ap.parse_args(argv)
    for n in (args.paragraphs, 2 * args.paragraphs):
        big = ("Sentence number one. " * 40 + "\n\n") * n

        def peer(text: str = big) -> None:
            words = text.split()
            [" ".join(words[i : i + 300]) for i in range(0, len(words), 300)]

        ours = best(lambda text=big: split_text(text, max_tokens=500))
        base = best(peer)
        print(
            f"{len(big) / 1e6:.2f} MB: split_text {ours * 1000:.1f} ms, peer {base * 1000:.1f} ms, ×{ours / base:.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
