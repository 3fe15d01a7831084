"""Persistent runs, sinks and estimates through the offline server (real sockets): only missing items
are sent again, a run over a generator lands in Parquet complete and in order, the estimate counts
and prices before anything but its sample is sent."""

from __future__ import annotations

import os
import stat

import pyarrow.parquet as pq
import pytest
from offline_helpers import KEY, Sleeps

import ds_magic
from ds_magic import Client, RetryPolicy, RunError, RunResult
from ds_magic.pricing import PRICE_TABLE
from ds_magic.run_store import default_runs_path
from ds_magic.testing import Script

HANG = 120  # hang guard, seconds (a loaded 2-core CI machine)


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg"


def make_client(srv) -> Client:
    return Client(api_key=KEY, base_url=srv.url, retry=RetryPolicy(max_retries=0, sleep=Sleeps()))


def sent_prompts(srv) -> list[str]:
    return [r.body["messages"][-1]["content"] for r in srv.requests if r.path.endswith("/chat/completions")]


def test_a_second_run_sends_only_the_items_without_an_answer(srv):
    items = [f"row {i}" for i in range(10)]
    srv.enqueue(*[Script(text=f"label {i}") for i in range(3)], Script(status=400), Script(text="label 4"))
    first = ds_magic.batch(
        "Label: {item}", items[:5], client=make_client(srv), run="labels-v2", concurrency=1, progress=False
    )
    assert isinstance(first, RunResult)
    first.wait(HANG)
    assert [r["status"] for r in first.rows()] == ["ok", "ok", "ok", "error", "ok"]
    assert first.failed == [3]

    srv.reset()
    again = ds_magic.batch(
        "Label: {item}", items, client=make_client(srv), run="labels-v2", concurrency=2, progress=False
    )
    again.wait(HANG)
    # The failed item and the five new ones; nothing that had an answer.
    assert sorted(sent_prompts(srv)) == sorted(f"Label: {x}" for x in [items[3], *items[5:]])
    table = again.table(as_dataframe=False)
    assert [r["item"] for r in table] == list(range(10))
    assert [r["text"] for r in table[:3]] == ["label 0", "label 1", "label 2"]
    assert [r["status"] for r in table] == ["ok"] * 10

    loaded = ds_magic.run("labels-v2")
    assert loaded.table(as_dataframe=False) == table
    listed = ds_magic.runs(as_dataframe=False)
    assert [(r["name"], r["items"], r["ok"], r["failed"]) for r in listed] == [("labels-v2", 10, 10, 0)]
    assert listed[0]["template"] == "Label: {item}"


def test_the_runs_file_is_private_and_next_to_the_cache(srv, cache_home):
    ds_magic.batch(["hi"], client=make_client(srv), run="p", progress=False).wait(HANG)
    path = default_runs_path()
    assert path == cache_home / "ds_magic" / "runs.sqlite3"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def test_other_settings_under_the_same_name_are_one_line_that_says_what_to_do(srv):
    ds_magic.batch("Label: {item}", ["a"], client=make_client(srv), run="v1", progress=False).wait(HANG)
    n = len(srv.requests)
    with pytest.raises(RunError) as info:
        ds_magic.batch("Tag: {item}", ["a"], client=make_client(srv), run="v1", progress=False)
    msg = str(info.value)
    assert "\n" not in msg and "template" in msg and "ds_magic.run('v1').delete()" in msg
    with pytest.raises(RunError, match="model"):
        ds_magic.batch("Label: {item}", ["a"], client=make_client(srv), run="v1", model="deepseek-v4-pro")
    with pytest.raises(RunError, match="params"):
        ds_magic.batch("Label: {item}", ["a"], client=make_client(srv), run="v1", temperature=0.1)
    assert len(srv.requests) == n  # nothing was sent
    with pytest.raises(RunError, match="ds_magic.runs"):
        ds_magic.run("nope")

    ds_magic.run("v1").delete()
    ds_magic.batch("Tag: {item}", ["a"], client=make_client(srv), run="v1", progress=False).wait(HANG)
    assert ds_magic.run("v1").settings["template"] == "Tag: {item}"


def test_items_in_another_order_are_refused_not_mixed_up(srv):
    ds_magic.batch("Q: {item}", ["a", "b"], client=make_client(srv), run="order", progress=False).wait(HANG)
    moved = ds_magic.batch("Q: {item}", ["b", "a"], client=make_client(srv), run="order", progress=False)
    with pytest.raises(ds_magic.DeepSeekError, match="Item 0 is not the item"):
        moved.wait(HANG)


@pytest.mark.timeout(600)  # 2,100 requests on a loaded 2-core machine
def test_a_generator_streams_to_parquet_complete_and_in_order(srv, tmp_path):
    n = 2100  # three chunks of the run (CHUNK = 1000)
    consumed = []

    def rows():
        for i in range(n):
            consumed.append(i)
            yield {"id": i, "text": f"doc {i}"}

    out = tmp_path / "labels.parquet"
    result = ds_magic.batch(
        "Label {id}: {text} [[offline tokens=2 think=0]]",
        rows(),
        client=make_client(srv),
        sink=out,
        concurrency=16,
        progress=False,
    )
    result.wait(HANG * 5)
    table = pq.read_table(out).to_pylist()
    assert [r["item"] for r in table] == list(range(n))
    assert [r["status"] for r in table] == ["ok"] * n
    assert table[1234]["input"] == '{"id": 1234, "text": "doc 1234"}'
    assert all(r["text"] for r in table)
    assert len(result) == n and consumed == list(range(n))
    assert result.progress.done == n and result.progress.finished
    assert len(srv.requests) == n


def test_a_persisted_run_into_csv_rewrites_the_whole_file_after_a_resume(srv, tmp_path):
    out = tmp_path / "out.csv"
    srv.enqueue(Script(text="one"), Script(status=400))
    ds_magic.batch(
        "{item}", ["x", "y"], client=make_client(srv), run="c", sink=out, concurrency=1, progress=False
    ).wait(HANG)
    srv.reset()
    srv.enqueue(Script(text="two"), Script(text="three"))
    r = ds_magic.batch(
        "{item}", ["x", "y", "z"], client=make_client(srv), run="c", sink=out, concurrency=1, progress=False
    )
    r.wait(HANG)
    assert [row["text"] for row in r.rows()] == ["one", "two", "three"]
    assert [x for x in sent_prompts(srv)] == ["y", "z"]


def test_estimate_counts_and_prices_before_sending_and_keeps_its_sample(srv):
    items = [f"row {i}" for i in range(20)]
    srv.enqueue(*[Script(text="w " * 10, reasoning="") for _ in range(3)])
    result = ds_magic.batch("Label: {item}", items, client=make_client(srv), estimate=True, progress=False)
    assert len(srv.requests) == 3  # only the sample
    text = repr(result)
    assert "Estimate for 17 items on deepseek-flash (3 sent as a sample" in text
    assert "off-peak" in text and "peak (prices from 2026-09-10" in text and "result.start()" in text
    srv.reset()
    result.start()
    result.wait(HANG)
    assert len(srv.requests) == 17
    assert [r["status"] for r in result.rows()] == ["ok"] * 20


def test_estimate_from_max_tokens_sends_nothing_and_doubles_at_peak(srv):
    items = [f"row {i}" for i in range(50)]
    result = ds_magic.batch("Label: {item}", items, client=make_client(srv), estimate=True, max_tokens=100)
    est = result.estimate(sample=0)
    assert len(srv.requests) == 0
    assert est.items == 50 and est.output_tokens == 5000 and est.seconds is None
    flash = PRICE_TABLE["deepseek-flash"][-1]
    assert est.prices_from == flash.effective_from
    assert est.peak_usd == pytest.approx(2 * est.offpeak_usd)
    expected = (est.prompt_tokens * flash.rates.miss + 5000 * flash.rates.out) / 1e6
    assert est.offpeak_usd == pytest.approx(expected)
    with pytest.raises(ValueError, match="sample=N"):
        ds_magic.batch("Label: {item}", items, client=make_client(srv), estimate=True).estimate(sample=0)
    with pytest.raises(ValueError, match="list"):
        ds_magic.batch("L: {item}", iter(items), client=make_client(srv), estimate=3, progress=False)


def test_answers_saved_as_they_finish_keep_their_inputs(srv):
    # Slow answers: the run saves some of them before the chunk ends (every half second).
    srv.enqueue(*[Script(text=f"a{i}", ttft=0.3) for i in range(5)])
    r = ds_magic.batch(
        "{item}",
        (f"row {i}" for i in range(5)),
        client=make_client(srv),
        run="g",
        concurrency=1,
        progress=False,
    )
    r.wait(HANG)
    table = ds_magic.run("g").table(as_dataframe=False)
    assert [(t["input"], t["text"]) for t in table] == [(f"row {i}", f"a{i}") for i in range(5)]


def test_an_item_that_holds_a_secret_is_recorded_not_sent(srv):
    secret = "my key is sk-abcdef0123456789abcdef0123456789"
    r = ds_magic.batch("{item}", ["fine", secret], client=make_client(srv), run="s", progress=False)
    r.wait(HANG)
    rows = r.rows()
    assert [row["status"] for row in rows] == ["ok", "error"]
    assert "sk-abcdef0123456789" not in rows[1]["error"] and rows[1]["error"]
    assert sent_prompts(srv) == ["fine"]
