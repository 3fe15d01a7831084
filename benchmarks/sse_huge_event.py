"""The SSE decoder on one huge event: linear in its size? (moved here from a timed assertion in
tests/test_sse.py; quadratic buffering, ``buf += line``, is the bug it guards, sse-and-retries.md §2.1)

One ``data:`` event of 1, 2, 4 and 8 MiB is fed in 4 KiB pieces, as a socket delivers it. Peer in the
same run: ``b"".join`` of the same pieces (the least any decoder does). Linear: the ratio to the peer
stays flat as the size doubles; quadratic: it doubles with it. The former test allowed 2 s for 8 MiB.

    python benchmarks/sse_huge_event.py
"""

from __future__ import annotations

import timeit

from ds_magic.sse import SSEDecoder


def best(fn) -> float:
    """The best of three single runs (timeit: the least disturbed by the rest of the machine)."""
    return min(timeit.repeat(fn, number=1, repeat=3))


def decode(chunks: list[bytes]) -> None:
    d = SSEDecoder()
    events = []
    for c in chunks:
        events += d.decode(c)
    assert len(events) == 1


def main() -> int:
    for mib in (1, 2, 4, 8):
        payload = b"data: " + b"x" * (mib << 20) + b"\n\n"
        chunks = [payload[i : i + 4096] for i in range(0, len(payload), 4096)]
        ours = best(lambda c=chunks: decode(c))
        peer = best(lambda c=chunks: b"".join(c))
        print(f"{mib} MiB: decoder {ours * 1000:.1f} ms, join {peer * 1000:.1f} ms, ×{ours / peer:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
