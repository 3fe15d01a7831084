"""A consumer slower than the stream never holds back the reader, and its backlog stays bounded.

5,000 tokens at 5,000 tokens/s from the offline server, read at once by a ``for`` loop and a
listener that each sleep 50 ms per event: reading at their pace would take 250 s. The engine must
still drain the socket as the server writes (the answer is complete moments after [DONE]), and the
slow consumers get merged deltas, so neither queue holds more than a few events.
Figures: benchmarks/backpressure.py.
"""

from __future__ import annotations

import threading
import time
import tracemalloc

from offline_helpers import KEY, wait_until

from ds_magic import Client
from ds_magic.testing import Script

TOKENS = 5000
PAUSE = 0.05


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def test_slow_reader_and_slow_listener_never_hold_back_the_socket(srv):
    text = words(TOKENS)
    srv.enqueue(Script(text=text, reasoning="", tokens_per_second=5000))
    tracemalloc.start()
    try:
        resp = Client(api_key=KEY, base_url=srv.url).chat("go")
        heard: list[str] = []

        def slow_listener(ev) -> None:
            if ev.kind == "answer":
                heard.append(ev.text)
            time.sleep(PAUSE)  # the scenario: a slow listener, not a wait

        resp.add_listener(slow_listener)
        read: list[str] = []

        def slow_reader() -> None:
            for ev in resp:
                if ev.kind == "answer":
                    read.append(ev.text)
                time.sleep(PAUSE)  # the scenario: a slow reader, not a wait

        th = threading.Thread(target=slow_reader)
        th.start()
        assert wait_until(lambda: bool(srv.completed), 30), "the server never finished writing"
        # At the consumers' pace the engine would need 5,000 × 50 ms = 250 s more.
        assert wait_until(lambda: resp.done, 3), "the engine fell behind the socket"
        th.join(10)
        assert not th.is_alive()
        assert wait_until(lambda: "".join(heard) == text, 10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "".join(read) == text  # merged, never lost
    reader_peak, listener_peak = resp.backlog_peak
    assert 1 <= reader_peak <= 4
    assert 1 <= listener_peak <= 4
    assert len(heard) < TOKENS / 10  # fewer, larger events
    assert peak < 30 * 2**20  # no per-event backlog: a few MiB for a 30 KB answer
