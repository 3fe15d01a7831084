"""batch() through the offline server: order, the concurrency bound, 429 adaptation without
duplicates, per-item errors, cancel, progress; and split_text's round trip and budget."""

from __future__ import annotations

import _thread
import asyncio
import inspect
import io
import pickle
import random
import re
import subprocess
import sys
import threading
from collections import Counter

import pytest
from offline_helpers import KEY, Sleeps, wait_until

import ds_magic
from ds_magic import Client, ResponseCache, RetryPolicy, split_text
from ds_magic.batch_progress import BatchProgress, TextProgress, format_progress
from ds_magic.batch_result import BatchResult
from ds_magic.batch_schedule import MAX_RATE_LIMIT_RETRIES
from ds_magic.batching import register_progress_view
from ds_magic.testing import Script
from ds_magic.tokens import estimate_tokens


def make_client(srv, sleeps: Sleeps | None = None, **kw) -> Client:
    retry = RetryPolicy(max_retries=kw.pop("max_retries", 2), sleep=sleeps or Sleeps(), random=lambda: 0.0)
    return Client(api_key=KEY, base_url=srv.url, retry=retry, **kw)


def prompt_of(request) -> str:
    return request.body["messages"][-1]["content"]


def test_results_come_back_in_input_order(srv):
    n = 12
    # Early requests are slow, late ones fast: they finish in roughly reverse order.
    srv.enqueue(*[Script(text=f"answer {k}", ttft=0.02 * (n - k)) for k in range(n)])
    result = ds_magic.batch(
        "Item {item}", list(range(n)), client=make_client(srv), concurrency=n, progress=False
    )
    assert isinstance(result, BatchResult) and len(result) == n
    result.wait(10)
    script_for = {prompt_of(r): f"answer {k}" for k, r in enumerate(srv.requests)}
    assert [r.text for r in result] == [script_for[f"Item {i}"] for i in range(n)]
    assert result.texts == [r.text for r in result.responses]
    assert [r.status for r in result] == ["ok"] * n


def test_concurrency_bound_is_never_exceeded(srv):
    srv.enqueue(*[Script(text="ok " * 5, ttft=0.03) for _ in range(20)])
    result = ds_magic.batch(
        [f"p{i}" for i in range(20)], client=make_client(srv), concurrency=3, progress=False
    )
    result.wait(20)
    assert all(r.status == "ok" for r in result)
    assert srv.max_active <= 3
    assert srv.max_active >= 2  # and it did run in parallel
    assert len(srv.requests) == 20


def test_429_lowers_concurrency_then_raises_it_and_sends_nothing_twice(srv):
    sleeps = Sleeps()
    n = 16
    # A 429 body that does not say by how much the cap is exceeded: the limit is halved.
    scripts = [Script(status=429, error_message="Rate Limit Reached")] * 4 + [
        Script(text="fine", ttft=0.02)
    ] * n
    srv.enqueue(*scripts)
    result = ds_magic.batch(
        [f"p{i}" for i in range(n)], client=make_client(srv, sleeps), concurrency=4, progress=False
    )
    result.wait(20)
    assert [r.status for r in result] == ["ok"] * n
    limits = [v for _, v in result.concurrency_history]
    assert limits[0] == 4 and 2 in limits  # four 429s in one window: halved once, not four times
    assert min(limits) == 2
    assert limits.index(2) < len(limits) - 1 and limits[-1] > 2  # ... and raised again after
    assert len(sleeps.delays) == 4  # each 429'd item waited once before it was sent again
    # The k-th request got the k-th script: count successful requests per item.
    ok_per_item = Counter(prompt_of(r) for k, r in enumerate(srv.requests) if scripts[k].status != 429)
    assert ok_per_item == Counter({f"p{i}": 1 for i in range(n)})
    assert len(srv.requests) == n + 4
    assert sum(r.retries for r in result) == 4


def test_429_body_with_the_cap_lowers_the_limit_by_the_excess(srv):
    # DeepSeek's 429 body says how far over the cap the account is (deepseek-api.md §3.3).
    msg = "Your current concurrency is {}, which exceeds your concurrency limit of {} based on your remaining balance."
    srv.enqueue(
        Script(status=429, error_message=msg.format(10, 7)),  # 3 over: 8 in flight -> 5
        *[Script(text="fine", ttft=0.05)] * 12,
    )
    result = ds_magic.batch(
        [f"p{i}" for i in range(12)], client=make_client(srv), concurrency=8, progress=False
    )
    result.wait(20)
    assert [r.status for r in result] == ["ok"] * 12
    limits = [v for _, v in result.concurrency_history]
    assert limits[:2] == [8, 5]
    assert len(srv.requests) == 13


def test_429_retries_run_out_and_the_item_fails(srv):
    srv.enqueue(*[Script(status=429, error_message="Rate Limit Reached")] * 20)
    result = ds_magic.batch(["only"], client=make_client(srv), concurrency=2, progress=False).wait(10)
    assert result[0].status == "error" and isinstance(result[0].error, ds_magic.RateLimitError)
    assert result[0].retries == MAX_RATE_LIMIT_RETRIES
    assert len(srv.requests) == MAX_RATE_LIMIT_RETRIES + 1
    assert result.concurrency == 1


def test_per_item_errors_are_recorded_and_the_batch_goes_on(srv):
    srv.enqueue(Script(text="a"), Script(status=400), Script(text="c"), Script(status=500), Script(text="d"))
    result = ds_magic.batch(["a", "b", "c", "d"], client=make_client(srv), concurrency=1, progress=False)
    result.wait(10)
    assert [r.status for r in result] == ["ok", "error", "ok", "ok"]
    assert result.failed == [1]
    assert isinstance(result[1].error, ds_magic.BadRequestError)
    assert result[3].text == "d" and result[3].retries == 1  # the 500 was retried
    rows = result.table(as_dataframe=False)
    assert rows[1]["status"] == "error" and "400" in rows[1]["error"]
    assert rows[0]["error"] is None and rows[0]["text"] == "a"
    assert result.progress.done == 3 and result.progress.failed == 1 and result.progress.finished


def test_cancel_mid_batch_keeps_finished_results_and_closes_streams(srv):
    srv.enqueue(Script(text="quick one"), Script(text="quick two"))
    srv.enqueue(*[Script(text="word " * 400, reasoning="", tokens_per_second=50) for _ in range(4)])
    result = ds_magic.batch(
        [f"p{i}" for i in range(6)], client=make_client(srv), concurrency=2, progress=False
    )
    assert wait_until(lambda: (p := result.progress).done == 2 and p.running == 2 and srv.active == 2, 10)
    # The two slow ones have streamed a little (their partial answers must be kept); indexing the
    # result would wait for the end, so watch the in-flight token count.
    quick = result.progress.tokens
    assert wait_until(lambda: result.progress.tokens >= quick + 10, 10)
    result.cancel()
    result.wait(5)  # TimeoutError if the cancel did not end it: uncancelled, the streams take 8 s
    statuses = [r.status for r in result]
    assert statuses[:2] == ["ok", "ok"]
    assert [r.text for r in result][:2] == ["quick one", "quick two"]
    assert statuses[2:] == ["cancelled"] * 4
    assert result[2].text_so_far.startswith("word")  # the partial answers are kept
    gone = [srv.wait_for_disconnect(2) for _ in range(2)]
    # Both streams were closed with most of their 401 events unsent (latency: benchmarks/cancel_latency.py).
    assert all(d is not None and d.chunks_sent < 200 for d in gone), gone
    assert wait_until(lambda: srv.active == 0, 5)
    assert len(srv.requests) == 4  # the last two were never sent
    assert result.progress.cancelled == 4 and result.done


def test_keyboard_interrupt_while_waiting_cancels_and_reraises(srv):
    srv.enqueue(*[Script(text="word " * 400, reasoning="", tokens_per_second=50) for _ in range(3)])
    result = ds_magic.batch(["a", "b", "c"], client=make_client(srv), concurrency=3, progress=False)
    threading.Timer(0.3, _thread.interrupt_main).start()
    with pytest.raises(KeyboardInterrupt):
        result.wait(10)
    assert result.cancel_requested
    result.wait(5)
    assert [r.status for r in result] == ["cancelled"] * 3


def test_wait_times_out_and_refuses_the_engine_thread(srv):
    srv.enqueue(*[Script(text="word " * 400, reasoning="", tokens_per_second=50) for _ in range(2)])
    result = ds_magic.batch(["a", "b"], client=make_client(srv), concurrency=2, progress=False)
    with pytest.raises(TimeoutError, match="did not finish within 0.05 s"):
        result.wait(0.05)
    assert not result.done and not result.cancel_requested  # running out of time cancels nothing
    on_engine: list[BaseException] = []
    called = threading.Event()

    def at_end(r: BatchResult) -> None:  # done-callbacks run on the engine thread
        try:
            r.wait()
        except RuntimeError as exc:
            on_engine.append(exc)
        called.set()

    result.add_done_callback(at_end)
    result.cancel()
    assert result.wait(5) is result and called.wait(5)
    assert [type(e) for e in on_engine] == [RuntimeError] and "engine thread" in str(on_engine[0])
    late: list[BatchResult] = []
    result.add_done_callback(late.append)  # after the end: at once, on this thread
    assert late == [result]


def test_await_result_inside_a_running_loop(srv):
    srv.enqueue(Script(text="x"), Script(text="y"))

    async def main() -> list[str]:
        result = ds_magic.batch(["1", "2"], client=make_client(srv), progress=False)
        return (await result).texts

    assert sorted(asyncio.run(main())) == ["x", "y"]


def test_template_fields_and_braces(srv):
    items = [{"name": "Ada", "lang": "en"}, {"name": "Lin", "lang": "zh"}]
    template = "Greet {name} in {lang} ({item['name']}); keep {braces} and {{x}}"
    result = ds_magic.batch(template, items, client=make_client(srv), concurrency=1, progress=False)
    result.wait(10)
    assert [prompt_of(r) for r in srv.requests] == [
        "Greet Ada in en (Ada); keep {braces} and {x}",
        "Greet Lin in zh (Lin); keep {braces} and {x}",
    ]
    assert result.inputs == items


def test_model_system_and_params_reach_every_request(srv):
    result = ds_magic.batch(
        ["a", "b"], client=make_client(srv), system="Be brief.", temperature=0.3, max_tokens=7, progress=False
    )
    result.wait(10)
    for req in srv.requests:
        assert req.body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert req.body["temperature"] == 0.3 and req.body["max_tokens"] == 7


def test_bad_arguments_fail_at_once(srv):
    client = make_client(srv)
    with pytest.raises(ValueError, match="temperature"):
        ds_magic.batch(["a"], client=client, temperature=5)
    with pytest.raises(ValueError, match="concurrency"):
        ds_magic.batch(["a"], client=client, concurrency=0)
    with pytest.raises(TypeError, match="items"):
        ds_magic.batch("just a template {item}", client=client)
    with pytest.raises(TypeError):
        ds_magic.batch("t {item}", "not a list", client=client)
    assert srv.requests == []


def test_table_without_pandas_is_a_list_of_dicts(srv, monkeypatch):
    srv.enqueue(Script(text="one"), Script(text="two"))
    result = ds_magic.batch(["a", "b"], client=make_client(srv), concurrency=1, progress=False)
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if pandas were not installed
    rows = result.table()
    assert isinstance(rows, list)
    columns = "input text status error tokens ttft tokens/s cost cached retries".split()
    assert list(rows[0]) == columns
    assert [r["input"] for r in rows] == ["a", "b"] and [r["text"] for r in rows] == ["one", "two"]
    assert rows[0]["tokens"] > 0 and rows[0]["ttft"] is not None and rows[0]["cost"] > 0
    assert rows[0]["cached"] is False


def test_pandas_series_in_dataframe_out(srv):
    pd = pytest.importorskip("pandas")
    s = pd.Series(["x", "y", "z"], index=["r1", "r2", "r3"])
    result = ds_magic.batch("Echo {item}", s, client=make_client(srv), concurrency=1, progress=False)
    df = result.table()
    assert isinstance(df, pd.DataFrame)
    assert list(df.index) == ["r1", "r2", "r3"] and list(df["input"]) == ["x", "y", "z"]
    assert list(df["status"]) == ["ok"] * 3
    frame = pd.DataFrame({"q": ["a", "b"], "n": [1, 2]})
    r2 = ds_magic.batch("{q}-{n}", frame, client=make_client(srv), concurrency=1, progress=False).wait(10)
    assert [prompt_of(r) for r in srv.requests[-2:]] == ["a-1", "b-2"] and r2.done


def test_batch_uses_the_cache(srv, tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite3")
    client = make_client(srv)
    first = ds_magic.batch(["a", "b", "c"], client=client, cache=cache, progress=False).wait(10)
    assert not any(r.cached for r in first)
    n = len(srv.requests)
    again = ds_magic.batch(["a", "b", "c"], client=client, cache=cache, progress=False).wait(10)
    assert all(r.cached for r in again) and again.texts == first.texts
    assert len(srv.requests) == n
    assert [row["cost"] for row in again.table(as_dataframe=False)] == [0.0] * 3
    cache.close()


def test_progress_callback_and_text_renderer(srv):
    seen: list[BatchProgress] = []
    srv.enqueue(*[Script(text="t " * 10, ttft=0.02) for _ in range(5)])
    result = ds_magic.batch(
        [str(i) for i in range(5)], client=make_client(srv), concurrency=2, progress=seen.append
    )
    result.wait(10)
    assert seen[-1].finished and seen[-1].done == 5 and seen[-1].total == 5
    assert seen[-1].tokens > 0 and seen[-1].tokens_per_second
    assert max(p.running for p in seen) == 2
    assert sum(p.finished for p in seen) == 1
    done_counts = [p.done for p in seen]
    assert done_counts == sorted(done_counts)

    out = io.StringIO()
    render = TextProgress(stream=out, interval=0.0)
    for p in seen:
        render(p)
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1 and "\r" in text
    assert "batch 5/5 done" in text.rsplit("\r", 1)[-1]
    mid = BatchProgress(10, 3, 1, 0, 2, 1, 3, 2, 4, 120, 40.0, 3.0, 7.0, False)
    assert format_progress(mid) == (
        "batch 3/10 done · 1 failed · 1 retrying · 2 running (limit 2/4) · 40 tok/s · 3.0s · ETA 7.0s"
    )


def test_widget_view_updates_and_its_button_cancels(srv):
    pytest.importorskip("ipywidgets")
    from ds_magic.jupyter.batch_view import BatchProgressView

    srv.enqueue(*[Script(text="word " * 400, reasoning="", tokens_per_second=50) for _ in range(2)])
    result = ds_magic.batch(["a", "b"], client=make_client(srv), concurrency=2, progress=False)
    view = BatchProgressView(result, interval=0.0)
    view.update(result.progress)
    assert "batch 0/2 done" in view.label.value
    view.cancel_button.click()
    result.wait(5)
    assert [r.status for r in result] == ["cancelled"] * 2
    view.update(result.progress)
    assert view.bar.value == 2 and "2 cancelled" in view.label.value


def test_batch_is_a_plain_function_and_core_imports_no_widgets(srv):
    from ds_magic import batch
    from ds_magic.batching import batch as defined

    assert batch is defined is ds_magic.batch and inspect.isfunction(batch)
    assert pickle.loads(pickle.dumps(ds_magic.batch)) is batch  # pickled by reference, like any function
    assert "concurrency" in str(inspect.signature(batch))
    # No script of our own: a request the previous test cancelled may still reach the server late.
    [resp] = batch(["x"], client=make_client(srv), progress=False).responses
    assert resp.status == "ok" and resp.text
    code = (
        "import sys, ds_magic, ds_magic.batching, ds_magic.cache, ds_magic.run_records, ds_magic.run_stats,"
        " ds_magic.split; ds_magic.batch, ds_magic.records, ds_magic.stats;"
        "print([m for m in ('IPython', 'ipywidgets', 'pandas', 'matplotlib', 'prometheus_client') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


@pytest.fixture
def no_progress_view():
    """No registered notebook view during the test, and none left behind."""
    register_progress_view(None)
    yield
    register_progress_view(None)


def test_a_registered_progress_view_gets_the_result_and_every_snapshot(srv, no_progress_view):
    made: list[BatchResult] = []
    seen: list[BatchProgress] = []

    def factory(result: BatchResult):
        made.append(result)
        return seen.append

    register_progress_view(factory)
    srv.enqueue(Script(text="one"), Script(text="two"))
    result = ds_magic.batch(["a", "b"], client=make_client(srv), concurrency=2)  # progress=True
    result.wait(10)
    assert made == [result]
    assert seen[-1].finished and seen[-1].done == 2 and sum(p.finished for p in seen) == 1
    auto = ds_magic.batch(["c"], client=make_client(srv), progress="auto").wait(10)
    widget = ds_magic.batch(["d"], client=make_client(srv), progress="widget").wait(10)
    assert made == [result, auto, widget]
    text = ds_magic.batch(["e"], client=make_client(srv), progress="text").wait(10)
    assert text not in made  # "text" is the terminal line, whatever is registered


def test_widget_progress_without_the_notebook_layer_says_to_load_it(srv, no_progress_view):
    with pytest.raises(ValueError, match="%load_ext ds_magic") as info:
        ds_magic.batch(["a"], client=make_client(srv), progress="widget")
    assert "\n" not in str(info.value)
    assert srv.requests == []
    with pytest.raises(ValueError, match="progress must be"):
        ds_magic.batch(["a"], client=make_client(srv), progress="fancy")


# --------------------------------------------------------------------- split_text
def _assert_pieces_of(text: str, pieces: list[str]) -> None:
    """Each piece is a slice of the text; only whitespace lies between and around them."""
    pos = 0
    for piece in pieces:
        assert piece and piece == piece.strip()
        at = text.index(piece, pos)
        assert text[pos:at].strip() == "", (text[pos:at], piece)
        pos = at + len(piece)
    assert text[pos:].strip() == ""


SAMPLES = [
    "One. Two.\n\nThree.",
    "A first paragraph. It has two sentences!\n\n  \nA second one? Yes.\nWith a line.\n\n\nThird.",
    "word " * 300,
    "x" * 500,
    "https://example.com/" + "a" * 200 + " and then some text.",
    "这是一个很长的中文句子，没有空格。" * 30 + "\n\n" + "第二段。" * 10,
    "Mixed 中文 and English. 句子结束。Next sentence here.",
    "   leading and trailing whitespace   \n\n",
]


@pytest.mark.parametrize("text", SAMPLES)
@pytest.mark.parametrize("budget", [1, 3, 10, 50, 1000])
def test_split_text_round_trip_and_budget(text, budget):
    pieces = split_text(text, max_tokens=budget)
    _assert_pieces_of(text, pieces)
    assert all(estimate_tokens(p) <= budget for p in pieces)
    assert re.sub(r"\s+", "", "".join(pieces)) == re.sub(r"\s+", "", text)


def test_split_text_prefers_paragraphs_then_sentences():
    text = "Para one. Still one.\n\nPara two is here. And more."
    assert split_text(text, max_tokens=100) == [text]
    assert split_text(text, max_tokens=9) == ["Para one. Still one.", "Para two is here. And more."]
    assert split_text(text, max_tokens=6) == ["Para one. Still one.", "Para two is here.", "And more."]
    # joining with the separators split on gives the text back
    assert "\n\n".join(split_text(text, max_tokens=9)) == text


def test_split_text_random_texts_lose_nothing():
    rng = random.Random(7)
    alphabet = ["word", "longerword", "a", "中文", ".", "!", "?", " ", " ", " ", "\n", "\n\n", "。", "x" * 40]
    for _ in range(200):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120)))
        budget = rng.choice([1, 2, 5, 13, 40])
        pieces = split_text(text, max_tokens=budget)
        _assert_pieces_of(text, pieces)
        assert all(estimate_tokens(p) <= budget for p in pieces)


def test_split_text_edges():
    assert split_text("") == [] and split_text(" \n\n ") == []
    with pytest.raises(ValueError):
        split_text("x", max_tokens=0)
    with pytest.raises(TypeError):
        split_text(None)  # type: ignore[arg-type]
    big = ("Sentence number one. " * 40 + "\n\n") * 500
    assert len(split_text(big, max_tokens=500)) > 10  # its speed: benchmarks/split_text.py


# --------------------------------------------------------------------- in a real kernel
def test_in_a_kernel_the_progress_is_a_widget_whose_cancel_works(kernel):
    r = kernel.run(
        "import ds_magic\n"
        "from ds_magic.testing import OfflineServer, Script\n"
        "srv = OfflineServer().start()\n"
        "srv.enqueue(*[Script(text='word ' * 400, reasoning='', tokens_per_second=50)] * 2)\n"
        f"client = ds_magic.Client(api_key={KEY!r}, base_url=srv.url)\n"
        "result = ds_magic.batch(['a', 'b', 'c'], client=client, concurrency=2)\n"
        "print(result.done)\n"
    ).raise_for_error()
    assert r.stdout.strip() == "False"  # batch() returned while its 8 s streams run; the kernel is idle
    [button] = kernel.find_widgets("ButtonModel", description="Cancel")
    assert kernel.find_widgets("IntProgressModel")
    kernel.wait_idle(kernel.click(button), timeout=10)  # the click reaches on_click: the kernel is idle
    out = kernel.run("result.wait(5); print([r.status for r in result], srv.active)").raise_for_error()
    assert out.stdout.strip() == "['cancelled', 'cancelled', 'cancelled'] 0"
    finals = [
        m["content"]["data"]["text/plain"]
        for m in kernel.all_iopub
        if m["msg_type"] == "update_display_data" and "text/plain" in m["content"].get("data", {})
    ]
    assert finals and "3 cancelled" in finals[-1]  # the widgets gave way to a static line
    assert button in {m["content"]["comm_id"] for m in kernel.comm_closes()}
    kernel.run("srv.stop()")
