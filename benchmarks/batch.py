"""How close does ``ds_magic.batch`` get to the ideal schedule, and does it lose or repeat anything under 429s?

Against the offline server (127.0.0.1): 200 prompts, each answered after a 300 ms time to first
token at 50 tokens/s with a 25-token answer, so one request takes about 0.3 + 24/50 = 0.78 s.
With concurrency 32 the ideal is ceil(200/32) × per-request time; the goal is wall / ideal ≤ 1.2.
The per-request time is measured, not assumed: the median ``timing.total`` of the same answer sent
alone, over a few runs.

The second run answers 20% of the requests 429 first (every fifth one to arrive; the offline
server consumes scripts in arrival order). The batch must lower its concurrency, send those items
again, and finish all 200 with exactly one successful request per item, counted on the server.
The server's 429 body is DeepSeek's ("current concurrency is X, which exceeds your concurrency
limit of Y"), from which the batch learns the excess; ``--plain-429`` sends a body without those
numbers, so the batch falls back to halving its limit (slower here, as these 429s come whatever
the load).

    python benchmarks/batch.py [--items 200] [--concurrency 32] [--tokens 25] [--plain-429]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections import Counter

import ds_magic
from ds_magic import BatchResult, Client
from ds_magic.testing import OfflineServer, Script

KEY = "sk-bench0123456789abcdef0123456789"
TTFT = 0.3
TPS = 50.0


def answer(tokens: int) -> str:
    # The offline server streams one word per token.
    return " ".join(f"w{i}" for i in range(tokens))


def per_request_time(srv: OfflineServer, client: Client, text: str, runs: int = 5) -> float:
    totals = []
    for _ in range(runs):
        srv.enqueue(Script(text=text, reasoning="", ttft=TTFT, tokens_per_second=TPS))
        resp = client.chat("alone")
        resp.wait()
        assert resp.timing.total is not None
        totals.append(resp.timing.total)
    return statistics.median(totals)


def run(
    srv: OfflineServer, client: Client, n: int, concurrency: int, scripts: list[Script]
) -> tuple[float, BatchResult]:
    srv.reset()
    srv.enqueue(*scripts)
    t0 = time.perf_counter()
    result = ds_magic.batch(
        [f"item {i}" for i in range(n)], client=client, concurrency=concurrency, progress=False
    )
    result.wait()
    return time.perf_counter() - t0, result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=25)
    ap.add_argument("--plain-429", action="store_true", help="429 bodies without the concurrency numbers")
    args = ap.parse_args()
    n, c = args.items, args.concurrency
    text = answer(args.tokens)
    ok = Script(text=text, reasoning="", ttft=TTFT, tokens_per_second=TPS)

    with OfflineServer() as srv:
        client = Client(api_key=KEY, base_url=srv.url)
        per = per_request_time(srv, client, text)
        ideal = math.ceil(n / c) * per

        wall, result = run(srv, client, n, c, [ok] * n)
        statuses = Counter(r.status for r in result)
        print(
            f"per-request time (alone, median): {per:.3f} s  (TTFT {TTFT} s, {args.tokens} tokens at {TPS:g}/s)"
        )
        print(
            f"{n} prompts, concurrency {c}: wall {wall:.2f} s, ideal ceil({n}/{c}) × {per:.3f} = {ideal:.2f} s"
        )
        print(
            f"  wall / ideal = {wall / ideal:.3f}  (goal ≤ 1.2); peak in flight on the server: {srv.max_active}"
        )
        print(f"  statuses: {dict(statuses)}")

        # 20% answered 429 first: every fifth arrival, for as many 429s as 20% of the items.
        too_many = Script(status=429, error_message="Rate Limit Reached" if args.plain_429 else None)
        scripts: list[Script] = []
        n429 = n // 5
        while len([s for s in scripts if s.status == 429]) < n429:
            scripts += [ok] * 4 + [too_many]
        scripts += [ok] * (n + n429 - len(scripts))
        wall, result = run(srv, client, n, c, scripts)
        got_429 = sum(1 for k in range(len(srv.requests)) if scripts[k].status == 429)
        ok_per_item = Counter(
            r.body["messages"][-1]["content"] for k, r in enumerate(srv.requests) if scripts[k].status != 429
        )
        complete = sum(1 for r in result if r.status == "ok")
        dup = sum(1 for v in ok_per_item.values() if v > 1)
        missing = n - len(ok_per_item)
        limits = [v for _, v in result.concurrency_history]
        body = "without" if args.plain_429 else "with"
        print(
            f"\nsame run, 20% answered 429 first ({got_429} × 429 from the server, {body} the cap in the body):"
        )
        print(
            f"  complete {complete}/{n}; items sent successfully more than once: {dup}; never answered: {missing}"
        )
        print(
            f"  requests on the server: {len(srv.requests)} = {n} + {len(srv.requests) - n} re-sent after 429"
        )
        print(f"  concurrency limit: started {limits[0]}, lowest {min(limits)}, ended {limits[-1]}")
        # The default RetryPolicy's backoff (about 1 s before a 429'd item is sent again) is in here.
        print(f"  wall {wall:.2f} s ({wall / ideal:.2f} × the 429-free ideal)")


if __name__ == "__main__":
    main()
