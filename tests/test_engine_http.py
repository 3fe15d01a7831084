"""The engine's client (engine_http.py, issue 17) builds the same request httpx builds, and sends a
streamed one straight to its pool; anything else goes through httpx as it is."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from ds_magic.engine_http import EngineHTTP
from ds_magic.http_pool import EnginePool

TIMEOUT = httpx.Timeout(connect=10, read=None, write=10, pool=10)
CASES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "POST",
        "http://127.0.0.1:8000/chat/completions",
        {
            "headers": {
                "Authorization": "Bearer sk-x",
                "Accept": "text/event-stream",
                "Accept-Encoding": "identity",
            },
            "json": {"model": "m", "messages": [{"role": "user", "content": "héllo ✓ \U0001f600"}]},
            "timeout": TIMEOUT,
        },
    ),
    ("GET", "https://api.deepseek.com/models", {"headers": {"Authorization": "Bearer sk-x"}}),
    ("GET", "https://api.deepseek.com:8443/user/balance?x=1", {"headers": {"accept": "application/json"}}),
    ("POST", "http://[::1]:9/beta/completions", {"json": {"a": [1, 2.5, None, True]}, "timeout": 3.0}),
    (
        "POST",
        "http://h/x",
        {"headers": {"Content-Type": "application/vnd+json", "Host": "other"}, "json": {}},
    ),
    ("POST", "http://h/empty", {}),
]


@pytest.mark.parametrize(("method", "url", "kw"), CASES)
def test_a_request_is_built_as_httpx_builds_it(method: str, url: str, kw: dict[str, Any]) -> None:
    ours = EngineHTTP(EnginePool()).build_request(method, url, **kw)
    theirs = httpx.AsyncClient(timeout=httpx.Timeout(None)).build_request(method, url, **kw)
    assert (ours.method, ours.url) == (theirs.method, theirs.url)
    assert sorted(ours.headers.multi_items()) == sorted(theirs.headers.multi_items())
    assert ours.read() == theirs.read()
    assert ours.extensions == theirs.extensions


def test_other_arguments_go_to_httpx() -> None:
    req = EngineHTTP(EnginePool()).build_request("GET", "http://h/x", params={"a": "1"}, cookies={"c": "d"})
    assert req.url.query == b"a=1" and req.headers["Cookie"] == "c=d"


def test_a_json_body_with_nan_is_refused_as_httpx_refuses_it() -> None:
    with pytest.raises(ValueError):
        EngineHTTP(EnginePool()).build_request("POST", "http://h/x", json={"a": float("nan")})
    with pytest.raises(ValueError):
        httpx.AsyncClient().build_request("POST", "http://h/x", json={"a": float("nan")})


def test_with_a_proxy_in_the_environment_requests_go_through_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY is honoured: the proxy (a small server here that answers 502) gets the request in
    absolute form, and nothing goes to the target itself."""
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readline())
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    async def main() -> int:
        server = await asyncio.start_server(proxy, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        for name in ("NO_PROXY", "no_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        async with server, EngineHTTP(EnginePool()) as http:
            request = http.build_request(
                "POST", "http://203.0.113.9:1/chat/completions", json={}, timeout=5.0
            )
            response = await http.send(request, stream=True, follow_redirects=False)
            await response.aclose()
            return response.status_code

    assert asyncio.run(main()) == 502
    assert seen == [b"POST http://203.0.113.9:1/chat/completions HTTP/1.1\r\n"]
