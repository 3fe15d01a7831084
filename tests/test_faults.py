"""The fault matrix: every way a DeepSeek stream is known to go wrong, through real sockets.

Each row asserts the same four things:
1. a clear outcome: success, or the right ``DeepSeekError`` subclass with a message that says what to do;
2. the partial text is kept (an interrupted answer's text is a prefix of what the server meant to send);
3. no hang: the request ends within a bound far below the library's default deadlines;
4. the socket is closed: the server has no exchange left in progress afterwards (for the stalls,
   that can only happen because the client closed the connection).

The offline server's faults are documented in ds_magic/testing/__init__.py; resume after a drop has
its own module (test_resume.py), the kernel-level row (■ during a retry wait) is at the end. The
hostile rows (issue 14) come from a raw server (tests/hostile.py) for shapes the offline server
cannot send; the attacks themselves are tested in depth in test_hostile_server.py,
test_cache_trust.py and (hostile conversation files) test_conversation_import.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hostile import GOOD, RawServer, Reply, answer, chunk, echo_key, endless_line, redirect, sse, stream_of
from offline_helpers import KEY, Sleeps, wait_until

from ds_magic import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    Client,
    ConversationStore,
    DeepSeekError,
    EventTooLargeError,
    RateLimitError,
    RedirectError,
    ResponseCache,
    RetryPolicy,
    ServerError,
    StreamDecodeError,
    StreamInterruptedError,
    Timeout,
)
from ds_magic.engine import get_engine
from ds_magic.testing import OfflineServer, Script

TEXT = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu"
BOUND = 15.0  # seconds: every row must end well within this (the library's defaults are minutes)


@dataclass
class Row:
    scripts: list[Script]
    status: str  # the Response's final status
    error: type[DeepSeekError] | None = None
    match: str | None = None  # in the error message
    text: str | None = None  # the exact final text, when it is known
    partial: bool = False  # interrupted with some text that must be a prefix of TEXT
    requests: int | None = None
    client: dict[str, Any] = field(default_factory=dict)
    delays: list[float] | None = None  # the retry waits that must have been asked for


ROWS: dict[str, Row] = {
    "drop before headers, then success": Row(
        [Script(fault="drop_before_headers"), Script(text=TEXT, reasoning="")], "ok", text=TEXT, requests=2
    ),
    "drop before headers every time": Row(
        [Script(fault="drop_before_headers")] * 3,
        "error",
        APIConnectionError,
        "closed the connection before answering",
        requests=3,
    ),
    "drop after N chunks (resumed)": Row(
        [Script(text=TEXT, reasoning="", fault="drop", fault_after=5), Script(text=TEXT, reasoning="")],
        "ok",
        text=TEXT,
        requests=2,
    ),
    "drop after N chunks (resume off)": Row(
        [Script(text=TEXT, reasoning="", fault="drop", fault_after=5)],
        "interrupted",
        StreamInterruptedError,
        "partial answer",
        partial=True,
        requests=1,
        client={"resume": 0},
    ),
    "EOF without [DONE] (resume off)": Row(
        [Script(text=TEXT, reasoning="", fault="eof_no_done", fault_after=4)],
        "interrupted",
        StreamInterruptedError,
        r"\[DONE\]",
        partial=True,
        client={"resume": 0},
    ),
    "stall with no bytes": Row(
        [Script(text=TEXT, reasoning="", fault="stall", fault_after=0)],
        "error",
        APITimeoutError,
        "no answer started within 0.6 s",
        client={"timeout": Timeout(connect=5, first_token=0.6, idle=0.6)},
    ),
    "stall mid-answer": Row(
        [Script(text=TEXT, reasoning="", fault="stall", fault_after=4)],
        "interrupted",
        APITimeoutError,
        "partial answer",
        partial=True,
        client={"timeout": Timeout(connect=5, first_token=5, idle=0.6)},
    ),
    "keep-alive comments forever": Row(
        [Script(text=TEXT, reasoning="", fault="stall_keepalive", fault_after=0, keepalive_interval=0.1)],
        "error",
        APITimeoutError,
        "no answer started within 0.8 s",
        client={"timeout": Timeout(connect=5, first_token=0.8, idle=5)},
    ),
    "keep-alives after the answer, no [DONE]": Row(
        [Script(text=TEXT, reasoning="", fault="keepalive_after_answer", keepalive_interval=0.1)],
        "ok",
        text=TEXT,
    ),
    "429 then success": Row(
        [Script(status=429), Script(text=TEXT, reasoning="")], "ok", text=TEXT, requests=2, delays=[1.0]
    ),
    "429 every time": Row([Script(status=429)] * 3, "error", RateLimitError, "429", requests=3),
    "503 with Retry-After": Row(
        [Script(status=503, headers={"Retry-After": "7"}), Script(text=TEXT, reasoning="")],
        "ok",
        text=TEXT,
        delays=[7.0],
    ),
    "503 without Retry-After": Row(
        [Script(status=503), Script(text=TEXT, reasoning="")], "ok", text=TEXT, delays=[1.0]
    ),
    "500 three times": Row([Script(status=500)] * 3, "error", ServerError, "500", requests=3),
    "malformed JSON chunk": Row(
        [Script(text=TEXT, reasoning="", fault="malformed_json", fault_after=3)],
        "interrupted",
        StreamDecodeError,
        "not valid JSON",
        partial=True,
    ),
    "HTML error page with 200": Row(
        [Script(fault="html_error", status=200)] * 3, "error", StreamDecodeError, "text/html", requests=1
    ),
    "HTML error page with 502": Row(
        [Script(fault="html_error", status=502)] * 3, "error", ServerError, "HTML", requests=3
    ),
    "wrong content type": Row(
        [Script(text=TEXT, fault="wrong_content_type")], "error", StreamDecodeError, "event stream"
    ),
    "a 5 MB single event": Row(
        [Script(text=TEXT, reasoning="", fault="big_event", fault_after=2, fault_size=5_000_000)], "ok"
    ),
    "invalid UTF-8": Row([Script(text=TEXT, reasoning="", fault="invalid_utf8", fault_after=2)], "ok"),
    "429 asking for longer than we wait": Row(
        [Script(status=429, headers={"Retry-After": "3600"})] * 2,
        "error",
        RateLimitError,
        "asked to wait 3600 s",
        requests=1,
        delays=[],
    ),
    "a character split across writes": Row(
        [Script(text="naïve café — 中文 🎉 " + TEXT, reasoning="", fault="split_utf8")],
        "ok",
        text="naïve café — 中文 🎉 " + TEXT,
    ),
}


def run_row(srv: OfflineServer, row: Row) -> tuple[Any, Sleeps, float]:
    sleeps = Sleeps()
    kw = dict(row.client)
    client = Client(
        api_key=KEY,
        base_url=srv.url,
        retry=RetryPolicy(max_retries=2, sleep=sleeps, random=lambda: 0.0),
        **kw,
    )
    srv.enqueue(*row.scripts)
    t0 = time.monotonic()
    resp = client.chat("q")
    finished = resp.join(BOUND)
    return resp, sleeps, (time.monotonic() - t0) if finished else float("inf")


@pytest.mark.parametrize("name", list(ROWS))
def test_fault_matrix(srv, name):
    row = ROWS[name]
    resp, sleeps, took = run_row(srv, row)
    # 3. no hang
    assert took < BOUND, f"{name}: still running after {BOUND} s"
    # 1. a clear outcome
    assert resp.status == row.status, f"{name}: {resp.status} ({resp.error})"
    if row.error is None:
        assert resp.error is None
    else:
        assert isinstance(resp.error, row.error), f"{name}: {type(resp.error).__name__}: {resp.error}"
        message = str(resp.error)
        assert "\n" not in message and KEY not in message
        if row.match:
            assert re.search(row.match, message), message
    if row.text is not None:
        assert resp.text == row.text
    # 2. the partial text is kept
    if row.partial:
        assert resp.text_so_far and TEXT.startswith(resp.text_so_far), resp.text_so_far
        assert getattr(resp.error, "partial", resp.text_so_far) == resp.text_so_far
    if row.requests is not None:
        assert len(srv.requests) == row.requests
    if row.delays is not None:
        assert sleeps.delays == row.delays
    # 4. the socket is closed: nothing is left streaming on the server
    assert wait_until(lambda: srv.active == 0, 3), f"{name}: the server still has {srv.active} exchange(s)"


@dataclass
class HostileRow:
    reply: Callable[[str], Reply]  # given the URL of a second server, which must get nothing
    status: str
    error: type[DeepSeekError] | None = None
    match: str | None = None
    text: str | None = None
    key: str = KEY
    client: dict[str, Any] = field(default_factory=dict)


ODD_KEY = "not-an-sk-key-0123456789"
HOSTILE_ROWS: dict[str, HostileRow] = {
    "non-string content": HostileRow(
        lambda _: stream_of(sse([GOOD, chunk({"content": 123})], done=False), stall=True),
        "interrupted",
        StreamDecodeError,
        "delta.content is a number",
        text="kept ",
    ),
    "an endless data: line": HostileRow(
        lambda _: endless_line,
        "interrupted",
        EventTooLargeError,
        "64 KiB limit",
        text="kept ",
        client={"max_event_bytes": 64 * 1024},
    ),
    "a redirect to another host": HostileRow(
        lambda elsewhere: redirect(307, elsewhere + "/chat/completions"), "error", RedirectError, "localhost:"
    ),
    "an echoed non-sk key": HostileRow(
        lambda _: echo_key(401), "error", AuthenticationError, r"key \*\*\*\* rejected", key=ODD_KEY
    ),
    "lone surrogates": HostileRow(lambda _: stream_of(answer("a\ud800b")), "ok", text="a\ufffdb"),
}


@pytest.mark.parametrize("name", list(HOSTILE_ROWS))
def test_hostile_matrix(name):
    row = HOSTILE_ROWS[name]
    with RawServer(stream_of(answer("from elsewhere"))) as elsewhere:
        with RawServer(row.reply(f"http://localhost:{elsewhere.port}")) as server:
            client = Client(
                api_key=row.key, base_url=server.url, retry=RetryPolicy(max_retries=0), resume=0, **row.client
            )
            resp = client.chat("q")
            assert resp.join(BOUND), f"{name}: still running after {BOUND} s"  # 3. no hang
            assert resp.status == row.status, f"{name}: {resp.status} ({resp.error})"  # 1. the outcome
            if row.error is None:
                assert resp.error is None
            else:
                assert isinstance(resp.error, row.error), f"{name}: {type(resp.error).__name__}: {resp.error}"
                message = str(resp.error)
                assert "\n" not in message and row.key not in message + repr(vars(resp.error))
                assert row.match is None or re.search(row.match, message), message
            if row.text is not None:  # 2. the partial (or whole) text is kept, and can be saved
                assert resp.text == row.text and resp.text.encode("utf-8")
            assert wait_until(lambda: server.active == 0, 3), f"{name}: a socket is still open"  # 4.
        assert elsewhere.requests == []


@pytest.mark.parametrize("plant", ["0777 folder", "symlink"])
def test_planted_cache_rows(srv, tmp_path, plant):
    """A cache planted by another user is refused: the answer comes without it, nothing is written."""
    victim = tmp_path / "victim"
    victim.write_text("theirs")
    folder = tmp_path / "ds_magic"
    folder.mkdir(mode=0o700)
    if plant == "0777 folder":
        folder.chmod(0o777)
    else:
        (folder / "responses.sqlite3").symlink_to(victim)
    srv.enqueue(Script(text=TEXT, reasoning=""))
    client = Client(api_key=KEY, base_url=srv.url, cache=ResponseCache(folder / "responses.sqlite3"))
    resp = client.chat("q")
    assert resp.join(BOUND) and resp.status == "ok" and resp.text == TEXT and not resp.cached
    assert victim.read_text() == "theirs" and victim.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in folder.iterdir()] == ([] if plant == "0777 folder" else ["responses.sqlite3"])


#: Hostile conversation files (issue 14): each is refused with one line naming the field, before
#: anything is stored (the attacks in depth: test_conversation_import.py).
_TURNS = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
IMPORT_ROWS: dict[str, tuple[Any, str]] = {
    "tool_calls a string": (
        [{"name": "x", "turns": [_TURNS[0], {**_TURNS[1], "tool_calls": "zzz"}]}],
        r"^conversations\[0\]\.turns\[1\]\.tool_calls: must be a list of tool calls, not a string$",
    ),
    "system a number": ([{"name": "x", "system": 12345, "turns": _TURNS}], r"^conversations\[0\]\.system: "),
    "a control character in a name": ([{"name": "x\u202e", "turns": _TURNS}], r"^conversations\[0\]\.name: "),
    "100k-deep JSON": ("[" * 100_000 + "]" * 100_000, "nested too deeply to read$"),
    "120 MB": (None, r"^the file is 114\.4 MiB, more than the 32\.0 MiB an import reads"),
}


@pytest.mark.parametrize("name", list(IMPORT_ROWS))
def test_hostile_import_rows(tmp_path, name):
    doc, match = IMPORT_ROWS[name]
    path = tmp_path / "import.json"
    if doc is None:
        with open(path, "wb") as f:
            f.truncate(120 * 1000 * 1000)  # sparse: refused by its size, never read
    else:
        text = (
            doc
            if isinstance(doc, str)
            else json.dumps({"format": "ds_magic.conversations", "version": 1, "conversations": doc})
        )
        path.write_text(text)
    store = ConversationStore()
    store.get("mine").add_user("kept")
    with pytest.raises(ValueError) as info:
        store.import_(path)
    assert "\n" not in str(info.value) and re.search(match, str(info.value)), str(info.value)
    assert store.names() == ["mine"] and len(store.get("mine")) == 1  # nothing stored, nothing changed


def test_big_and_invalid_events_keep_all_the_text(srv):
    """The two rows above whose text is not simply TEXT: what exactly arrives."""
    resp, _, _ = run_row(srv, Row([Script(text="a b", reasoning="", fault="big_event", fault_after=2)], "ok"))
    assert len(resp.text) >= 5_000_000 and resp.text.startswith("a") and resp.text.endswith(" b")
    resp, _, _ = run_row(
        srv, Row([Script(text="a b", reasoning="", fault="invalid_utf8", fault_after=2)], "ok")
    )
    assert "\ufffd" in resp.text and resp.text.startswith("a") and resp.text.endswith(" b")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused_is_retried_then_reported():
    port = _free_port()  # nothing listens here
    sleeps = Sleeps()
    client = Client(api_key=KEY, base_url=f"http://127.0.0.1:{port}", retry=RetryPolicy(sleep=sleeps))
    resp = client.chat("q")
    assert resp.join(BOUND)
    assert resp.status == "error" and isinstance(resp.error, APIConnectionError)
    assert "check the network and DEEPSEEK_BASE_URL" in str(resp.error)
    assert len(sleeps.delays) == 2  # two retries, then the error


def test_unresolvable_host_is_a_clear_connection_error():
    # .invalid never resolves (RFC 6761); no packet leaves this machine for it.
    client = Client(
        api_key=KEY,
        base_url="http://no-such-host.invalid",
        retry=RetryPolicy(max_retries=0),
        timeout=Timeout(connect=5),
    )
    resp = client.chat("q")
    assert resp.join(BOUND)
    assert resp.status == "error" and isinstance(resp.error, (APIConnectionError, APITimeoutError))
    assert "no-such-host.invalid" in str(resp.error) or "connect" in str(resp.error)


def test_server_closes_during_a_retry_wait():
    """The server goes away (and comes back on the same port) while the client sleeps before a
    retry: the pooled connection is dead, and the retry must open a new one and succeed."""
    port = _free_port()
    srv = OfflineServer(port=port).start()
    restarted: list[OfflineServer] = []

    async def restart_while_sleeping(seconds: float) -> None:
        def bounce() -> None:
            srv.stop()
            fresh = OfflineServer(port=port).start()
            fresh.enqueue(Script(text=TEXT, reasoning=""))
            restarted.append(fresh)

        await asyncio.get_running_loop().run_in_executor(None, bounce)

    try:
        srv.enqueue(Script(status=503))
        client = Client(api_key=KEY, base_url=srv.url, retry=RetryPolicy(sleep=restart_while_sleeping))
        resp = client.chat("q")
        assert resp.join(BOUND)
        assert resp.status == "ok" and resp.text == TEXT
        assert restarted and len(restarted[0].requests) == 1
        assert wait_until(lambda: restarted[0].active == 0, 3)
    finally:
        srv.stop()
        for s in restarted:
            s.stop()


def test_client_cancel_during_the_retry_wait(srv):
    gate = threading.Event()

    async def long_sleep(seconds: float) -> None:
        gate.set()
        await asyncio.sleep(60)  # the scenario: a retry wait that outlasts the test, not a wait

    srv.enqueue(Script(status=503), Script(text="never sent"))
    client = Client(api_key=KEY, base_url=srv.url, retry=RetryPolicy(sleep=long_sleep))
    resp = client.chat("q")
    assert gate.wait(5)
    resp.cancel()
    assert resp.join(2)  # the 60 s retry wait did not hold it up
    assert resp.status == "cancelled" and resp.error is None
    assert wait_until(lambda: get_engine().active_tasks == 0, 5)  # the request task has ended
    assert len(srv.requests) == 1  # the retry was never sent
    assert wait_until(lambda: srv.active == 0, 3)


def test_kernel_interrupt_during_the_retry_wait(srv, kernel_factory):
    """■ while the cell waits out a Retry-After: the cell ends at once, the retry is never sent."""
    k = kernel_factory(env={"DEEPSEEK_API_KEY": KEY, "DEEPSEEK_BASE_URL": srv.url})
    srv.enqueue(Script(status=429, headers={"Retry-After": "30"}), Script(text="never sent"))
    mid = k.execute("%%deepseek\nq")
    # The 429 has been answered and its connection is done: the client is inside the 30 s wait now.
    assert wait_until(lambda: len(srv.requests) == 1 and srv.active == 0, 15)
    k.interrupt()
    res = k.result(mid, 10)  # well inside the 30 s Retry-After: the interrupt ended the wait
    assert res.status == "error"
    assert res.error is not None and res.error.evalue.startswith(
        "Stopped before the first token"
    )  # issue 13 wording
    idle = "from ds_magic.engine import get_engine; print(get_engine().active_tasks)"
    assert wait_until(lambda: k.run(idle, timeout=10).stdout.strip() == "0", 10)  # the task has ended
    assert len(srv.requests) == 1
    assert wait_until(lambda: srv.active == 0, 3)
    assert k.run("print('still usable')", timeout=10).stdout.strip() == "still usable"


def test_status_errors_are_api_status_errors():
    """The rows' error classes are the documented tree (one translation place: _http.py)."""
    for cls in (RateLimitError, ServerError):
        assert issubclass(cls, APIStatusError)
