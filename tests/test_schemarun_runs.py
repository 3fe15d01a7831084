"""``schema=`` inside persisted / streamed runs, through the offline server (real sockets): JSON mode and
the schema prompt on every item, the one retry with the error fed back, the error recorded on its
item, a column per field in the store, Parquet and CSV, and a resume that sends only what is missing."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
from typing import Literal

import pyarrow.parquet as pq
import pydantic
import pytest
from offline_helpers import KEY, Sleeps

import ds_magic
from ds_magic import Client, RetryPolicy, RunError, RunResult
from ds_magic.run_store import RunStore
from ds_magic.structured import as_schema
from ds_magic.testing import Script

HANG = 120  # hang guard, seconds (a loaded 2-core CI machine)


class Label(pydantic.BaseModel):
    label: Literal["positive", "negative", "neutral"]
    confidence: float


TAGS = {
    "type": "object",
    "properties": {
        "tag": {"type": "string"},
        "status": {"type": "integer", "minimum": 0},  # a field named like a row column
        "words": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["tag", "status", "words"],
}


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg"


def make_client(srv) -> Client:
    return Client(api_key=KEY, base_url=srv.url, retry=RetryPolicy(max_retries=0, sleep=Sleeps()))


def chat_requests(srv) -> list[list[dict]]:
    return [r.body["messages"] for r in srv.requests if r.path.endswith("/chat/completions")]


def items_sent(srv) -> list[str]:
    """The item prompt of each request (a retry's is its second message, the first after the system)."""
    return [m[1]["content"] for m in chat_requests(srv)]


def label(srv, items, **kw) -> RunResult:
    kw.setdefault("progress", False)
    kw.setdefault("thinking", False)
    kw.setdefault("concurrency", 3)
    result = ds_magic.batch("Label item {item}.", items, client=make_client(srv), schema=Label, **kw)
    assert isinstance(result, RunResult)
    return result.wait(HANG)


def test_a_schemad_run_retries_records_errors_and_resumes_only_the_failed_into_parquet(srv, tmp_path):
    out = tmp_path / "labels.parquet"
    srv.enqueue(
        # item 1: not JSON, then valid on the retry
        Script(text="Sure! It is positive.", match=r"item 1\."),
        Script(text='{"label": "positive", "confidence": 0.9}', match=r"item 1\."),
        # item 3: wrong twice: its error is recorded on it
        Script(text='{"label": "great", "confidence": 0.5}', match=r"item 3\."),
        Script(text='{"label": ', match=r"item 3\."),
    )
    first = label(srv, [0, 1, 2, 3], run="labels-v2", sink=out)
    reqs = srv.requests
    assert len(reqs) == 6 and srv.queued == 0  # four items, two retries
    assert all(r.body["response_format"] == {"type": "json_object"} for r in reqs)
    assert all("JSON Schema" in m[0]["content"] and m[0]["role"] == "system" for m in chat_requests(srv))
    retries = {m[1]["content"]: m for m in chat_requests(srv) if len(m) == 4}
    assert sorted(retries) == ["Label item 1.", "Label item 3."]
    assert retries["Label item 1."][2]["content"] == "Sure! It is positive."
    assert "not valid JSON" in retries["Label item 1."][3]["content"]

    rows = pq.read_table(out).to_pylist()
    assert list(rows[0]) == [
        "item",
        "input",
        "label",
        "confidence",
        "text",
        "status",
        "error",
        "tokens",
        "ttft",
        "tokens/s",
        "cost",
        "cached",
        "retries",
        "window",
        "latency",
        "attempts",
    ]
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "error"]
    assert [r["attempts"] for r in rows] == [1, 2, 1, 2]
    assert rows[1]["label"] == "positive" and rows[1]["confidence"] == 0.9
    assert rows[0]["label"] in ("positive", "negative", "neutral")  # the server's answer of the schema
    assert rows[3]["label"] is None and "after 2 tries: the answer is not valid JSON" in rows[3]["error"]
    assert rows[1]["tokens"] > rows[0]["tokens"]  # both attempts are counted
    assert all(r["cost"] is not None and r["latency"] is not None for r in rows)
    assert first.failed == [3]
    assert first.table(as_dataframe=False) == rows

    stored = ds_magic.run("labels-v2").table(as_dataframe=False)
    assert stored == rows

    # The next run of the same cell (a restart, say) sends the failed item and the new ones only.
    srv.reset()
    again = label(srv, [0, 1, 2, 3, 4, 5], run="labels-v2", sink=out)
    assert sorted(items_sent(srv)) == ["Label item 3.", "Label item 4.", "Label item 5."]
    rows = pq.read_table(out).to_pylist()
    assert [r["item"] for r in rows] == list(range(6))
    assert [r["status"] for r in rows] == ["ok"] * 6
    assert rows[1]["label"] == "positive" and rows[1]["attempts"] == 2  # kept from the first run
    assert all(r["label"] in ("positive", "negative", "neutral") for r in rows)
    assert again.failed == []
    assert ds_magic.run("labels-v2").table(as_dataframe=False) == rows


def test_a_different_schema_under_the_same_name_is_one_line(srv):
    label(srv, ["a"], run="v1")
    n = len(srv.requests)
    with pytest.raises(RunError) as info:
        ds_magic.batch("Label item {item}.", ["a"], client=make_client(srv), schema=TAGS, run="v1")
    msg = str(info.value)
    assert "\n" not in msg and "schema" in msg and "ds_magic.run('v1').delete()" in msg
    with pytest.raises(RunError, match="schema"):  # and no schema at all is another too
        ds_magic.batch("Label item {item}.", ["a"], client=make_client(srv), run="v1", thinking=False)
    assert len(srv.requests) == n  # nothing was sent


def test_a_run_without_a_schema_keeps_its_fingerprint(srv):
    # A run started before schema= runs existed is resumed, not refused (its settings are unchanged).
    ds_magic.batch("Q {item}", ["a"], client=make_client(srv), run="plain", progress=False).wait(HANG)
    assert set(ds_magic.run("plain").settings) == {"template", "model", "system", "params"}
    srv.reset()
    ds_magic.batch("Q {item}", ["a", "b"], client=make_client(srv), run="plain", progress=False).wait(HANG)
    assert [m[-1]["content"] for m in chat_requests(srv)] == ["Q b"]


def test_csv_sink_columns_list_fields_as_json_and_a_colliding_field_is_renamed(srv, tmp_path):
    out = tmp_path / "tags.csv"
    srv.enqueue(Script(text='{"tag": "x", "status": 3, "words": ["a", "b"]}', match=r"item 0\."))
    result = ds_magic.batch(
        "Label item {item}.", [0, 1], client=make_client(srv), schema=TAGS, sink=out, progress=False
    ).wait(HANG)
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:5] == ["item", "input", "tag", "answer.status", "words"]
    assert rows[0]["tag"] == "x" and rows[0]["answer.status"] == "3" and rows[0]["status"] == "ok"
    assert json.loads(rows[0]["words"]) == ["a", "b"]
    assert rows[1]["status"] == "ok" and json.loads(rows[1]["words"])  # the server's answer of the schema
    assert result.table(as_dataframe=False)[0]["answer.status"] == "3"


def test_a_dict_schema_has_one_value_column(srv):
    srv.enqueue(Script(text='{"a": 1, "b": [2]}', match=r"item 0\."))
    r = ds_magic.batch(
        "Label item {item}.", [0], client=make_client(srv), schema=dict, run="d", progress=False
    ).wait(HANG)
    row = r.table(as_dataframe=False)[0]
    assert row["value"] == {"a": 1, "b": [2]} and row["attempts"] == 1
    assert ds_magic.run("d").table(as_dataframe=False)[0]["value"] == {"a": 1, "b": [2]}


def test_estimate_counts_the_schema_prompt_and_keeps_only_valid_samples(srv):
    items = [f"row {i}" for i in range(10)]
    plain = ds_magic.batch("Label: {item}", items, client=make_client(srv), estimate=True, max_tokens=50)
    typed = ds_magic.batch(
        "Label: {item}", items, client=make_client(srv), estimate=True, max_tokens=50, schema=Label
    )
    assert len(srv.requests) == 0
    p, t = plain.estimate(sample=0), typed.estimate(sample=0)
    system = as_schema(Label).system_prompt()
    assert t.prompt_tokens > p.prompt_tokens + 10 * len(system) // 8  # every item pays for the schema

    srv.enqueue(Script(text="not json", match="row 0"))
    sampled = ds_magic.batch(
        "Label: {item}", items[:3], client=make_client(srv), schema=Label, estimate=2, run="e", progress=False
    )
    assert len(srv.requests) == 2
    srv.reset()
    sampled.start()
    sampled.wait(HANG)
    # row 0's sample was invalid (no retry in a sample): the run sends it again, with row 2.
    assert sorted(m[1]["content"] for m in chat_requests(srv)) == ["Label: row 0", "Label: row 2"]
    assert [r["status"] for r in sampled.rows()] == ["ok"] * 3


def test_tools_with_run_are_refused_in_one_line(srv):
    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    with pytest.raises(TypeError, match="do not take tools= yet") as info:
        ds_magic.batch("{item}", ["a"], client=make_client(srv), tools=[add], run="t")
    assert "\n" not in str(info.value)
    with pytest.raises(TypeError, match="leave response_format out"):
        ds_magic.batch(
            "{item}", ["a"], client=make_client(srv), schema=Label, run="r", response_format={"type": "text"}
        )


def test_answers_saved_as_they_finish_are_the_checked_ones(srv):
    # Slow answers: the run saves some before the chunk ends (every half second), a retried one too.
    srv.enqueue(
        Script(text="no JSON here", match=r"item 0\.", ttft=0.3),
        Script(text='{"label": "neutral", "confidence": 0.1}', match=r"item 0\.", ttft=0.3),
        *[
            Script(text='{"label": "negative", "confidence": 1}', match=rf"item {i}\.", ttft=0.3)
            for i in (1, 2)
        ],
    )
    label(srv, [0, 1, 2], run="slow", concurrency=1)
    rows = ds_magic.run("slow").table(as_dataframe=False)
    assert [(r["label"], r["attempts"], r["status"]) for r in rows] == [
        ("neutral", 2, "ok"),
        ("negative", 1, "ok"),
        ("negative", 1, "ok"),
    ]
    assert rows[0]["text"] == '{"label": "neutral", "confidence": 0.1}'
    srv.reset()
    label(srv, [0, 1, 2], run="slow")  # the saved rows carry the item's own prompt hash: nothing is sent
    assert srv.requests == []


def test_a_runs_file_from_before_schema_runs_is_upgraded_and_its_rows_kept(tmp_path):
    # The items table as run_store.py made it before schema= runs (no "structured" column).
    path = tmp_path / "runs.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        """CREATE TABLE runs (name TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, settings TEXT NOT NULL,
                              created REAL NOT NULL, updated REAL NOT NULL);
           CREATE TABLE items (run TEXT NOT NULL, item INTEGER NOT NULL, prompt_hash TEXT NOT NULL,
               input TEXT, text TEXT, status TEXT NOT NULL, error TEXT, tokens INTEGER, ttft REAL, tps REAL,
               cost REAL, cached INTEGER, retries INTEGER, window TEXT, finished REAL NOT NULL,
               PRIMARY KEY (run, item));
           INSERT INTO items VALUES ('old', 0, 'h', 'in', 'out', 'ok', NULL, 3, 0.1, 9.0, 0.001, 0, 0, NULL, 1.0);"""
    )
    old.close()
    os.chmod(path, 0o600)
    os.chmod(tmp_path, 0o700)
    store = RunStore(path)
    assert [(r["item"], r["text"], r["status"]) for r in store.rows("old")] == [(0, "out", "ok")]
    store.put("new", [{**store.rows("old")[0], "label": "spam", "attempts": 2}])
    assert store.rows("new")[0]["label"] == "spam" and store.rows("new")[0]["attempts"] == 2
    assert "label" not in store.rows("old")[0]
    store.close()
