"""The dialect of a base URL (issue 15): ``deepseek`` or ``openai``, against the offline server in both
modes, in this process and in another one (where it identifies itself over HTTP).

The offline server's own ``openai`` mode is checked with the openai SDK as the client, so that what it
accepts and sends is what a plain OpenAI-compatible server does, not what our client expects.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request

import httpx
import openai
import pytest
from offline_helpers import KEY, wait_until

from ds_magic import Client, stats
from ds_magic.dialect import DialectError, answer_note, check_dialect, host_dialect, to_openai
from ds_magic.errors import APIStatusError, StreamInterruptedError
from ds_magic.pricing import cost_of
from ds_magic.testing import OfflineServer, Script


def test_detection_from_the_base_url():
    assert host_dialect("https://api.deepseek.com") == "deepseek"
    assert host_dialect("https://api.deepseek.com/v1") == "deepseek"
    assert host_dialect("https://eu.api.deepseek.com/beta") == "deepseek"
    assert host_dialect("https://deepseek.com.example.org") is None
    assert host_dialect("http://127.0.0.1:4000") is None
    assert check_dialect("auto") is None and check_dialect(None) is None
    assert check_dialect("openai") == "openai"
    with pytest.raises(ValueError, match="dialect must be"):
        Client(api_key=KEY, dialect="vllm")
    assert Client(api_key=KEY).known_dialect() == "deepseek"
    assert Client(api_key=KEY, base_url="http://127.0.0.1:9", dialect="openai").known_dialect() == "openai"


def test_to_openai_drops_only_deepseek_fields():
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a", "prefix": True, "reasoning_content": "r"},
        ],
        "thinking": {"type": "disabled"},
        "reasoning_effort": "high",
        "user_id": "u",
        "temperature": 0.5,
        "stream": True,
    }
    out, dropped = to_openai(body)
    assert dropped == [
        "thinking",
        "reasoning_effort",
        "user_id",
        "messages[].prefix",
        "messages[].reasoning_content",
    ]
    assert out == {
        "model": "m",
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
        "temperature": 0.5,
        "stream": True,
    }
    assert body["thinking"] == {"type": "disabled"}  # the caller's body is not changed


# ------------------------------------------------------------------ our client, openai dialect
def test_openai_server_gets_only_standard_fields_with_a_one_time_note():
    with OfflineServer(dialect="openai") as server:
        client = Client(api_key=KEY, base_url=server.url)
        first = client.chat("hi", thinking=False, reasoning_effort="high", user_id="u1")
        first.join(10)
        assert first.status == "ok", first.error
        assert "thinking" in first.status_message and "user_id" in first.status_message
        assert "DeepSeek-only" in first.status_message
        assert answer_note(first) == first.status_message  # kept for a view to show after the end
        sent = server.requests[-1].body
        assert set(sent) == {"model", "messages", "stream", "stream_options"}
        assert first.request == sent  # what the Response says was sent is what was sent
        second = client.chat("again", thinking=False)
        second.join(10)
        assert second.status == "ok" and "thinking" not in second.status_message  # told once
        assert answer_note(second) is None
        assert "thinking" not in server.requests[-1].body


def test_openai_answers_have_no_deepseek_price_unless_prices_are_given():
    with OfflineServer(dialect="openai") as server:
        resp = Client(api_key=KEY, base_url=server.url).chat("hi")
        resp.join(10)
        assert resp.status == "ok" and resp.usage is not None and resp.usage.completion_tokens > 0
        assert cost_of(resp) is None
        priced = cost_of(resp, prices={resp.model: {"hit": 1.0, "miss": 1.0, "out": 1.0}})
        assert priced is not None and priced.usd > 0
        assert stats()["cost_unknown"] >= 1
    with OfflineServer() as server:  # the same answer from a deepseek-dialect server is priced
        resp = Client(api_key=KEY, base_url=server.url).chat("hi")
        resp.join(10)
        assert cost_of(resp) is not None


def test_a_drop_on_an_openai_server_is_not_resumed_and_says_why():
    with OfflineServer(dialect="openai") as server:
        server.enqueue(Script(text="one two three four five six seven eight", fault="drop", fault_after=4))
        resp = Client(api_key=KEY, base_url=server.url, resume=2).chat("q")
        resp.join(10)
        assert resp.status == "interrupted"
        assert isinstance(resp.error, StreamInterruptedError)
        assert "cannot continue a partial answer" in str(resp.error)
        assert resp.text and "one" in resp.text  # the partial text is kept
        assert [r.path for r in server.requests] == ["/chat/completions"]  # no /beta request


def test_the_same_drop_on_a_deepseek_server_is_resumed_on_beta():
    with OfflineServer() as server:
        server.enqueue(Script(text="one two three four five six seven eight", fault="drop", fault_after=4))
        resp = Client(api_key=KEY, base_url=server.url, resume=2).chat("q")
        resp.join(10)
        assert resp.status == "ok", resp.error
        assert [r.path for r in server.requests] == ["/chat/completions", "/beta/chat/completions"]


def test_balance_is_deepseek_only():
    with OfflineServer(dialect="openai") as server:
        with pytest.raises(DialectError, match="no account balance"):
            Client(api_key=KEY, base_url=server.url).balance()
        assert server.requests == []  # refused here, nothing asked
        # told it is DeepSeek, the server's 404 names the missing endpoint, not the base URL
        with pytest.raises(APIStatusError) as info:
            Client(api_key=KEY, base_url=server.url, dialect="deepseek").balance()
        assert "/user/balance" in str(info.value) and "DeepSeek-only" in str(info.value)
    with OfflineServer() as server:
        assert Client(api_key=KEY, base_url=server.url).balance()["is_available"] is True


def test_a_404_hint_names_what_was_missing():
    with OfflineServer() as server:
        resp = Client(api_key=KEY, base_url=server.url + "/nowhere").chat("q")
        resp.join(10)
        assert isinstance(resp.error, APIStatusError) and resp.error.status_code == 404
        assert "/nowhere/chat/completions" in str(resp.error) and "DEEPSEEK_BASE_URL" in str(resp.error)


def test_a_dry_run_shows_what_an_openai_server_gets():
    client = Client(api_key=KEY, base_url="http://127.0.0.1:9", dialect="openai")
    assert "thinking" not in client.request_body("q", thinking=False)
    assert Client(api_key=KEY).request_body("q", thinking=False)["thinking"] == {"type": "disabled"}


def test_dialect_override_both_ways():
    with OfflineServer(dialect="openai") as server:
        # told it is DeepSeek, it sends thinking: the plain server refuses it (422), as transformers serve does
        resp = Client(api_key=KEY, base_url=server.url, dialect="deepseek").chat("q", thinking=False)
        resp.join(10)
        assert resp.status == "error" and "Unexpected fields" in str(resp.error)
    with OfflineServer() as server:
        resp = Client(api_key=KEY, base_url=server.url, dialect="openai").chat("q", thinking=False)
        resp.join(10)
        assert resp.status == "ok" and "thinking" not in server.requests[-1].body
        assert cost_of(resp) is None


# ------------------------------------------------------------------ a server in another process
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def other_process_server():
    """``python -m ds_magic.testing`` in a subprocess: not registered in this process."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ds_magic.testing", "--port", str(port), "--ttft", "0", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(url + "/_offline/state", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        assert wait_until(up, 30), "the offline server did not start"
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _recorded(url: str) -> list[dict]:
    with urllib.request.urlopen(url + "/_offline/requests", timeout=5) as r:
        return json.loads(r.read())


def test_the_offline_server_identifies_itself_to_another_process(other_process_server):
    url = other_process_server
    client = Client(api_key=KEY, base_url=url)
    assert client.known_dialect() is None  # not registered here: it has to say so itself
    resp = client.chat("q", thinking=False)  # a DeepSeek-only field: the client asks first
    resp.join(10)
    assert resp.status == "ok", resp.error
    assert client.known_dialect() == "deepseek"
    recorded = _recorded(url)
    assert [r["path"] for r in recorded] == ["/chat/completions"]  # the question is not a request
    assert recorded[-1]["body"]["thinking"] == {"type": "disabled"}
    assert cost_of(resp) is not None


def test_an_answer_names_the_dialect_without_asking(other_process_server):
    url = other_process_server
    client = Client(api_key=KEY, base_url=url)
    resp = client.chat("q")  # nothing DeepSeek-only: sent at once, the answer's header tells
    resp.join(10)
    assert resp.status == "ok"
    assert client.known_dialect() == "deepseek" and cost_of(resp) is not None


# ------------------------------------------------------------------ the server's openai mode, openai SDK
def test_openai_mode_stream_shape_with_the_openai_sdk():
    with OfflineServer(dialect="openai") as server:
        sdk = openai.OpenAI(api_key=KEY, base_url=server.url)
        raw = sdk.chat.completions.with_raw_response.create(
            model="deepseek-flash",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        assert "x-ds-magic-dialect" not in raw.headers  # a plain server says nothing of itself
        chunks = list(raw.parse())
        first = chunks[0].choices[0].delta
        assert first.role == "assistant" and first.content is None  # role-only first chunk
        assert chunks[-1].choices == [] and chunks[-1].usage is not None  # trailing usage chunk
        assert chunks[-2].choices[0].finish_reason == "stop" and chunks[-2].usage is None
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert "offline" in text
        assert not any(getattr(c.choices[0].delta, "reasoning_content", None) for c in chunks if c.choices)


def test_openai_mode_refuses_deepseek_fields_and_beta_with_the_openai_sdk():
    with OfflineServer(dialect="openai") as server:
        sdk = openai.OpenAI(api_key=KEY, base_url=server.url, max_retries=0)
        for extra in ({"thinking": {"type": "enabled"}}, {"user_id": "u"}, {"reasoning_effort": "high"}):
            with pytest.raises(openai.UnprocessableEntityError) as info:
                sdk.chat.completions.create(
                    model="deepseek-flash", messages=[{"role": "user", "content": "hi"}], extra_body=extra
                )
            assert "Unexpected fields" in str(info.value.body)
        beta = openai.OpenAI(api_key=KEY, base_url=server.url + "/beta", max_retries=0)
        with pytest.raises(openai.NotFoundError):
            beta.chat.completions.create(model="deepseek-flash", messages=[{"role": "user", "content": "hi"}])
        assert httpx.get(server.url + "/_offline/dialect").status_code == 404


def test_deepseek_mode_names_itself_with_the_openai_sdk():
    with OfflineServer() as server:
        sdk = openai.OpenAI(api_key=KEY, base_url=server.url)
        raw = sdk.chat.completions.with_raw_response.create(
            model="deepseek-flash", messages=[{"role": "user", "content": "hi"}]
        )
        assert raw.headers["x-ds-magic-dialect"] == "deepseek"
        assert httpx.get(server.url + "/_offline/dialect").json() == {"dialect": "deepseek"}
        assert len(server.requests) == 1  # the question about the dialect is not recorded


def test_a_cell_on_an_openai_server_says_cost_unknown_and_sends_no_thinking(kernel_factory):
    """In a real kernel: --no-thinking is not sent to a plain OpenAI-compatible server (no 422), and
    the footer the notebook keeps says the cost is unknown instead of pricing it at DeepSeek's rates."""
    with OfflineServer(dialect="openai") as server:
        k = kernel_factory(env={"DEEPSEEK_API_KEY": KEY, "DEEPSEEK_BASE_URL": server.url})
        r = k.run("%%deepseek --no-thinking\nhello there", timeout=60)
        assert r.status == "ok", r.error
        final = [m for m in r.outputs if m["msg_type"] == "update_display_data"][-1]["content"]["data"]
        footer = final["text/plain"].rsplit("\n— ", 1)[-1]
        assert "cost unknown" in footer and "$" not in footer
        assert "thinking" not in server.requests[-1].body
