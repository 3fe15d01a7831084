"""ds_magic against LiteLLM's proxy in mock mode: real software others wrote, no upstream call (issue 15).

The proxy runs from its own virtual environment (``scripts/litellm-venv`` makes ``.venv-litellm``):
installing ``litellm[proxy]`` into the project's would downgrade python-dateutil (4.0 → 2.9) under
Jupyter and pandas. Each model in the proxy's config answers with ``mock_response``: LiteLLM streams
that text in 3-character chunks, role and text in the first chunk, an empty finish delta, usage on a
trailing chunk, no cache fields; ``litellm.RateLimitError`` as the mock is a 429.

Between client and proxy sits ``Relay``, a small TCP relay of ours: it records the request lines
(so a ``/beta`` request would show), sees whether the client hung up before the reply ended (Cancel),
and can cut a reply after N data events (a mid-stream drop).

The tests skip when no LiteLLM is installed, unless ``DS_MAGIC_REQUIRE_LITELLM=1`` (CI sets it):
then a missing proxy is a failure.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from offline_helpers import wait_until

from ds_magic import Client
from ds_magic.dialect import DialectError
from ds_magic.errors import APIStatusError, RateLimitError, StreamInterruptedError
from ds_magic.pricing import cost_of

pytestmark = pytest.mark.litellm

KEY = "sk-litellm-test-0123456789abcdef"
SHORT = "Hello from the LiteLLM mock, streaming in small pieces."
LONG = "word " * 10_000  # about 17,000 chunks: still streaming when the test cancels
ROOT = Path(__file__).resolve().parent.parent


def _litellm() -> str | None:
    for candidate in (
        os.environ.get("DS_MAGIC_LITELLM"),
        str(ROOT / ".venv-litellm" / "bin" / "litellm"),
        str(Path(sys.executable).parent / "litellm"),
        shutil.which("litellm"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(path: Path) -> None:
    # Models that point nowhere (port 9): with mock_response LiteLLM never calls them.
    def model(name: str, mock: str) -> str:
        return (
            f"  - model_name: {name}\n    litellm_params:\n      model: openai/{name}\n"
            f"      api_key: sk-none\n      api_base: http://127.0.0.1:9\n      mock_response: {mock!r}\n"
        )

    path.write_text(
        "model_list:\n"
        + model("deepseek-flash", SHORT)
        + model("long", LONG)
        + model("limited", "litellm.RateLimitError")
        + f"general_settings:\n  master_key: {KEY}\nlitellm_settings:\n  telemetry: false\n"
        + "router_settings:\n  num_retries: 0\n"  # a 429 comes back at once, not after LiteLLM's retries
    )


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = _litellm()
    if exe is None:
        if os.environ.get("DS_MAGIC_REQUIRE_LITELLM") == "1":
            pytest.fail("DS_MAGIC_REQUIRE_LITELLM=1 but no litellm found (run scripts/litellm-venv)")
        pytest.skip("LiteLLM is not installed (scripts/litellm-venv makes .venv-litellm)")
    home = tmp_path_factory.mktemp("litellm")
    cfg = home / "config.yaml"
    _config(cfg)
    port = _free_port()
    env = {
        **os.environ,
        "HOME": str(home),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the price list at start
        "LITELLM_TELEMETRY": "False",
    }
    log = open(home / "proxy.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [exe, "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            return True
        try:
            return httpx.get(url + "/health/liveliness", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        assert wait_until(up, 180) and proc.poll() is None, (home / "proxy.log").read_text()[-3000:]
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


class Relay:
    """A TCP relay of ours in front of the proxy: the request lines it forwarded, whether the client
    hung up before a reply ended, and (``cut_after``) a reply cut after that many SSE data events."""

    def __init__(self, upstream: str, cut_after: int | None = None, paced: bool = False) -> None:
        self.upstream = httpx.URL(upstream)
        self.cut_after = cut_after
        # paced: the reply is passed on 1 KiB at a time, slowly, so that a long one is still
        # streaming when the client cancels (the proxy itself writes as fast as it can)
        self.paced = paced
        self.paths: list[str] = []
        self.hung_up = threading.Event()  # the client closed a connection whose reply had not ended
        self.cut = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Relay:
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            self._server.close()
            for t in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                t.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        ureader, uwriter = await asyncio.open_connection(self.upstream.host, self.upstream.port)
        state = {"open_reply": False}

        async def up() -> None:
            while data := await creader.read(65536):
                for m in re.finditer(rb"(?:GET|POST) (\S+) HTTP/1\.[01]\r\n", data):
                    self.paths.append(m.group(1).decode())
                    state["open_reply"] = True
                uwriter.write(data)
                await uwriter.drain()
            if state["open_reply"]:
                self.hung_up.set()
            uwriter.close()

        async def down() -> None:
            events = 0
            while data := await ureader.read(1024 if self.paced else 65536):
                if self.paced:
                    await asyncio.sleep(0.005)  # the scenario: a proxy that paces, not a wait
                if b"data: [DONE]" in data:
                    state["open_reply"] = False
                if self.cut_after is not None:
                    for m in re.finditer(rb"data: ", data):
                        events += 1
                        if events > self.cut_after:
                            cwriter.write(data[: m.start()])
                            await cwriter.drain()
                            self.cut.set()
                            cwriter.transport.abort()  # the connection drops mid-answer
                            uwriter.close()
                            return
                cwriter.write(data)
                await cwriter.drain()
            cwriter.close()

        tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            await asyncio.wait(tasks, timeout=30)
        except asyncio.CancelledError:
            pass  # the relay is closing
        finally:
            for t in tasks:
                t.cancel()
            uwriter.close()
            cwriter.close()


def client(url: str, **kw: object) -> Client:
    return Client(api_key=KEY, base_url=url, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------ the tests
def test_streaming_usage_and_timing(proxy: str) -> None:
    events = []
    resp = client(proxy).chat("Say hi")
    for ev in resp:
        events.append(ev)
    assert resp.status == "ok", resp.error
    assert resp.text == SHORT
    assert sum(1 for e in events if e.kind == "answer") > 1  # streamed, not one block
    assert resp.usage is not None and resp.usage.completion_tokens > 0 and resp.usage.prompt_tokens > 0
    assert resp.usage.cache_hit_tokens == 0  # LiteLLM sends no cache fields
    t = resp.timing
    assert t.time_to_first_token is not None and t.total is not None and t.tokens > 0
    # a LiteLLM alias named deepseek-flash is not DeepSeek: no DeepSeek price (issue 15)
    assert client(proxy).known_dialect() == "openai" and cost_of(resp) is None


def test_no_thinking_is_not_sent_and_not_refused(proxy: str) -> None:
    resp = client(proxy).chat("Say hi", thinking=False, reasoning_effort="high")
    resp.join(60)
    assert resp.status == "ok", resp.error
    assert "thinking" not in resp.request and "reasoning_effort" not in resp.request
    assert "not sent: thinking, reasoning_effort" in resp.status_message
    # what used to happen: told it is DeepSeek, the field goes out and LiteLLM refuses it
    refused = client(proxy, dialect="deepseek", max_retries=0).chat("Say hi", thinking=False)
    refused.join(60)
    assert refused.status == "error" and "thinking" in str(refused.error)


def test_a_429_from_the_proxy(proxy: str) -> None:
    resp = client(proxy, max_retries=0).chat("q", model="limited")
    resp.join(60)
    assert resp.status == "error"
    assert isinstance(resp.error, RateLimitError) and resp.error.status_code == 429
    assert "rate limit" in str(resp.error).lower()


def test_a_mid_stream_drop_is_not_resumed_on_beta(proxy: str) -> None:
    with Relay(proxy, cut_after=5) as relay:
        resp = client(relay.url, resume=2).chat("q")
        resp.join(60)
        assert relay.cut.is_set()
        assert resp.status == "interrupted"
        assert isinstance(resp.error, StreamInterruptedError)
        assert "cannot continue a partial answer" in str(resp.error)
        assert resp.text and SHORT.startswith(resp.text)  # the partial text is kept
        assert relay.paths == ["/chat/completions"]  # no /beta request
        assert resp.resumes == 0


def test_balance_says_it_is_deepseek_only(proxy: str) -> None:
    with pytest.raises((DialectError, APIStatusError)) as info:  # refused here, or the proxy's 404
        client(proxy).balance()
    assert "DeepSeek" in str(info.value)


@pytest.mark.kernel
def test_the_magic_in_a_real_kernel(proxy: str, kernel_factory) -> None:  # type: ignore[no-untyped-def]
    k = kernel_factory(env={"DEEPSEEK_API_KEY": KEY, "DEEPSEEK_BASE_URL": proxy})
    r = k.run("%%deepseek --no-thinking\nSay hi", timeout=120)
    assert r.status == "ok", r.error
    finals = [m for m in r.outputs if m["msg_type"] in ("display_data", "update_display_data")]
    assert finals and SHORT in finals[-1]["content"]["data"]["text/plain"]
    after = k.run("print(_.status, 'thinking' in _.request, _.usage.completion_tokens > 0)", timeout=30)
    assert after.stdout.split() == ["ok", "False", "True"], after.stdout


# Last: LiteLLM's mock goes on writing the long reply for a while after our socket closed, and the
# proxy is slow to answer anything else meanwhile (seen: about 40 s on 2 cores).
def test_cancel_closes_our_socket(proxy: str) -> None:
    with Relay(proxy, paced=True) as relay:
        resp = client(relay.url).chat("long", model="long")
        assert wait_until(lambda: resp.text_so_far or resp.status not in ("pending", "running"), 60)
        assert resp.status in ("running", "pending"), resp.error
        resp.cancel()
        assert resp.join(30)
        assert resp.status == "cancelled"
        assert relay.hung_up.wait(10)  # the proxy's reply was still open when our socket closed
        assert resp.text_so_far and len(resp.text_so_far) < len(LONG)
