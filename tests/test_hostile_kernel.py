"""The hostile-server faults that used to break a notebook cell, in a real kernel (issue 14):
a lone surrogate failed the cell with UnicodeEncodeError and left the live Cancel widget in the
saved output; a non-string ``content`` left the cell running with a Cancel button that did nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hostile import GOOD, Queue, RawServer, answer, chunk, redirect, sse
from live_helpers import cancel, open_live_views, shown
from offline_helpers import KEY

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def hostile() -> Iterator[tuple[RawServer, Queue]]:
    queue = Queue()
    with RawServer(queue) as server:
        yield server, queue


@pytest.fixture(scope="module")
def k(hostile, tmp_path_factory):
    from kernel_harness import KernelSession

    server, _ = hostile
    env = {
        "DEEPSEEK_API_KEY": KEY,
        "DEEPSEEK_BASE_URL": server.url,
        "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("xdg-cache")),
    }
    with KernelSession(env=env) as session:
        yield session


@pytest.fixture(autouse=True)
def fresh(k):
    k.run("%deepseek reset", timeout=10)  # each test starts from an empty history


def no_live_cancel(k) -> bool:
    return not open_live_views(k)


def test_a_lone_surrogate_answer_is_a_normal_cell(hostile, k):
    _, queue = hostile
    queue.put(answer("a\ud800b"))
    r = k.run("%%deepseek\nq", timeout=30)
    assert r.status == "ok", r.error
    final = [m for m in r.outputs if m["msg_type"] == "update_display_data"][-1]["content"]["data"]
    assert "a\ufffdb" in final["text/plain"]
    assert no_live_cancel(k)  # the saved output is the answer, not the live widget
    after = k.run("print(_.status, ascii(_.text)); _.text.encode('utf-8')", timeout=10)
    assert after.status == "ok" and "ok 'a\\ufffdb'" in after.stdout


def test_a_non_string_content_ends_the_cell_by_itself(hostile, k):
    _, queue = hostile
    queue.put(sse([GOOD, chunk({"content": 123})], done=False), stall=True)
    r = k.run("%%deepseek\nq", timeout=30)  # the server stays silent: the parser must end it
    assert r.status == "error" and r.error is not None
    assert "delta.content is a number" in r.error.evalue and "\n" not in r.error.evalue
    assert no_live_cancel(k)
    assert "assistant (interrupted): kept" in k.run("%deepseek history", timeout=10).stdout


def test_cancel_ends_a_silent_stream(hostile, k):
    server, queue = hostile
    queue.put(
        sse([GOOD, chunk({"content": "", "tool_calls": []}, extra={"x": [None]})], done=False), stall=True
    )
    mid = k.execute("%%deepseek\nq")
    views = k.wait_for(lambda: open_live_views(k), 10)
    k.wait_for(lambda: shown(k, "kept"), 10, what="the first text on screen")  # the stream is silent now
    cancel(k, views[-1])
    res = k.result(mid, 15)
    assert res.status == "ok"
    assert "assistant (cancelled): kept" in k.run("%deepseek history", timeout=10).stdout
    assert no_live_cancel(k)


def test_text_that_came_just_before_a_stall_is_on_screen_during_the_stall(hostile, k):
    # On a warm connection the first words can arrive before the live view listens; then the
    # server goes silent. They must be drawn now, not at the next event (which never comes).
    server, queue = hostile
    for i in range(4):
        word = f"early{i}"
        queue.put(sse([chunk({"role": "assistant", "content": word + " "})], done=False), stall=True)
        mid = k.execute("%%deepseek --no-history\nq")
        k.wait_for(lambda w=word: server.active == 1 and shown(k, w), 10, what=f"{word} on screen")
        cancel(k, open_live_views(k)[-1])
        assert k.result(mid, 15).status == "ok"
        assert no_live_cancel(k)


def test_a_redirect_fails_the_cell_in_one_line_naming_the_host(k):
    with RawServer(redirect(307, "http://elsewhere.example/v1/chat/completions")) as origin:
        k.run(f"%config DeepSeekMagics.base_url = {origin.url!r}", timeout=10).raise_for_error()
        try:
            r = k.run("%%deepseek\nq", timeout=30)
        finally:
            k.run("%config DeepSeekMagics.base_url = ''", timeout=10).raise_for_error()
    assert r.status == "error" and r.error.ename == "DeepSeekCellError"
    text = r.error.evalue
    assert "redirected the request to elsewhere.example" in text and "\n" not in text
    assert "%config DeepSeekMagics.base_url" in text and "Client(base_url" not in text
    assert len(origin.requests) == 1 and no_live_cancel(k)


def test_a_cache_it_cannot_trust_is_one_line_with_the_notebooks_fix(hostile, k, tmp_path):
    _, queue = hostile
    shared = tmp_path / "shared-cache"
    (shared / "ds_magic").mkdir(parents=True)
    (shared / "ds_magic").chmod(0o777)  # as another user would plant it in a shared XDG_CACHE_HOME
    k.run(
        f"import os; _xdg = os.environ.get('XDG_CACHE_HOME'); os.environ['XDG_CACHE_HOME'] = {str(shared)!r}"
    )
    try:
        r = k.run("%deepseek cache stats", timeout=30)
        assert r.status == "error" and r.error.ename == "DeepSeekCellError"
        text = r.error.evalue
        assert "can be written by other users (mode 0777); it is not used" in text and "\n" not in text
        assert "chmod 700" in text and "%config DeepSeekMagics.cache = False" in text
        assert "ResponseCache(" not in text
        # A cell with --cache is answered without the cache, and says why in one line.
        queue.put(answer("fresh"))
        r = k.run("%%deepseek --cache\nq", timeout=30)
        assert r.status == "ok"
        warned = [line for line in r.stderr.splitlines() if "response cache" in line]
        assert len(warned) == 1 and "%config DeepSeekMagics.cache = False" in warned[0], r.stderr
        assert "ResponseCache(" not in warned[0]
    finally:
        k.run("os.environ['XDG_CACHE_HOME'] = _xdg", timeout=10)
    assert sorted(p.name for p in (shared / "ds_magic").iterdir()) == []  # nothing written there
