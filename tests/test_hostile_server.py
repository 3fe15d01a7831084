"""A hostile server or proxy, over real sockets: chunks of the wrong shape, an endless line, redirects,
an echoed API key, lone surrogates, broken encodings (issue 14).

Each test drives ``ds_magic.Client`` against a ``RawServer`` (tests/hostile.py) that sends exactly the
bytes the attack needs; what the offline server can send (a 429 with a long Retry-After) uses it.
Every failure must be one line, keep the partial answer, and end the response by itself.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from hostile import (
    GOOD,
    HEAD,
    RawRequest,
    RawServer,
    answer,
    chunk,
    echo_key,
    endless_line,
    redirect,
    sse,
    stream_of,
)
from offline_helpers import KEY, Sleeps, wait_until

import ds_magic
from ds_magic import (
    APIStatusError,
    AuthenticationError,
    Client,
    Conversation,
    DeepSeekError,
    EventTooLargeError,
    RateLimitError,
    RedirectError,
    ResponseCache,
    RetryPolicy,
    StreamDecodeError,
    StreamError,
    Timeout,
)
from ds_magic.testing import Script

BOUND = 15.0
ODD_KEY = "not-an-sk-key-0123456789"


def client_for(server: RawServer, **kw: object) -> Client:
    kw.setdefault("retry", RetryPolicy(max_retries=0))
    kw.setdefault("resume", 0)
    return Client(api_key=str(kw.pop("api_key", KEY)), base_url=server.url, **kw)  # type: ignore[arg-type]


def ended(resp: ds_magic.Response) -> ds_magic.Response:
    assert resp.join(BOUND), f"still {resp.status} after {BOUND} s"
    return resp


def one_line(err: BaseException | None) -> str:
    assert isinstance(err, DeepSeekError), repr(err)
    msg = str(err)
    assert "\n" not in msg and "Unexpected error" not in msg, msg
    return msg


# ------------------------------------------------------------------ malformed chunks

MALFORMED = {
    "content is a number": (chunk({"content": 123}), "delta.content"),
    "content is a list": (chunk({"content": ["a", "b"]}), "delta.content"),
    "reasoning is an object": (chunk({"reasoning_content": {"a": 1}}), "reasoning_content"),
    "choices is an object": ({"choices": {"0": {"delta": {"content": "x"}}}}, "choices"),
    "a choice is a string": ({"choices": ["x"]}, "choices"),
    "delta is a string": (chunk("just text"), "delta"),
    "tool_calls holds a string": (chunk({"tool_calls": ["x"]}), "tool_calls"),
    "tool_calls is an object": (chunk({"tool_calls": {"index": 0}}), "tool_calls"),
    "tool call index is a string": (chunk({"tool_calls": [{"index": "0"}]}), "index"),
    "tool call arguments is a number": (
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": 7}}]}),
        "arguments",
    ),
    "finish_reason is a number": (chunk({}, finish=5), "finish_reason"),
    "nested beyond the recursion limit": ("[" * 100_000 + "]" * 100_000, "nest"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_chunk_ends_the_stream_with_one_line_keeping_the_text(name):
    bad, where = MALFORMED[name]
    # After the bad chunk the server stays silent: the parser, not a deadline, must end it.
    with RawServer(stream_of(sse([GOOD, bad], done=False), stall=True)) as server:
        resp = ended(client_for(server).chat("q"))
        assert resp.status == "interrupted", (resp.status, resp.error)
        assert isinstance(resp.error, StreamDecodeError)
        assert where in one_line(resp.error)
        assert resp.text_so_far == "kept " and resp.text == "kept "
        assert resp.error.partial == "kept "
        assert "kept" in repr(resp)
        assert server.disconnected.wait(5)  # the client hung up


def test_bad_usage_is_ignored_and_the_answer_stays_ok():
    stream = sse(
        [
            GOOD,
            chunk({"content": "all"}, usage=float("nan")),
            chunk({}, finish="stop", usage={"prompt_tokens": float("nan"), "completion_tokens": 1e400}),
            {"choices": [], "usage": {"prompt_tokens": -5, "completion_tokens_details": "x"}},
        ]
    )
    with RawServer(stream_of(stream)) as server:
        resp = ended(client_for(server).chat("q"))
        assert resp.status == "ok", resp.error
        assert resp.text == "kept all" and resp.finish_reason == "stop"
        assert resp.usage is None or min(resp.usage.to_dict().values()) >= 0


def test_cancel_ends_a_stream_that_stalls_after_a_strange_but_valid_chunk():
    odd = chunk({"content": "", "reasoning_content": None, "tool_calls": []}, extra=[1, {"x": None}])
    with RawServer(stream_of(sse([GOOD, odd], done=False), stall=True)) as server:
        resp = client_for(server).chat("q")
        assert wait_until(lambda: resp.text_so_far == "kept ", BOUND)
        resp.cancel()
        assert ended(resp).status == "cancelled" and resp.text == "kept "
        assert server.disconnected.wait(5)


# ------------------------------------------------------------------ the event size cap
def test_an_endless_line_ends_at_the_cap_with_the_partial_answer():
    cap = 64 * 1024

    with RawServer(endless_line) as server:
        client = client_for(server, max_event_bytes=cap, timeout=Timeout(connect=5, first_token=60, idle=60))
        resp = ended(client.chat("q"))
        assert resp.status == "interrupted" and isinstance(resp.error, EventTooLargeError)
        assert isinstance(resp.error, StreamDecodeError)
        assert "64 KiB" in one_line(resp.error) and "max_event_bytes" in str(resp.error)
        assert resp.text == "kept "
        assert server.disconnected.wait(5)
        # What the server got out before the hang-up: the cap plus what the socket buffers held.
        assert server.sent < 32 * 1024 * 1024


def test_the_cap_is_a_client_setting_with_a_16_mib_default():
    assert Client(api_key=KEY).max_event_bytes == 16 * 1024 * 1024
    with pytest.raises(ValueError, match="max_event_bytes"):
        Client(api_key=KEY, max_event_bytes=0)
    big = "b" * 200_000  # over a small cap, well under the default
    with RawServer(stream_of(answer(big))) as server:
        assert ended(client_for(server).chat("q")).text == big
        resp = ended(client_for(server, max_event_bytes=100_000).chat("q"))
        assert isinstance(resp.error, EventTooLargeError) and resp.status == "error"


# ------------------------------------------------------------------ redirects
@pytest.mark.parametrize("status", [307, 302])
@pytest.mark.parametrize("own_http_client", [False, True])
def test_a_redirect_is_an_error_naming_the_host_and_nothing_is_sent_there(status, own_http_client):
    with RawServer(stream_of(answer("from elsewhere"))) as elsewhere:
        target = f"http://localhost:{elsewhere.port}/chat/completions"
        with RawServer(redirect(status, target)) as origin:
            kw: dict[str, object] = {}
            if own_http_client:  # a user's client that follows redirects: we still must not
                kw["http_client"] = httpx.AsyncClient(follow_redirects=True)
            resp = ended(client_for(origin, **kw).chat("secret prompt"))
            assert resp.status == "error" and isinstance(resp.error, RedirectError)
            assert isinstance(resp.error, APIStatusError) and resp.error.status_code == status
            msg = one_line(resp.error)
            assert f"localhost:{elsewhere.port}" in msg and "DEEPSEEK_BASE_URL" in msg
            assert len(origin.requests) == 1
            with pytest.raises(RedirectError):
                client_for(origin, **kw).models()
        assert elsewhere.requests == []


# ------------------------------------------------------------------ the key never shows
def _no_key_anywhere(key: str, *things: object) -> None:
    for thing in things:
        assert key not in str(thing) and key not in repr(thing), thing


@pytest.mark.parametrize("key", [ODD_KEY, KEY])
def test_an_echoed_key_is_scrubbed_from_errors_exports_and_logs(key, caplog):
    caplog.set_level(logging.DEBUG)
    with RawServer(echo_key(401)) as server:
        conv = Conversation("echo")
        resp = ended(client_for(server, api_key=key).chat("q", conversation=conv))
        err = resp.error
        assert isinstance(err, AuthenticationError)
        assert "****" in err.server_message
        _no_key_anywhere(
            key, err, err.args, err.body, err.server_message, err.what, resp, resp.to_dict(), conv.to_json()
        )
        with pytest.raises(AuthenticationError) as info:
            client_for(server, api_key=key).balance()
        _no_key_anywhere(key, info.value, info.value.body, info.value.__cause__)
    _no_key_anywhere(key, *(r.getMessage() for r in caplog.records), ds_magic.records())


def test_a_key_echoed_inside_the_stream_is_scrubbed():
    async def reply(req: RawRequest) -> AsyncIterator[bytes]:
        auth = req.headers["authorization"]
        bare = auth.removeprefix("Bearer ")
        yield HEAD + sse([GOOD, {"error": {"message": f"bad {bare}", "echo": [auth]}}], done=False)

    async def garbage(req: RawRequest) -> AsyncIterator[bytes]:
        yield HEAD + sse([GOOD, "not json " + req.headers["authorization"][7:]], done=False)

    for reply_fn, cls in ((reply, StreamError), (garbage, StreamDecodeError)):
        with RawServer(reply_fn) as server:
            resp = ended(client_for(server, api_key=ODD_KEY).chat("q"))
            assert isinstance(resp.error, cls), resp.error
            one_line(resp.error)
            _no_key_anywhere(ODD_KEY, resp.error, vars(resp.error), resp.to_dict())


# ------------------------------------------------------------------ lone surrogates
def test_a_lone_surrogate_becomes_u_fffd_everywhere(tmp_path):
    stream = answer("a\ud800b")  # json.dumps writes the valid escape "\ud800"
    assert b"\\ud800" in stream
    with RawServer(stream_of(stream)) as server:
        cache = ResponseCache(tmp_path / "r.sqlite3")
        client = client_for(server, cache=cache)
        conv = Conversation("s")
        resp = ended(client.chat("q", conversation=conv))
        assert resp.status == "ok", resp.error
        assert resp.text == "a\ufffdb" and resp.text.encode("utf-8")
        assert "\ufffd" in conv.to_json()
        again = ended(client.chat("q"))
        assert again.cached and again.text == "a\ufffdb"
        # The history with the answer in it still goes out as UTF-8.
        assert ended(client.chat("next", conversation=conv)).status == "ok"
        sent = server.requests[-1].json()["messages"]
        assert any(m.get("content") == "a\ufffdb" for m in sent)
        cache.close()


# ------------------------------------------------------------------ messages with a cause and a fix
def test_a_body_that_is_not_what_its_content_encoding_says():
    async def reply(req: RawRequest) -> AsyncIterator[bytes]:
        yield HEAD.replace(b"Connection: close", b"Content-Encoding: gzip\r\nConnection: close")
        yield b"data: this is not gzip at all\n\n" * 4

    with RawServer(reply) as server:
        resp = ended(client_for(server).chat("q"))
        assert resp.status == "error" and isinstance(resp.error, StreamDecodeError)
        msg = one_line(resp.error)
        assert "Content-Encoding" in msg and "gzip" in msg and "proxy" in msg


def test_a_gzip_stream_that_is_gzip_still_works():
    async def reply(req: RawRequest) -> AsyncIterator[bytes]:
        yield HEAD.replace(b"Connection: close", b"Content-Encoding: gzip\r\nConnection: close")
        yield gzip.compress(answer("zipped"))

    with RawServer(reply) as server:
        assert ended(client_for(server).chat("q")).text == "zipped"


def test_a_base_url_httpx_cannot_parse_is_refused_at_once():
    with pytest.raises(ValueError, match="base_url"):
        Client(api_key=KEY, base_url="http://127.0.0.1:99999999")


def test_a_429_asking_for_longer_than_we_wait_says_how_long(srv):
    srv.enqueue(Script(status=429, headers={"Retry-After": "3600"}), Script(text="never"))
    sleeps = Sleeps()
    resp = ended(Client(api_key=KEY, base_url=srv.url, retry=RetryPolicy(sleep=sleeps)).chat("q"))
    assert isinstance(resp.error, RateLimitError) and sleeps.delays == [] and len(srv.requests) == 1
    msg = one_line(resp.error)
    assert "3600 s" in msg and "120 s" in msg and "max_retry_after" in msg
    assert resp.error.retry_after == 3600


def test_a_proxy_that_refuses_says_which_variables_to_check():
    async def refuse(req: RawRequest) -> AsyncIterator[bytes]:
        assert req.method == "CONNECT"
        yield b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"

    with RawServer(refuse) as proxy:
        http = httpx.AsyncClient(proxy=proxy.url)
        client = Client(
            api_key=KEY,
            base_url="https://api.example.invalid",
            http_client=http,
            retry=RetryPolicy(max_retries=0),
        )
        resp = ended(client.chat("q"))
        assert resp.status == "error" and len(proxy.requests) == 1
        msg = one_line(resp.error)
        assert "proxy" in msg and "HTTPS_PROXY" in msg


@pytest.mark.parametrize(
    "exc, words",
    [
        (httpx.DecodingError("incorrect header check"), ["Content-Encoding", "proxy"]),
        (httpx.TooManyRedirects("Exceeded maximum allowed redirects."), ["redirect", "never followed"]),
        (httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'ftp://'"), ["http://"]),
        (httpx.ProxyError("407 Proxy Authentication Required"), ["HTTPS_PROXY"]),
        (
            httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"),
            ["TLS", "SSL_CERT_FILE"],
        ),
        (httpx.LocalProtocolError("Illegal header value"), ["could not be sent"]),
        (httpx.ReadError("connection reset"), ["ReadError", "DEEPSEEK_BASE_URL"]),
        (httpx.PoolTimeout("pool"), ["could not connect"]),
    ],
)
def test_each_known_httpx_failure_has_a_cause_and_a_fix(exc, words):
    from ds_magic.transport import error_from_exception

    err = error_from_exception(exc, "https://api.deepseek.com/chat/completions")
    msg = one_line(err)
    assert err.hint and " — " in msg
    for w in words:
        assert w in msg, msg
