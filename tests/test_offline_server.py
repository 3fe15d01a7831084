"""The offline DeepSeek stand-in (ds_magic.testing), checked through real sockets with httpx."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from offline_helpers import wait_until

from ds_magic.testing import DEFAULT_MARK, OfflineServer, Script, split_tokens

KEY = "sk-offline-test-0123456789abcd"
AUTH = {"Authorization": f"Bearer {KEY}"}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
FINGERPRINT = re.compile(r"^fp_[0-9a-f]{10}_prod0820_fp8_kvcache_20260402$")


@pytest.fixture(scope="module")
def server() -> Iterator[OfflineServer]:
    with OfflineServer() as srv:
        yield srv


@pytest.fixture
def srv(server: OfflineServer) -> Iterator[OfflineServer]:
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def client(srv: OfflineServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=srv.url, headers=AUTH, timeout=10) as c:
        yield c


def chat_body(content: str = "What is 2+2?", **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "deepseek-flash",
        "messages": [{"role": "user", "content": content}],
        "stream": True,
    }
    body.update(kw)
    return body


def parse_sse(raw: bytes) -> tuple[list[Any], list[str]]:
    """(data payloads, JSON-decoded except [DONE]; comment lines) of an SSE body."""
    data: list[Any] = []
    comments: list[str] = []
    for block in raw.decode("utf-8").split("\n\n"):
        for line in block.split("\n"):
            if line.startswith(":"):
                comments.append(line)
            elif line.startswith("data: "):
                payload = line[len("data: ") :]
                data.append(payload if payload == "[DONE]" else json.loads(payload))
    return data, comments


def stream(
    client: httpx.Client, body: dict[str, Any], path: str = "/chat/completions"
) -> tuple[httpx.Response, list[Any]]:
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text
    events, _ = parse_sse(r.content)
    return r, events


def deltas(events: list[Any], field: str) -> str:
    return "".join(
        (e["choices"][0]["delta"].get(field) or "")
        for e in events
        if isinstance(e, dict) and e.get("choices")
    )


# ---------------------------------------------------------------- stream shape


def test_default_thinking_stream_shape(client: httpx.Client, srv: OfflineServer) -> None:
    r, events = stream(
        client, chat_body("Explain list comprehensions.", stream_options={"include_usage": True})
    )
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert r.headers["transfer-encoding"] == "chunked"
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert len({c["id"] for c in chunks}) == 1 and UUID.match(chunks[0]["id"])
    assert len({c["created"] for c in chunks}) == 1
    for c in chunks:
        assert c["object"] == "chat.completion.chunk" and c["model"] == "deepseek-flash"
        assert FINGERPRINT.match(c["system_fingerprint"])
        assert (
            len(c["choices"]) == 1 and c["choices"][0]["index"] == 0 and c["choices"][0]["logprobs"] is None
        )
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None, "reasoning_content": ""}
    body = [c["choices"][0]["delta"] for c in chunks[1:-1]]
    phases = [("r" if d["content"] is None else "c") for d in body]
    assert "".join(phases) == "r" * phases.count("r") + "c" * phases.count("c")  # exactly one switch
    assert all(d["reasoning_content"] is None for d in body if d["content"] is not None)
    reasoning, answer = deltas(chunks, "reasoning_content"), deltas(chunks, "content")
    assert reasoning.startswith("(offline)")
    assert (
        answer.startswith(DEFAULT_MARK) and "Explain list comprehensions." in answer and "```python" in answer
    )
    assert 60 <= len(split_tokens(answer)) <= 170  # about 100, plus 0-3 sentences fixed by the question
    assert all(len(d.get("content") or d.get("reasoning_content") or "") <= 6 for d in body)
    assert all(c["usage"] is None for c in chunks[:-1])
    final = chunks[-1]
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["choices"][0]["delta"] == {"content": "", "reasoning_content": None}
    usage = final["usage"]
    assert usage["completion_tokens"] == len(split_tokens(reasoning)) + len(split_tokens(answer))
    assert usage["completion_tokens_details"] == {"reasoning_tokens": len(split_tokens(reasoning))}
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_cache_hit_tokens"] + usage["prompt_cache_miss_tokens"] == usage["prompt_tokens"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": usage["prompt_cache_hit_tokens"]}
    assert usage["prompt_tokens"] == round(0.3 * len("Explain list comprehensions.") + 0.49) + 4
    assert srv.completed == [0] and srv.requests[0].body["model"] == "deepseek-flash"


def test_non_thinking_stream_and_usage_absent_without_include_usage(client: httpx.Client) -> None:
    _, events = stream(client, chat_body(thinking={"type": "disabled"}, model="deepseek-v4-pro"))
    chunks = events[:-1]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all("reasoning_content" not in c["choices"][0]["delta"] for c in chunks)
    assert all("usage" not in c for c in chunks[:-1])
    assert chunks[-1]["model"] == "deepseek-v4-pro"
    assert chunks[-1]["choices"][0]["delta"] == {"content": ""}
    assert "completion_tokens_details" not in chunks[-1]["usage"]


def test_scripted_text_and_openai_usage_style(client: httpx.Client, srv: OfflineServer) -> None:
    srv.enqueue(Script(text="Paris.", reasoning="Easy one.", usage_style="openai"))
    _, events = stream(client, chat_body(stream_options={"include_usage": True}))
    assert deltas(events, "content") == "Paris." and deltas(events, "reasoning_content") == "Easy one."
    finish, trailer = events[-3], events[-2]
    assert finish["choices"][0]["finish_reason"] == "stop" and finish["usage"] is None
    assert trailer["choices"] == [] and trailer["usage"]["completion_tokens"] == len(
        split_tokens("Paris.Easy one.")
    )


def test_finish_reasons_and_finish_chunk_with_text(client: httpx.Client, srv: OfflineServer) -> None:
    srv.enqueue(Script(text="cut short", reasoning="", finish_reason="content_filter", finish_with_text=True))
    _, events = stream(client, chat_body())
    assert events[-2]["choices"][0] == {
        "index": 0,
        "delta": {"content": " short", "reasoning_content": None},
        "logprobs": None,
        "finish_reason": "content_filter",
    }
    assert deltas(events, "content") == "cut short"


def test_tool_calls_are_streamed_in_fragments(client: httpx.Client, srv: OfflineServer) -> None:
    args = '{"location": "Tokyo", "unit": "celsius"}'
    srv.enqueue(
        Script(
            text="", reasoning="", tool_calls=[{"name": "get_weather", "arguments": args}, {"name": "now"}]
        )
    )
    _, events = stream(client, chat_body(thinking={"type": "disabled"}))
    calls = [
        e["choices"][0]["delta"]["tool_calls"][0]
        for e in events[:-1]
        if "tool_calls" in e["choices"][0]["delta"]
    ]
    firsts = [c for c in calls if "id" in c]
    assert [c["function"]["name"] for c in firsts] == ["get_weather", "now"]
    assert all(re.match(r"^call_0[01]_[A-Za-z0-9]{24}$", c["id"]) for c in firsts)
    assert firsts[0]["type"] == "function" and firsts[0]["function"]["arguments"] == ""
    got = "".join(c["function"].get("arguments", "") for c in calls if c["index"] == 0)
    assert got == args and len([c for c in calls if c["index"] == 0]) > 3
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"


# ---------------------------------------------------------------- errors and validation


@pytest.mark.parametrize(
    "status, message, type_",
    [
        (400, "Invalid Format", "invalid_request_error"),
        (401, "Authentication Fails, Your api key: ****abcd is invalid", "authentication_error"),
        (402, "Insufficient Balance", "unknown_error"),
        (422, "Invalid Parameters", "invalid_request_error"),
        (429, "which exceeds your concurrency limit", "rate_limit_error"),
        (500, "Server Error", "server_error"),
        (503, "Server Overloaded", "server_error"),
    ],
)
def test_scripted_error_statuses(
    client: httpx.Client, srv: OfflineServer, status: int, message: str, type_: str
) -> None:
    srv.enqueue(Script(status=status))
    r = client.post("/chat/completions", json=chat_body())
    assert r.status_code == status and r.headers["content-type"] == "application/json"
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert message in err["message"] and err["type"] == type_
    assert err["param"] is None and err["code"] == "invalid_request_error"
    assert not any(h.startswith(("retry-after", "x-ratelimit")) for h in r.headers)


def test_error_message_and_headers_overrides(client: httpx.Client, srv: OfflineServer) -> None:
    srv.enqueue(Script(status=429, error_message="slow down", headers={"Retry-After": "2"}))
    r = client.post("/chat/completions", json=chat_body())
    assert (
        r.status_code == 429
        and r.headers["retry-after"] == "2"
        and r.json()["error"]["message"] == "slow down"
    )


def test_auth(srv: OfflineServer) -> None:
    r = httpx.post(srv.url + "/chat/completions", json=chat_body())
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "Authentication Fails, Your api key: **** is invalid"
    r = httpx.post(srv.url + "/chat/completions", json=chat_body(), headers={"Authorization": "Basic abc"})
    assert r.status_code == 401
    with OfflineServer(api_key=KEY) as strict:
        wrong = "sk-wrong-key-ending-in-WXYZ"
        r = httpx.post(
            strict.url + "/chat/completions", json=chat_body(), headers={"Authorization": f"Bearer {wrong}"}
        )
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        assert r.json()["error"]["message"] == "Authentication Fails, Your api key: ****WXYZ is invalid"
        assert wrong not in r.text
        assert (
            httpx.get(strict.url + "/models", headers={"Authorization": f"Bearer {wrong}"}).status_code == 401
        )
        assert httpx.post(strict.url + "/chat/completions", json=chat_body(), headers=AUTH).status_code == 200
        assert KEY not in repr(strict.requests[-1]) and "****" in repr(strict.requests[-1])


def test_rejected_requests_do_not_consume_scripts(client: httpx.Client, srv: OfflineServer) -> None:
    srv.enqueue(Script(text="kept"))
    r = client.post("/chat/completions", json=chat_body(model="deepseek-nope"))
    assert r.status_code == 400 and r.json()["error"]["message"] == "Model Not Exist"
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert httpx.post(srv.url + "/chat/completions", json=chat_body()).status_code == 401
    assert srv.queued == 1
    assert deltas(stream(client, chat_body())[1], "content") == "kept"


def test_validation_errors(client: httpx.Client) -> None:
    def err(body: Any, path: str = "/chat/completions") -> tuple[int, str]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        r = client.post(path, content=raw, headers={"Content-Type": "application/json"})
        return r.status_code, r.json()["error"]["message"]

    status, msg = err(b"{not json")
    assert status == 400 and msg.startswith("Failed to parse the request body as JSON")
    status, msg = err({"model": "deepseek-flash"})
    assert status == 400 and "missing field `messages`" in msg
    assert err({"model": "deepseek-flash", "messages": []}) == (
        400,
        "Invalid Format: `messages` must not be empty",
    )
    status, msg = err({"model": "deepseek-flash", "messages": [{"role": "robot", "content": "x"}]})
    assert status == 400 and "unknown variant `robot`" in msg
    assert err(chat_body(model="deepseek-chat")) == (400, "Model Not Exist")  # retired outside legacy mode
    status, msg = err(chat_body(max_tokens=0))
    assert status == 400 and msg == "Invalid max_tokens value, the valid range of max_tokens is [1, 393216]"
    history = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "call_00_x", "type": "function", "function": {"name": "w", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_00_x", "content": "sunny"},
    ]
    tools = [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}]
    body = {"model": "deepseek-flash", "messages": history, "tools": tools, "stream": True}
    assert err(body) == (400, "The `reasoning_content` in the thinking mode must be passed back to the API.")
    history[1]["reasoning_content"] = "I should call w."
    assert client.post("/chat/completions", json=body).status_code == 200
    assert (
        client.post("/chat/completions", json={**body, "thinking": {"type": "disabled"}}).status_code == 200
    )


def test_legacy_mode() -> None:
    with OfflineServer(legacy=True) as legacy, httpx.Client(base_url=legacy.url, headers=AUTH) as c:
        _, events = stream(c, chat_body(model="deepseek-reasoner"))
        assert events[0]["choices"][0]["delta"] == {
            "role": "assistant",
            "content": None,
            "reasoning_content": "",
        }
        _, events = stream(c, chat_body(model="deepseek-chat", thinking={"type": "enabled"}))
        assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        msgs = [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b", "reasoning_content": "r"},
            {"role": "user", "content": "c"},
        ]
        r = c.post("/chat/completions", json={"model": "deepseek-reasoner", "messages": msgs})
        assert r.status_code == 400 and "reasoning_content" in r.json()["error"]["message"]
        r = c.post("/chat/completions", json={"model": "deepseek-chat"})
        assert r.status_code == 422 and r.headers["content-type"].startswith("text/plain")
        assert "missing field `messages`" in r.text
        assert {m["id"] for m in c.get("/models").json()["data"]} >= {"deepseek-chat", "deepseek-reasoner"}


def test_unknown_route_and_method(client: httpx.Client) -> None:
    r = client.get("/nope")
    assert r.status_code == 404 and "error" in r.json()
    assert client.get("/chat/completions").status_code == 405


# ---------------------------------------------------------------- generation controls


def test_max_tokens_counts_reasoning_and_answer(client: httpx.Client, srv: OfflineServer) -> None:
    srv.enqueue(Script(text="one two three four five six", reasoning="a b c d"))
    _, events = stream(client, chat_body(max_tokens=6))
    assert deltas(events, "reasoning_content") == "a b c d" and deltas(events, "content") == "one two"
    assert (
        events[-2]["choices"][0]["finish_reason"] == "length"
        and events[-2]["usage"]["completion_tokens"] == 6
    )
    srv.enqueue(Script(text="one two three", reasoning="a b c d e f g h"))
    _, events = stream(client, chat_body(max_tokens=5))
    assert deltas(events, "reasoning_content") == "a b c d e" and deltas(events, "content") == ""
    assert events[-2]["choices"][0]["finish_reason"] == "length"
    assert events[-2]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 5}


def test_stop_strings(client: httpx.Client, srv: OfflineServer) -> None:
    srv.enqueue(Script(text="alpha beta END gamma", reasoning="", finish_reason="length"))
    _, events = stream(client, chat_body(stop=["zzz", "END"]))
    assert deltas(events, "content") == "alpha beta " and events[-2]["choices"][0]["finish_reason"] == "stop"
    srv.enqueue(Script(text="x = 1\n```\nafter", reasoning=""))
    _, events = stream(client, chat_body(stop="```"))
    assert deltas(events, "content") == "x = 1\n"


def test_keepalives_come_before_the_first_data_event(client: httpx.Client, srv: OfflineServer) -> None:
    srv.enqueue(Script(text="late", reasoning="", ttft=0.3, keepalives=3))
    t0 = time.monotonic()
    arrivals: list[tuple[float, bytes]] = []
    with client.stream("POST", "/chat/completions", json=chat_body()) as r:
        for piece in r.iter_raw():
            arrivals.append((time.monotonic() - t0, piece))
    raw = b"".join(p for _, p in arrivals)
    assert raw.startswith(b": keep-alive\n\n" * 3 + b"data: ")
    first_data = next(t for t, p in arrivals if p.startswith(b"data: "))
    first_keepalive = next(t for t, p in arrivals if p.startswith(b": keep-alive"))
    # The keep-alives are flushed while the server waits out the ttft, not with the first data event;
    # the ttft is a lower bound (the pacing this server promises; a busy machine only adds to it).
    assert first_keepalive < first_data and 0.28 <= first_data


def test_tokens_per_second_pacing(client: httpx.Client, srv: OfflineServer) -> None:
    text = " ".join(["word"] * 21)  # 21 tokens: 20 gaps at 100/s = 0.2 s
    srv.enqueue(Script(text=text, reasoning="", tokens_per_second=100))
    t0 = time.monotonic()
    _, events = stream(client, chat_body())
    elapsed = time.monotonic() - t0
    assert deltas(events, "content") == text
    assert 0.18 <= elapsed  # paced: a lower bound, which a busy machine cannot break


def test_non_streaming_response(client: httpx.Client, srv: OfflineServer) -> None:
    srv.enqueue(Script(text="Hello!", reasoning="Greeting."))
    r = client.post("/chat/completions", json=chat_body(stream=False))
    assert r.headers["content-type"] == "application/json"
    obj = r.json()
    assert (
        obj["object"] == "chat.completion"
        and UUID.match(obj["id"])
        and FINGERPRINT.match(obj["system_fingerprint"])
    )
    assert obj["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello!", "reasoning_content": "Greeting."},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert obj["usage"]["completion_tokens"] == len(split_tokens("Hello!")) + len(split_tokens("Greeting."))
    srv.enqueue(Script(text="Hi", reasoning="", ttft=0.1, keepalives=2))
    r = client.post("/chat/completions", json={k: v for k, v in chat_body().items() if k != "stream"})
    assert r.text.startswith("\n\n{") and json.loads(r.text)["choices"][0]["message"]["content"] == "Hi"
    assert srv.completed == [0, 1]


def test_prefix_completion_only_on_beta(client: httpx.Client, srv: OfflineServer) -> None:
    msgs = [
        {"role": "user", "content": "Please write quick sort code"},
        {"role": "assistant", "content": "```python\n", "prefix": True},
    ]
    body = {"model": "deepseek-flash", "messages": msgs, "stream": True, "thinking": {"type": "disabled"}}
    r = client.post("/chat/completions", json=body)
    assert r.status_code == 400 and "beta" in r.json()["error"]["message"]
    srv.enqueue(Script(text="```python\ndef qs(a): ...\n```"))
    _, events = stream(client, body, path="/beta/chat/completions")
    assert deltas(events, "content") == "def qs(a): ...\n```"
    srv.enqueue(Script(text="unrelated"))
    _, events = stream(client, body, path="/beta/chat/completions")
    assert deltas(events, "content") == "unrelated"
    assert [r.path for r in srv.requests] == [
        "/chat/completions",
        "/beta/chat/completions",
        "/beta/chat/completions",
    ]
    bad = {**body, "messages": [msgs[1], {"role": "user", "content": "x"}]}
    assert client.post("/beta/chat/completions", json=bad).status_code == 400


def test_cache_hits_on_a_repeated_conversation(client: httpx.Client, srv: OfflineServer) -> None:
    system = {"role": "system", "content": "You are a careful reviewer of Python code. " * 20}  # ~260 tokens
    first = [system, {"role": "user", "content": "Review: x = 1"}]
    srv.enqueue(Script(text="Looks fine.", reasoning=""))
    u1 = stream(client, chat_body(messages=first))[1][-2]["usage"]
    assert u1["prompt_cache_hit_tokens"] == 0 and u1["prompt_cache_miss_tokens"] == u1["prompt_tokens"]
    srv.enqueue(Script(text="Still fine.", reasoning=""))
    u2 = stream(client, chat_body(messages=first))[1][-2]["usage"]
    assert u2["prompt_tokens"] == u1["prompt_tokens"]
    assert u2["prompt_cache_hit_tokens"] == u1["prompt_tokens"] // 64 * 64 > 0
    assert u2["prompt_tokens_details"]["cached_tokens"] == u2["prompt_cache_hit_tokens"]
    follow = [
        *first,
        {"role": "assistant", "content": "Looks fine."},
        {"role": "user", "content": "And y = 2?"},
    ]
    u3 = stream(client, chat_body(messages=follow))[1][-2]["usage"]
    assert u3["prompt_cache_hit_tokens"] >= u2["prompt_cache_hit_tokens"]
    assert u3["prompt_cache_hit_tokens"] % 64 == 0
    assert u3["prompt_cache_hit_tokens"] + u3["prompt_cache_miss_tokens"] == u3["prompt_tokens"]


def test_prompt_directives(client: httpx.Client, srv: OfflineServer) -> None:
    _, events = stream(client, chat_body("Tell me a story [[offline tokens=12 think=0]] please"))
    answer = deltas(events, "content")
    assert len(split_tokens(answer)) == 12 and deltas(events, "reasoning_content") == ""
    _, events = stream(client, chat_body("Tell me a story [[offline tokens=200]]"))
    answer = deltas(events, "content")
    assert "Tell me a story" in answer and "[[offline" not in answer and len(split_tokens(answer)) == 200
    r = client.post("/chat/completions", json=chat_body("x [[offline status=503]]"))
    assert r.status_code == 503 and r.json()["error"]["message"] == "Server Overloaded"
    r = client.post("/chat/completions", json=chat_body("x [[offline fault=explode]]"))
    assert r.status_code == 400 and "fault" in r.json()["error"]["message"]
    t0 = time.monotonic()
    _, events = stream(
        client, chat_body("x [[offline ttft=0.2 keepalives=2 tps=200 fault=eof_no_done fault_after=3]]")
    )
    assert 0.2 <= time.monotonic() - t0 and len(events) == 3 and "[DONE]" not in events  # ttft: a floor


# ---------------------------------------------------------------- faults


def read_until_error(
    client: httpx.Client, body: dict[str, Any], timeout: float = 5.0
) -> tuple[bytes, Exception | None]:
    got = bytearray()
    try:
        with client.stream("POST", "/chat/completions", json=body, timeout=timeout) as r:
            for piece in r.iter_raw():
                got += piece
    except httpx.HTTPError as exc:
        return bytes(got), exc
    return bytes(got), None


def test_fault_drop_and_drop_before_headers(client: httpx.Client, srv: OfflineServer) -> None:
    srv.enqueue(Script(text="alpha beta gamma delta", reasoning="", fault="drop", fault_after=3))
    raw, exc = read_until_error(client, chat_body())
    assert isinstance(exc, httpx.RemoteProtocolError)
    events, _ = parse_sse(raw)
    assert len(events) == 3 and deltas(events, "content") == "alpha beta"
    srv.enqueue(Script(fault="drop_before_headers"))
    raw, exc = read_until_error(client, chat_body())
    assert isinstance(exc, httpx.RemoteProtocolError) and raw == b""
    assert srv.completed == []


def test_fault_stall_and_disconnect_record(client: httpx.Client, srv: OfflineServer) -> None:
    srv.enqueue(Script(text="alpha beta gamma", reasoning="", fault="stall", fault_after=2))
    raw, exc = read_until_error(client, chat_body(), timeout=0.3)
    assert isinstance(exc, httpx.ReadTimeout) and len(parse_sse(raw)[0]) == 2
    d = srv.wait_for_disconnect(2)
    assert d is not None and d.request_index == 0 and d.chunks_sent == 2
    assert srv.wait_for_disconnect(0.05) is None  # nothing new


def test_fault_stall_keepalive(client: httpx.Client, srv: OfflineServer) -> None:
    srv.enqueue(
        Script(
            text="alpha beta", reasoning="", fault="stall_keepalive", fault_after=2, keepalive_interval=0.05
        )
    )
    got = bytearray()
    with client.stream("POST", "/chat/completions", json=chat_body()) as r:
        for piece in r.iter_raw():
            got += piece
            if got.count(b": keep-alive") >= 4:
                break
    events, comments = parse_sse(bytes(got))
    assert len(events) == 2 and len(comments) >= 4
    assert srv.wait_for_disconnect(2) is not None


def test_fault_keepalive_after_answer(client: httpx.Client, srv: OfflineServer) -> None:
    srv.enqueue(
        Script(text="done now", reasoning="", fault="keepalive_after_answer", keepalive_interval=0.05)
    )
    got = bytearray()
    with client.stream("POST", "/chat/completions", json=chat_body()) as r:
        for piece in r.iter_raw():
            got += piece
            if got.count(b": keep-alive") >= 3:
                break
    events, _ = parse_sse(bytes(got))
    assert events[-1]["choices"][0]["finish_reason"] == "stop" and "[DONE]" not in events
    assert deltas(events, "content") == "done now"


@pytest.mark.parametrize("fault", ["eof_no_done", "malformed_json", "inband_error"])
def test_faults_that_end_the_body_cleanly(client: httpx.Client, srv: OfflineServer, fault: str) -> None:
    srv.enqueue(Script(text="alpha beta gamma", reasoning="", fault=fault, fault_after=2))
    raw, exc = read_until_error(client, chat_body())
    assert exc is None and b"[DONE]" not in raw and b'finish_reason":"stop' not in raw
    blocks = [b for b in raw.decode().split("\n\n") if b]
    assert len(blocks) == (2 if fault == "eof_no_done" else 3)
    if fault == "malformed_json":
        assert blocks[-1] == 'data: {"id": broken'
    if fault == "inband_error":
        err = json.loads(blocks[-1][len("data: ") :])["error"]
        assert err["type"] == "server_error" and err["message"]


def test_fault_html_and_plain_text_and_wrong_content_type(client: httpx.Client, srv: OfflineServer) -> None:
    srv.enqueue(Script(status=502, fault="html_error"), Script(fault="html_error"))
    r = client.post("/chat/completions", json=chat_body())
    assert r.status_code == 502 and r.headers["content-type"] == "text/html" and "<html>" in r.text
    r = client.post("/chat/completions", json=chat_body())
    assert r.status_code == 200 and r.headers["content-type"] == "text/html"
    srv.enqueue(Script(fault="plain_text_error"))
    r = client.post("/chat/completions", json=chat_body())
    assert r.status_code == 422 and r.text.startswith("Failed to deserialize the JSON body")
    srv.enqueue(Script(text="whole", fault="wrong_content_type"))
    r = client.post("/chat/completions", json=chat_body())
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json()["choices"][0]["message"]["content"] == "whole"


def test_fault_split_utf8(client: httpx.Client, srv: OfflineServer) -> None:
    text = "naïve café — 北京 🎉"
    srv.enqueue(Script(text=text, reasoning="", fault="split_utf8"))
    pieces: list[bytes] = []
    with client.stream("POST", "/chat/completions", json=chat_body()) as r:
        pieces.extend(r.iter_raw())
    raw = b"".join(pieces)
    assert deltas(parse_sse(raw)[0], "content") == text
    broken = 0
    for piece in pieces:
        try:
            piece.decode("utf-8")
        except UnicodeDecodeError:
            broken += 1
    assert broken > 0 and max(len(p) for p in pieces) < 64


def test_fault_big_event_and_invalid_utf8(client: httpx.Client, srv: OfflineServer) -> None:
    srv.enqueue(Script(text="a b", reasoning="", fault="big_event", fault_after=1, fault_size=3_000_000))
    r = client.post("/chat/completions", json=chat_body())
    events, _ = parse_sse(r.content)
    assert len(events[1]["choices"][0]["delta"]["content"]) == 3_000_000 and events[-1] == "[DONE]"
    srv.enqueue(Script(text="a b", reasoning="", fault="invalid_utf8", fault_after=2))
    r = client.post("/chat/completions", json=chat_body())
    assert b"bad \xff\xfe bytes" in r.content and r.content.endswith(b"data: [DONE]\n\n")


# ---------------------------------------------------------------- disconnects and concurrency


def test_client_close_mid_stream_is_seen_fast_and_stops_generation(
    client: httpx.Client, srv: OfflineServer
) -> None:
    srv.enqueue(Script(text="word " * 400, reasoning="", tokens_per_second=100))
    got = 0
    with client.stream("POST", "/chat/completions", json=chat_body()) as r:
        for piece in r.iter_raw():
            got += piece.count(b"data: ")
            if got >= 5:
                break
    d = srv.wait_for_disconnect(2)
    # Seen while the server still had 350+ of its 401 events to send (4 s at 100/s): it stopped
    # generating at the close, not at the end of the script.
    assert d is not None and 5 <= d.chunks_sent < 50, d
    assert wait_until(lambda: srv.active == 0, 5) and srv.completed == []


def test_disconnect_while_waiting_for_the_first_token(srv: OfflineServer) -> None:
    srv.enqueue(Script(ttft=5, keepalives=0))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            srv.url + "/chat/completions", json=chat_body(), headers=AUTH, timeout=httpx.Timeout(5, read=0.2)
        )
    d = srv.wait_for_disconnect(2)
    assert d is not None and d.chunks_sent == 0
    srv.enqueue(Script(delay_headers=5))
    with pytest.raises(httpx.ReadTimeout):  # the client gave up before the 5 s headers delay ended
        httpx.post(
            srv.url + "/chat/completions", json=chat_body(), headers=AUTH, timeout=httpx.Timeout(5, read=0.2)
        )
    d = srv.wait_for_disconnect(2)  # ... and the server saw it go away while still holding the headers
    assert d is not None and d.chunks_sent == 0 and srv.completed == []


def test_max_active_counts_concurrent_requests(srv: OfflineServer) -> None:
    srv.enqueue(*[Script(text="slow", reasoning="", ttft=3)] * 3)  # the scenario: three slow answers
    results: list[int] = []

    def one() -> None:
        results.append(
            httpx.post(srv.url + "/chat/completions", json=chat_body(), headers=AUTH, timeout=5).status_code
        )

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    assert wait_until(lambda: srv.active == 3, 10)  # all three in their 3 s wait at once
    for t in threads:
        t.join(5)
    assert results == [200, 200, 200] and srv.max_active == 3 and srv.active == 0
    srv.reset()
    assert srv.max_active == 0


def test_keep_alive_connections_are_reused(client: httpx.Client, srv: OfflineServer) -> None:
    for _ in range(3):
        stream(client, chat_body())
    client.get("/models")
    assert len({r.connection for r in srv.requests}) == 1 and len(srv.requests) == 4


# ---------------------------------------------------------------- other routes and control


def test_models_and_balance(client: httpx.Client) -> None:
    models = client.get("/models").json()
    assert models["object"] == "list" and [m["id"] for m in models["data"]] == [
        "deepseek-flash",
        "deepseek-v4-pro",
    ]
    assert all(m == {"id": m["id"], "object": "model", "owned_by": "deepseek"} for m in models["data"])
    assert client.get("/v1/models").status_code == 200
    balance = client.get("/user/balance").json()
    assert balance["is_available"] is True and balance["balance_infos"][0]["currency"] == "CNY"
    assert isinstance(balance["balance_infos"][0]["total_balance"], str)


def test_control_endpoints(srv: OfflineServer) -> None:
    with httpx.Client(base_url=srv.url) as c:
        r = c.post("/_offline/script", json=[{"text": "from afar", "reasoning": ""}, {"status": 402}])
        assert r.json() == {"queued": 2}
        assert c.post("/_offline/script", json={"fault": "explode"}).status_code == 400
        assert c.post("/_offline/script", json={"colour": "red"}).status_code == 400
        _, events = stream(httpx.Client(base_url=srv.url, headers=AUTH), chat_body())
        assert deltas(events, "content") == "from afar"
        assert httpx.post(srv.url + "/v1/chat/completions", json=chat_body(), headers=AUTH).status_code == 402
        listed = c.get("/_offline/requests").json()
        assert [x["path"] for x in listed] == ["/chat/completions", "/v1/chat/completions"]
        assert listed[0]["headers"]["authorization"] == "****" and KEY not in json.dumps(listed)
        assert listed[0]["body"]["messages"][0]["content"] == "What is 2+2?"
        assert srv.requests[0].headers["authorization"] == f"Bearer {KEY}"  # in-process only
        assert c.get("/_offline/disconnects").json() == []
        state = c.get("/_offline/state").json()
        assert state["completed"] == [0] and state["queued"] == 0
        assert c.post("/_offline/reset").json() == {"ok": True}
        assert srv.requests == [] and c.get("/_offline/nope").status_code == 404


def test_script_validation_and_recording(srv: OfflineServer) -> None:
    with pytest.raises(ValueError, match="fault"):
        Script(fault="explode")
    with pytest.raises(ValueError, match="finish_reason"):
        Script(finish_reason="done")
    with pytest.raises(TypeError):
        srv.enqueue("text")  # type: ignore[arg-type]
    t0 = time.monotonic()
    httpx.post(srv.url + "/chat/completions?x=1", json=chat_body(), headers=AUTH)
    rec = srv.requests[0]
    assert rec.index == 0 and rec.method == "POST" and rec.path == "/chat/completions"
    assert t0 <= rec.time <= time.monotonic() and json.loads(rec.raw_body) == rec.body
    assert rec.headers["content-type"] == "application/json"


def test_start_stop_and_port_in_use() -> None:
    srv = OfflineServer().start()
    assert srv.port > 0 and srv.url == f"http://127.0.0.1:{srv.port}" and srv.start() is srv
    with pytest.raises(OSError):
        OfflineServer(port=srv.port).start()
    srv.stop()
    srv.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(srv.url + "/models", timeout=1)


def test_cli_banner() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ds_magic.testing", "--port", "0", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert (
            "offline stand-in" in line
            and "not a model" in line
            and "DEEPSEEK_BASE_URL=http://127.0.0.1:" in line
        )
        url = re.search(r"DEEPSEEK_BASE_URL=(\S+)", line)
        assert url is not None
        t0 = time.monotonic()
        with httpx.stream("POST", url.group(1) + "/chat/completions", json=chat_body(), headers=AUTH) as r:
            first = next(r.iter_lines())
        assert first.startswith("data: ") and time.monotonic() - t0 >= 0.25  # the CLI has a 0.3 s ttft
    finally:
        proc.terminate()
        assert proc.wait(5) == 0
