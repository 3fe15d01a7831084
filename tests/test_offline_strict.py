"""The offline server is as strict as the real API (issue 15, deepseek-api.md), each rule checked with
the openai SDK as the client, so that a test against the server cannot pass what DeepSeek would reject."""

from __future__ import annotations

import json

import openai
import pytest
from offline_helpers import KEY

from ds_magic import Client
from ds_magic.testing import OfflineServer

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def server():
    with OfflineServer() as srv:
        yield srv


@pytest.fixture()
def sdk(server: OfflineServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=KEY, base_url=server.url, max_retries=0)


def _tool(name: str, type_: str = "function") -> dict:
    return {"type": type_, "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}


# ------------------------------------------------------------------ JSON mode
def test_json_mode_answers_valid_json(sdk: openai.OpenAI) -> None:
    whole = sdk.chat.completions.create(
        model="deepseek-flash", messages=MSG, response_format={"type": "json_object"}
    )
    assert json.loads(whole.choices[0].message.content)["offline"] is True
    stream = sdk.chat.completions.create(
        model="deepseek-flash", messages=MSG, response_format={"type": "json_object"}, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert isinstance(json.loads(text), dict)


def test_json_mode_through_our_client(server: OfflineServer) -> None:
    resp = Client(api_key=KEY, base_url=server.url).chat("give json", response_format="json_object")
    resp.join(10)
    assert resp.status == "ok" and json.loads(resp.text)["prompt"] == "give json"


def test_an_unknown_response_format_is_refused(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="response_format"):
        sdk.chat.completions.create(
            model="deepseek-flash", messages=MSG, response_format={"type": "json_schema"}
        )


# ------------------------------------------------------------------ context length
def test_a_prompt_over_the_context_length_gets_deepseeks_400(sdk: openai.OpenAI) -> None:
    big = "word " * 720_000  # 3.6 M characters, about 1.08 M tokens by DeepSeek's rule of thumb
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model="deepseek-flash", messages=[{"role": "user", "content": big}])
    assert "maximum context length is 1048576 tokens" in str(info.value)
    ok = sdk.chat.completions.create(
        model="deepseek-flash", messages=[{"role": "user", "content": "word " * 100_000}]
    )
    assert ok.choices[0].finish_reason == "stop"


# ------------------------------------------------------------------ tools
def test_tools_are_validated(sdk: openai.OpenAI) -> None:
    ok = sdk.chat.completions.create(model="deepseek-flash", messages=MSG, tools=[_tool("get_weather-2")])
    assert ok.choices[0].finish_reason == "stop"
    bad = {
        "unknown variant `custom`": [_tool("f", "custom")],
        "at most 128": [_tool(f"f{i}") for i in range(129)],
        "must be 1 to 64": [_tool("has space")],
    }
    bad_long = [_tool("x" * 65)]
    for needle, tools in [*bad.items(), ("must be 1 to 64", bad_long)]:
        with pytest.raises(openai.BadRequestError, match=needle):
            sdk.chat.completions.create(model="deepseek-flash", messages=MSG, tools=tools)
    full = sdk.chat.completions.create(
        model="deepseek-flash", messages=MSG, tools=[_tool(f"f{i}") for i in range(128)]
    )
    assert full.choices[0].message.content


# ------------------------------------------------------------------ logprobs
def test_logprobs_are_honoured(sdk: openai.OpenAI) -> None:
    whole = sdk.chat.completions.create(model="deepseek-flash", messages=MSG, logprobs=True, top_logprobs=3)
    content = whole.choices[0].logprobs.content
    assert "".join(t.token for t in content) == whole.choices[0].message.content
    for t in content:
        assert t.logprob < 0 and len(t.top_logprobs) == 3
        assert t.top_logprobs[0].token == t.token
        assert [a.logprob for a in t.top_logprobs] == sorted(
            (a.logprob for a in t.top_logprobs), reverse=True
        )
        assert bytes(t.bytes).decode("utf-8") == t.token
    stream = sdk.chat.completions.create(
        model="deepseek-flash", messages=MSG, logprobs=True, top_logprobs=20, stream=True
    )
    tokens = [c.choices[0].logprobs.content[0] for c in stream if c.choices and c.choices[0].logprobs]
    assert tokens and all(len(t.top_logprobs) == 20 for t in tokens)
    plain = sdk.chat.completions.create(model="deepseek-flash", messages=MSG)
    assert plain.choices[0].logprobs is None


def test_top_logprobs_limits(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match=r"range of top_logprobs is \[0, 20\]"):
        sdk.chat.completions.create(model="deepseek-flash", messages=MSG, logprobs=True, top_logprobs=21)
    with pytest.raises(openai.BadRequestError, match="requires logprobs"):
        sdk.chat.completions.create(model="deepseek-flash", messages=MSG, top_logprobs=2)


# ------------------------------------------------------------------ FIM
def test_fim_completion_whole_and_streamed(server: OfflineServer) -> None:
    beta = openai.OpenAI(api_key=KEY, base_url=server.url + "/beta", max_retries=0)
    whole = beta.completions.create(
        model="deepseek-flash", prompt="def fib(a):\n", suffix="    return fib(a-1) + fib(a-2)", max_tokens=64
    )
    assert whole.object == "text_completion" and whole.choices[0].text
    assert whole.choices[0].finish_reason == "stop" and whole.usage.completion_tokens > 0
    chunks = list(beta.completions.create(model="deepseek-flash", prompt="def f():\n", stream=True))
    assert all(c.object == "text_completion" for c in chunks)
    assert "".join(c.choices[0].text for c in chunks) == whole.choices[0].text
    assert chunks[-1].choices[0].finish_reason == "stop"
    cut = beta.completions.create(model="deepseek-flash", prompt="x", max_tokens=2)
    assert cut.choices[0].finish_reason == "length"
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        beta.completions.create(model="deepseek-flash", prompt="x", max_tokens=5000)
    with pytest.raises(openai.BadRequestError, match="Model Not Exist"):
        beta.completions.create(model="gpt-4o", prompt="x")


# ------------------------------------------------------------------ legacy rules only for legacy models
def test_legacy_rules_apply_only_to_legacy_models() -> None:
    history = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a", "reasoning_content": "r"},
        {"role": "user", "content": "q2"},
    ]
    with OfflineServer(legacy=True) as srv:
        sdk = openai.OpenAI(api_key=KEY, base_url=srv.url, max_retries=0)
        ok = sdk.chat.completions.create(model="deepseek-flash", messages=history)  # a V4 model: ignored
        assert ok.choices[0].message.content
        with pytest.raises(openai.BadRequestError, match="reasoning_content"):
            sdk.chat.completions.create(model="deepseek-chat", messages=history)
        with pytest.raises(openai.BadRequestError, match="logprobs"):
            sdk.chat.completions.create(model="deepseek-reasoner", messages=MSG, logprobs=True)
