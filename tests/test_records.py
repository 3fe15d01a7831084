"""Run records, stats and the Prometheus endpoint, fed by real requests to the offline server."""

from __future__ import annotations

import asyncio
import inspect
import pickle
import sys
from datetime import datetime, timezone

import httpx
import pytest
from offline_helpers import KEY

import ds_magic
from ds_magic import Client, RetryPolicy
from ds_magic import metrics as metrics_mod
from ds_magic import run_records as records_mod
from ds_magic.pricing import set_prices
from ds_magic.run_records import RunRecord
from ds_magic.testing import Script

FLAT = {"deepseek-flash": {"hit": 1.0, "miss": 2.0, "out": 4.0}}  # USD per 1M tokens


async def _no_wait(seconds: float) -> None:
    await asyncio.sleep(0)  # the injected retry sleep: yields, waits for nothing


@pytest.fixture(autouse=True)
def fresh_records():
    ds_magic.clear_records()
    yield
    ds_magic.clear_records()
    records_mod.set_max_records(records_mod.DEFAULT_MAX_RECORDS)
    set_prices(None)


def make_client(srv, **kw) -> Client:
    return Client(api_key=KEY, base_url=srv.url, retry=RetryPolicy(sleep=_no_wait, random=lambda: 0.0), **kw)


def test_every_request_leaves_a_record_with_its_fields(srv):
    set_prices(FLAT)
    srv.enqueue(Script(text="The answer is 42.", reasoning="Thinking about it."))
    resp = make_client(srv).chat("What is it?")
    resp.wait()
    recs = records_mod.get_records()
    assert len(recs) == 1
    rec = recs[0]
    u = resp.usage
    assert u is not None
    assert rec.model == "deepseek-flash" and rec.status == "ok" and rec.chat is None
    assert rec.retries == 0 and not rec.cached and rec.error_type is None
    assert rec.ttft == resp.timing.time_to_first_token and rec.ttft is not None and rec.ttft > 0
    assert rec.total is not None and rec.total >= rec.ttft
    assert (rec.prompt_tokens, rec.completion_tokens, rec.reasoning_tokens) == (
        u.prompt_tokens,
        u.completion_tokens,
        u.reasoning_tokens,
    )
    assert (rec.cache_hit_tokens, rec.cache_miss_tokens) == (u.cache_hit_tokens, u.cache_miss_tokens)
    assert rec.tokens_per_second == resp.timing.tokens_per_second
    expected = (u.cache_hit_tokens * 1.0 + u.cache_miss_tokens * 2.0 + u.completion_tokens * 4.0) / 1_000_000
    assert rec.cost == pytest.approx(expected) and expected > 0
    assert abs((rec.time - datetime.now(timezone.utc)).total_seconds()) < 30


def test_errors_retries_and_chat_names_are_recorded(srv):
    client = make_client(srv)
    srv.enqueue(Script(status=400))
    client.chat("bad").join()
    srv.enqueue(Script(status=503), Script(text="after a retry"))
    assert client.chat("flaky").text == "after a retry"
    conv = ds_magic.Conversation("notes")
    srv.enqueue(Script(text="noted"))
    client.chat("remember", conversation=conv).wait()
    recs = records_mod.get_records()
    assert [r.status for r in recs] == ["error", "ok", "ok"]
    assert recs[0].error_type == "BadRequestError" and recs[0].cost is None or recs[0].cost == 0.0
    assert recs[1].retries == 1
    assert recs[2].chat == "notes"


def test_records_table_with_and_without_pandas(srv, monkeypatch):
    srv.enqueue(Script(text="a"), Script(text="b"))
    client = make_client(srv)
    client.chat("1").wait()
    client.chat("2").wait()
    rows = ds_magic.records(as_dataframe=False)
    assert isinstance(rows, list) and len(rows) == 2 and set(rows[0]) == set(RunRecord.__dataclass_fields__)
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if pandas were not installed
    assert ds_magic.records() == rows
    with pytest.raises(ImportError, match="pip install pandas"):
        ds_magic.records(as_dataframe=True)
    monkeypatch.undo()
    pd = pytest.importorskip("pandas")
    df = ds_magic.records()
    assert isinstance(df, pd.DataFrame) and len(df) == 2 and "ttft" in df.columns


def test_records_are_bounded(srv):
    records_mod.set_max_records(3)
    client = make_client(srv)
    for i in range(5):
        srv.enqueue(Script(text=f"answer {i}"))
        client.chat(f"q{i}").wait()
    recs = records_mod.get_records()
    assert len(recs) == 3
    assert recs[-1].status == "ok"
    with pytest.raises(ValueError):
        records_mod.set_max_records(0)


def test_stats_totals_and_price_override(srv):
    set_prices(FLAT)
    client = make_client(srv)
    srv.enqueue(Script(text="one two three"), Script(text="four five"), Script(status=401))
    r1, r2 = client.chat("a"), client.chat("b")
    r1.wait(), r2.wait()
    client.chat("c").join()
    s = ds_magic.stats()
    assert s["requests"] == 3
    assert s["by_status"] == {"ok": 2, "error": 1}
    usages = [r1.usage, r2.usage]
    assert all(u is not None for u in usages)
    assert s["tokens"]["completion"] == sum(u.completion_tokens for u in usages if u)
    assert s["tokens"]["prompt"] == sum(u.prompt_tokens for u in usages if u)
    expected = sum(
        (u.cache_hit_tokens * 1 + u.cache_miss_tokens * 2 + u.completion_tokens * 4) / 1e6
        for u in usages
        if u
    )
    assert s["cost"] == pytest.approx(expected)
    ttfts = sorted(r.timing.time_to_first_token or 0 for r in (r1, r2))
    assert s["ttft_mean"] == pytest.approx(sum(ttfts) / 2)
    assert s["ttft_median"] == pytest.approx(sum(ttfts) / 2)
    # the same records, priced ten times higher for this call only
    tenfold = {"deepseek-flash": {"hit": 10.0, "miss": 20.0, "out": 40.0}}
    assert ds_magic.stats(prices=tenfold)["cost"] == pytest.approx(10 * expected)
    assert ds_magic.stats()["cost"] == pytest.approx(expected)
    repriced = ds_magic.records(as_dataframe=False, prices=tenfold)
    assert sum(r["cost"] or 0 for r in repriced) == pytest.approx(10 * expected)
    # and set_prices changes the price of new records
    set_prices({"deepseek-flash": {"hit": 0, "miss": 0, "out": 0}})
    srv.enqueue(Script(text="free"))
    client.chat("d").wait()
    assert records_mod.get_records()[-1].cost == 0.0


def test_stats_plot_when_matplotlib_is_there(srv):
    pytest.importorskip("matplotlib")
    srv.enqueue(Script(text="a b c d"))
    make_client(srv).chat("x").wait()
    fig = ds_magic.stats(plot=True)["figure"]
    assert len(fig.axes) == 3  # latency, tokens/s, cost per request


def test_empty_stats():
    s = ds_magic.stats()
    assert s["requests"] == 0 and s["cost"] == 0 and s["ttft_mean"] is None and s["ttft_median"] is None


def test_prometheus_endpoint_is_scraped_over_http(srv):
    pytest.importorskip("prometheus_client")
    client = make_client(srv)
    srv.enqueue(Script(text="early bird"))
    client.chat("before serving").wait()  # records made before serve_metrics are counted too
    ok = 'ds_magic_requests_total{cached="false",model="deepseek-flash",status="ok"}'
    bad = 'ds_magic_errors_total{type="BadRequestError"}'
    count = 'ds_magic_time_to_first_token_seconds_count{model="deepseek-flash"}'
    with ds_magic.serve_metrics(port=0) as server:
        assert server.addr == "127.0.0.1" and server.port > 0
        before = _scrape(server.url)
        assert before[ok] >= 1
        srv.enqueue(Script(text="hello metrics"), Script(status=400))
        client.chat("x").wait()
        client.chat("y").join()
        after = _scrape(server.url)  # the record hooks ran before each answer reported done
    assert after[ok] - before[ok] == 1
    assert after[bad] - before.get(bad, 0) == 1
    assert after[count] - before[count] == 1
    assert 'ds_magic_tokens_per_second_bucket{le="+Inf",model="deepseek-flash"}' in after
    assert after['ds_magic_tokens_total{kind="completion",model="deepseek-flash"}'] > 0
    assert after['ds_magic_cost_usd_total{model="deepseek-flash"}'] > 0
    with pytest.raises(httpx.HTTPError):
        httpx.get(server.url, timeout=1)  # closed


def _scrape(url: str) -> dict[str, float]:
    r = httpx.get(url, timeout=5)
    assert r.status_code == 200 and "text/plain" in r.headers["content-type"]
    out: dict[str, float] = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_serve_metrics_without_prometheus_says_what_to_install(monkeypatch):
    monkeypatch.setattr(metrics_mod, "_metrics", None)  # as in a fresh process
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ImportError, match=r"pip install ds_magic\[prometheus\]"):
        ds_magic.serve_metrics()


def test_a_failing_hook_does_not_break_recording(srv):
    def bad(rec: RunRecord) -> None:
        raise RuntimeError("boom")

    seen: list[RunRecord] = []
    records_mod.add_hook(bad)
    records_mod.add_hook(seen.append)
    try:
        srv.enqueue(Script(text="x"))
        make_client(srv).chat("q").wait()
        # recorded, and the hooks fed, before the answer reported done, a broken hook or not
        assert len(records_mod.get_records()) == 1 and len(seen) == 1
    finally:
        records_mod.remove_hook(bad)
        records_mod.remove_hook(seen.append)
    assert len(seen) == 1


def test_records_and_clear_records_are_plain_functions(srv):
    from ds_magic import clear_records, records

    assert records is ds_magic.records is records_mod.records and inspect.isfunction(records)
    assert pickle.loads(pickle.dumps(ds_magic.records)) is records
    assert pickle.loads(pickle.dumps(ds_magic.clear_records)) is clear_records
    srv.enqueue(Script(text="kept"))
    make_client(srv).chat("q").wait()
    assert len(records(as_dataframe=False)) == 1
    clear_records()
    assert records(as_dataframe=False) == [] and records_mod.get_records() == []
