"""Events per second of our stream layer vs the openai SDK and a hand loop over httpx-sse + json.loads.

All three read the SAME bytes in the SAME run: a DeepSeek-shaped thinking stream (role chunk,
reasoning deltas, answer deltas, finish chunk with usage, ``[DONE]``), served through each
library's own in-memory HTTP transport and split into awkward pieces, as a socket delivers them.

- ds_magic: ``Client.chat(...)`` end to end (engine thread, SSE decoder, chunk parser, Response).
- openai:   ``OpenAI(...).chat.completions.create(stream=True)``, iterating the chunks.
- httpx-sse: ``connect_sse`` + ``iter_sse()`` + ``json.loads`` per event (a minimal hand loop).

Goal (issue 2): ≥ 3× the openai SDK and ≥ 1× httpx-sse.

    python benchmarks/decode.py [--events 20000] [--piece 512] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Iterator

import httpx


def make_stream(n_events: int) -> bytes:
    base = {
        "id": "5b0c1d2e-0000-4000-8000-000000000001",
        "object": "chat.completion.chunk",
        "created": 1790000000,
        "model": "deepseek-flash",
        "system_fingerprint": "fp_0123456789_prod0820_fp8_kvcache_20260402",
    }

    def chunk(delta: dict[str, object], finish: str | None = None, usage: object = None) -> bytes:
        obj = dict(
            base,
            choices=[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            usage=usage,
        )
        return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"

    parts = [chunk({"role": "assistant", "content": None, "reasoning_content": ""})]
    n_reason = n_events // 4
    words = ["The", " user", " wants", " a", " short", " answer", " about", " café", " 北京", " and", " π."]
    for i in range(n_events - 2):
        w = words[i % len(words)]
        if i < n_reason:
            parts.append(chunk({"content": None, "reasoning_content": w}))
        else:
            parts.append(chunk({"content": w, "reasoning_content": None}))
    usage = {
        "prompt_tokens": 12,
        "completion_tokens": n_events,
        "total_tokens": n_events + 12,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": n_reason},
        "prompt_cache_hit_tokens": 0,
        "prompt_cache_miss_tokens": 12,
    }
    parts.append(chunk({"content": "", "reasoning_content": None}, "stop", usage))
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def pieces(data: bytes, size: int) -> list[bytes]:
    """Fixed-size reads: events cut at awkward places. size 0: one read per event, as a live
    token stream arrives (the server flushes each chunk)."""
    if size <= 0:
        return [p + b"\n\n" for p in data.split(b"\n\n") if p]
    return [data[i : i + size] for i in range(0, len(data), size)]


HEADERS = {"content-type": "text/event-stream; charset=utf-8"}


def bench_ds_magic(chunks: list[bytes]) -> float:
    from ds_magic import Client

    class Stream(httpx.AsyncByteStream):
        async def __aiter__(self):  # type: ignore[override]
            for c in chunks:
                yield c

    transport = httpx.MockTransport(lambda request: httpx.Response(200, headers=HEADERS, stream=Stream()))
    client = Client(
        api_key="sk-bench", base_url="http://bench.local", http_client=httpx.AsyncClient(transport=transport)
    )
    t0 = time.perf_counter()
    resp = client.chat("hi")
    resp.wait()
    dt = time.perf_counter() - t0
    assert resp.status == "ok", resp.error
    return dt


def bench_openai(chunks: list[bytes]) -> float:
    import httpx2
    import openai

    class Stream(httpx2.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield from chunks

    transport = httpx2.MockTransport(lambda request: httpx2.Response(200, headers=HEADERS, stream=Stream()))
    client = openai.OpenAI(
        api_key="sk-bench",
        base_url="http://bench.local",
        http_client=httpx2.Client(transport=transport),
        max_retries=0,
    )
    t0 = time.perf_counter()
    n = 0
    for _chunk in client.chat.completions.create(
        model="deepseek-flash", messages=[{"role": "user", "content": "hi"}], stream=True
    ):
        n += 1
    dt = time.perf_counter() - t0
    assert n > 0
    return dt


def bench_httpx_sse(chunks: list[bytes]) -> float:
    from httpx_sse import connect_sse

    class Stream(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield from chunks

    transport = httpx.MockTransport(lambda request: httpx.Response(200, headers=HEADERS, stream=Stream()))
    t0 = time.perf_counter()
    n = 0
    with (
        httpx.Client(transport=transport) as c,
        connect_sse(c, "POST", "http://bench.local/chat/completions", json={}) as es,
    ):
        for sse in es.iter_sse():
            if sse.data.startswith("[DONE]"):
                break
            json.loads(sse.data)
            n += 1
    dt = time.perf_counter() - t0
    assert n > 0
    return dt


def best_of(fn: Callable[[list[bytes]], float], chunks: list[bytes], repeat: int) -> float:
    fn(chunks)  # warm-up: imports and first-use costs are not what we measure
    return statistics.median(fn(chunks) for _ in range(repeat))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument(
        "--piece", type=int, action="append", help="bytes per read (0 = one event per read); repeatable"
    )
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    data = make_stream(args.events)
    for size in args.piece or [0, 512]:
        run(data, pieces(data, size), size, args)


def run(data: bytes, chunks: list[bytes], size: int, args: argparse.Namespace) -> None:
    how = "one read per event" if size <= 0 else f"reads of {size} B"
    print(
        f"\n{args.events} events, {len(data) / 1e6:.2f} MB, {len(chunks)} {how}; median of {args.repeat} runs"
    )
    results = {
        "ds_magic (Client, engine thread)": best_of(bench_ds_magic, chunks, args.repeat),
        "openai SDK streaming": best_of(bench_openai, chunks, args.repeat),
        "httpx-sse + json.loads": best_of(bench_httpx_sse, chunks, args.repeat),
    }
    rates = {k: args.events / v for k, v in results.items()}
    for k, r in rates.items():
        print(f"{k:36s} {r:12,.0f} events/s  ({results[k] * 1000:7.1f} ms)")
    ours = rates["ds_magic (Client, engine thread)"]
    print(f"ds_magic / openai    = {ours / rates['openai SDK streaming']:.2f}×  (goal ≥ 3)")
    print(f"ds_magic / httpx-sse = {ours / rates['httpx-sse + json.loads']:.2f}×  (goal ≥ 1)")


if __name__ == "__main__":
    main()
