"""Core behaviours the rest of the suite could let through broken: what a queued turn's TTFT measures,
and a cancel that comes before the engine has started the request. Real sockets to the offline server."""

from __future__ import annotations

from offline_helpers import KEY, wait_until

import ds_magic
from ds_magic import Client
from ds_magic.testing import OfflineServer, Script


def make_client(srv: OfflineServer) -> Client:
    return Client(api_key=KEY, base_url=srv.url)


# ------------------------------------------------------------------------- TTFT of a queued turn


def test_ttft_of_a_queued_turn_does_not_include_the_wait_behind_the_previous_turn(srv):
    # Not a latency assertion: it checks *what was measured*. The second turn waits ~2 s behind the
    # first, then its first token comes at once; a clock started at chat() would report >= ~2 s, a
    # clock started when the request really starts reports well under a second. The 2x margin
    # (ttft2 < first_total / 2) leaves the machine ample room to be slow.
    srv.enqueue(
        Script(text="word " * 60, reasoning="", tokens_per_second=30),  # ~2 s of streaming
        Script(text="quick", reasoning=""),
    )
    conv = ds_magic.Conversation("ttft")
    client = make_client(srv)
    r1 = client.chat("slow one", conversation=conv)
    r2 = client.chat("queued one", conversation=conv)  # conversation order: waits for r1
    assert r1.join(30) and r2.join(30)
    assert (r1.status, r2.status) == ("ok", "ok")
    first_total = r1.timing.total
    ttft2 = r2.timing.time_to_first_token
    assert first_total is not None and first_total >= 1.5  # the setup really made r2 wait
    assert ttft2 is not None
    assert ttft2 < first_total / 2, (
        f"the queued turn's TTFT ({ttft2:.2f} s) includes its wait behind the first turn ({first_total:.2f} s)"
    )
    assert r2.timing.total is not None and r2.timing.total < first_total / 2


# ------------------------------------------------------------------------- cancel before start

ROUNDS = 50


def test_cancel_right_after_chat_cancels(srv):
    # Every request that reaches the server waits 30 s for its first token: a cancel that is lost
    # would leave the response running (join times out) or end it "ok" much later.
    srv.enqueue(*[Script(text="never sent", reasoning="", ttft=30.0)] * ROUNDS)
    client = make_client(srv)
    for i in range(ROUNDS):
        r = client.chat(f"cancel me {i}")
        r.cancel()  # at once: usually before the engine has even started the task
        assert r.join(10), f"round {i}: the cancelled response did not end"
        assert r.status == "cancelled", f"round {i}: status {r.status!r}"
        assert r.text_so_far == ""
    # Each request the server did receive was dropped by the client (nothing was answered).
    assert wait_until(lambda: srv.active == 0 and len(srv.disconnects) == len(srv.requests), 10), (
        f"{len(srv.requests)} requests reached the server, {len(srv.disconnects)} disconnects, "
        f"{srv.active} still open"
    )
    assert srv.completed == []


def test_cancel_right_after_chat_of_a_queued_conversation_turn(srv):
    for i in range(5):
        srv.reset()
        srv.enqueue(Script(text="first answer", reasoning="", ttft=0.5), Script(text="second answer"))
        conv = ds_magic.Conversation(f"queued-{i}")
        client = make_client(srv)
        r1 = client.chat("first?", conversation=conv)
        r2 = client.chat("second?", conversation=conv)  # queued behind r1
        r2.cancel()
        assert r2.join(10), f"round {i}: the cancelled queued turn did not end"
        assert r2.status == "cancelled", f"round {i}: status {r2.status!r}"
        assert r1.join(30) and r1.status == "ok" and r1.text == "first answer", f"round {i}"
        # The queued turn was cancelled before it was sent: only the first request reached the server.
        assert [req.body["messages"][-1]["content"] for req in srv.requests] == ["first?"], f"round {i}"
        # History in conversation order: the first exchange, then the cancelled second, marked.
        assert [(t.role, t.content, t.status) for t in conv.turns] == [
            ("user", "first?", "ok"),
            ("assistant", "first answer", "ok"),
            ("user", "second?", "ok"),
            ("assistant", "", "cancelled"),
        ], f"round {i}"
