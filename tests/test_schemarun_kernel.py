"""In a real kernel, against the offline server: ``%%deepseek --each VAR --schema NAME --run RUN`` keeps
each item's checked answer in the persisted run, and the same cell after a kernel restart sends only
the item that failed; ``ds_magic.run(RUN).table()`` has a column per field; --run alone is one line."""

from __future__ import annotations

import json

from offline_helpers import KEY

from ds_magic.testing import Script

SETUP = """
import typing, pydantic, ds_magic
class Label(pydantic.BaseModel):
    label: typing.Literal["spam", "ham"]
mails = ["win a prize", "lunch at one?", "cheap pills"]
"""
CELL = "%%deepseek --each mails --schema Label --run mail-labels -o res --no-thinking\nSpam or ham? {item}"
TABLE = "import json; print(json.dumps(ds_magic.run('mail-labels').table(as_dataframe=False), default=str))"


def test_each_with_schema_and_run_resumes_only_the_failed_item_after_a_restart(kernel_factory, srv, tmp_path):
    env = {"DEEPSEEK_API_KEY": KEY, "DEEPSEEK_BASE_URL": srv.url, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    srv.enqueue(
        Script(text="spam, clearly", match="lunch at one"),
        Script(text='{"label": "ham"}', match="lunch at one"),
        Script(text='{"label": "eggs"}', match="cheap pills"),
        Script(text='{"label": "bacon"}', match="cheap pills"),
    )
    k = kernel_factory(env=env)
    k.run("%load_ext ds_magic", timeout=30).raise_for_error()
    k.run(SETUP, timeout=60).raise_for_error()
    r = k.run(CELL, timeout=60)
    assert r.status == "ok", r.error
    assert len(srv.requests) == 5 and srv.queued == 0
    assert k.evaluate("type(res).__name__") == "'RunResult'"
    rows = json.loads(k.run(TABLE, timeout=30).raise_for_error().stdout)
    assert [row["status"] for row in rows] == ["ok", "ok", "error"]
    assert [row["attempts"] for row in rows] == [1, 2, 2]
    assert rows[1]["label"] == "ham" and rows[2]["label"] is None
    assert "label: Input should be 'spam' or 'ham'" in rows[2]["error"]

    k.km.restart_kernel(now=True)  # Kernel > Restart: the answers are in the runs file, not in memory
    srv.reset()
    srv.enqueue(Script(text='{"label": "spam"}', match="cheap pills"))
    k.run("%load_ext ds_magic", timeout=60).raise_for_error()
    k.run(SETUP, timeout=60).raise_for_error()
    r = k.run(CELL, timeout=60)
    assert r.status == "ok", r.error
    assert [q.body["messages"][1]["content"] for q in srv.requests] == ["Spam or ham? cheap pills"]
    rows = json.loads(k.run(TABLE, timeout=30).raise_for_error().stdout)
    assert [(row["label"], row["status"]) for row in rows][1:] == [("ham", "ok"), ("spam", "ok")]

    srv.reset()
    alone = k.run("%%deepseek --run mail-labels\nx", timeout=30)
    assert alone.status == "error" and "--run mail-labels needs --each VAR" in alone.error.evalue
    assert "\n" not in alone.error.evalue and srv.requests == []
