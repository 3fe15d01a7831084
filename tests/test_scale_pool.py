"""The engine's HTTP pool (http_pool.py, issue 17): sized from the concurrency asked for, with our
own limiter in front, through real sockets to the offline server. No timings here."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import psutil
import pytest
from offline_helpers import KEY, wait_until

from ds_magic import Client
from ds_magic.engine import get_engine
from ds_magic.http_pool import EnginePool
from ds_magic.testing import OfflineServer, Script

GUARD = 60.0  # hang guard: generous, the machine is shared


@pytest.fixture
def srv() -> Iterator[OfflineServer]:
    with OfflineServer() as server:
        yield server


def open_sockets(server: OfflineServer) -> int:
    """This process's TCP connections to the server, counted by the OS."""
    conns = psutil.Process().net_connections(kind="tcp")
    return sum(1 for c in conns if c.raddr and c.raddr[1] == server.port and c.status == "ESTABLISHED")


def own_client(server: OfflineServer, pool: EnginePool) -> Client:
    return Client(api_key=KEY, base_url=server.url, http_client=httpx.AsyncClient(transport=pool))


def test_default_client_runs_more_streams_at_once_than_the_old_256_cap(srv: OfflineServer) -> None:
    n = 300
    srv.enqueue(*[Script(text="a b c", fault="stall", fault_after=2) for _ in range(n)])
    client = Client(api_key=KEY, base_url=srv.url)
    rs = [client.chat(f"p{i}") for i in range(n)]
    try:
        assert wait_until(lambda: srv.active == n, GUARD), (
            f"{srv.active} of {n} in flight; ended early: {[(r.status, str(r.error)) for r in rs if r.done][:3]}"
        )
        pool = get_engine().pool
        assert pool.in_flight >= n and pool.waiting == 0  # none queued behind the pool
        assert pool.connections >= n  # one connection per stream
    finally:
        for r in rs:
            r.cancel()
    assert all(r.join(GUARD) for r in rs)
    assert {r.status for r in rs} == {"cancelled"}
    # Cancel closed every stream: the server saw them go, no slot and no socket is left.
    assert wait_until(lambda: srv.active == 0, GUARD)
    assert wait_until(lambda: get_engine().pool.in_flight == 0, GUARD)
    assert wait_until(lambda: open_sockets(srv) == 0, GUARD)


def test_the_limiter_holds_back_the_rest_and_hands_slots_on(srv: OfflineServer) -> None:
    pool = EnginePool(limit=5)
    client = own_client(srv, pool)
    srv.enqueue(*[Script(text=f"answer {i}", ttft=0.01) for i in range(23)])
    rs = [client.chat(f"p{i}") for i in range(23)]
    assert all(r.join(GUARD) for r in rs)
    assert [r.status for r in rs] == ["ok"] * 23
    assert srv.max_active == 5  # the limit, reached and never passed
    assert pool.in_flight == 0 and pool.waiting == 0
    assert srv.connections == 5  # a freed connection went to the next request, none was opened anew


def test_finished_streams_give_their_connection_back_for_reuse(srv: OfflineServer) -> None:
    pool = EnginePool(limit=100, keepalive_expiry=120)
    client = own_client(srv, pool)
    for wave in range(3):
        srv.enqueue(*[Script(text="x y z") for _ in range(12)])
        rs = [client.chat(f"w{wave} p{i}") for i in range(12)]
        assert all(r.join(GUARD) for r in rs)
        assert [r.status for r in rs] == ["ok"] * 12
        if wave == 0:
            made = srv.connections
    # The body was read to its end after [DONE], so waves 2 and 3 reused the same connections.
    assert srv.connections == made <= 12
    assert pool.in_flight == 0
    assert open_sockets(srv) == made  # kept alive, nothing more

    async def close() -> None:
        await pool.aclose()

    get_engine().run(close())
    assert wait_until(lambda: open_sockets(srv) == 0, GUARD)


def test_a_waiter_cancelled_in_the_queue_loses_no_slot(srv: OfflineServer) -> None:
    pool = EnginePool(limit=2)
    client = own_client(srv, pool)
    srv.enqueue(*[Script(text="a b", fault="stall", fault_after=1) for _ in range(2)])
    holders = [client.chat("hold 1"), client.chat("hold 2")]
    assert wait_until(lambda: srv.active == 2, GUARD)
    queued = [client.chat(f"queued {i}") for i in range(5)]
    assert wait_until(lambda: pool.waiting == 5, GUARD)
    for r in queued:
        r.cancel()
    assert all(r.join(GUARD) for r in queued)
    for r in holders:
        r.cancel()
    assert all(r.join(GUARD) for r in holders)
    assert wait_until(lambda: pool.in_flight == 0 and pool.waiting == 0, GUARD)
    srv.enqueue(Script(text="after"), Script(text="after"))
    later = [client.chat("later 1"), client.chat("later 2")]
    assert [r.wait(GUARD).text for r in later] == ["after", "after"]


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError):
        EnginePool(limit=0)
    asyncio.run(EnginePool().aclose())  # closing a pool that never opened a connection is fine
