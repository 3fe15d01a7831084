"""Issue 17: how many streams one kernel reads, ds_magic against an httpx + httpx-sse loop and the openai SDK.

A Node load generator (benchmarks/loadgen.js: one timer for every paced stream, no checks) serves
DeepSeek-shaped SSE on 127.0.0.1. Each client runs in its own fresh process, one run at a time, the
three alternated (the order rotates each round), so a noisy neighbour hits all three alike; the
table gives per-client medians and the **medians of the paired ratios** (ds_magic ÷ peer within one
round). The machine is shared (2 cores, other sessions): absolute figures are noisy, the ratios less so.

Figures, per streams count N (60 tokens at 50 tokens/s each, 1.2 s of answer per stream):
- paced events/s: tokens received ÷ wall (first request to last answer); the offer is N × 50;
- CPU µs per event: the client process's user + system CPU ÷ tokens (all its threads);
- RSS per open stream: (peak RSS during the run − RSS before it) ÷ N;
- unpaced burst: 100 streams × 500 tokens sent as fast as the socket takes them;
- batch: 2,000 prompts, concurrency 500, 300 ms to the first token, 25 tokens at 50 tokens/s:
  wall ÷ ideal, ideal = ceil(2000 / 500) × (0.3 + 24 / 50) s.
First a trivial reader (raw asyncio sockets, counts ``data:`` lines) measures the generator's own
ceiling: a client figure near that ceiling means the generator, not the client, is the limit.

    python benchmarks/scale.py [--rounds 3] [--streams 100,500,1000,2500] [--skip-batch]
    python benchmarks/scale.py --worker ds|httpx|openai|raw --mode paced|burst|batch --n N --url URL
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = "sk-bench0123456789abcdef0123456789"
PY = sys.executable
PEERS = ("ds", "httpx", "openai")
NAMES = {"ds": "ds_magic", "httpx": "httpx + httpx-sse", "openai": "openai SDK", "raw": "trivial reader"}
BATCH_ITEMS, BATCH_CONC, BATCH_TTFT, BATCH_TOKENS, TPS = 2000, 500, 0.3, 25, 50.0
# Tokens per paced stream (at 50 tokens/s: 1.2 s of answer) and per burst stream.
PACED_TOKENS, BURST_TOKENS = 60, 500
# The sharded batch: unpaced answers, so the client's CPU is the limit and more cores should help.
SHARD_ITEMS, SHARD_TOKENS, SHARD_CONC = int(os.environ.get("SCALE_SHARD_ITEMS", "600")), 400, 300


# ------------------------------------------------------------------ the workers (one per process)
def prompts(mode: str, n: int) -> tuple[list[str], int]:
    """The prompts of one run, and the tokens each answer has."""
    if mode == "paced":
        return [f"tokens={PACED_TOKENS} tps={TPS:g} ttft=0 #{i}" for i in range(n)], PACED_TOKENS
    if mode == "delay":
        return [f"tokens={PACED_TOKENS} tps={TPS:g} ttft=0 stamp=1 #{i}" for i in range(n)], PACED_TOKENS
    if mode == "single":
        return [f"tokens=2000 tps={TPS:g} ttft=0 #single"], 2000
    if mode == "shard":
        return [f"tokens={SHARD_TOKENS} tps=0 ttft=0 #{i}" for i in range(SHARD_ITEMS)], SHARD_TOKENS
    if mode == "burst":
        return [f"tokens={BURST_TOKENS} tps=0 ttft=0 #{i}" for i in range(n)], BURST_TOKENS
    return [
        f"tokens={BATCH_TOKENS} tps={TPS:g} ttft={BATCH_TTFT} #{i}" for i in range(BATCH_ITEMS)
    ], BATCH_TOKENS


class RssPeak:
    """The process's peak RSS while the run is on, sampled every 20 ms."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def end(self) -> tuple[int, int]:
        self.stop.set()
        self.thread.join()
        return self.base, self.peak


def cpu() -> float:
    """This process's CPU seconds and its ended children's (a sharded batch's worker processes)."""
    r, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


async def raw_one(host: str, port: int, prompt: str) -> int:
    body = json.dumps(
        {"model": "deepseek-chat", "stream": True, "messages": [{"role": "user", "content": prompt}]}
    )
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"POST /chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
    )
    count, tail = 0, b""
    while True:
        data = await reader.read(65536)
        if not data:
            break
        buf = tail + data
        count += buf.count(b"data: ")
        if b"[DONE]" in buf:
            break
        tail = buf[-8:]
        count -= tail.count(b"data: ")
    writer.close()
    return max(count - 3, 0)  # the role chunk, the finish chunk and [DONE] are not tokens


async def httpx_one(http: Any, url: str, prompt: str) -> int:
    from httpx_sse import aconnect_sse

    body = {"model": "deepseek-chat", "stream": True, "messages": [{"role": "user", "content": prompt}]}
    parts: list[str] = []
    headers = {"Authorization": f"Bearer {KEY}"}
    async with aconnect_sse(http, "POST", url + "/chat/completions", json=body, headers=headers) as es:
        async for sse in es.aiter_sse():
            if sse.data == "[DONE]":
                break
            choices = json.loads(sse.data)["choices"]
            if choices:
                piece = choices[0]["delta"].get("content")
                if piece:
                    parts.append(piece)
    return "".join(parts).count(" ")


async def openai_one(client: Any, prompt: str) -> int:
    stream = await client.chat.completions.create(
        model="deepseek-chat", messages=[{"role": "user", "content": prompt}], stream=True
    )
    parts: list[str] = []
    async for chunk in stream:
        if chunk.choices:
            piece = chunk.choices[0].delta.content
            if piece:
                parts.append(piece)
    return "".join(parts).count(" ")


def stamped(text: str, now: float, delays: list[float]) -> None:
    """The delay of each token of ``text`` (the generator's stamp=1: "t<Unix ms> "), in seconds."""
    for tok in text.split():
        if tok[:1] == "t":
            delays.append(now - float(tok[1:]) / 1000)


async def ds_delays(rs: list[Any]) -> list[float]:
    """What a notebook consumer sees: each answer read with ``async for`` on the caller's loop."""
    delays: list[float] = []

    async def consume(r: Any) -> None:
        async for ev in r:
            if ev.kind == "answer":
                stamped(ev.text, time.time(), delays)

    await asyncio.gather(*(consume(r) for r in rs))
    return delays


async def httpx_delay_one(http: Any, url: str, prompt: str, delays: list[float]) -> int:
    from httpx_sse import aconnect_sse

    body = {"model": "deepseek-chat", "stream": True, "messages": [{"role": "user", "content": prompt}]}
    headers = {"Authorization": f"Bearer {KEY}"}
    n = 0
    async with aconnect_sse(http, "POST", url + "/chat/completions", json=body, headers=headers) as es:
        async for sse in es.aiter_sse():
            if sse.data == "[DONE]":
                break
            choices = json.loads(sse.data)["choices"]
            if choices and choices[0]["delta"].get("content"):
                stamped(choices[0]["delta"]["content"], time.time(), delays)
                n += 1
    return n


async def openai_delay_one(client: Any, prompt: str, delays: list[float]) -> int:
    stream = await client.chat.completions.create(
        model="deepseek-chat", messages=[{"role": "user", "content": prompt}], stream=True
    )
    n = 0
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            stamped(chunk.choices[0].delta.content, time.time(), delays)
            n += 1
    return n


def delay_worker(kind: str, n: int, url: str) -> dict[str, Any]:
    """p50 / p99 / max of the delay from the generator's write to the reader's hands, per token."""
    texts, per = prompts("delay", n)
    delays: list[float] = []
    t0 = time.perf_counter()
    if kind == "ds":
        from ds_magic import Client

        client = Client(api_key=KEY, base_url=url, dialect="deepseek", max_retries=0)
        client.chat("tokens=3 tps=0").wait(30)
        t0 = time.perf_counter()
        delays = asyncio.run(ds_delays([client.chat(p) for p in texts]))
    else:
        import httpx

        async def main() -> None:
            if kind == "httpx":
                limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
                async with httpx.AsyncClient(timeout=None, limits=limits) as http:
                    await asyncio.gather(*(httpx_delay_one(http, url, p, delays) for p in texts))
                return
            from openai import AsyncOpenAI

            client = AsyncOpenAI(api_key=KEY, base_url=url, max_retries=0, timeout=600)
            await asyncio.gather(*(openai_delay_one(client, p, delays) for p in texts))

        asyncio.run(main())
    delays.sort()
    q = (
        (lambda f: 1000 * delays[min(len(delays) - 1, int(f * len(delays)))])
        if delays
        else (lambda f: float("nan"))
    )
    return {
        "wall": time.perf_counter() - t0,
        "tokens": len(delays),
        "expected": per * len(texts),
        "errors": int(len(delays) != per * len(texts)),
        "p50_ms": q(0.5),
        "p99_ms": q(0.99),
        "max_ms": q(1.0),
    }


async def gather_limited(coros: list[Any], limit: int) -> list[Any]:
    sem = asyncio.Semaphore(limit)

    async def run(c: Any) -> Any:
        async with sem:
            return await c

    return await asyncio.gather(*(run(c) for c in coros), return_exceptions=True)


def single(kind: str, url: str, prompt: str) -> int:
    """One answer read by a plain ``for`` loop in the caller's thread (sync iteration)."""
    if kind == "ds":
        from ds_magic import Client

        client = Client(api_key=KEY, base_url=url, dialect="deepseek", max_retries=0)
        parts = [ev.text for ev in client.chat(prompt) if ev.kind == "answer"]
    elif kind == "httpx":
        import httpx
        from httpx_sse import connect_sse

        body = {"model": "deepseek-chat", "stream": True, "messages": [{"role": "user", "content": prompt}]}
        parts = []
        with (
            httpx.Client(timeout=None) as http,
            connect_sse(
                http, "POST", url + "/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
            ) as es,
        ):
            for sse in es.iter_sse():
                if sse.data == "[DONE]":
                    break
                choices = json.loads(sse.data)["choices"]
                if choices and choices[0]["delta"].get("content"):
                    parts.append(choices[0]["delta"]["content"])
    else:
        from openai import OpenAI

        oc = OpenAI(api_key=KEY, base_url=url, max_retries=0)
        stream = oc.chat.completions.create(
            model="deepseek-chat", messages=[{"role": "user", "content": prompt}], stream=True
        )
        parts = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    return "".join(parts).count(" ")


def worker(kind: str, mode: str, n: int, url: str) -> dict[str, Any]:
    if mode == "delay":
        return delay_worker(kind, n, url)
    texts, per = prompts(mode, n)
    if mode == "single":
        single(kind, url, "tokens=3 tps=0")  # warm: imports, threads, one connection
        c0, t0 = cpu(), time.perf_counter()
        got = single(kind, url, texts[0])
        return {
            "wall": time.perf_counter() - t0,
            "cpu": cpu() - c0,
            "tokens": got,
            "expected": per,
            "errors": int(got != per),
            "first_error": None,
            "rss_per_stream": 0,
        }
    limit = BATCH_CONC if mode == "batch" else len(texts)
    if kind == "ds":
        import ds_magic
        from ds_magic import Client

        http = None
        if os.environ.get("SCALE_DS_TRANSPORT") == "aiohttp":  # step 5's C-parser transport, measured
            from httpx_aiohttp import HttpxAiohttpClient

            http = HttpxAiohttpClient(timeout=None)
        client = Client(api_key=KEY, base_url=url, dialect="deepseek", max_retries=0, http_client=http)
        client.chat("tokens=3 tps=0").wait(30)  # warm: imports, the engine thread, one connection
        rss = RssPeak()
        c0, t0 = cpu(), time.perf_counter()
        if mode in ("batch", "shard"):
            conc = BATCH_CONC if mode == "batch" else SHARD_CONC
            procs = n if mode == "shard" and n > 1 else None  # --n: the processes
            result = ds_magic.batch(texts, client=client, concurrency=conc, processes=procs, progress=False)
            result.wait()
            got = [r.text_so_far.count(" ") if r.status == "ok" else r.error for r in result.responses]
        else:
            rs = [client.chat(p) for p in texts]
            for r in rs:
                r.join()
            got = [r.text_so_far.count(" ") if r.status == "ok" else r.error for r in rs]
    else:
        import httpx

        async def main() -> tuple[list[Any], RssPeak, float, float]:
            if kind == "raw":
                host, port = url.removeprefix("http://").split(":")
                rss = RssPeak()
                c0, t0 = cpu(), time.perf_counter()
                return await gather_limited([raw_one(host, int(port), p) for p in texts], limit), rss, c0, t0
            if kind == "httpx":
                limits = httpx.Limits(max_connections=limit, max_keepalive_connections=limit)
                async with httpx.AsyncClient(timeout=None, limits=limits) as http:
                    await httpx_one(http, url, "tokens=3 tps=0")
                    rss = RssPeak()
                    c0, t0 = cpu(), time.perf_counter()
                    return await gather_limited([httpx_one(http, url, p) for p in texts], limit), rss, c0, t0
            from openai import AsyncOpenAI

            client = AsyncOpenAI(api_key=KEY, base_url=url, max_retries=0, timeout=600)
            await openai_one(client, "tokens=3 tps=0")
            rss = RssPeak()
            c0, t0 = cpu(), time.perf_counter()
            return await gather_limited([openai_one(client, p) for p in texts], limit), rss, c0, t0

        got, rss, c0, t0 = asyncio.run(main())
    wall = time.perf_counter() - t0
    used = cpu() - c0
    base, peak = rss.end()
    ok = [g for g in got if isinstance(g, int)]
    errors = [repr(g)[:120] for g in got if not isinstance(g, int)]
    tokens = sum(ok)
    return {
        "wall": wall,
        "cpu": used,
        "tokens": tokens,
        "expected": per * len(texts),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "rss_per_stream": (peak - base) / max(limit, 1),
    }


# ------------------------------------------------------------------ the orchestrator
def run_worker(kind: str, mode: str, n: int, url: str, timeout: float) -> dict[str, Any]:
    cmd = [PY, __file__, "--worker", kind, "--mode", mode, "--n", str(n), "--url", url]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"timeout": True, "wall": timeout}
    line = out.stdout.strip().splitlines()[-1:] or [""]
    try:
        return dict(json.loads(line[0]))
    except ValueError:
        return {"failed": (out.stderr or out.stdout)[-400:]}


def start_generator() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        ["node", os.path.join(HERE, "loadgen.js"), "0"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    port = json.loads(proc.stdout.readline())["port"]
    return proc, f"http://127.0.0.1:{port}"


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def figures(r: dict[str, Any], mode: str) -> dict[str, float]:
    if "wall" not in r or r.get("timeout") or "tokens" not in r:
        return {}
    tok = max(r["tokens"], 1)
    f = {
        "ev_s": r["tokens"] / r["wall"],
        "cpu_us": 1e6 * r["cpu"] / tok,
        "rss_kb": r["rss_per_stream"] / 1024,
    }
    if mode == "batch":
        ideal = math.ceil(BATCH_ITEMS / BATCH_CONC) * (BATCH_TTFT + (BATCH_TOKENS - 1) / TPS)
        f["wall_ideal"] = r["wall"] / ideal
    return f


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker")
    ap.add_argument("--mode", default="paced")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--url")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--streams", default="100,500,1000,2500")
    ap.add_argument("--clients", default=",".join(PEERS))
    ap.add_argument("--skip-batch", action="store_true")
    ap.add_argument("--single-rounds", type=int, default=2, help="rounds of the one-answer case (0: skip)")
    ap.add_argument("--only-single", action="store_true")
    ap.add_argument("--shard-rounds", type=int, default=2, help="rounds of the sharded batch (0: skip)")
    ap.add_argument("--only-shard", action="store_true")
    ap.add_argument(
        "--shard-items",
        type=int,
        default=SHARD_ITEMS,
        help="prompts of the sharded batch (more: spawn amortized)",
    )
    ap.add_argument(
        "--delay-streams", default="500,1000,2500", help="streams of the event-delay case ('': skip)"
    )
    ap.add_argument("--only-delay", action="store_true")
    ap.add_argument("--timeout", type=float, default=240.0)
    args = ap.parse_args()
    os.environ["SCALE_SHARD_ITEMS"] = str(args.shard_items)  # the workers read it
    if args.worker:
        print(json.dumps(worker(args.worker, args.mode, args.n, args.url)))
        return
    peers = tuple(args.clients.split(","))
    cases: list[tuple[str, int]] = [("paced", int(n)) for n in args.streams.split(",")]
    cases.append(("burst", 100))
    if not args.skip_batch:
        cases.append(("batch", BATCH_ITEMS))
    gen, url = start_generator()
    try:
        if args.shard_rounds:
            shard_case(url, args.shard_rounds, args.timeout)
        if args.only_shard:
            return
        if args.delay_streams:
            delay_case(url, peers, [int(x) for x in args.delay_streams.split(",")], args.timeout)
        if args.only_delay:
            return
        if args.single_rounds:
            single_case(url, peers, args.single_rounds, args.timeout)
        print(f"generator: {url}; client runs alternate, {args.rounds} rounds; 2 shared cores: noisy")
        for mode, n in [] if args.only_single else cases:
            raw = figures(run_worker("raw", mode, n, url, args.timeout), mode)
            if raw:
                print(f"  {mode} n={n}: generator ceiling with a trivial reader {raw['ev_s']:,.0f} events/s")
            rows: dict[str, list[dict[str, float]]] = {p: [] for p in peers}
            notes: list[str] = []
            for k in range(args.rounds):
                order = peers[k % len(peers) :] + peers[: k % len(peers)]
                for p in order:
                    r = run_worker(p, mode, n, url, args.timeout)
                    if r.get("errors") or r.get("timeout") or r.get("failed"):
                        notes.append(
                            f"{NAMES[p]}: {r.get('errors') or ''} {r.get('first_error') or r.get('failed') or 'timed out'}"
                        )
                    rows[p].append(figures(r, mode))
            report(mode, n, rows, peers, notes)
    finally:
        gen.terminate()
        gen.wait()


def shard_case(url: str, rounds: int, timeout: float) -> None:
    """batch(processes=None) against processes=2, alternated: tokens/s of the whole batch, and the
    gain per added core; the projection for 6 and 16 cores follows from these (README)."""
    rows: dict[int, list[float]] = {1: [], 2: []}
    per_cpu: dict[int, list[float]] = {1: [], 2: []}
    for k in range(rounds):
        for p in (1, 2) if k % 2 == 0 else (2, 1):
            r = run_worker("ds", "shard", p, url, timeout)
            if "tokens" in r and not r.get("errors"):
                rows[p].append(r["tokens"] / r["wall"])
                per_cpu[p].append(r["tokens"] / r["cpu"])
            else:
                print(
                    f"  ! processes={p}: {r.get('errors') or ''} {r.get('first_error') or r.get('failed') or 'timed out'}"
                )
    one, two = med(rows[1]), med(rows[2])
    pairs = [b / a for a, b in zip(rows[1], rows[2], strict=False)]
    print(
        f"\nsharded batch, {os.environ['SCALE_SHARD_ITEMS']} prompts × {SHARD_TOKENS} unpaced tokens, concurrency {SHARD_CONC}:"
    )
    print(
        f"  one process {one:,.0f} tokens/s, two worker processes {two:,.0f} tokens/s, "
        f"paired ratio {med(pairs):.2f} (gain per added core {med(pairs) - 1:.2f})"
    )
    eff = [b / a for a, b in zip(per_cpu[1], per_cpu[2], strict=False)]
    print(
        f"  tokens per CPU second (all processes): one {med(per_cpu[1]):,.0f}, two {med(per_cpu[2]):,.0f}, "
        f"paired ratio {med(eff):.2f}: what each added core adds where cores are free"
    )
    sys.stdout.flush()


def delay_case(url: str, peers: tuple[str, ...], ns: list[int], timeout: float) -> None:
    """Each token's delay from the generator's write to the reader's hands (ds_magic: an ``async for``
    on the caller's loop, woken once per 100 ms tick), at 50 tokens/s a stream."""
    print("\nevent delay, paced 50 tokens/s, from the generator's write to the reader (ms):")
    print("  " + f"{'streams':>8}" + "".join(f"{NAMES[p] + ' p50 / p99 / max':>40}" for p in peers))
    for n in ns:
        cells = []
        for p in peers:
            r = run_worker(p, "delay", n, url, timeout)
            if "p99_ms" in r:
                bad = " !" if r.get("errors") else ""
                cells.append(f"{r['p50_ms']:,.0f} / {r['p99_ms']:,.0f} / {r['max_ms']:,.0f}{bad}")
            else:
                cells.append("failed" if not r.get("timeout") else "timed out")
        print("  " + f"{n:>8}" + "".join(f"{c:>40}" for c in cells))
    sys.stdout.flush()


def single_case(url: str, peers: tuple[str, ...], rounds: int, timeout: float) -> None:
    """One 2,000-token answer at 50 tokens/s, read by a sync loop: the three clients run at the same
    time (each in its own process; at this pace none is short of CPU), so rounds take 40 s, not 120."""
    rows: dict[str, list[dict[str, float]]] = {p: [] for p in peers}
    for _ in range(rounds):
        procs = {
            p: subprocess.Popen(
                [PY, __file__, "--worker", p, "--mode", "single", "--n", "1", "--url", url],
                stdout=subprocess.PIPE,
                text=True,
            )
            for p in peers
        }
        for p, proc in procs.items():
            out, _ = proc.communicate(timeout=timeout)
            r = json.loads(out.strip().splitlines()[-1])
            rows[p].append({"cpu_s": r["cpu"], "ok": float(r["errors"] == 0)})
    print("\none 2,000-token answer at 50 tokens/s, sync iteration, CPU seconds (the three at once):")
    print(
        "  "
        + "".join(f"{NAMES[p]:>20}" for p in peers)
        + "".join(f"{'ds ÷ ' + p:>14}" for p in peers if p != "ds")
    )
    cells = [med([r["cpu_s"] for r in rows[p]]) for p in peers]
    ratios = [
        med([a["cpu_s"] / b["cpu_s"] for a, b in zip(rows["ds"], rows[p], strict=False)])
        for p in peers
        if p != "ds"
    ]
    print("  " + "".join(f"{c:>20.3f}" for c in cells) + "".join(f"{x:>14.2f}" for x in ratios))
    if not all(r["ok"] for p in peers for r in rows[p]):
        print("  ! an answer came back incomplete")
    sys.stdout.flush()


def report(
    mode: str, n: int, rows: dict[str, list[dict[str, float]]], peers: tuple[str, ...], notes: list[str]
) -> None:
    keys = ["ev_s", "cpu_us", "rss_kb"] + (["wall_ideal"] if mode == "batch" else [])
    label = {
        "ev_s": "events/s",
        "cpu_us": "CPU µs/event",
        "rss_kb": "RSS KB/stream",
        "wall_ideal": "wall ÷ ideal",
    }
    print(f"\n{mode}, {n} {'prompts' if mode == 'batch' else 'streams'}:")
    print(
        "  "
        + f"{'':16}"
        + "".join(f"{NAMES[p]:>20}" for p in peers)
        + "".join(f"{'ds ÷ ' + p:>14}" for p in peers if p != "ds")
    )
    for key in keys:
        cells = [med([r[key] for r in rows[p] if key in r]) for p in peers]
        ratios = []
        for p in peers:
            if p == "ds" or "ds" not in rows:
                continue
            pairs = [
                a[key] / b[key]
                for a, b in zip(rows["ds"], rows[p], strict=False)
                if key in a and key in b and b[key]
            ]
            ratios.append(med(pairs))
        print(
            "  "
            + f"{label[key]:16}"
            + "".join(f"{c:>20,.1f}" for c in cells)
            + "".join(f"{x:>14.2f}" for x in ratios)
        )
    for note in notes:
        print(f"  ! {note}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
