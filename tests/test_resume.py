"""Resume after a mid-stream drop, through real sockets to the offline server.

The server implements chat prefix completion on /beta (deepseek-api.md §4.3): given the partial
answer as a last ``assistant`` message with ``prefix: true`` it continues from exactly there, so a
resumed answer must equal the undisturbed one character for character.
"""

from __future__ import annotations

import pytest
from offline_helpers import KEY, Sleeps, wait_until

from ds_magic import Client, RetryPolicy, StreamInterruptedError
from ds_magic.conversation import Conversation
from ds_magic.jupyter.render import format_footer
from ds_magic.pricing import estimate_cost
from ds_magic.testing import OfflineServer, Script, split_tokens

TEXT = (
    "Resuming is stitching: the first part arrived, the connection broke, and the rest must follow "
    "with no word twice and none missing. Ünïcödé and 中文 too, and a final sentence."
)
REASONING = "First I think about the question. Then I think a little more. Then I answer."


def make_client(srv: OfflineServer, **kw) -> Client:
    retry = RetryPolicy(max_retries=kw.pop("max_retries", 2), sleep=Sleeps(), random=lambda: 0.0)
    return Client(api_key=KEY, base_url=srv.url, retry=retry, **kw)


@pytest.mark.parametrize("fault", ["drop", "eof_no_done"])
@pytest.mark.parametrize("after", [2, 7, 20])
def test_dropped_stream_is_resumed_and_stitched_exactly(srv, fault, after):
    srv.enqueue(
        Script(text=TEXT, reasoning="", fault=fault, fault_after=after), Script(text=TEXT, reasoning="")
    )
    resp = make_client(srv).chat("tell me")
    assert resp.text == TEXT
    assert resp.status == "ok" and resp.error is None
    assert resp.resumes == 1
    first, second = srv.requests
    assert first.path == "/chat/completions" and second.path == "/beta/chat/completions"
    last = second.body["messages"][-1]
    assert last["role"] == "assistant" and last["prefix"] is True
    assert TEXT.startswith(last["content"]) and 0 < len(last["content"]) < len(TEXT)
    # Everything before the prefix message is the original request, unchanged.
    assert second.body["messages"][:-1] == first.body["messages"]
    assert "resumed ×1" in format_footer(ttft=0.1, tokens=3, tokens_per_second=None, elapsed=None, resumes=1)


def test_status_line_and_events_say_it_resumed(srv):
    srv.enqueue(Script(text=TEXT, reasoning="", fault="drop", fault_after=5), Script(text=TEXT, reasoning=""))
    resp = make_client(srv).chat("tell me")
    events = list(resp)
    statuses = [e.message for e in events if e.kind == "status"]
    assert any("resuming (1 of 2)" in m for m in statuses), statuses
    assert "".join(e.text for e in events if e.kind == "answer") == TEXT


def test_a_server_that_repeats_the_prefix_is_stitched_without_duplicates(srv):
    pieces = split_tokens(TEXT)
    # fault_after counts the role chunk: 10 events = the role chunk + 9 pieces of text.
    partial = "".join(pieces[:9])
    assert len(partial) >= 8
    # This server's continuation starts by repeating the prefix (the doc says: verify, cope with either).
    srv.enqueue(
        Script(text=TEXT, reasoning="", fault="drop", fault_after=10),
        Script(text=partial + TEXT, reasoning=""),  # minus the prefix the server strips: partial + rest
    )
    resp = make_client(srv).chat("tell me")
    assert resp.text == TEXT
    assert srv.requests[1].body["messages"][-1]["content"] == partial


def test_drop_during_reasoning_resumes_the_reasoning_then_the_answer(srv):
    srv.enqueue(
        Script(text=TEXT, reasoning=REASONING, fault="drop", fault_after=4),
        Script(text=TEXT, reasoning=REASONING),
    )
    resp = make_client(srv).chat("think first")
    assert resp.text == TEXT
    assert resp.reasoning == REASONING
    last = srv.requests[1].body["messages"][-1]
    assert last["content"] == "" and REASONING.startswith(last["reasoning_content"])


def test_drop_during_answer_in_thinking_mode_keeps_one_reasoning(srv):
    srv.enqueue(
        Script(text=TEXT, reasoning=REASONING, fault="drop", fault_after=len(split_tokens(REASONING)) + 6),
        Script(text=TEXT, reasoning="Some other thought the resumed request had."),
    )
    resp = make_client(srv).chat("think first")
    assert resp.text == TEXT
    assert resp.reasoning == REASONING  # the resumed request's reasoning is not appended
    assert "reasoning_content" not in srv.requests[1].body["messages"][-1]


def test_at_most_n_resumes_then_interrupted_with_everything_kept(srv):
    drops = [Script(text=TEXT, reasoning="", fault="drop", fault_after=6) for _ in range(3)]
    srv.enqueue(*drops)
    resp = make_client(srv, resume=2).chat("tell me")
    with pytest.raises(StreamInterruptedError, match="after 2 resumes") as info:
        resp.wait()
    assert resp.status == "interrupted"
    assert resp.resumes == 2
    assert len(srv.requests) == 3
    # Three partial pieces stitched in order: still a prefix of the real answer, nothing repeated.
    assert TEXT.startswith(resp.text) and len(resp.text) > len(
        srv.requests[1].body["messages"][-1]["content"]
    )
    assert "connection" in str(info.value)


def test_resume_off_keeps_partial_and_says_so(srv):
    srv.enqueue(Script(text=TEXT, reasoning="", fault="drop", fault_after=6))
    resp = make_client(srv, resume=0).chat("tell me")
    with pytest.raises(StreamInterruptedError, match="not resumed: resume is off"):
        resp.wait()
    assert resp.status == "interrupted" and TEXT.startswith(resp.text) and resp.text
    assert len(srv.requests) == 1


def test_failed_resume_request_keeps_partial_marked_interrupted(srv):
    srv.enqueue(Script(text=TEXT, reasoning="", fault="drop", fault_after=6), Script(status=400))
    resp = make_client(srv).chat("tell me")
    with pytest.raises(StreamInterruptedError, match="resuming failed"):
        resp.wait()
    assert resp.status == "interrupted"
    assert resp.text and TEXT.startswith(resp.text)


def test_tool_call_stream_is_not_resumed(srv):
    srv.enqueue(
        Script(
            text="",
            reasoning="",
            tool_calls=[{"name": "lookup", "arguments": '{"query": "a long enough argument string"}'}],
            fault="drop",
            fault_after=5,
        )
    )
    resp = make_client(srv).chat("use the tool")
    with pytest.raises(StreamInterruptedError, match="cannot continue a tool call"):
        resp.wait()
    assert len(srv.requests) == 1


def test_resumed_cost_is_not_lower_than_an_undisturbed_answer(srv):
    srv.enqueue(Script(text=TEXT, reasoning=""))
    clean = make_client(srv).chat("tell me")
    clean.wait()
    srv.enqueue(
        Script(text=TEXT, reasoning="", fault="drop", fault_after=12), Script(text=TEXT, reasoning="")
    )
    resumed = make_client(srv).chat("tell me")
    resumed.wait()
    assert resumed.usage is not None and clean.usage is not None
    assert resumed.usage.completion_tokens >= clean.usage.completion_tokens
    assert resumed.usage.prompt_tokens > clean.usage.prompt_tokens  # the prompt was billed twice
    c1, c2 = estimate_cost(clean.model, clean.usage), estimate_cost(resumed.model, resumed.usage)
    assert c1 is not None and c2 is not None and c2.usd > c1.usd


def test_cancel_while_resuming_closes_the_socket(srv):
    srv.enqueue(
        Script(text=TEXT, reasoning="", fault="drop", fault_after=6),
        Script(text=TEXT, reasoning="", ttft=5.0, keepalives=10),  # the resume waits for its first token
    )
    resp = make_client(srv).chat("tell me")
    assert wait_until(lambda: len(srv.requests) == 2, 5)
    partial = resp.text_so_far
    resp.cancel()
    gone = srv.wait_for_disconnect(2)
    assert gone is not None and gone.request_index == srv.requests[1].index
    # Closed while the resume still waited out its 5 s ttft: nothing sent, nothing completed.
    assert gone.chunks_sent == 0 and gone.request_index not in srv.completed, gone
    assert resp.text == partial and resp.status == "cancelled"


def test_conversation_stores_the_stitched_answer(srv):
    srv.enqueue(Script(text=TEXT, reasoning="", fault="drop", fault_after=8), Script(text=TEXT, reasoning=""))
    conv = Conversation("resume")
    resp = make_client(srv).chat("tell me", conversation=conv)
    resp.wait()  # the exchange is stored before the response reports done
    assert conv.turns[-1].role == "assistant" and conv.turns[-1].content == TEXT


def test_notebook_shows_the_resume_in_the_footer_and_records_it(srv, kernel_factory):
    k = kernel_factory(env={"DEEPSEEK_API_KEY": KEY, "DEEPSEEK_BASE_URL": srv.url})
    srv.enqueue(
        Script(text=TEXT, reasoning="", fault="drop", fault_after=8, tokens_per_second=200),
        Script(text=TEXT, reasoning="", tokens_per_second=200),
    )
    mark = k.mark()
    assert k.run("%%deepseek -o ans\ntell me", timeout=30).status == "ok"
    finals = [m for m in k.all_iopub[mark:] if m["msg_type"] == "update_display_data"]
    assert finals and "resumed ×1" in finals[-1]["content"]["data"]["text/plain"]
    statuses = str([m["content"] for m in k.all_iopub[mark:] if m["msg_type"] == "comm_msg"])
    assert "resumed ×1" in statuses  # the live status line said so
    code = f"import ds_magic; print(ans.text == {TEXT!r}, ds_magic.stats()['resumes'])"
    out = k.run(code, timeout=10).stdout
    assert out.split() == ["True", "1"]
