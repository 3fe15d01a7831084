"""Notebook behaviours the rest of the suite could let through broken, in a real kernel on the offline
server: ``max_history_tokens`` really trims what ``%%deepseek`` sends, and ``%deepseek stats`` with no
run records fails with a one-line message instead of printing zero totals."""

from __future__ import annotations

import re

import pytest
from offline_helpers import KEY

from ds_magic.conversation import estimate_message_tokens
from ds_magic.testing import Script

pytestmark = pytest.mark.kernel


@pytest.fixture
def k(module_kernel, srv):
    srv.reset()
    module_kernel.run("%deepseek reset", timeout=10).raise_for_error()
    yield module_kernel
    module_kernel.run("%config DeepSeekMagics.max_history_tokens = 200000", timeout=10)


# ------------------------------------------------------------------------- max_history_tokens


def long_prompt(n: int) -> str:
    # ~600 characters, ~180 estimated tokens; the number makes each exchange recognisable.
    return f"prompt {n}: " + " ".join(f"lorem{n} ipsum dolor sit amet" for _ in range(20))


LIMIT = 500  # room for the new prompt and one earlier exchange, not two


def test_magic_honours_max_history_tokens(srv, k):
    k.run(f"%config DeepSeekMagics.max_history_tokens = {LIMIT}", timeout=10).raise_for_error()
    full: list[dict[str, str]] = []  # every exchange so far, as the wire carries it
    for n in range(1, 5):
        srv.enqueue(Script(text=f"answer {n}", reasoning=""))
        prompt = long_prompt(n)
        k.run(f"%%deepseek\n{prompt}", timeout=30).raise_for_error()
        full += [{"role": "user", "content": prompt}, {"role": "assistant", "content": f"answer {n}"}]

    sent = srv.requests[-1].body["messages"]
    wire = [{"role": m["role"], "content": m["content"]} for m in sent]
    assert wire[-1] == {"role": "user", "content": long_prompt(4)}
    assert long_prompt(1) not in [m["content"] for m in wire], "the oldest exchange was sent"
    assert estimate_message_tokens(sent) <= LIMIT, f"{estimate_message_tokens(sent)} > {LIMIT}"
    # What was sent is the newest part of the history, whole exchanges, as much of it as fits.
    history = full[:-2]  # the exchanges before the last prompt
    kept = len(wire) - 1
    assert kept % 2 == 0 and wire[:-1] == history[len(history) - kept :]
    if kept < len(history):
        one_more = history[len(history) - kept - 2 :] + [wire[-1]]
        assert estimate_message_tokens(one_more) > LIMIT, "an exchange that fits was left out"
    assert kept >= 2, "not even the previous exchange was sent although it fits"

    # Raised again: every turn is sent.
    k.run("%config DeepSeekMagics.max_history_tokens = 200000", timeout=10).raise_for_error()
    srv.enqueue(Script(text="answer 5", reasoning=""))
    k.run(f"%%deepseek\n{long_prompt(5)}", timeout=30).raise_for_error()
    sent = srv.requests[-1].body["messages"]
    assert [(m["role"], m["content"]) for m in sent] == [
        *((m["role"], m["content"]) for m in full),
        ("user", long_prompt(5)),
    ]


# ------------------------------------------------------------------------- %deepseek stats


def assert_stats_fails_with_one_line(r) -> None:
    assert r.status == "error", f"%deepseek stats succeeded with no run records; it printed:\n{r.stdout}"
    errors = [m for m in r.outputs if m["msg_type"] == "error"]
    assert len(errors) == 1 and r.outputs[-1] is errors[0], "the cell must end with one error message"
    text = errors[0]["content"]["evalue"].strip()
    assert "\n" not in text, f"not one line: {text!r}"
    assert re.search(r"\bno (run )?records\b", text, re.I), f"does not say there are no run records: {text!r}"
    # ... and what to do: make a request first (a %%deepseek cell, or Client.chat).
    assert re.search(r"%%deepseek|chat", text), f"does not say what to do: {text!r}"
    assert not re.search(r"^\s*\w+: ", r.stdout, re.M), f"printed totals:\n{r.stdout}"


def test_stats_fails_in_a_fresh_kernel_with_no_run_records(kernel_factory, server, tmp_path):
    env = {"DEEPSEEK_API_KEY": KEY, "DEEPSEEK_BASE_URL": server.url, "XDG_CACHE_HOME": str(tmp_path)}
    fresh = kernel_factory(env=env)
    assert_stats_fails_with_one_line(fresh.run("%deepseek stats", timeout=30))


# The public way to clear the records.
CLEAR_RECORDS = "import ds_magic\nds_magic.clear_records()"


def test_stats_fails_after_the_records_are_cleared(srv, k):
    srv.enqueue(Script(text="hi", reasoning=""))
    k.run("%%deepseek\nhello", timeout=30).raise_for_error()
    assert k.run("%deepseek stats", timeout=30).status == "ok"  # one record: totals are shown
    k.run(CLEAR_RECORDS, timeout=10).raise_for_error()
    assert_stats_fails_with_one_line(k.run("%deepseek stats", timeout=30))
