"""The response cache: hits replay without a request, only complete answers are stored, the file is
private and shared safely, and the API key never reaches it."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from offline_helpers import KEY

import ds_magic
from ds_magic import AnswerDelta, Client, Finish, ReasoningDelta, ResponseCache, RetryPolicy
from ds_magic.cache import CachedAnswer, default_cache_path, request_key
from ds_magic.testing import Script
from ds_magic.types import Usage

KEY2 = "sk-other9876543210fedcba9876543210"


async def _no_wait(seconds: float) -> None:
    await asyncio.sleep(0)  # the injected retry sleep: yields, waits for nothing


@pytest.fixture
def cache(tmp_path):
    c = ResponseCache(tmp_path / "responses.sqlite3")
    yield c
    c.close()


def make_client(srv, cache=None, key=KEY, resume=0) -> Client:
    # resume=0: an interrupted answer stays interrupted here (resuming is tests/test_resume.py).
    return Client(
        api_key=key, base_url=srv.url, cache=cache, retry=RetryPolicy(sleep=_no_wait), resume=resume
    )


def test_miss_then_hit_makes_no_request_and_costs_nothing(srv, cache):
    ds_magic.clear_records()
    srv.enqueue(Script(text="Paris is the capital.", reasoning="France, capital."))
    client = make_client(srv, cache)
    first = client.chat("Capital of France?")
    assert first.text == "Paris is the capital." and not first.cached
    n = len(srv.requests)
    again = client.chat("Capital of France?")
    assert again.text == "Paris is the capital."
    assert again.reasoning == "France, capital."
    assert again.cached and again.status == "ok" and again.finish_reason == first.finish_reason
    assert again.usage == first.usage
    assert len(srv.requests) == n  # the server saw nothing
    assert cache.stats()["hits"] == 1 and cache.stats()["misses"] == 1 and cache.stats()["entries"] == 1
    recs = ds_magic.records(as_dataframe=False)
    assert [r["cached"] for r in recs] == [False, True]
    assert recs[-1]["cost"] == 0.0 and recs[0]["cost"] is not None and recs[0]["cost"] > 0


def test_hit_replays_as_a_stream_through_the_event_path(srv, cache):
    text = "".join(f"word{i} " for i in range(120))
    srv.enqueue(Script(text=text, reasoning="some thinking " * 10))
    client = make_client(srv, cache)
    assert client.chat("long one").text == text
    resp = client.chat("long one")
    events = list(resp)
    answers = [e for e in events if isinstance(e, AnswerDelta)]
    assert "".join(a.text for a in answers) == text
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "some thinking " * 10
    assert isinstance(events[-1], Finish) and events[-1].status == "ok"
    # Pieces over time, not one lump, so a viewer sees it stream: the first piece is stamped on the
    # engine loop before the last one is pushed. (How many pieces a reader gets depends on when it is
    # woken, once per tick: pump.WAKE_EVERY; so their count is not the check.)
    t = resp.timing
    assert resp.cached and t.total is not None and t.time_to_first_token is not None
    assert t.time_to_first_token < t.total


def test_parameters_and_messages_are_in_the_key(srv, cache):
    client = make_client(srv, cache)
    srv.enqueue(Script(text="a"), Script(text="b"), Script(text="c"), Script(text="d"))
    assert client.chat("same").text == "a"
    assert client.chat("same", temperature=0.5).text == "b"
    assert client.chat("same", system="be brief").text == "c"
    assert client.chat("other").text == "d"
    assert client.chat("same", temperature=0.5).wait().cached
    assert len(srv.requests) == 4


def test_request_key_leaves_out_delivery_options_only():
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}
    same = {**body, "stream": False, "stream_options": {"include_usage": True}, "user_id": "u1"}
    assert request_key(body) == request_key(same)
    assert request_key(body) != request_key({**body, "temperature": 0.2})
    assert request_key(body) != request_key({**body, "model": "n"})
    assert request_key(body) != request_key(body, scope=("beta",))
    # key order does not matter
    assert request_key({"b": 1, "a": 2}) == request_key({"a": 2, "b": 1})


def test_per_call_override(srv, cache):
    srv.enqueue(Script(text="one"), Script(text="two"), Script(text="three"))
    plain = make_client(srv)
    assert plain.chat("q", cache=cache).text == "one"  # stored through the override
    assert plain.chat("q", cache=cache).wait().cached
    assert not plain.chat("q").wait().cached  # no cache on this client: a request
    cached_client = make_client(srv, cache)
    r = cached_client.chat("q", cache=False)
    assert r.text == "three" and not r.cached
    assert len(srv.requests) == 3


@pytest.mark.parametrize(
    "scripts",
    [
        [Script(status=400)],
        [Script(status=500)] * 3,  # the first try and two retries
        [Script(text="alpha beta gamma delta epsilon zeta", reasoning="", fault="drop", fault_after=4)],
    ],
    ids=["error-400", "error-500", "interrupted"],
)
def test_failed_answers_are_not_stored(srv, cache, scripts):
    srv.enqueue(*scripts)
    resp = make_client(srv, cache).chat("q")
    resp.join()
    assert resp.status in ("error", "interrupted")
    assert cache.stats()["entries"] == 0
    srv.enqueue(Script(text="fine"))
    assert make_client(srv, cache).chat("q").text == "fine"
    assert cache.stats()["entries"] == 1


def test_cancelled_answer_is_not_stored(srv, cache):
    srv.enqueue(Script(text="word " * 400, reasoning="", tokens_per_second=100))
    resp = make_client(srv, cache).chat("long")
    for ev in resp:
        if isinstance(ev, AnswerDelta):
            break
    resp.cancel()
    resp.join()
    assert resp.status == "cancelled"
    assert cache.stats()["entries"] == 0


def test_conversation_key_is_the_full_message_list(srv, cache):
    client = make_client(srv, cache)
    srv.enqueue(Script(text="hello"), Script(text="hello again"))
    conv = ds_magic.Conversation("c1")
    assert client.chat("Hi", conversation=conv).text == "hello"
    second = client.chat("Hi", conversation=conv)  # same prompt, but with history: another request
    assert second.text == "hello again" and not second.cached
    other = ds_magic.Conversation("c2")
    first_again = client.chat("Hi", conversation=other)  # same full message list as c1's first turn
    assert first_again.text == "hello" and first_again.cached
    assert [t.content for t in other.turns] == ["Hi", "hello"]  # a hit is recorded like an answer
    assert len(srv.requests) == 2


def test_api_key_is_not_in_the_key_nor_in_the_file(srv, cache):
    srv.enqueue(Script(text="shared answer"))
    assert make_client(srv, cache, key=KEY).chat("q").text == "shared answer"
    hit = make_client(srv, cache, key=KEY2).chat("q").wait()
    assert hit.cached and hit.text == "shared answer"
    cache.close()
    blobs = b"".join(
        p.read_bytes() for p in cache.path.parent.iterdir() if p.name.startswith(cache.path.name)
    )
    assert b"shared answer" in blobs  # the scan does see the stored data
    for secret in (KEY, KEY2, "Bearer"):
        assert secret.encode() not in blobs


def test_file_and_directory_are_private(tmp_path):
    path = tmp_path / "sub" / "dir" / "r.sqlite3"
    with ResponseCache(path) as c:
        c.put("k", CachedAnswer(text="x", model="m"))
        assert c.get("k") is not None
        for p in path.parent.iterdir():  # the database and its -wal / -shm files
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_loose_existing_file_is_tightened(tmp_path):
    path = tmp_path / "r.sqlite3"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    with ResponseCache(path) as c:
        c.stats()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_default_path_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_path() == tmp_path / "ds_magic" / "responses.sqlite3"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_path() == tmp_path / "home" / ".cache" / "ds_magic" / "responses.sqlite3"


def _answer(n: int, size: int = 1000) -> CachedAnswer:
    return CachedAnswer(text=str(n) * size, model="m", usage=Usage(completion_tokens=n))


def test_lru_eviction_by_size(tmp_path):
    with ResponseCache(tmp_path / "r.sqlite3", max_bytes=2600) as c:
        c.put("a", _answer(1))
        c.put("b", _answer(2))
        assert c.stats()["entries"] == 2
        assert c.get("a") is not None  # a is now the most recently used
        c.put("c", _answer(3))  # over the limit: b, the least recently used, goes
        assert c.get("b") is None
        got = c.get("a")
        assert got is not None and got.text == "1" * 1000 and got.usage == Usage(completion_tokens=1)
        assert c.get("c") is not None
        assert c.stats()["bytes"] <= 2600
        assert not c.put("huge", _answer(4, size=5000))  # bigger than the whole cache: not stored
        c.clear()
        assert c.stats()["entries"] == 0 and c.stats()["bytes"] == 0


_WRITER = """
import sys
from ds_magic.cache import CachedAnswer, ResponseCache
path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = ResponseCache(path)
for i in range(n):
    c.put(f"{tag}-{i}", CachedAnswer(text=f"{tag} answer {i} " * 20, model="m"))
    assert c.get(f"{tag}-{i}") is not None
    c.get(f"main-{i}")
print(c.stats()["entries"])
"""


def test_two_processes_and_threads_share_the_file(tmp_path):
    path = tmp_path / "shared.sqlite3"
    n = 40
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), f"p{k}", str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        for k in range(2)
    ]
    errors: list[BaseException] = []

    def write(tag: str) -> None:
        try:
            c = ResponseCache(path)  # each thread its own connection, as two kernels would
            for i in range(n):
                c.put(f"{tag}-{i}", CachedAnswer(text=f"{tag} {i}", model="m"))
            c.close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f"t{k}",)) for k in range(2)]
    shared = ResponseCache(path)
    for t in threads:
        t.start()
    for i in range(n):  # and the main thread, through one shared object
        shared.put(f"main-{i}", CachedAnswer(text=f"main {i}", model="m"))
    for t in threads:
        t.join(30)
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    assert not errors
    assert shared.stats()["entries"] == 5 * n
    assert shared.get("p1-7") is not None and shared.get("t0-3") is not None
    shared.close()
