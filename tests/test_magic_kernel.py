"""%%deepseek in a real ipykernel (jupyter_client), against the offline server on 127.0.0.1."""

from __future__ import annotations

import json

import pytest
from live_helpers import cancel, open_live_views, shown
from offline_helpers import KEY

from ds_magic.testing import Script

pytestmark = pytest.mark.kernel


@pytest.fixture
def k(module_kernel):
    return module_kernel


@pytest.fixture(autouse=True)
def fresh(srv, k):
    srv.reset()
    k.run("%deepseek reset", timeout=10)


#: "word " * 800 is 801 data events; at 50 tok/s that is 16 s of stream if nothing stops it.
LONG_EVENTS = 801


def assert_closed_mid_stream(srv, d) -> None:
    """The client closed the HTTP stream while the server still had most of the answer to send.

    What a cancel promises (billing stops); how fast it does is benchmarks/cancel_latency.py's figure.
    """
    assert d is not None, "the server never saw the stream closed"
    assert d.chunks_sent < LONG_EVENTS // 2 and d.request_index not in srv.completed, d


def history(k) -> str:
    return str(k.run("%deepseek history", timeout=10).stdout)


def published_text(k, since: int) -> str:
    """Everything published since a mark that a frontend renders as markup: text/html, text/markdown
    and widget state (text/plain is shown as text and may hold the raw answer), and of the live
    view's messages the parts it draws as HTML."""
    parts = []
    for m in k.all_iopub[since:]:
        c = m["content"]
        if m["msg_type"] in ("display_data", "update_display_data", "execute_result"):
            data = c.get("data", {})
            assert "text/markdown" not in data
            parts.append(str(data.get("text/html", "")))
        elif m["msg_type"] == "comm_msg" and c.get("data", {}).get("method") == "custom":
            # The live view (stream_widget.js) puts only "b" and "t" into innerHTML (the rebuilt
            # blocks and tail); "r", "x", "s" and "o" go into text nodes.
            content = c["data"].get("content", {})
            parts += [str(content.get("b", "")), str(content.get("t", ""))]
        elif m["msg_type"] in ("comm_open", "comm_msg"):
            parts.append(json.dumps(c.get("data", {})))
    return "\n".join(parts)


def test_streams_and_leaves_static_output(srv, k):
    srv.enqueue(
        Script(
            text="Hello **world**\n\n| a | b |\n|---|---|\n| 1 | 2 |",
            reasoning="thinking hard",
            tokens_per_second=100,
        )
    )
    r = k.run("%%deepseek\nSay hi", timeout=30)
    assert r.status == "ok"
    kinds = [m["msg_type"] for m in r.outputs]
    assert kinds[0] == "display_data" and "update_display_data" in kinds
    final = [m for m in r.outputs if m["msg_type"] == "update_display_data"][-1]["content"]["data"]
    assert "<strong>world</strong>" in final["text/html"] and "<table>" in final["text/html"]
    assert "thinking hard" in final["text/html"]  # collapsible thinking section
    assert "first token" in final["text/plain"] and "tok/s" in final["text/plain"]
    assert "execute_result" not in kinds  # the answer is not printed twice as Out[]
    after = k.run("print(repr(_)); print(_.status)", timeout=10)
    assert after.stdout.strip().endswith("ok") and "Hello **world**" in after.stdout


def test_cancel_click_closes_stream_keeps_partial_and_cell_is_ok(srv, k):
    srv.enqueue(Script(text="word " * 800, reasoning="", tokens_per_second=50))
    mid = k.execute("%%deepseek\nlong answer please")
    views = k.wait_for(lambda: open_live_views(k), 10)
    k.wait_for(lambda: srv.requests and srv.active == 1, 10)
    k.wait_for(lambda: shown(k, "word word"), 10, what="the first words in the live view")
    cancel(k, views[-1])  # the custom message the view's ■ Cancel button sends
    assert_closed_mid_stream(srv, srv.wait_for_disconnect(5))
    res = k.result(mid, 10)
    assert res.status == "ok"
    hist = k.run("%deepseek history", timeout=10).stdout
    assert "assistant (cancelled): word word" in hist
    nxt = k.run("print('next cell ran')", timeout=10)
    assert "next cell ran" in nxt.stdout


def test_interrupt_stops_stream_and_aborts_queue(srv, k):
    srv.enqueue(Script(text="word " * 800, reasoning="", tokens_per_second=50))
    mid = k.execute("%%deepseek\nlong answer please")
    k.wait_for(lambda: srv.active == 1, 10)
    k.wait_for(lambda: shown(k, "word word"), 10, what="the first words in the live view")
    k.interrupt()
    assert_closed_mid_stream(srv, srv.wait_for_disconnect(5))
    res = k.result(mid, 10)
    assert res.status == "error"
    k.wait_for(lambda: "cancelled" in history(k), 10, what="the cancelled turn in %deepseek history")


def test_run_all_order_next_cell_sees_complete_answer(srv, k):
    srv.enqueue(Script(text="the complete answer", reasoning="", ttft=0.3, tokens_per_second=30))
    a = k.execute("%%deepseek -o ans\nq")
    b = k.execute("print(repr(ans)); print(repr(_))")
    info = k.kernel_info()  # answered while the stream runs: nothing is dropped
    assert info["content"]["status"] == "ok"
    assert k.result(a, 20).status == "ok"
    out = k.result(b, 10).stdout
    assert out.count("the complete answer") == 2


def test_two_queued_turns_stored_in_order_and_history_sent(srv, k):
    srv.enqueue(
        Script(text="first answer", reasoning="", ttft=0.2), Script(text="second answer", reasoning="")
    )
    a = k.execute("%%deepseek\nfirst?")
    b = k.execute("%%deepseek\nsecond?")
    assert k.result(a, 20).status == "ok" and k.result(b, 20).status == "ok"
    msgs = srv.requests[-1].body["messages"]
    assert [m["content"] for m in msgs] == ["first?", "first answer", "second?"]


def test_iopub_budget_for_2000_tokens(srv, k):
    srv.enqueue(Script(answer_tokens=2000, reasoning="", tokens_per_second=100))  # a 20 s answer
    mark = k.mark()
    r = k.run("%%deepseek\nlong", timeout=60)
    assert r.status == "ok"
    updates = [m for m in k.all_iopub[mark:] if m["msg_type"] in ("comm_msg", "update_display_data")]
    assert len(updates) < 500  # updates merge tokens (per-token updates would be 2,000+)
    # Each update sends only what is new (stream_view.py): the bytes are O(answer), with ~150 bytes
    # of framing per update (issue 13's goal; benchmarks/iopub.py has the figures).
    final = [m for m in updates if m["msg_type"] == "update_display_data"][-1]["content"]["data"]
    answer = len(final["text/plain"].rsplit("\n— ", 1)[0].encode("utf-8"))
    assert k.iopub_bytes(mark) <= 4 * answer + 150 * len(updates) + 2_000  # + the input and status


HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "<svg onload=alert(1)>",
    "[click](javascript:alert(1))",
    "<iframe src=https://evil.example></iframe>",
]


def test_hostile_outputs_never_published_as_markup(srv, k):
    srv.enqueue(Script(text="\n\n".join(HOSTILE), reasoning="<img src=y onerror=alert(2)>"))
    mark = k.mark()
    assert k.run("%%deepseek\nx", timeout=30).status == "ok"
    text = published_text(k, mark)
    for bad in ("<img", "<script", "<svg", "<iframe", 'href="javascript:'):
        assert bad not in text
    assert "&lt;script&gt;" in text  # shown, escaped


def test_answer_that_is_a_url_or_a_path_is_never_fetched_or_read(srv, k, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    srv.enqueue(
        Script(text=f"{srv.url}/_fetched_by_kernel", reasoning=""), Script(text=str(secret), reasoning="")
    )
    mark = k.mark()
    assert k.run("%%deepseek\nurl", timeout=30).status == "ok"
    assert k.run("%%deepseek\npath", timeout=30).status == "ok"
    assert not any("_fetched_by_kernel" in r.path for r in srv.requests)
    assert "TOP-SECRET-CONTENT" not in published_text(k, mark)
    assert "TOP-SECRET-CONTENT" not in json.dumps([m["content"] for m in k.all_iopub[mark:]])


def test_api_error_is_one_line_and_cell_fails(srv, k):
    srv.enqueue(Script(status=401))
    r = k.run("%%deepseek\nx", timeout=30)
    assert r.status == "error"
    assert r.error.ename == "DeepSeekCellError"
    assert "DEEPSEEK_API_KEY" in r.error.evalue and "\n" not in r.error.evalue


def test_key_never_in_any_iopub_message(srv, k):
    srv.enqueue(Script(status=401))
    k.run("%%deepseek\nx", timeout=30)
    k.run("%deepseek config", timeout=10)
    k.run("%%deepseek --dry-run\nhello", timeout=10)
    assert KEY not in json.dumps([m["content"] for m in k.all_iopub])


def test_interpolation_and_braces_in_code(srv, k):
    k.run("topic = 'monads'; d = {'k': 'v'}", timeout=10)
    r = k.run(
        "%%deepseek --dry-run --no-history\nExplain {topic} {d['k']} {missing} {{x}} def f(): return {1: 2}",
        timeout=10,
    )
    assert r.status == "ok"
    body = json.loads(r.stdout)
    assert body["messages"][-1]["content"] == "Explain monads v {missing} {x} def f(): return {1: 2}"
    assert srv.requests == []


def test_json_mode_and_bad_option(srv, k):
    srv.enqueue(Script(text='{"a": [1, 2]}', reasoning=""))
    r = k.run("%%deepseek --json -o data\ngive json", timeout=30)
    assert r.status == "ok"
    assert k.run("print(data['a'])", timeout=10).stdout.strip() == "[1, 2]"
    assert srv.requests[-1].body["response_format"] == {"type": "json_object"}
    bad = k.run("%%deepseek -t 9\nx", timeout=10)
    assert bad.status == "error" and "temperature" in bad.error.evalue


def test_no_leaked_comms_or_tasks_after_many_cells(srv, k):
    for _ in range(50):
        srv.enqueue(Script(text="short", reasoning=""))
    for _ in range(50):
        assert k.run("%%deepseek --no-history\nhi", timeout=30).status == "ok"
    probe = (
        "import threading\nfrom ds_magic.engine import get_engine\nfrom ipywidgets import Widget\n"
        "print(get_engine().active_tasks, len(Widget.widgets), threading.active_count())"
    )

    def counts() -> list[int]:
        return list(map(int, k.run(probe, timeout=10).stdout.split()))

    # The last cell's tasks and views wind down just after it ends: wait for that, not a fixed time.
    # A leak never gets there and fails on the hang guard.
    tasks, widgets, threads = k.wait_for(
        lambda: (c := counts())[0] == 0 and c[1] < 10 and c, 10, what="no engine tasks, < 10 widgets"
    )
    assert tasks == 0
    assert widgets < 10  # every live view closed its widgets
    assert threads < 15


def test_background_mode_returns_at_once_and_cancel_all(srv, k):
    srv.enqueue(Script(text="word " * 800, reasoning="", tokens_per_second=50))
    r = k.run("%%deepseek --bg -o bg\nlong", timeout=10)
    assert r.status == "ok"
    k.wait_for(lambda: srv.active == 1, 10)
    k.run("%deepseek cancel-all", timeout=10)
    assert_closed_mid_stream(srv, srv.wait_for_disconnect(5))
    assert "cancelled" in k.run("bg.join(10); print(bg.status)", timeout=15).stdout


def test_unload_removes_everything(k):
    r = k.run(
        "%unload_ext ds_magic\n"
        "ip = get_ipython()\n"
        "print('deepseek' in ip.magics_manager.magics['cell'], '__ds_magic_run__' in ip.user_ns)",
        timeout=10,
    )
    assert r.stdout.split() == ["False", "False"]
    k.run("%load_ext ds_magic", timeout=10)
    assert k.run("%%deepseek --dry-run\nx", timeout=10).status == "ok"


def test_timing_is_right_while_another_cell_blocks_the_main_thread(srv, k):
    srv.enqueue(Script(text="word " * 60, reasoning="", ttft=0.3, tokens_per_second=50))
    assert k.run("%%deepseek --bg -o timed\nq", timeout=10).status == "ok"
    # The scenario, not a wait: a cell that blocks the kernel's main thread and loop for 2 s.
    k.run("import time; time.sleep(2.0)", timeout=10)
    out = k.run(
        "timed.wait(10); t = timed.timing; print(t.time_to_first_token, t.tokens_per_second)", timeout=15
    )
    ttft, tps = map(float, out.stdout.split())
    # Stamped on the engine thread as the events arrive, not when the blocked main thread looks: a
    # main-thread stamp would read a first token after the 2 s block and 60 tokens at once. The margins
    # are wide on purpose (a loaded machine delays reads; the server's pacing bounds them below).
    assert 0.25 <= ttft < 1.5
    assert 0 < tps < 200


def test_cache_flag_replays_without_a_request(srv, k):
    srv.enqueue(Script(text="cached answer text", reasoning=""))
    first = k.run("%%deepseek --cache --no-history\nsame question", timeout=30)
    assert first.status == "ok" and len(srv.requests) == 1
    second = k.run("%%deepseek --cache --no-history\nsame question", timeout=30)
    assert second.status == "ok" and len(srv.requests) == 1  # no HTTP request: replayed from disk
    final = [m for m in second.outputs if m["msg_type"] == "update_display_data"][-1]["content"]["data"]
    assert "cached answer text" in final["text/html"] and "cached" in final["text/plain"]
    assert k.run("print(_.cached)", timeout=10).stdout.strip() == "True"
    assert "entries: 1" in k.run("%deepseek cache stats", timeout=10).stdout
    k.run("%deepseek cache clear", timeout=10)
    assert "entries: 0" in k.run("%deepseek cache stats", timeout=10).stdout


def test_each_runs_a_template_over_a_list_in_order(srv, k):
    k.run("langs = ['French', 'German', 'Polish']", timeout=10)
    r = k.run("%%deepseek --each langs -o res --no-thinking\nSay hello in {item}.", timeout=60)
    assert r.status == "ok"
    # The batch's progress view (registered by the extension), replaced at the end by its static line.
    shown = [m["content"]["data"] for m in r.outputs if m["msg_type"] == "display_data"]
    assert any("application/vnd.jupyter.widget-view+json" in d for d in shown)
    final = [m["content"]["data"] for m in r.outputs if m["msg_type"] == "update_display_data"]
    assert final and final[-1]["text/plain"].startswith("batch 3/3 done")
    out = k.run("print([x.status for x in res.responses]); print(len(res.texts))", timeout=30).stdout.split(
        "\n"
    )
    assert out[0] == "['ok', 'ok', 'ok']" and out[1] == "3"
    prompts = sorted(req.body["messages"][-1]["content"] for req in srv.requests)
    assert prompts == ["Say hello in French.", "Say hello in German.", "Say hello in Polish."]
    assert all(len(req.body["messages"]) == 1 for req in srv.requests)  # no history for a batch
    bad = k.run("%%deepseek --each nothing_here\n{item}", timeout=10)
    assert bad.status == "error" and "nothing_here" in bad.error.evalue


def test_stats_line_magic(srv, k):
    srv.enqueue(Script(text="x", reasoning=""))
    k.run("%%deepseek --no-history\nq", timeout=30)
    out = k.run("%deepseek stats", timeout=30)
    assert out.status == "ok" and "requests:" in out.stdout


def test_interrupt_while_idle_stops_background_stream(srv, k):
    srv.enqueue(Script(text="word " * 800, reasoning="", tokens_per_second=50))
    assert k.run("%%deepseek --bg -o bg2 --no-history\nlong", timeout=10).status == "ok"
    k.wait_for(lambda: srv.active == 1, 10)
    # k.run returned after the kernel's idle status, and a cell that ran since has ended too: the
    # kernel is idle while words arrive, so SIGINT would be ignored without our hook.
    k.wait_for(lambda: "True" in k.run("print('word' in bg2.text_so_far)").stdout, 10, what="bg2's words")
    k.interrupt()
    assert_closed_mid_stream(srv, srv.wait_for_disconnect(5))
    assert "cancelled" in k.run("bg2.join(10); print(bg2.status)", timeout=15).stdout


def test_dry_run_prints_exactly_the_body_that_is_then_sent(srv, k):
    srv.enqueue(Script(text='{"n": 1}', reasoning=""), Script(text='{"n": 2}', reasoning=""))
    cell = "%%deepseek -c dry -t 0.5 --max-tokens 300 --stop END --json -s 'Be brief.'\n"
    assert k.run(cell + "first json?", timeout=30).status == "ok"
    dry = k.run(cell.replace("%%deepseek", "%%deepseek --dry-run") + "second json?", timeout=10)
    assert dry.status == "ok" and len(srv.requests) == 1  # a dry run sends nothing
    assert k.run(cell + "second json?", timeout=30).status == "ok"
    assert json.loads(dry.stdout) == srv.requests[-1].body  # the history and every parameter
    sent = srv.requests[-1].body
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user"]
    assert sent["temperature"] == 0.5 and sent["response_format"] == {"type": "json_object"}


def test_timeout_error_says_how_to_raise_it(srv, k):
    srv.enqueue(Script(text="half an answer " * 20, reasoning="", fault="stall", fault_after=6))
    k.run("%config DeepSeekMagics.timeout = 0.8", timeout=10).raise_for_error()
    try:
        r = k.run("%%deepseek --no-history\nslow", timeout=30)
    finally:
        k.run("%config DeepSeekMagics.timeout = None", timeout=10).raise_for_error()
    assert r.status == "error" and r.error.ename == "DeepSeekCellError"
    assert "Timed out" in r.error.evalue and "%config DeepSeekMagics.timeout" in r.error.evalue
    assert "Client(timeout" not in r.error.evalue and "\n" not in r.error.evalue


def test_missing_key_says_how_to_set_one_in_the_notebook(srv, kernel_factory):
    k = kernel_factory(env={"DEEPSEEK_API_KEY": None, "DEEPSEEK_BASE_URL": srv.url})
    r = k.run("%%deepseek\nhello", timeout=30)
    assert r.status == "error" and r.error.ename == "DeepSeekCellError"
    assert "No DeepSeek API key" in r.error.evalue
    assert "DEEPSEEK_API_KEY" in r.error.evalue and "%deepseek key" in r.error.evalue
    assert "Client(api_key" not in r.error.evalue
    assert k.run("%%deepseek --dry-run\nhello", timeout=10).status == "ok"  # a dry run needs no key
    assert srv.requests == []


def test_import_of_a_hostile_file_fails_the_cell_in_one_line_and_stores_nothing(srv, k, tmp_path):
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    turns = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "tool_calls": call},  # an object, not a list of them
        {"role": "tool", "tool_call_id": "c1", "content": "r"},
        {"role": "assistant", "content": "a"},
    ]
    doc = {
        "format": "ds_magic.conversations",
        "version": 1,
        "conversations": [{"name": "evil", "turns": turns}],
    }
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(120 * 1000 * 1000)  # sparse: refused before anything is read
    expected = {
        bad: "conversations[0].turns[1].tool_calls: must be a list of tool calls, not an object",
        deep: "nested too deeply to read",
        big: "the file is 114.4 MiB, more than the 32.0 MiB an import reads (--max-mb N raises the cap)",
    }
    for path, message in expected.items():
        r = k.run(f"%deepseek import {path}", timeout=30)
        assert r.status == "error" and r.error.ename == "DeepSeekCellError", r.error
        assert r.error.evalue.startswith(f"Could not import {path}: ") and message in r.error.evalue
        assert "\n" not in r.error.evalue and "Traceback" not in r.stdout + r.stderr
    assert "evil" not in k.run("%deepseek chats", timeout=10).stdout
    small = k.run(f"%deepseek import {bad} --max-mb 0.0001", timeout=30)
    assert (
        small.status == "error" and "more than the 0.0 MiB an import reads (--max-mb N" in small.error.evalue
    )
    # The same conversation, well formed: it imports, and its next request is accepted.
    turns[1]["tool_calls"] = [call]
    bad.write_text(json.dumps(doc))
    assert k.run(f"%deepseek import {bad}", timeout=30).stdout.strip() == "Imported: evil"
    srv.enqueue(Script(text="fine", reasoning=""))
    assert k.run("%%deepseek -c evil\nnext", timeout=30).status == "ok"
    sent = srv.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "assistant", "user"]
