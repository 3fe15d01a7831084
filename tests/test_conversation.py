"""Conversation history: the record policy, the wire messages (deepseek-api.md §4.2), trimming (§4.8),
JSON files and the named store."""

from __future__ import annotations

import json
import os
import stat
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from ds_magic.conversation import Conversation
from ds_magic.conversation_store import ConversationStore, history_text
from ds_magic.tokens import estimate_message_tokens, estimate_tokens
from ds_magic.turn import Turn
from ds_magic.types import ToolCall, Usage


@dataclass
class FakeResponse:
    """A test double of record()'s input: the attributes a finished ds_magic.Response has."""

    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    status: str = "ok"
    model: str = "deepseek-flash"
    usage: Usage | None = None


def call(id: str, name: str = "lookup", arguments: str = '{"q": "x"}') -> dict[str, Any]:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


def roles(msgs: list[dict[str, Any]]) -> list[str]:
    return [m["role"] for m in msgs]


def tool_exchange(conv: Conversation, n: int, reasoning: str | None = "why") -> None:
    conv.add_user(f"q{n}")
    conv.add_assistant("", reasoning=reasoning, tool_calls=[call(f"c{n}")])
    conv.add_tool_result(f"c{n}", f"result {n}")
    conv.add_assistant(f"a{n}", reasoning="final thoughts")


# ------------------------------------------------------------------------------ record policy


def test_record_ok_stores_user_and_assistant_with_meta() -> None:
    conv = Conversation()
    conv.record("Hi", FakeResponse(text="Hello", reasoning="think", usage=Usage(prompt_tokens=3)))
    user, answer = conv.turns
    assert (user.role, user.content) == ("user", "Hi")
    assert (answer.role, answer.content, answer.reasoning, answer.status) == (
        "assistant",
        "Hello",
        "think",
        "ok",
    )
    assert answer.model == "deepseek-flash"
    assert answer.meta["usage"]["prompt_tokens"] == 3
    json.dumps(answer.meta)  # JSON-serialisable


@pytest.mark.parametrize("status", ["cancelled", "interrupted"])
def test_record_cut_short_keeps_partial_text_and_marks_it(status: str) -> None:
    conv = Conversation()
    conv.record("Hi", FakeResponse(text="Hel", status=status))
    assert [(t.role, t.content, t.status) for t in conv.turns] == [
        ("user", "Hi", "ok"),
        ("assistant", "Hel", status),
    ]


def test_record_cancelled_before_any_text_still_stores_the_turn() -> None:
    conv = Conversation()
    conv.record("Hi", FakeResponse(status="cancelled"))
    assert [(t.role, t.status) for t in conv.turns] == [("user", "ok"), ("assistant", "cancelled")]


def test_record_error_with_nothing_stores_nothing() -> None:
    conv = Conversation()
    conv.record("Hi", FakeResponse(status="error"))
    assert conv.turns == []


def test_record_error_when_text_raises_stores_nothing() -> None:
    class Failed:
        reasoning = ""
        tool_calls: list[ToolCall] = []
        status = "error"
        model = "deepseek-flash"
        error = RuntimeError("401 bad key")

        @property
        def text(self) -> str:  # ds_magic.Response.text re-raises when nothing arrived
            raise self.error

    conv = Conversation()
    conv.record("Hi", Failed())
    assert len(conv) == 0


def test_record_error_with_partial_text_is_marked_error() -> None:
    conv = Conversation()
    resp = FakeResponse(text="Half an ans", status="error")
    resp.error = "stream broke"  # type: ignore[attr-defined]
    conv.record("Hi", resp)
    answer = conv.turns[-1]
    assert (answer.content, answer.status, answer.meta["error"]) == ("Half an ans", "error", "stream broke")


def test_record_error_with_only_reasoning_is_kept() -> None:
    conv = Conversation()
    conv.record("Hi", FakeResponse(reasoning="Let me think", status="error"))
    assert conv.turns[-1].reasoning == "Let me think"


def test_record_stores_tool_calls_api_shaped() -> None:
    conv = Conversation()
    conv.record("Weather?", FakeResponse(tool_calls=[ToolCall(0, "c1", "weather", '{"city":"Paris"}')]))
    assert conv.turns[-1].tool_calls == [call("c1", "weather", '{"city":"Paris"}')]


# ------------------------------------------------------------------------------ messages()


def test_messages_system_first_history_then_prompt() -> None:
    conv = Conversation(system="Be brief.")
    conv.record("Hi", FakeResponse(text="Hello", reasoning="secret"))
    assert conv.messages("Again") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Again"},
    ]


def test_messages_system_override_and_no_system() -> None:
    conv = Conversation(system="Be brief.")
    assert conv.messages("x", system="Be long.")[0] == {"role": "system", "content": "Be long."}
    assert conv.system == "Be brief."
    assert roles(Conversation().messages("x")) == ["user"]
    assert Conversation().messages() == []


def test_messages_leave_reasoning_out_of_plain_turns() -> None:
    conv = Conversation()
    conv.add_user("q")
    conv.add_assistant("a", reasoning="long thoughts")
    for thinking in (True, False):
        assert all("reasoning_content" not in m for m in conv.messages("next", thinking=thinking))


def test_messages_tool_turns_keep_reasoning_in_thinking_mode() -> None:
    conv = Conversation()
    tool_exchange(conv, 1)
    msgs = conv.messages("next")
    assert roles(msgs) == ["user", "assistant", "tool", "assistant", "user"]
    assert msgs[1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [call("c1")],
        "reasoning_content": "why",
    }
    assert msgs[2] == {"role": "tool", "tool_call_id": "c1", "content": "result 1"}
    assert "reasoning_content" not in msgs[3]


def test_messages_tool_turn_without_stored_reasoning_sends_empty_string() -> None:
    conv = Conversation()
    tool_exchange(conv, 1, reasoning=None)
    assert conv.messages("next")[1]["reasoning_content"] == ""


def test_messages_thinking_off_drops_reasoning_even_on_tool_turns() -> None:
    conv = Conversation()
    tool_exchange(conv, 1)
    msgs = conv.messages("next", thinking=False, tools=True)
    assert msgs[1]["tool_calls"] == [call("c1")]
    assert all("reasoning_content" not in m for m in msgs)


def test_messages_with_tools_give_every_assistant_message_the_field() -> None:
    conv = Conversation()
    conv.add_user("q0")
    conv.add_assistant("plain", reasoning="ignored by V4")
    tool_exchange(conv, 1)
    assistants = [m for m in conv.messages("next", tools=True) if m["role"] == "assistant"]
    assert [m["reasoning_content"] for m in assistants] == ["", "why", ""]


def test_messages_leave_out_unanswered_tool_calls_and_orphan_results() -> None:
    conv = Conversation()
    conv.add_user("q")
    conv.add_assistant("checking", tool_calls=[call("c1"), call("c2")])
    conv.add_tool_result("c1", "one")
    conv.add_tool_result("zz", "orphan")
    msgs = conv.messages("next")
    assert msgs[1]["tool_calls"] == [call("c1")]
    assert [m.get("tool_call_id") for m in msgs if m["role"] == "tool"] == ["c1"]


def test_messages_without_prompt_end_with_the_pending_tool_result() -> None:
    conv = Conversation()
    conv.add_user("q")
    conv.add_assistant("", tool_calls=[call("c1")])
    conv.add_tool_result("c1", "42")
    assert roles(conv.messages()) == ["user", "assistant", "tool"]


@pytest.mark.parametrize("status", ["cancelled", "interrupted", "error"])
def test_messages_skip_empty_cut_short_answers_with_their_question(status: str) -> None:
    conv = Conversation()
    conv.record("one", FakeResponse(text="A1"))
    conv.record("two", FakeResponse(reasoning="hmm", status=status))
    conv.record("three", FakeResponse(text="A3"))
    assert [m["content"] for m in conv.messages("four")] == ["one", "A1", "three", "A3", "four"]
    assert len(conv) == 6  # stored, just not sent


def test_messages_send_partial_answers_as_content() -> None:
    conv = Conversation()
    conv.record("one", FakeResponse(text="Half", status="cancelled"))
    assert conv.messages("two")[1] == {"role": "assistant", "content": "Half"}


def test_messages_are_copies() -> None:
    conv = Conversation()
    tool_exchange(conv, 1)
    msgs = conv.messages()
    msgs[1]["tool_calls"][0]["function"]["name"] = "changed"
    assert conv.turns[1].tool_calls == [call("c1")]


# ------------------------------------------------------------------------------ estimates, trimming


def test_estimate_tokens_ascii_and_cjk() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a" * 10) == 3  # 0.3 per character
    assert estimate_tokens("a" * 11) == 4  # rounded up
    assert estimate_tokens("你好世界你好世界你好") == 6  # 0.6 per CJK character
    assert estimate_tokens("日本語abc") == 3  # 1.8 + 0.9 = 2.7
    assert estimate_tokens("café" * 5) == 6  # accented Latin counts as Latin
    assert estimate_tokens("ｈｉ") == 2  # fullwidth forms are wide


def test_estimate_message_tokens_adds_overhead_per_message() -> None:
    assert estimate_message_tokens([]) == 0
    assert estimate_message_tokens([{"role": "user", "content": "a" * 10}]) == 4 + 3
    msg = {
        "role": "assistant",
        "content": "",
        "reasoning_content": "a" * 10,
        "tool_calls": [call("c", "f", "a" * 20)],
    }
    assert estimate_message_tokens([msg, {"role": "tool", "content": ""}]) == 4 + 3 + 1 + 6 + 4


def exchange_cost(q: str, a: str) -> int:
    return estimate_message_tokens([{"role": "user", "content": q}, {"role": "assistant", "content": a}])


def test_trim_drops_oldest_exchanges_keeps_system_and_prompt() -> None:
    conv = Conversation(system="S" * 100)
    for i in range(5):
        conv.record(f"q{i}", FakeResponse(text=f"a{i}" * 20))
    fixed = estimate_message_tokens(
        [{"role": "system", "content": "S" * 100}, {"role": "user", "content": "new"}]
    )
    per = exchange_cost("q0", "a0" * 20)
    conv.max_history_tokens = fixed + 2 * per
    msgs = conv.messages("new")
    assert [m["content"][:2] for m in msgs] == ["SS", "q3", "a3", "q4", "a4", "ne"]
    assert estimate_message_tokens(msgs) <= conv.max_history_tokens
    assert len(conv) == 10 and conv.turns[0].content == "q0"  # stored turns untouched


def test_trim_keeps_system_and_prompt_even_over_budget() -> None:
    conv = Conversation(system="S" * 1000, max_history_tokens=5)
    conv.record("q", FakeResponse(text="a"))
    assert conv.messages("p" * 1000) == [
        {"role": "system", "content": "S" * 1000},
        {"role": "user", "content": "p" * 1000},
    ]


def test_trim_keeps_tool_messages_with_their_tool_calls() -> None:
    conv = Conversation()
    tool_exchange(conv, 1)
    tool_exchange(conv, 2)
    full = conv.messages("new")
    for limit in range(0, estimate_message_tokens(full) + 2):
        conv.max_history_tokens = limit
        msgs = conv.messages("new")
        sent = {c["id"] for m in msgs for c in m.get("tool_calls", ())}
        answered = {m["tool_call_id"] for m in msgs if m["role"] == "tool"}
        assert sent == answered
        assert msgs[-1] == {"role": "user", "content": "new"}
        assert len(msgs) in (1, 5, 9)  # whole exchanges only
        if len(msgs) > 1:
            assert msgs[0]["role"] == "user"
    assert conv.messages("new") == full


def test_trim_without_prompt_keeps_the_latest_exchange() -> None:
    conv = Conversation(max_history_tokens=1)
    conv.record("old", FakeResponse(text="x" * 100))
    conv.add_user("pending")
    assert conv.messages() == [{"role": "user", "content": "pending"}]


# ------------------------------------------------------------------------------ fork, clear, misc


def test_fork_is_independent() -> None:
    conv = Conversation("a", system="sys", max_history_tokens=99)
    tool_exchange(conv, 1)
    child = conv.fork("b")
    child.add_user("more")
    child.turns[1].tool_calls[0]["id"] = "changed"  # type: ignore[index]
    child.system = "other"
    assert (child.name, child.max_history_tokens, len(child)) == ("b", 99, 5)
    assert (conv.name, conv.system, len(conv)) == ("a", "sys", 4)
    assert conv.turns[1].tool_calls == [call("c1")]


def test_clear_keeps_system() -> None:
    conv = Conversation(system="sys")
    conv.record("q", FakeResponse(text="a"))
    conv.clear()
    assert len(conv) == 0 and conv.system == "sys"
    assert conv.last_answer is None


def test_last_answer_is_latest_assistant_text() -> None:
    conv = Conversation()
    conv.record("q1", FakeResponse(text="a1"))
    conv.record("q2", FakeResponse(text="part", status="cancelled"))
    assert conv.last_answer == "part"


def test_turn_rejects_unknown_role_and_status() -> None:
    with pytest.raises(ValueError, match="role"):
        Turn("robot", "x")
    with pytest.raises(ValueError, match="status"):
        Turn("assistant", "x", status="done")


# ------------------------------------------------------------------------------ JSON


def test_json_round_trip() -> None:
    conv = Conversation("chat", system="sys", max_history_tokens=1234)
    conv.record("Hi 你好", FakeResponse(text="Hello", reasoning="r", usage=Usage(completion_tokens=2)))
    conv.record("More", FakeResponse(text="Par", status="interrupted"))
    tool_exchange(conv, 1)
    doc = json.loads(conv.to_json())
    assert (doc["format"], doc["version"], doc["name"]) == ("ds_magic.conversation", 1, "chat")
    back = Conversation.from_json(conv.to_json())
    assert (back.name, back.system, back.max_history_tokens) == ("chat", "sys", 1234)
    assert back.turns == conv.turns
    assert back.messages("x", tools=True) == conv.messages("x", tools=True)


@pytest.mark.parametrize(
    "text, match",
    [
        (
            '{"format": "something.else", "version": 1, "turns": []}',
            "expected format 'ds_magic.conversation'",
        ),
        ('{"format": "ds_magic.conversation", "version": 7, "turns": []}', "got version 7"),
        ("[1, 2]", "expected a JSON object"),
        ("not json", "not JSON"),
    ],
)
def test_from_json_rejects_other_documents(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        Conversation.from_json(text)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------ store


def test_store_get_names_contains_iter() -> None:
    store = ConversationStore()
    default = store.get()
    assert store.get("default") is default
    store.get("other")
    assert store.names() == ["default", "other"] == list(store)
    assert "other" in store and "nope" not in store


def test_store_get_missing_without_create_lists_names() -> None:
    store = ConversationStore()
    store.get("a")
    with pytest.raises(KeyError, match="No conversation named 'b'; existing: 'a'"):
        store.get("b", create=False)
    assert "b" not in store


def test_store_reset_clears_and_delete_removes() -> None:
    store = ConversationStore()
    conv = store.get("a")
    conv.system = "sys"
    conv.record("q", FakeResponse(text="a"))
    store.reset("a")
    assert store.get("a") is conv and len(conv) == 0 and conv.system == "sys"
    store.reset("missing")  # nothing to clear
    store.delete("a")
    assert store.names() == []
    with pytest.raises(KeyError):
        store.delete("a")


def test_store_fork() -> None:
    store = ConversationStore()
    store.get("a").record("q", FakeResponse(text="a"))
    b = store.fork("a", "b")
    assert b.name == "b" and len(b) == 2 and b is not store.get("a")
    with pytest.raises(KeyError, match="missing"):
        store.fork("missing", "c")
    with pytest.raises(ValueError, match="already exists"):
        store.fork("a", "b")
    store.get("a").add_user("more")
    assert len(store.fork("a", "b", overwrite=True)) == 3


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_store_export_is_0600_and_import_merges(tmp_path: Any) -> None:
    store = ConversationStore()
    store.get("a", create=True).system = "sys"
    store.get("a").record("q", FakeResponse(text="ans"))
    store.get("b").record("q2", FakeResponse(text="part", status="cancelled"))
    path = tmp_path / "chats.json"
    assert store.export(path) == ["a", "b"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert (doc["format"], doc["version"]) == ("ds_magic.conversations", 1)
    assert [c["name"] for c in doc["conversations"]] == ["a", "b"]
    assert list(os.listdir(tmp_path)) == ["chats.json"]  # no temporary file left behind

    assert store.import_(path) == ["a-imported", "b-imported"]
    assert store.import_(path) == ["a-imported-2", "b-imported-2"]
    assert store.get("a-imported").turns == store.get("a").turns
    assert store.get("a-imported").system == "sys"

    fresh = ConversationStore()
    fresh.get("a").add_user("will be replaced")
    assert fresh.import_(path, replace=True) == ["a", "b"]
    assert fresh.get("a").turns == store.get("a").turns
    assert fresh.get("b").turns[-1].status == "cancelled"


def test_store_export_selected_names_and_overwrites_mode(tmp_path: Any) -> None:
    store = ConversationStore()
    store.get("a")
    store.get("b")
    path = tmp_path / "one.json"
    path.write_text("old")
    os.chmod(path, 0o644)
    assert store.export(str(path), names=["b"]) == ["b"]
    assert [c["name"] for c in json.loads(path.read_text())["conversations"]] == ["b"]
    if sys.platform != "win32":
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(KeyError):
        store.export(path, names=["zz"])


def test_store_import_rejects_other_formats_and_stores_nothing(tmp_path: Any) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"format": "openai.chat", "version": 1}')
    store = ConversationStore()
    with pytest.raises(ValueError, match="expected format 'ds_magic.conversations'"):
        store.import_(path)
    path.write_text(json.dumps({"format": "ds_magic.conversations", "version": 1, "conversations": [
        {"name": "ok", "turns": []}, {"name": "bad", "turns": [{"role": "robot", "content": ""}]},
    ]}))  # fmt: skip
    with pytest.raises(ValueError, match="role"):
        store.import_(path)
    assert store.names() == []


def test_store_imports_a_single_conversation_document(tmp_path: Any) -> None:
    path = tmp_path / "one.json"
    conv = Conversation("solo")
    conv.add_user("hi")
    path.write_text(conv.to_json())
    store = ConversationStore()
    assert store.import_(path) == ["solo"]
    assert store.get("solo").turns == conv.turns


# ------------------------------------------------------------------------------ transcript


def test_history_text_marks_cut_short_turns() -> None:
    conv = Conversation(system="Be brief.")
    conv.record("Hi", FakeResponse(text="Hello\nthere", reasoning="abcde"))
    conv.record("Long one", FakeResponse(text="Par", status="cancelled"))
    conv.record("Again", FakeResponse(status="interrupted"))
    text = history_text(conv)
    assert text == (
        "system: Be brief.\n\n"
        "[1] user: Hi\n\n"
        "[1] assistant: (thinking: 5 chars)\nHello\nthere\n\n"
        "[2] user: Long one\n\n"
        "[2] assistant (cancelled): Par\n\n"
        "[3] user: Again\n\n"
        "[3] assistant (interrupted): (no text)"
    )
    assert "abcde" not in text
    assert history_text(Conversation(system="x")) == ""


def test_history_text_keeps_long_texts_and_shows_tools() -> None:
    conv = Conversation()
    tool_exchange(conv, 1)
    conv.record("long", FakeResponse(text="word " * 5000))
    text = history_text(conv)
    assert "word " * 4999 in text
    assert '[1] assistant: (thinking: 3 chars)\n(tool call c1: lookup({"q": "x"}))' in text
    assert "[1] tool (c1): result 1" in text


# ------------------------------------------------------------------------------ threads


def test_concurrent_appends_lose_nothing() -> None:
    conv = Conversation()
    n_threads, per_thread = 8, 200
    start = threading.Barrier(n_threads + 1)
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        start.wait()
        for i in range(per_thread):
            conv.record(f"{k}-{i}", FakeResponse(text=f"ans {k}-{i}"))

    def reader() -> None:
        start.wait()
        try:
            for _ in range(200):
                msgs = conv.messages("x")
                assert roles(msgs)[:-1] == ["user", "assistant"] * ((len(msgs) - 1) // 2)
                conv.to_dict()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(n_threads)]
    threads.append(threading.Thread(target=reader))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(conv) == 2 * n_threads * per_thread
    # record() appends a user turn and its answer together, so pairs are never interleaved.
    pairs = zip(conv.turns[::2], conv.turns[1::2], strict=True)
    assert all(a.content == f"ans {u.content}" for u, a in pairs)
