"""A persisted run in a real kernel restarted mid-run: the same cell after the restart sends only the
missing items (the offline server's request log says so) and shows the whole run's table; the off-peak
countdown in the batch view and its Cancel; an estimate as the cell's value."""

from __future__ import annotations

import json

from offline_helpers import KEY, wait_until

from ds_magic.run_store import RunStore
from ds_magic.testing import Script

CELL = """
import ds_magic
items = [f"row {i}" for i in range(8)]
r = ds_magic.batch("Label: {item}", items, run="labels-v2", concurrency=1)
"""


def test_a_run_resumes_after_a_kernel_restart(kernel_factory, srv, tmp_path):
    cache_home = tmp_path / "xdg"
    env = {"DEEPSEEK_API_KEY": KEY, "DEEPSEEK_BASE_URL": srv.url, "XDG_CACHE_HOME": str(cache_home)}
    # Four answers, then a stream that never ends: the kernel dies with item 4 in flight.
    srv.enqueue(*[Script(text=f"label {i}", reasoning="") for i in range(4)], Script(fault="stall"))
    first = kernel_factory(env=env)
    first.run(CELL).raise_for_error()
    store = RunStore(cache_home / "ds_magic" / "runs.sqlite3")
    assert wait_until(lambda: len(srv.requests) == 5 and len(store.done("labels-v2", 0, 8)) == 4, 90)
    pid = first.evaluate("__import__('os').getpid()")
    first.km.restart_kernel(now=True)  # Kernel > Restart: the process is killed and a new one started

    srv.reset()
    second = first
    res = second.run(
        CELL + "await r\nimport json\nprint(json.dumps([[row['item'], row['text']] for row in r.rows()]))",
        timeout=120,
    ).raise_for_error()
    sent = [q.body["messages"][-1]["content"] for q in srv.requests]
    assert sent == [f"Label: row {i}" for i in range(4, 8)]
    assert second.evaluate("__import__('os').getpid()") != pid  # a new kernel process
    rows = json.loads(res.stdout.strip().splitlines()[-1])
    assert [item for item, _ in rows] == list(range(8))
    assert [text for _, text in rows[:4]] == [f"label {i}" for i in range(4)]
    assert all(text for _, text in rows[4:])
    # The progress view's last line, as the notebook saves it.
    shown = [
        m["content"]["data"].get("text/plain", "")
        for m in second.iopub_messages(msg_type=("display_data", "update_display_data"))
    ]
    assert any(s.startswith("batch 8/8 done") for s in shown), shown
    table = second.run("ds_magic.run('labels-v2').table()[['item', 'status']].to_dict('list')").result_text
    assert table is not None and "'status': ['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok']" in table
    store.close()


def test_the_off_peak_countdown_shows_in_the_notebook_and_cancel_ends_the_wait(kernel_factory, srv, tmp_path):
    env = {"DEEPSEEK_API_KEY": KEY, "DEEPSEEK_BASE_URL": srv.url, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    k = kernel_factory(env=env)
    k.run(
        "import ds_magic\n"
        "from datetime import datetime, timezone\n"
        "now = datetime(2026, 11, 30, 9, 58, 30, tzinfo=timezone.utc)  # a Monday, peak until 10:00 UTC\n"
        "r = ds_magic.batch('{item}', ['a', 'b'], when=ds_magic.OffPeak(clock=lambda: now))\n"
    ).raise_for_error()
    k.wait_for_widget(
        lambda s: "waiting for off-peak: starts in 1m30s" in s.get("value", ""), 60, model_name="HTMLModel"
    )
    button = k.find_widgets("ButtonModel", description="Cancel", open_only=True)[-1]
    k.wait_idle(k.click(button))
    out = k.run("r.wait(10); print(r.progress.cancelled, r.done)").raise_for_error()
    assert out.stdout.split() == ["2", "True"]
    assert srv.requests == []
    shown = [
        m["content"]["data"].get("text/plain", "")
        for m in k.iopub_messages(msg_type=("display_data", "update_display_data"))
    ]
    assert any(s.startswith("batch 0/2 done · 2 cancelled") for s in shown), shown
    # An estimate is the cell's value: what the user reads before anything is sent.
    shown = k.run(
        "ds_magic.batch('Label: {item}', ['a', 'b', 'c'], estimate=True, max_tokens=50)"
    ).result_text
    assert shown is not None and shown.startswith("Estimate for 3 items on deepseek-flash:")
    assert "off-peak" in shown and "result.start() sends it" in shown
    assert srv.requests == []
