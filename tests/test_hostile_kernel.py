"""The hostile-server faults that used to break a notebook cell, in a real kernel (issue 14):
a lone surrogate failed the cell with UnicodeEncodeError and left the live Cancel widget in the
saved output; a non-string ``content`` left the cell running with a Cancel button that did nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from hostile import GOOD, Queue, RawServer, answer, chunk, sse
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
    return not k.find_widgets("ButtonModel", description="Cancel", open_only=True)


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
    buttons = k.wait_for(lambda: k.find_widgets("ButtonModel", description="Cancel", open_only=True), 10)
    k.click(buttons[-1])
    res = k.result(mid, 15)
    assert res.status == "ok"
    # Cancelled whether or not the first text had arrived when the button was clicked.
    assert re.search(r"assistant \(cancelled\):( kept)?", k.run("%deepseek history", timeout=10).stdout)
    assert no_live_cancel(k)
