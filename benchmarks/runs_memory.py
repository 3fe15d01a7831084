"""Is a streamed run's memory flat in the number of items, and is it as fast per item as an in-memory batch?

Against the offline server in its own process (``python -m ds_magic.testing --tps 0 --ttft 0``:
no pacing, so the client's own costs dominate), with short answers (``[[offline tokens=2
think=0]]``). Each measurement runs in a fresh Python process, so its peak RSS (``ru_maxrss``) is
its own:

- ``stream N``: ``batch(template, generator of N items, sink="out.parquet")``, N = 20,000 and 200,000.
- ``memory 10000``: ``batch(template, list of 10,000 items)``, the in-memory peer.

Goals (issue 18): peak RSS of 200,000 within 30 MB of 20,000; seconds per item of the 200,000
run no worse than the in-memory batch of 10,000 (ratio ≤ 1.0). ``--persist`` also keeps every
row in the run's SQLite file (``run=``). The server's state is reset between runs.

    python benchmarks/runs_memory.py [--small 20000] [--large 200000] [--peer 10000] [--concurrency 32] [--persist]
    python benchmarks/runs_memory.py --pairs 3 --peer 2000     # alternating pairs, same size
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

KEY = "sk-bench0123456789abcdef0123456789"
TEMPLATE = "Label: {item} [[offline tokens=2 think=0]]"


def child(mode: str, n: int, url: str, concurrency: int, persist: bool, folder: str) -> None:
    """One measurement, in this (fresh) process; prints one JSON line."""
    import ds_magic
    from ds_magic import Client

    client = Client(api_key=KEY, base_url=url)

    def items():
        for i in range(n):
            yield f"row {i}"

    t0 = time.perf_counter()
    if mode == "stream":
        extra = {"run": f"bench-{n}-{os.getpid()}"} if persist else {}
        out = os.path.join(folder, f"out-{n}.parquet")
        result = ds_magic.batch(
            TEMPLATE, items(), client=client, sink=out, concurrency=concurrency, progress=False, **extra
        )
        result.wait()
        seconds = time.perf_counter() - t0
        p = result.progress
        ok = p.done
    else:
        mem = ds_magic.batch(TEMPLATE, list(items()), client=client, concurrency=concurrency, progress=False)
        mem.wait()
        seconds = time.perf_counter() - t0
        ok = mem.progress.done
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss_mb = usage.ru_maxrss / 1024  # KiB on Linux
    cpu = usage.ru_utime + usage.ru_stime  # the client's own CPU: less at the mercy of the machine's load
    print(json.dumps({"mode": mode, "n": n, "ok": ok, "seconds": seconds, "cpu": cpu, "peak_rss_mb": rss_mb}))


def measure(mode: str, n: int, url: str, args: argparse.Namespace, folder: str) -> dict[str, float]:
    urllib.request.urlopen(urllib.request.Request(url + "/_offline/reset", method="POST", data=b"")).read()
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        str(n),
        url,
        str(args.concurrency),
        str(int(args.persist)),
    ]
    env = {**os.environ, "XDG_CACHE_HOME": folder}
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    row: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    if row["ok"] != n:
        raise SystemExit(f"{mode} {n}: only {row['ok']} items ok")
    print(
        f"{mode:>6} {n:>7,} items: {row['seconds']:7.1f} s  {1e3 * row['seconds'] / n:6.3f} ms/item  "
        f"CPU {1e3 * row['cpu'] / n:6.3f} ms/item  peak RSS {row['peak_rss_mb']:6.1f} MB",
        flush=True,
    )
    return row


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        mode, n, url, c, persist = sys.argv[2:7]
        child(mode, int(n), url, int(c), persist == "1", os.environ["XDG_CACHE_HOME"])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=20_000)
    ap.add_argument("--large", type=int, default=200_000)
    ap.add_argument("--peer", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--persist", action="store_true", help="also keep the rows in the run's SQLite file")
    ap.add_argument(
        "--pairs",
        type=int,
        default=0,
        help="instead: K alternating pairs of an in-memory batch and a streamed run of --peer items each "
        "(the cleaner time ratio on a machine whose load changes)",
    )
    args = ap.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-m", "ds_magic.testing", "--port", "0", "--tps", "0", "--ttft", "0", "--quiet"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        url = next(w for w in line.split() if w.startswith("http://"))
        with tempfile.TemporaryDirectory() as folder:
            if args.pairs:
                walls, cpus = [], []
                for _ in range(args.pairs):
                    mem = measure("memory", args.peer, url, args, folder)
                    streamed = measure("stream", args.peer, url, args, folder)
                    walls.append(streamed["seconds"] / mem["seconds"])
                    cpus.append(streamed["cpu"] / mem["cpu"])
                for what, r in (("wall time", walls), ("client CPU", cpus)):
                    shown = ", ".join(f"{x:.2f}" for x in sorted(r))
                    print(
                        f"{what}, streamed / in memory, {args.peer:,} items: {shown} (median {statistics.median(r):.2f})"
                    )
                return
            peer = measure("memory", args.peer, url, args, folder)
            small = measure("stream", args.small, url, args, folder)
            large = measure("stream", args.large, url, args, folder)
        growth = large["peak_rss_mb"] - small["peak_rss_mb"]
        ratio = (large["seconds"] / args.large) / (peer["seconds"] / args.peer)
        print(f"peak RSS growth {args.small:,} → {args.large:,}: {growth:+.1f} MB (goal ≤ 30 MB)")
        cpu_ratio = (large["cpu"] / args.large) / (peer["cpu"] / args.peer)
        print(f"time per item, {args.large:,} streamed / {args.peer:,} in memory: {ratio:.2f} (goal ≤ 1.0)")
        print(f"client CPU per item, the same ratio: {cpu_ratio:.2f}")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
