"""The client through real sockets to the offline server: streaming, errors, retries, timeouts, cancel."""

from __future__ import annotations

import asyncio
import threading

import pytest
from offline_helpers import KEY, Sleeps, wait_until

import ds_magic
from ds_magic import (
    AnswerDelta,
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    Client,
    Finish,
    InsufficientBalanceError,
    MissingAPIKeyError,
    RateLimitError,
    ReasoningDelta,
    RetryPolicy,
    ServerError,
    StatusEvent,
    StreamDecodeError,
    StreamError,
    StreamInterruptedError,
    Timeout,
    UsageEvent,
)
from ds_magic.engine import get_engine
from ds_magic.testing import OfflineServer, Script


def make_client(srv: OfflineServer, sleeps: Sleeps | None = None, **kw) -> Client:
    retry = RetryPolicy(max_retries=kw.pop("max_retries", 2), sleep=sleeps or Sleeps(), random=lambda: 0.0)
    return Client(api_key=KEY, base_url=srv.url, retry=retry, **kw)


def test_thinking_stream_text_reasoning_usage_timing(srv):
    srv.enqueue(Script(text="Paris is the capital.", reasoning="The user asks about France."))
    resp = make_client(srv).chat("Capital of France?")
    assert resp.text == "Paris is the capital."
    assert resp.reasoning == "The user asks about France."
    assert resp.status == "ok"
    assert resp.finish_reason == "stop"
    assert resp.usage is not None and resp.usage.completion_tokens > 0
    assert resp.usage.reasoning_tokens > 0
    t = resp.timing
    assert t.total is not None and t.time_to_first_token is not None
    assert t.time_to_first_answer_token is not None and t.time_to_first_answer_token >= t.time_to_first_token
    body = srv.requests[-1].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [{"role": "user", "content": "Capital of France?"}]
    assert body["model"] == "deepseek-flash"


def test_events_are_typed_and_ordered(srv):
    srv.enqueue(Script(text="one two three four", reasoning="think think"))
    events = list(make_client(srv).chat("x"))
    kinds = [type(e) for e in events]
    assert kinds[-1] is Finish and events[-1].status == "ok" and events[-1].reason == "stop"
    first_answer = kinds.index(AnswerDelta)
    assert all(k is not ReasoningDelta for k in kinds[first_answer:])
    assert "".join(e.text for e in events if isinstance(e, AnswerDelta)) == "one two three four"
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "think think"
    assert any(isinstance(e, UsageEvent) for e in events)


def test_non_thinking_and_params_sent(srv):
    srv.enqueue(Script(text="plain"))
    resp = make_client(srv).chat(
        [{"role": "user", "content": "hi"}],
        model="deepseek-v4-pro",
        thinking=False,
        temperature=0.2,
        max_tokens=50,
        stop=["END"],
        reasoning_effort="high",
        system="be brief",
    )
    assert resp.text == "plain"
    assert resp.reasoning == ""
    body = srv.requests[-1].body
    assert body["thinking"] == {"type": "disabled"}
    assert body["temperature"] == 0.2 and body["max_tokens"] == 50 and body["stop"] == "END"
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert body["model"] == "deepseek-v4-pro"


def test_bad_parameters_fail_before_sending(srv):
    client = make_client(srv)
    with pytest.raises(ValueError, match="temperature"):
        client.chat("x", temperature=5)
    with pytest.raises(ValueError, match="max_tokens"):
        client.chat("x", max_tokens=0)
    with pytest.raises(ValueError, match="messages"):
        client.chat([{"content": "no role"}])
    assert srv.requests == []


def test_async_iteration_and_await_inside_running_loop(srv):
    srv.enqueue(Script(text="async works fine", reasoning=""))
    client = make_client(srv)

    async def main():
        resp = client.chat("x")
        pieces = [e.text async for e in resp if isinstance(e, AnswerDelta)]
        again = await client.chat("y")
        return "".join(pieces), again

    text, again = asyncio.run(main())
    assert text == "async works fine"
    assert again.status == "ok" and again.text


def test_openai_style_trailing_usage_chunk(srv):
    srv.enqueue(Script(text="hello there", usage_style="openai"))
    resp = make_client(srv).chat("x")
    assert resp.text == "hello there"
    assert resp.usage is not None and resp.usage.completion_tokens > 0


def test_missing_key_says_how_to_set_it(monkeypatch):
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="DEEPSEEK_API_KEY"):
        Client()


@pytest.mark.parametrize(
    "status, exc",
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, InsufficientBalanceError),
        (422, BadRequestError),
    ],
)
def test_error_statuses_are_not_retried(srv, status, exc):
    srv.enqueue(Script(status=status))
    resp = make_client(srv).chat("x")
    with pytest.raises(exc) as info:
        resp.wait()
    assert info.value.status_code == status
    assert "\n" not in str(info.value)
    assert resp.status == "error" and resp.retries == 0
    assert len(srv.requests) == 1


def test_unknown_model_is_a_clear_bad_request(srv):
    resp = make_client(srv).chat("x", model="deepseek-nope")
    with pytest.raises(BadRequestError, match="Model Not Exist"):
        resp.wait()


def test_wrong_key_401_message_says_what_to_do_and_hides_key(srv):
    secret = "sk-wrongwrongwrongwrong1234"
    with OfflineServer(api_key=KEY) as strict:
        client = Client(api_key=secret, base_url=strict.url, max_retries=0)
        resp = client.chat("x")
        with pytest.raises(AuthenticationError) as info:
            resp.wait()
    msg = str(info.value)
    assert "DEEPSEEK_API_KEY" in msg
    assert secret not in msg and secret not in repr(client) and secret not in repr(resp)
    assert secret not in str(resp.to_dict())


def test_429_then_success_retries_with_backoff(srv):
    sleeps = Sleeps()
    srv.enqueue(Script(status=429), Script(status=429), Script(text="finally"))
    resp = make_client(srv, sleeps).chat("x")
    statuses = [e.message for e in resp if isinstance(e, StatusEvent)]
    assert resp.text == "finally"
    assert resp.retries == 2
    assert sleeps.delays == [1.0, 2.0]  # 1 s then 2 s (jitter pinned by random=0)
    assert any("429" in s for s in statuses)
    assert len(srv.requests) == 3


def test_429_gives_up_after_max_retries(srv):
    srv.enqueue(*[Script(status=429)] * 3)
    resp = make_client(srv).chat("x")
    with pytest.raises(RateLimitError):
        resp.wait()
    assert resp.retries == 2 and len(srv.requests) == 3


def test_500_three_times_gives_server_error(srv):
    srv.enqueue(*[Script(status=500)] * 3)
    resp = make_client(srv).chat("x")
    with pytest.raises(ServerError):
        resp.wait()
    assert len(srv.requests) == 3


def test_503_retry_after_seconds_is_honoured(srv):
    sleeps = Sleeps()
    srv.enqueue(Script(status=503, headers={"Retry-After": "7"}), Script(text="ok"))
    resp = make_client(srv, sleeps).chat("x")
    assert resp.text == "ok"
    assert sleeps.delays == [7.0]


def test_retry_after_ms_wins_and_too_long_means_no_retry(srv):
    sleeps = Sleeps()
    srv.enqueue(Script(status=429, headers={"retry-after-ms": "250", "Retry-After": "9"}), Script(text="ok"))
    assert make_client(srv, sleeps).chat("x").text == "ok"
    assert sleeps.delays == [0.25]
    srv.reset()
    sleeps2 = Sleeps()
    srv.enqueue(Script(status=429, headers={"Retry-After": "600"}), Script(text="never"))
    resp = make_client(srv, sleeps2).chat("x")
    with pytest.raises(RateLimitError):
        resp.wait()
    assert sleeps2.delays == [] and len(srv.requests) == 1


def test_html_error_page_is_reported_not_decoded(srv):
    srv.enqueue(*[Script(status=502, fault="html_error")] * 3)
    resp = make_client(srv).chat("x")
    with pytest.raises(ServerError, match="HTML page"):
        resp.wait()


def test_html_page_with_200_is_a_clear_error(srv):
    srv.enqueue(Script(status=200, fault="html_error"))
    resp = make_client(srv).chat("x")
    with pytest.raises(StreamDecodeError, match="text/html"):
        resp.wait()


def test_connection_refused_is_retried_then_reported():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    sleeps = Sleeps()
    client = Client(
        api_key=KEY, base_url=f"http://127.0.0.1:{port}", retry=RetryPolicy(sleep=sleeps, random=lambda: 0.0)
    )
    resp = client.chat("x")
    with pytest.raises(APIConnectionError, match="DEEPSEEK_BASE_URL"):
        resp.wait()
    assert sleeps.delays == [1.0, 2.0]


def test_drop_mid_stream_keeps_partial_and_is_not_retried(srv):
    srv.enqueue(Script(text="alpha beta gamma delta epsilon zeta", reasoning="", fault="drop", fault_after=4))
    resp = make_client(srv, resume=0).chat("x")  # resuming is tests/test_resume.py
    with pytest.raises(StreamInterruptedError, match="not resumed: resume is off") as info:
        resp.wait()
    assert resp.status == "interrupted"
    assert resp.text_so_far and "alpha beta gamma delta epsilon zeta".startswith(resp.text_so_far)
    assert info.value.partial == resp.text_so_far
    assert len(srv.requests) == 1


def test_eof_without_done_is_an_interruption(srv):
    srv.enqueue(Script(text="alpha beta gamma delta", reasoning="", fault="eof_no_done", fault_after=3))
    resp = make_client(srv, resume=0).chat("x")
    with pytest.raises(StreamInterruptedError, match="DONE"):
        resp.wait()
    assert resp.text_so_far


def test_malformed_json_raises_decode_error_with_raw(srv):
    srv.enqueue(Script(text="alpha beta", reasoning="", fault="malformed_json", fault_after=2))
    resp = make_client(srv).chat("x")
    with pytest.raises(StreamDecodeError) as info:
        resp.wait()
    assert "broken" in info.value.raw


def test_inband_error_object_raises(srv):
    srv.enqueue(Script(text="alpha beta", reasoning="", fault="inband_error", fault_after=2))
    resp = make_client(srv).chat("x")
    with pytest.raises(StreamError):
        resp.wait()
    assert resp.text_so_far


def test_utf8_split_across_writes(srv):
    text = "naïve café — 北京 🎉 done"
    srv.enqueue(Script(text=text, reasoning="", fault="split_utf8"))
    assert make_client(srv).chat("x").text == text


def test_first_token_deadline_ignores_keepalives(srv):
    srv.enqueue(Script(text="late", ttft=10, keepalives=40, keepalive_interval=0.05))
    client = make_client(srv, timeout=Timeout(first_token=0.5), max_retries=0)
    resp = client.chat("x")
    with pytest.raises(APITimeoutError) as info:
        resp.wait(5)
    # The 0.5 s first-token deadline fired although keep-alives kept coming: had they reset it, the
    # answer would have arrived after the 10 s ttft and no error would be raised.
    assert info.value.kind == "first_token"
    assert "queued" in resp.status_message
    d = srv.wait_for_disconnect(2)
    assert d is not None and d.chunks_sent == 0


def test_idle_deadline_fires_on_stall_with_keepalives_and_keeps_partial(srv):
    srv.enqueue(
        Script(
            text="one two three four five six",
            reasoning="",
            fault="stall_keepalive",
            fault_after=3,
            keepalive_interval=0.05,
        )
    )
    client = make_client(srv, timeout=Timeout(idle=0.5), max_retries=0)
    resp = client.chat("x")
    with pytest.raises(APITimeoutError) as info:
        resp.wait()
    assert info.value.kind == "idle"
    assert resp.status == "interrupted"
    assert info.value.partial == resp.text_so_far and resp.text_so_far


def test_total_deadline(srv):
    srv.enqueue(Script(text="slow " * 200, reasoning="", tokens_per_second=50))
    client = make_client(srv, timeout=Timeout(total=0.5), max_retries=0)
    resp = client.chat("x")
    with pytest.raises(APITimeoutError) as info:
        resp.wait()
    assert info.value.kind == "total"
    assert resp.text_so_far


def test_cancel_mid_stream_closes_socket_fast_and_keeps_partial(srv):
    srv.enqueue(Script(text="word " * 400, reasoning="", tokens_per_second=50))
    resp = make_client(srv).chat("x")
    for ev in resp:
        if isinstance(ev, AnswerDelta) and len(resp.text_so_far) > 20:
            break
    resp.cancel()
    resp.cancel()  # idempotent
    resp.wait(5)
    assert resp.status == "cancelled"
    d = srv.wait_for_disconnect(2)
    # Closed with most of the 401 events unsent (8 s at 50/s); latency: benchmarks/cancel_latency.py.
    assert d is not None and d.chunks_sent < 200 and d.request_index not in srv.completed, d
    assert resp.text_so_far.startswith("word word")
    n = len(resp.text_so_far)
    assert wait_until(lambda: get_engine().active_tasks == 0, 5)  # the request task has ended
    assert len(resp.text_so_far) == n  # nothing arrived after the cancel


def test_connection_is_reused_across_requests(srv):
    client = make_client(srv)
    for _ in range(3):
        srv.enqueue(Script(text="hi"))
        assert client.chat("x").text == "hi"
    assert srv.connections <= 1 or len({r.connection for r in srv.requests[-3:]}) == 1


def test_conversation_turns_queue_in_order_and_carry_history(srv):
    conv = ds_magic.Conversation("t")
    client = make_client(srv)
    srv.enqueue(Script(text="first answer", reasoning="r1", ttft=0.2), Script(text="second answer"))
    r1 = client.chat("first?", conversation=conv)
    r2 = client.chat("second?", conversation=conv)  # queued behind r1, needs its answer
    assert r2.text == "second answer" and r1.text == "first answer"
    second_body = srv.requests[-1].body
    assert [m["role"] for m in second_body["messages"]] == ["user", "assistant", "user"]
    assert second_body["messages"][1]["content"] == "first answer"
    assert "reasoning_content" not in second_body["messages"][1]
    assert [t.content for t in conv.turns] == ["first?", "first answer", "second?", "second answer"]


def test_cancelled_turn_is_stored_with_mark(srv):
    conv = ds_magic.Conversation("c")
    srv.enqueue(Script(text="word " * 300, reasoning="", tokens_per_second=100))
    resp = make_client(srv).chat("long?", conversation=conv)
    for ev in resp:
        if isinstance(ev, AnswerDelta):
            break
    resp.cancel()
    resp.wait()
    assert conv.turns[-1].status == "cancelled"
    assert conv.turns[-1].content == resp.text_so_far


def test_models_and_balance(srv):
    client = make_client(srv)
    assert "deepseek-flash" in client.models()
    assert "balance_infos" in client.balance()


def test_two_readers_see_the_same_answer(srv):
    srv.enqueue(Script(text="shared text for two readers", reasoning="", tokens_per_second=200))
    resp = make_client(srv).chat("x")
    got: list[str] = []
    t = threading.Thread(
        target=lambda: got.append("".join(e.text for e in resp if isinstance(e, AnswerDelta)))
    )
    t.start()
    mine = "".join(e.text for e in resp if isinstance(e, AnswerDelta))
    t.join(5)
    assert mine == got[0] == "shared text for two readers"
    # A reader that starts after the end gets the whole answer replayed.
    assert "".join(e.text for e in resp if isinstance(e, AnswerDelta)) == mine
