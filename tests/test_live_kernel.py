"""The live view as a frontend receives it (issue 13): bytes, comms, fallback text, the stopped footer.

A real kernel against the offline server; every assertion reads iopub messages. The byte goals are
ratios of sizes, not times (the figures at several speeds are benchmarks/iopub.py's).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from live_helpers import FRAMING, cancel, cell_traffic, custom_messages, replay, stream_widget_ids

from ds_magic.testing import Script

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from iopub import markdown_answer  # noqa: E402

pytestmark = pytest.mark.kernel

ANSWER = markdown_answer(20_000, tokens=4_000)  # ~15 KB of headings, paragraphs, lists, code, tables


@pytest.fixture
def k(module_kernel):
    return module_kernel


@pytest.fixture(autouse=True)
def fresh(srv, k):
    srv.reset()
    k.run("%deepseek reset", timeout=10)


def body_of(static_html: str) -> str:
    """The answer's part of the static output: what is inside the Markdown container."""
    m = re.search(r'<div class="ds-md">(.*)</div><div class="ds-notes"', static_html, re.S)
    assert m, static_html[:500]
    return m.group(1)


def test_live_bytes_are_linear_in_the_answer_and_one_model_per_cell(srv, k):
    srv.enqueue(Script(text=ANSWER, reasoning="", tokens_per_second=2000))
    mark = k.mark()
    assert k.run("%%deepseek\nexplain", timeout=60).status == "ok"
    t = cell_traffic(k, mark)
    n = len(ANSWER.encode("utf-8"))
    allowance = FRAMING * t["updates"]
    assert t["live"] <= 1.5 * n + allowance, t
    assert t["total"] <= 4 * n + allowance, t
    assert t["opens"] == 1 and t["closes"] == 1  # one model, no Layout; closed at the end
    # What the page showed (the messages applied as stream_widget.js applies them) is the start of
    # what the static output shows: the same blocks, so nothing re-renders differently at the end.
    [wid] = stream_widget_ids(k, mark)
    msgs = custom_messages(k, mark, wid)
    page = replay(msgs)
    body = body_of(t["final"]["text/html"])
    assert body.startswith("".join(page["blocks"])) and page["blocks"][0].startswith("<h2>Part 1</h2>")
    # Complete blocks went once each and the tail as diffs: the HTML sent is about the HTML shown.
    sent = sum(len(m.get("b", "")) + len(m.get("t", "")) for m in msgs)
    assert sent <= 1.2 * len(body), (sent, len(body))


def test_thinking_is_sent_as_appended_text(srv, k):
    reasoning = markdown_answer(20_000, tokens=4_000)
    srv.enqueue(Script(text="Short answer.", reasoning=reasoning, tokens_per_second=2000))
    mark = k.mark()
    assert k.run("%%deepseek\nthink", timeout=60).status == "ok"
    t = cell_traffic(k, mark)
    n = len((reasoning + "Short answer.").encode("utf-8"))
    assert t["live"] <= 1.5 * n + FRAMING * t["updates"], t
    page = replay(custom_messages(k, mark, stream_widget_ids(k, mark)[0]))
    # As text, each character once (the last few may come only with the static output).
    assert reasoning.startswith(page["reasoning"]) and len(page["reasoning"]) > len(reasoning) / 2
    assert "Thinking" in t["final"]["text/html"] and "Short answer." in t["final"]["text/plain"]


def test_plain_text_fallback_is_the_answer_not_a_widget_repr(srv, k):
    srv.enqueue(Script(text="Paris is the capital.", reasoning="", ttft=0.3))
    mark = k.mark()
    assert k.run("%%deepseek\ncapital of France?", timeout=30).status == "ok"
    t = cell_traffic(k, mark)
    live_plain = t["first_display"]["text/plain"]
    assert "Widget" not in live_plain and "object at 0x" not in live_plain and "VBox" not in live_plain
    assert live_plain in ("waiting for the first token…", "Paris is the capital.")  # the answer so far
    assert t["final"]["text/plain"].startswith("Paris is the capital.\n— ")


def test_first_token_is_sent_without_waiting_for_the_throttle(srv, k):
    # With a 5 s throttle, anything but an immediate first update would carry many tokens.
    k.run("%config DeepSeekMagics.throttle_ms = 5000", timeout=10)
    try:
        srv.enqueue(
            Script(text="alpha beta gamma delta epsilon zeta eta theta", reasoning="", tokens_per_second=20)
        )
        mark = k.mark()
        assert k.run("%%deepseek\ngreek letters", timeout=30).status == "ok"
    finally:
        k.run("%config DeepSeekMagics.throttle_ms = 100", timeout=10)
    first = next(m for m in custom_messages(k, mark) if m.get("t") or m.get("b"))
    assert first.get("t") == "<p>alpha</p>" and "b" not in first


def test_cancel_from_the_page_stops_and_the_footer_estimates_the_cost(srv, k):
    srv.enqueue(Script(text="word " * 2000, reasoning="", tokens_per_second=100))
    mark = k.mark()
    mid = k.execute("%%deepseek\nlong answer please")
    wid = k.wait_for(lambda: (stream_widget_ids(k, mark) or [None])[0], 10)
    k.wait_for(lambda: any("word" in (m.get("t") or "") for m in custom_messages(k, mark, wid)), 10)
    k.comm_msg(wid, {"method": "custom", "content": {"event": "cancel"}})  # what ■ Cancel sends
    assert srv.wait_for_disconnect(10) is not None
    res = k.result(mid, 20)
    assert res.status == "ok"
    final = cell_traffic(k, mark)["final"]
    foot = final["text/plain"].rsplit("— ", 1)[1]
    assert "cancelled" in foot and "estimated (prompt ≈" in foot and "$" in foot, foot
    assert "received" in final["text/html"]
    assert "assistant (cancelled): word" in k.run("%deepseek history", timeout=10).stdout


def test_a_page_drawn_late_gets_the_whole_state_once(srv, k):
    srv.enqueue(
        Script(text="First paragraph.\n\nSecond " + "word " * 300, reasoning="", tokens_per_second=100)
    )
    mark = k.mark()
    mid = k.execute("%%deepseek\ntwo paragraphs")
    wid = k.wait_for(lambda: (stream_widget_ids(k, mark) or [None])[0], 10)
    k.wait_for(lambda: any(m.get("b") for m in custom_messages(k, mark, wid)), 10)
    k.comm_msg(wid, {"method": "custom", "content": {"event": "sync"}})  # what a new view sends
    full = k.wait_for(lambda: next((m for m in custom_messages(k, mark, wid) if m.get("full")), None), 10)
    assert full["b"] == "<p>First paragraph.</p>" and "p" not in full
    assert full["t"].startswith("<p>Second word")
    k.comm_msg(wid, {"method": "custom", "content": {"event": "cancel"}})
    k.result(mid, 20)
    msgs = custom_messages(k, mark, wid)
    after = msgs[msgs.index(full) :]
    assert replay(after)["tail"].startswith("<p>Second word")  # the page goes on from the full state


def test_a_plain_text_answer_is_appended_text(srv, k):
    srv.enqueue(Script(text="<b>not bold</b> & more", reasoning="", tokens_per_second=20))
    mark = k.mark()
    assert k.run("%%deepseek --format text\nraw", timeout=30).status == "ok"
    page = replay(custom_messages(k, mark))
    assert "<b>not bold</b> & more".startswith(page["text"]) and page["text"] and not page["blocks"]
    assert "&lt;b&gt;not bold&lt;/b&gt; &amp; more" in cell_traffic(k, mark)["final"]["text/html"]


def test_each_cell_carries_a_small_loader_and_the_code_goes_to_a_page_that_asks(srv, k):
    srv.enqueue(Script(text="word " * 200, reasoning="", tokens_per_second=100))
    mark = k.mark()
    mid = k.execute("%%deepseek\nsome words")
    wid = k.wait_for(lambda: (stream_widget_ids(k, mark) or [None])[0], 10)
    [opened] = [m for m in k.all_iopub[mark:] if m["msg_type"] == "comm_open"]
    esm = opened["content"]["data"]["state"]["_esm"]
    assert len(esm) < 1_200 and 'send({ event: "code" })' in esm  # the loader, not the view
    k.comm_msg(wid, {"method": "custom", "content": {"event": "code"}})  # what the loader sends
    code = k.wait_for(
        lambda: next((m["code"] for m in custom_messages(k, mark, wid) if "code" in m), None), 10
    )
    assert "export default { initialize, render }" in code and "insertAdjacentHTML" in code
    cancel(k, wid)
    k.result(mid, 20)
