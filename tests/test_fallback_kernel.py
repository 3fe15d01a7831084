"""The live output's plain-text fallback is the answer so far (issue 13), read off iopub.

A frontend that draws no widgets shows the ``text/plain`` of the latest ``display_data`` /
``update_display_data`` of a display id. A real kernel against the offline server: while the answer
streams, the view re-sends its display (the same widget model, a new text/plain) as fallback.py
schedules it; every assertion reads the iopub messages, and the cost is a test of bytes, not time.
"""

from __future__ import annotations

import sys
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from live_helpers import FRAMING, cell_traffic, size, stream_widget_ids

from ds_magic.jupyter.fallback import FACTOR
from ds_magic.testing import Script

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from iopub import markdown_answer  # noqa: E402

pytestmark = pytest.mark.kernel

VIEW = "application/vnd.jupyter.widget-view+json"
# ~6 KB at 250 tok/s: six seconds, so the floor between refreshes (3 s) leaves two or more.
ANSWER = markdown_answer(8_000, tokens=1_500)


@pytest.fixture
def k(module_kernel):
    return module_kernel


@pytest.fixture(autouse=True)
def fresh(srv, k):
    srv.reset()
    k.run("%deepseek reset", timeout=10)


def display_messages(k, mark: int, display_id: str) -> list[dict[str, Any]]:
    """The display and update messages of one display id, in order."""
    return [
        m
        for m in k.all_iopub[mark:]
        if m["msg_type"] in ("display_data", "update_display_data")
        and m["content"].get("transient", {}).get("display_id") == display_id
    ]


def test_fallback_is_the_growing_answer_then_answer_and_footer(srv, k):
    srv.enqueue(Script(text=ANSWER, reasoning="", tokens_per_second=250))
    mark = k.mark()
    assert k.run("%%deepseek\nexplain", timeout=60).status == "ok", k.describe()
    [wid] = stream_widget_ids(k, mark)
    first = next(m for m in k.all_iopub[mark:] if m["msg_type"] == "display_data")
    display_id = first["content"]["transient"]["display_id"]
    msgs = display_messages(k, mark, display_id)
    refreshes, final = msgs[1:-1], msgs[-1]
    assert len(refreshes) >= 2, [m["content"]["data"].get("text/plain", "")[:40] for m in msgs]
    # Mid-stream: the same widget (never a new view) and the answer so far, a prefix that grows.
    plains = []
    last_custom = max(
        i
        for i, m in enumerate(k.all_iopub)
        if m["msg_type"] == "comm_msg" and m["content"].get("comm_id") == wid and i >= mark
    )
    for m in refreshes:
        data = m["content"]["data"]
        assert data[VIEW]["model_id"] == wid
        plains.append(data["text/plain"])
        assert k.all_iopub.index(m) < last_custom  # the view was still streaming after it
    assert all(p and ANSWER.startswith(p) for p in plains), [p[:60] for p in plains]
    assert all(len(a) < len(b) for a, b in pairwise(plains))
    assert len(plains[-1]) < len(ANSWER)
    # The end: the static output, its fallback the whole answer and the footer.
    assert VIEW not in final["content"]["data"]
    plain = final["content"]["data"]["text/plain"]
    assert plain.startswith(ANSWER.rstrip("\n")) and "\n— " in plain[len(ANSWER.rstrip("\n")) :]
    # Bytes: the refreshes carry at most FACTOR/(FACTOR-1) × the answer (+ framing each). The
    # live-view goals with them in, on the 16 KB answer: test_live_kernel.py's bytes test.
    n = len(ANSWER.encode("utf-8"))
    spent = sum(size(m) for m in refreshes)
    assert spent <= FACTOR / (FACTOR - 1) * n + FRAMING * len(refreshes), (spent, n)
    assert cell_traffic(k, mark)["live"] > spent  # they are counted in the live bytes


def test_a_short_answer_refreshes_once_and_never_shows_the_status_after_text(srv, k):
    srv.enqueue(Script(text="Paris is the capital.", reasoning="", ttft=0.2))
    mark = k.mark()
    assert k.run("%%deepseek\ncapital of France?", timeout=30).status == "ok"
    first = next(m for m in k.all_iopub[mark:] if m["msg_type"] == "display_data")
    msgs = display_messages(k, mark, first["content"]["transient"]["display_id"])
    plains = [m["content"]["data"]["text/plain"] for m in msgs]
    assert plains[0] == "waiting for the first token…"
    assert all("Paris is the capital.".startswith(p) for p in plains[1:-1]) and len(msgs) <= 3, plains
    assert plains[-1].startswith("Paris is the capital.\n— ")
