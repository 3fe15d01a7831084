"""Backpressure: does a consumer slower than the stream make the reader fall behind the socket?

The offline server (127.0.0.1) streams a 5,000-token answer at 5,000 tokens/s (one SSE event per
token, about 1 s). Two slow consumers read it at the same time:

- a ``for event in response`` loop that sleeps 50 ms per event (a display that blocks);
- a ``Response.add_listener`` callback that sleeps 50 ms per call (a slow callback).

Measured: the most events ever waiting in the slow reader's queue and in the listener's mailbox
(they merge deltas, so this stays a handful however slow the consumer is); how long after the
server wrote [DONE] the engine had the whole answer (if a consumer held up the reader, this would be
the consumer's pace: 5,000 × 50 ms = 250 s); the engine loop's worst scheduling lag, sampled every
5 ms; and the peak Python memory (tracemalloc) over the run.

Peer, same server, same slow consumer: the openai SDK's stream is pull-based, so the socket is only
read when the consumer asks for the next chunk; its reader falls behind the server by the consumer's
pace, which is what the ratio shows (time from [DONE] written to the whole answer read).

    python benchmarks/backpressure.py [--tokens 5000] [--tps 5000] [--sleep 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
import tracemalloc

from ds_magic import Client
from ds_magic.engine import get_engine
from ds_magic.testing import OfflineServer, Script

KEY = "sk-bench0123456789abcdef0123456789"


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def wait_for(cond, seconds: float) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if cond():
            return time.monotonic()
        time.sleep(0.001)
    return None


def measure_ds_magic(srv: OfflineServer, tokens: int, tps: float, pause: float) -> dict[str, float]:
    text = words(tokens)
    srv.reset()
    srv.enqueue(Script(text=text, reasoning="", tokens_per_second=tps))
    lag = {"max": 0.0}
    stop = threading.Event()

    async def sample() -> None:  # the engine loop's scheduling lag: is anything blocking it?
        loop = asyncio.get_running_loop()
        while not srv.active and not stop.is_set():  # from the moment the answer streams
            await asyncio.sleep(0.001)
        while not stop.is_set():
            t = loop.time()
            await asyncio.sleep(0.005)
            lag["max"] = max(lag["max"], loop.time() - t - 0.005)

    engine = get_engine()
    sampler = engine.submit(sample())
    tracemalloc.start()
    resp = Client(api_key=KEY, base_url=srv.url).chat("go")
    calls = {"n": 0}

    def slow_listener(ev) -> None:
        calls["n"] += 1
        time.sleep(pause)

    resp.add_listener(slow_listener)
    read: list[str] = []
    done_at: dict[str, float] = {}

    def consumer() -> None:
        for ev in resp:
            if ev.kind == "answer":
                read.append(ev.text)
            time.sleep(pause)
        done_at["consumer"] = time.monotonic()

    th = threading.Thread(target=consumer)
    th.start()
    server_done = wait_for(lambda: bool(srv.completed), 120)
    engine_done = wait_for(lambda: resp.done, 120)
    th.join(120)
    reader_peak, listener_peak = resp.backlog_peak
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    stop.set()
    sampler.result(5)
    assert "".join(read) == text, "the slow reader lost text"
    assert server_done is not None and engine_done is not None
    return {
        "reader_max_pending": float(reader_peak),
        "listener_max_pending": float(listener_peak),
        "listener_calls": float(calls["n"]),
        "events_sent": float(tokens),
        "done_after_server_s": max(engine_done - server_done, 0.0),
        "consumer_after_server_s": done_at["consumer"] - server_done,
        "engine_loop_max_lag_ms": lag["max"] * 1000,
        "peak_mib": peak / 2**20,
    }


def measure_openai(srv: OfflineServer, tokens: int, tps: float, pause: float) -> dict[str, float]:
    import openai

    text = words(tokens)
    srv.reset()
    srv.enqueue(Script(text=text, reasoning="", tokens_per_second=tps))
    client = openai.OpenAI(api_key=KEY, base_url=srv.url, max_retries=0)
    stream = client.chat.completions.create(
        model="deepseek-flash", messages=[{"role": "user", "content": "go"}], stream=True
    )
    got: list[str] = []
    server_done: float | None = None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            got.append(chunk.choices[0].delta.content)
        if server_done is None and srv.completed:
            server_done = time.monotonic()
        time.sleep(pause)
        if pause and len(got) >= 400:  # enough to show the trend without waiting 250 s
            break
    stream.close()
    return {
        "chunks_read": float(len(got)),
        "server_done_while_reading": float(server_done is not None),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=5000)
    ap.add_argument("--tps", type=float, default=5000.0)
    ap.add_argument("--sleep", type=float, default=0.05, help="seconds each slow consumer sleeps per event")
    args = ap.parse_args()
    with OfflineServer() as srv:
        r = measure_ds_magic(srv, args.tokens, args.tps, args.sleep)
        print(
            f"ds_magic, {args.tokens} tokens at {args.tps:.0f} tok/s, consumers sleeping {args.sleep * 1000:.0f} ms/event"
        )
        print(f"  slow reader: at most {r['reader_max_pending']:.0f} events queued (merged deltas)")
        print(
            f"  slow listener: {r['listener_calls']:.0f} calls for {r['events_sent']:.0f} events, "
            f"at most {r['listener_max_pending']:.0f} queued"
        )
        print(
            f"  engine had the whole answer {r['done_after_server_s'] * 1000:.0f} ms after the server wrote [DONE]"
        )
        print(f"  the slow reader finished {r['consumer_after_server_s'] * 1000:.0f} ms after it")
        print(
            f"  engine loop worst lag {r['engine_loop_max_lag_ms']:.1f} ms; peak Python memory {r['peak_mib']:.1f} MiB"
        )
        try:
            o = measure_openai(srv, args.tokens, args.tps, args.sleep)
        except ImportError:
            print("  (openai not installed: no peer figure)")
            return
        pulled = o["chunks_read"]
        print(
            f"openai SDK, same consumer: read {pulled:.0f} chunks in {pulled * args.sleep:.1f} s of consumer time; "
            f"the server {'had' if o['server_done_while_reading'] else 'had not yet'} finished writing "
            f"(the socket is read only as fast as the consumer pulls: {args.tokens * args.sleep:.0f} s for the whole answer)"
        )


if __name__ == "__main__":
    main()
