"""Long sessions (issue 14): a finished conversation turn keeps only its own messages in
``Response.request``, not the history it was sent with, so the cells that Out[] keeps do not hold
the history once each (memory growing with the square of the session). The RSS figures are
benchmarks/soak.py's; this checks the structure through ``Client`` and the offline server."""

from __future__ import annotations

from offline_helpers import KEY

from ds_magic import Client
from ds_magic.conversation import Conversation
from ds_magic.testing import Script


def test_a_finished_turn_keeps_its_own_messages_and_the_history_stays_in_the_conversation(srv):
    client = Client(api_key=KEY, base_url=srv.url)
    conv = Conversation("long", system="Be brief.")
    kept = []
    for i in range(6):
        srv.enqueue(Script(text=f"answer {i}", reasoning=""))
        resp = client.chat(f"question {i}", conversation=conv, temperature=0.5).wait(30)
        kept.append(resp)
        sent = srv.requests[-1].body
        assert len(sent["messages"]) == 2 + 2 * i  # the whole history went on the wire
        assert resp.request == {**sent, "messages": [sent["messages"][0], sent["messages"][-1]]}
        assert resp.request["messages"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": f"question {i}"},
        ]
    assert sum(len(r.request["messages"]) for r in kept) == 2 * len(kept)  # O(1) each, not O(history)
    assert [t.content for t in conv.turns][-2:] == ["question 5", "answer 5"] and len(conv) == 12
    # What the next request would send is still the whole history (as --dry-run shows it).
    assert len(client.request_body("next", conversation=conv)["messages"]) == 14


def test_messages_the_caller_gave_are_kept_as_sent(srv):
    client = Client(api_key=KEY, base_url=srv.url)
    srv.enqueue(Script(text="ok", reasoning=""))
    msgs = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    resp = client.chat(msgs).wait(30)
    assert resp.request == srv.requests[-1].body and len(resp.request["messages"]) == 3
