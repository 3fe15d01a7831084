"""Hostile conversation files (issue 14): ``ConversationStore.import_`` reads within a size cap,
parses within a depth cap and checks every field against the export schema, each fault one
``ValueError`` line that names the field; nothing is stored from an invalid file, and whatever is
stored makes a valid next request (checked with the offline server's own request validator)."""

from __future__ import annotations

import copy
import json
import math
import os
import tempfile
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ds_magic import Client
from ds_magic.conversation import Conversation
from ds_magic.conversation_store import ConversationStore
from ds_magic.testing.validate import validate

KEY = "sk-import0123456789abcdef0123456789"


def good_doc() -> dict[str, Any]:
    """An export as ConversationStore.export writes it: a tool exchange, then a plain one."""
    conv = Conversation("research", system="Be brief.", max_history_tokens=4000)
    conv.add_user("Look it up")
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}
    conv.add_assistant("", reasoning="need a tool", tool_calls=[call], model="deepseek-flash")
    conv.add_tool_result("call_1", "42")
    conv.add_assistant("It is 42.", meta={"usage": {"prompt_tokens": 10}, "timing": {"total": 0.5}})
    return {"format": "ds_magic.conversations", "version": 1, "conversations": [conv.to_dict()]}


def write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


def next_body(conv: Conversation, **params: Any) -> dict[str, Any]:
    """The next request of ``conv``, as Client.chat would send it, checked as the API checks it."""
    body = Client(api_key=KEY).request_body("next", conversation=conv, **params)
    validate(json.dumps(body, ensure_ascii=False).encode("utf-8"), beta=False, legacy=False)
    return body


TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


def test_a_good_export_round_trips_and_makes_a_valid_request(tmp_path: Path) -> None:
    doc = good_doc()
    store = ConversationStore()
    assert store.import_(write(tmp_path / "good.json", doc)) == ["research"]
    conv = store.get("research")
    assert conv.to_dict() == {"format": "ds_magic.conversation", "version": 1, **doc["conversations"][0]}
    assert next_body(conv, tools=TOOLS)["messages"][2]["tool_calls"][0]["id"] == "call_1"


def at(path: str, value: Any) -> Any:
    """good_doc() with the field at ``path`` (dotted, ``turns.1.tool_calls``) set to ``value``."""
    doc = good_doc()
    keys: list[Any] = ["conversations", 0, *(int(p) if p.isdigit() else p for p in path.split("."))]
    node = doc
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    return doc


# (document, the start of the one-line message): each was imported, or failed with a traceback, before.
ATTACKS = [
    pytest.param(
        at("turns.1.tool_calls", "zzz"),
        "conversations[0].turns[1].tool_calls: must be a list of tool calls, not a string",
        id="tool_calls-string",
    ),
    pytest.param(
        at(
            "turns.1.tool_calls",
            [{"id": 1, "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        ),
        "conversations[0].turns[1].tool_calls[0].id: must be a string, not a number",
        id="tool_call-id-number",
    ),
    pytest.param(
        at("turns.1.tool_calls", [{"id": "c", "type": "function", "function": "f()"}]),
        "conversations[0].turns[1].tool_calls[0].function: must be an object",
        id="tool_call-function-string",
    ),
    pytest.param(
        at(
            "turns.1.tool_calls",
            [{"id": "c", "type": "function", "function": {"name": "f", "arguments": {}}}],
        ),
        "conversations[0].turns[1].tool_calls[0].function.arguments: must be a string, not an object",
        id="tool_call-arguments-object",
    ),
    pytest.param(
        at("turns.1.tool_calls", [{"id": "c", "type": "code", "function": {"name": "f", "arguments": ""}}]),
        'conversations[0].turns[1].tool_calls[0].type: must be "function"',
        id="tool_call-type",
    ),
    pytest.param(
        at("system", 12345), "conversations[0].system: must be a string or null, not a number", id="system"
    ),
    pytest.param(at("name", ["a"]), "conversations[0].name: must be a string, not a list", id="name-list"),
    pytest.param(
        at("name", "evil\x1b[2J"), "conversations[0].name: must not hold control characters", id="name-escape"
    ),
    pytest.param(
        at("name", "x" * 201), "conversations[0].name: must be at most 200 characters", id="name-long"
    ),
    pytest.param(
        at("max_history_tokens", "4000"),
        "conversations[0].max_history_tokens: must be a whole number or null, not a string",
        id="max_history_tokens",
    ),
    pytest.param(
        at("turns", {"0": {}}), "conversations[0].turns: must be a list of turns", id="turns-object"
    ),
    pytest.param(
        at("turns.0", "hi"), "conversations[0].turns[0]: must be a turn object, not a string", id="turn"
    ),
    pytest.param(at("turns.0.role", "robot"), "conversations[0].turns[0].role: must be one of", id="role"),
    pytest.param(
        at("turns.0.content", 123), "conversations[0].turns[0].content: must be a string", id="content"
    ),
    pytest.param(
        at("turns.1.reasoning", True), "conversations[0].turns[1].reasoning: must be a string", id="reasoning"
    ),
    pytest.param(
        at("turns.2.tool_call_id", None),
        "conversations[0].turns[2].tool_call_id: must be a string",
        id="tool_call_id",
    ),
    pytest.param(
        at("turns.3.status", "done"), "conversations[0].turns[3].status: must be one of", id="status"
    ),
    pytest.param(
        at("turns.3.model", "m\n"), "conversations[0].turns[3].model: must not hold control", id="model"
    ),
    pytest.param(
        at("turns.3.created", 1e300),
        "conversations[0].turns[3].created: must be seconds since 1970 before the year 10000, not 1e+300",
        id="created",
    ),
    pytest.param(
        at("turns.3.meta", []), "conversations[0].turns[3].meta: must be an object or null", id="meta-list"
    ),
    pytest.param(
        at("turns.3.meta", {"usage": {"prompt_tokens": "many"}}),
        "conversations[0].turns[3].meta.usage.prompt_tokens: must be a whole number or null, not a string",
        id="meta-usage",
    ),
    pytest.param(
        at("turns.3.meta", {"timing": {"time_to_first_token": "fast"}}),
        "conversations[0].turns[3].meta.timing.time_to_first_token: must be a number or null",
        id="meta-timing",
    ),
    pytest.param(
        at("turns.3.meta", {"x": json.loads("[" * 40 + "]" * 40)}),
        "conversations[0].turns[3].meta: nested more than 32 levels deep",
        id="meta-deep",
    ),
    pytest.param(
        at(
            "turns.0.tool_calls",
            [{"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}],
        ),
        "conversations[0].turns[0].tool_calls: only an assistant turn has tool calls",
        id="user-tool-calls",
    ),
    pytest.param(
        '{"format": "ds_magic.conversations", "version": 1, "conversations": [1]}',
        "conversations[0]: must be a conversation object, not a number",
        id="conversation-number",
    ),  # fmt: skip
    pytest.param(
        '{"format": "ds_magic.conversations", "version": 1, "conversations": {}}',
        "conversations: must be a list of conversations, not an object",
        id="conversations-object",
    ),  # fmt: skip
    pytest.param(
        '{"format": "ds_magic.conversations", "version": 1, "conversations": [], "x": NaN}',
        "not JSON (expected a 'ds_magic.conversations' document): NaN is not a JSON number",
        id="nan",
    ),  # fmt: skip
    pytest.param(
        "[" * 100_000 + "]" * 100_000,
        "not a 'ds_magic.conversations' document: nested too deeply",
        id="100k-deep",
    ),
    pytest.param(b"\xff\xfe{}", "not JSON", id="not-utf8"),
]


@pytest.mark.parametrize("doc, message", ATTACKS)
def test_a_hostile_file_is_one_line_naming_the_field_and_stores_nothing(
    tmp_path: Path, doc: Any, message: str
) -> None:
    path = tmp_path / "hostile.json"
    if isinstance(doc, bytes):
        path.write_bytes(doc)
    else:
        write(path, doc)
    store = ConversationStore()
    store.get("mine").add_user("keep me")
    with pytest.raises(ValueError) as info:
        store.import_(path)
    text = str(info.value)
    assert text.startswith(message) and "\n" not in text and len(text) < 300, text
    assert store.names() == ["mine"] and len(store.get("mine")) == 1


def test_a_120_mb_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    with open(path, "wb") as f:  # sparse: 120 MB long, no disk used, nothing read
        f.truncate(120 * 1000 * 1000)
    tracemalloc.start()
    try:
        with pytest.raises(
            ValueError,
            match=r"^the file is 114\.4 MiB, more than the 32\.0 MiB an import reads \(max_bytes= raises the cap\)$",
        ):
            ConversationStore().import_(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024
    with pytest.raises(ValueError, match="more than the 0.0 MiB"):
        ConversationStore().import_(write(tmp_path / "small.json", good_doc()), max_bytes=10)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_a_pipe_whose_size_stat_cannot_tell_is_cut_at_the_cap(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)

    def writer() -> None:
        with open(fifo, "wb") as f:
            try:
                f.write(b" " * 5000)
            except BrokenPipeError:
                pass  # the reader stopped at the cap and closed its end

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    with pytest.raises(ValueError, match="^the file holds more than"):
        ConversationStore().import_(fifo, max_bytes=1000)
    t.join(10)


def test_what_is_stored_is_cleaned_and_only_the_schema_fields(tmp_path: Path) -> None:
    doc = good_doc()
    turns = doc["conversations"][0]["turns"]
    turns[0]["content"] = "lone \ud800 half"
    turns[1]["tool_calls"][0]["index"] = 0
    turns[1]["tool_calls"][0]["function"]["strict"] = True
    turns[3]["meta"]["note"] = "\udfff"
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(doc))  # ensure_ascii: the halves travel as \ud800 escapes
    store = ConversationStore()
    store.import_(path)
    conv = store.get("research")
    assert conv.turns[0].content == "lone \ufffd half"
    assert conv.turns[1].tool_calls == [
        {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}
    ]
    assert conv.turns[3].meta["note"] == "\ufffd"
    next_body(conv, tools=TOOLS)
    store.export(tmp_path / "again.json")  # encodable: no surrogate left anywhere
    assert "\ufffd" in (tmp_path / "again.json").read_text(encoding="utf-8")


def test_a_single_conversation_document_names_its_fields_without_a_prefix() -> None:
    doc = copy.deepcopy(good_doc()["conversations"][0])
    doc["turns"][1]["tool_calls"] = "zzz"
    with pytest.raises(
        ValueError, match=r"^turns\[1\]\.tool_calls: must be a list of tool calls, not a string$"
    ):
        Conversation.from_json(json.dumps(doc))


# ------------------------------------------------------------------------- property test

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


GOOD_PATHS = list(_paths(good_doc()))


@st.composite
def documents(draw: st.DrawFn) -> Any:
    """Any JSON document, or (mostly) a good export with random values at a few of its positions."""
    if draw(st.integers(0, 4)) == 0:
        return draw(json_values)
    doc = good_doc()
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(GOOD_PATHS))
        if not path:
            continue
        node = doc
        try:
            for k in path[:-1]:
                node = node[k]
            node[path[-1]] = draw(json_values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier replacement took this position away
    return doc


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ds-import-") as tmp:
        yield Path(tmp) / "doc.json"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents())
def test_any_json_document_imports_cleanly_or_fails_in_one_line(scratch: Path, doc: Any) -> None:
    scratch.write_text(json.dumps(doc))  # NaN and Infinity written as such: JSON they are not
    store = ConversationStore()
    try:
        names = store.import_(scratch)
    except ValueError as exc:
        assert "\n" not in str(exc) and str(exc), repr(exc)
        assert store.names() == []
        return
    for name in names:
        conv = store.get(name)
        for turn in conv.turns:
            assert isinstance(turn.content, str) and turn.status in (
                "ok",
                "cancelled",
                "interrupted",
                "error",
            )
            assert math.isfinite(turn.created)
        conv.messages("next")
        next_body(conv)
        next_body(conv, tools=TOOLS, thinking=True)
        json.dumps(conv.to_dict(), ensure_ascii=False).encode("utf-8")
