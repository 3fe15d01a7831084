"""A tool conversation's history kept whole (issue 16): what is stored, what is sent back (the V4
reasoning pass-back rule, deepseek-api.md §3.2, §4.2), and export / import of all of it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from offline_helpers import KEY

import ds_magic
from ds_magic import Client, Conversation, ConversationStore
from ds_magic.testing import OfflineServer, Script

PASSBACK = "The `reasoning_content` in the thinking mode must be passed back to the API."


@ds_magic.tool(safe=True)
def lookup(key: str) -> str:
    """Look a key up."""
    return f"value of {key}"


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": json.dumps(arguments)}


@pytest.fixture
def client(srv: OfflineServer) -> Client:
    return Client(api_key=KEY, base_url=srv.url)


def tool_conversation(srv: OfflineServer, client: Client) -> Conversation:
    """Two user turns; the first answered after one tool call, the second plainly."""
    conv = Conversation(system="Be brief.")
    srv.enqueue(
        Script(text="Looking.", reasoning="Need the key.", tool_calls=[call("lookup", key="a")]),
        Script(text="It is value of a.", reasoning="Got it."),
    )
    loop = client.chat("What is a?", tools=[lookup], conversation=conv).run()
    assert loop.state == "done"
    srv.enqueue(Script(text="Plain.", reasoning="No tool needed."))
    assert client.chat("And now?", conversation=conv).wait().status == "ok"
    return conv


def test_history_keeps_every_message_whole(srv: OfflineServer, client: Client) -> None:
    conv = tool_conversation(srv, client)
    roles = [(t.role, t.status) for t in conv.turns]
    assert roles == [
        ("user", "ok"),
        ("assistant", "ok"),
        ("tool", "ok"),
        ("assistant", "ok"),
        ("user", "ok"),
        ("assistant", "ok"),
    ]
    asked, tool_turn = conv.turns[1], conv.turns[2]
    assert asked.content == "Looking." and asked.reasoning == "Need the key."
    (stored_call,) = asked.tool_calls or []
    assert tool_turn.tool_call_id == stored_call["id"] and tool_turn.content == "value of a"
    assert tool_turn.meta == {
        "tool": "lookup",
        "status": "ok",
        "decision": "run",
        "note": "safe",
        "duration": tool_turn.meta["duration"],
    }
    # Every later request carried the tool turn's reasoning back, the plain ones none (§4.2):
    # the step after the tool, and the next user turn without tools.
    for req in srv.requests[1:]:
        sent = req.body["messages"]
        assistant = next(m for m in sent if m.get("tool_calls"))
        assert assistant["reasoning_content"] == "Need the key."
        assert next(m for m in sent if m["role"] == "tool")["tool_call_id"] == stored_call["id"]
    last = srv.requests[-1].body["messages"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert "reasoning_content" not in last[4]  # a plain turn, no tools in this request: today's rule


def test_the_passback_rule_a_raw_request_gets_400_ours_never(srv: OfflineServer, client: Client) -> None:
    conv = tool_conversation(srv, client)
    # What we would send next, with tools: every assistant message has the field (§4.2 [obs]).
    body = client.request_body("Once more?", conversation=conv, tools=[lookup])  # as --dry-run shows it
    assert all("reasoning_content" in m for m in body["messages"] if m["role"] == "assistant")
    assert body["tools"] == [lookup.__ds_tool__.spec()]  # type: ignore[attr-defined]
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=srv.url, headers=headers, timeout=30) as http:
        assert http.post("/chat/completions", json=body).status_code == 200
        for strip in ("tool turn", "plain turn"):
            raw = json.loads(json.dumps(body))
            msgs = [m for m in raw["messages"] if m["role"] == "assistant"]
            target = msgs[0] if strip == "tool turn" else msgs[1]
            del target["reasoning_content"]
            r = http.post("/chat/completions", json=raw)
            assert r.status_code == 400 and r.json()["error"]["message"] == PASSBACK, strip
        # Without tools in the request the tool turn's reasoning is still required (§4.2: "all
        # later requests"); a plain turn's is not.
        raw = json.loads(json.dumps(body))
        del raw["tools"]
        del raw["messages"][2]["reasoning_content"]
        assert http.post("/chat/completions", json=raw).json()["error"]["message"] == PASSBACK
    # Ours never: a longer loop on the same conversation, all of its requests answered 200.
    srv.reset()
    srv.enqueue(
        Script(text="", tool_calls=[call("lookup", key="b")]),
        Script(text="", tool_calls=[call("lookup", key="c"), call("lookup", key="d")]),
        Script(text="b, c, d."),
    )
    loop = client.chat("b, c and d?", tools=[lookup], conversation=conv).run()
    assert loop.state == "done" and [r.status for r in loop.steps] == ["ok"] * 3
    # And without a conversation: the loop keeps the messages, a caller's own assistant turn included.
    srv.reset()
    srv.enqueue(Script(text="", tool_calls=[call("lookup", key="e")]), Script(text="e."))
    given = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "e?"},
    ]
    loop = client.chat(given, tools=[lookup]).run()
    assert loop.state == "done" and len(srv.requests) == 2
    assert [m.get("reasoning_content") for m in loop.messages if m["role"] == "assistant"][0] == ""


def test_cancelled_loop_stays_in_history_marked(srv: OfflineServer, client: Client) -> None:
    conv = Conversation()
    calls = [call("lookup", key="a"), call("lookup", key="b")]
    srv.enqueue(Script(text="", reasoning="Two calls.", tool_calls=calls))
    holder: list[Any] = []

    def approve(c: Any, t: Any) -> str:
        holder[0].cancel()  # Cancel clicked while this call waits for approval
        return "run"

    guarded = ds_magic.tools.make_tool(lookup, name="lookup")  # not safe: asks
    loop = client.chat("a and b?", tools=[guarded], conversation=conv, approve=approve)
    holder.append(loop)
    loop.run()
    assert loop.state == "cancelled" and len(srv.requests) == 1
    tools = [t for t in conv.turns if t.role == "tool"]
    assert [(t.status, t.meta["note"]) for t in tools] == [
        ("ok", "cancelled while waiting for approval: denied"),
        ("cancelled", "the loop was cancelled"),
    ]
    # The next turn goes out with the whole history and is accepted.
    srv.enqueue(Script(text="OK."))
    assert client.chat("never mind", conversation=conv).wait().status == "ok"
    sent = srv.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool", "user"]


def test_export_import_of_a_tool_conversation(srv: OfflineServer, client: Client, tmp_path: Any) -> None:
    conv = tool_conversation(srv, client)
    store = ConversationStore()
    store.get("work").turns = conv.turns
    store.get("work").system = conv.system
    path = tmp_path / "chats.json"
    store.export(path)
    back = ConversationStore()
    (name,) = back.import_(path)
    imported = back.get(name)
    assert [t.to_dict() for t in imported.turns] == [t.to_dict() for t in conv.turns]
    # The imported history goes on with tools and passes the pass-back rule.
    srv.reset()
    srv.enqueue(Script(text="", tool_calls=[call("lookup", key="z")]), Script(text="z."))
    loop = client.chat("z?", tools=[lookup], conversation=imported).run()
    assert loop.state == "done"
    assert (
        next(m for m in srv.requests[0].body["messages"] if m.get("tool_calls"))["reasoning_content"]
        == "Need the key."
    )
    # Import validation stays strict, one line naming the field.
    doc = json.loads(path.read_text())
    turns = doc["conversations"][0]["turns"]
    for mutate, said in [
        (lambda t: t[2].pop("tool_call_id"), "conversations[0].turns[2].tool_call_id: must be a string"),
        (
            lambda t: t[0].update(tool_call_id="call_x"),
            "turns[0].tool_call_id: only a tool turn has a tool_call_id",
        ),
        (
            lambda t: t[1]["tool_calls"][0].update(type="code"),
            'turns[1].tool_calls[0].type: must be "function"',
        ),
        (
            lambda t: t[1]["tool_calls"][0]["function"].update(arguments=7),
            "tool_calls[0].function.arguments: must be a string",
        ),
        (
            lambda t: t[2].update(tool_calls=t[1]["tool_calls"]),
            "turns[2].tool_calls: only an assistant turn has tool calls",
        ),
    ]:
        bad = json.loads(json.dumps(doc))
        mutate(bad["conversations"][0]["turns"])
        bad_path = tmp_path / "bad.json"
        bad_path.write_text(json.dumps(bad))
        with pytest.raises(ValueError) as info:
            ConversationStore().import_(bad_path)
        assert said in str(info.value) and "\n" not in str(info.value)
    assert turns  # the good file was not changed by the mutations
