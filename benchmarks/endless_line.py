"""Memory a hostile server can make us spend: an endless ``data:`` line (issue 14).

A raw server on 127.0.0.1 (tests/hostile.py) sends one answer chunk and then a ``data:`` line that
never ends, as fast as the client reads it. Before the event cap the client held the whole line:
its RSS grew one for one with what was sent (400 MB sent, 378 MB peak) until the idle deadline.
With ``max_event_bytes`` (default 16 MiB) the stream ends at the cap with ``EventTooLargeError``
and the partial answer kept. Measured: what the server sent before the client hung up, the error,
and the growth of the process's peak RSS (ru_maxrss) over the request.

    python benchmarks/endless_line.py [--cap-mib 16]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hostile import RawServer, endless_line  # noqa: E402

from ds_magic import Client, RetryPolicy, Timeout  # noqa: E402
from ds_magic.engine import get_engine  # noqa: E402


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cap-mib", type=int, default=16)
    args = ap.parse_args()
    cap = args.cap_mib * 1024 * 1024
    with RawServer(endless_line) as server:
        client = Client(
            api_key="sk-bench0123456789abcdef0123456789",
            base_url=server.url,
            retry=RetryPolicy(max_retries=0),
            resume=0,
            timeout=Timeout(connect=5, first_token=120, idle=120),
            max_event_bytes=cap,
        )
        get_engine().http  # noqa: B018  # the engine thread and its HTTP client exist before we measure
        before = peak_rss_mib()
        t0 = time.monotonic()
        resp = client.chat("q")
        resp.join(120)
        took = time.monotonic() - t0
        server.disconnected.wait(5)
        grew = peak_rss_mib() - before
        print(f"cap {args.cap_mib} MiB: {resp.status} after {took:.2f} s, {type(resp.error).__name__}")
        print(f"  {resp.error}")
        print(f"  partial answer kept: {resp.text_so_far!r}")
        print(f"  server sent {server.sent / 2**20:.1f} MiB before the client hung up")
        print(f"  peak RSS grew {grew:.1f} MiB ({grew / args.cap_mib:.2f}× the cap)")


if __name__ == "__main__":
    main()
