"""batch(..., processes=N) (batch_shard.py, issue 17): items sharded over worker processes, each with
its own engine, against the offline server over real sockets. No timings here."""

from __future__ import annotations

import os

import pytest
from offline_helpers import KEY, wait_until

import ds_magic
from ds_magic import Client
from ds_magic.batch_shard import choose_processes
from ds_magic.testing import OfflineServer, Script

GUARD = 120.0  # worker processes start from scratch (spawn) on a shared machine


def test_results_come_back_finished_in_input_order(srv: OfflineServer) -> None:
    n = 23
    # Scripts go to requests in arrival order, which differs from input order across processes:
    # each answer names its prompt, so order is checked on content.
    client = Client(api_key=KEY, base_url=srv.url)
    seen: list[ds_magic.BatchProgress] = []
    result = ds_magic.batch(
        "Echo {item}", list(range(n)), client=client, concurrency=6, processes=3, progress=seen.append
    )
    result.wait(GUARD)
    assert len(result) == n and [r.status for r in result] == ["ok"] * n
    # The offline server's default answer quotes the question: each answer belongs to its item.
    for i, r in enumerate(result):
        assert f"Echo {i}" in r.text
        assert r.usage is not None and r.usage.completion_tokens > 0
        assert r.timing.time_to_first_token is not None and r.timing.total is not None
    assert len(srv.requests) == n  # each item sent once
    assert sorted(r.body["messages"][-1]["content"] for r in srv.requests) == sorted(
        f"Echo {i}" for i in range(n)
    )
    assert srv.max_active <= 6
    last = seen[-1]
    assert last.finished and last.done == n and last.total == n and last.pending == 0
    assert result.table(as_dataframe=False)[5]["input"] == 5


def test_cancel_reaches_every_worker_and_keeps_what_finished(srv: OfflineServer) -> None:
    n = 12
    srv.enqueue(*[Script(text="quick answer") for _ in range(3)])
    srv.enqueue(*[Script(text="a b c", fault="stall", fault_after=2) for _ in range(n)])
    client = Client(api_key=KEY, base_url=srv.url)
    result = ds_magic.batch(
        [f"p{i}" for i in range(n)], client=client, concurrency=6, processes=2, progress=False
    )
    # Wait until both workers have their streams open (3 quick ones done, 6 stalled in flight).
    assert wait_until(lambda: len(srv.completed) >= 3 and srv.active == 6, GUARD)
    result.cancel()
    result.wait(GUARD)
    statuses = [r.status for r in result]
    assert statuses.count("ok") == 3
    assert statuses.count("cancelled") == n - 3
    assert [r.text for r in result if r.status == "ok"] == ["quick answer"] * 3
    # The stalled streams were closed by their workers: the server saw every one go.
    assert wait_until(lambda: srv.active == 0, GUARD)
    assert result.progress.finished and result.progress.cancelled == n - 3


def test_errors_travel_back_with_their_item(srv: OfflineServer) -> None:
    srv.enqueue(Script(status=400, text="bad"), *[Script(text="fine") for _ in range(3)])
    client = Client(api_key=KEY, base_url=srv.url, max_retries=0)
    result = ds_magic.batch(["a", "b", "c", "d"], client=client, processes=2, progress=False).wait(GUARD)
    statuses = [r.status for r in result]
    assert sorted(statuses) == ["error", "ok", "ok", "ok"]
    failed = result[statuses.index("error")]
    assert isinstance(failed.error, ds_magic.BadRequestError) and failed.error.status_code == 400


def test_choose_processes() -> None:
    assert choose_processes(None, 500, 2000) == 0  # default: in this process
    assert choose_processes(4, 500, 2000) == 4
    assert choose_processes(4, 500, 2) == 2  # no more workers than items
    assert choose_processes(1, 500, 2000) == 0  # one worker would only add a hop
    cores = os.cpu_count() or 1
    auto = min(cores, 10)  # 2,500 streams: one process per 250, up to the cores
    assert choose_processes("auto", 2500, 5000) == (auto if auto > 1 else 0)
    assert choose_processes("auto", 100, 5000) == 0  # a small batch stays in this process
    with pytest.raises(ValueError):
        choose_processes(0, 10, 10)
    with pytest.raises(ValueError):
        choose_processes("many", 10, 10)


def test_a_client_that_cannot_travel_is_refused_at_once(srv: OfflineServer) -> None:
    import httpx

    client = Client(api_key=KEY, base_url=srv.url, http_client=httpx.AsyncClient())
    with pytest.raises(ValueError, match="processes"):
        ds_magic.batch(["a", "b"], client=client, processes=2, progress=False)
    assert not srv.requests
