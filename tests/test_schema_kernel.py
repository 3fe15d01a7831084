"""In a real kernel, against the offline server: %%deepseek --each VAR --schema NAME (an invalid answer
retried, then recorded), and the Comparison grid as iopub carries it (safe answers, a summary row)."""

from __future__ import annotations

import json

import pytest

from ds_magic.testing import Script

pytestmark = pytest.mark.kernel

SETUP = """
import typing, pydantic, ds_magic
class Label(pydantic.BaseModel):
    label: typing.Literal["spam", "ham"]
mails = ["win a prize", "lunch at one?", "cheap pills"]
"""


@pytest.fixture
def k(module_kernel):
    module_kernel.run("%load_ext ds_magic", timeout=30).raise_for_error()
    module_kernel.run(SETUP, timeout=60).raise_for_error()
    return module_kernel


def test_each_with_schema_retries_then_records_the_error(srv, k):
    srv.reset()
    srv.enqueue(
        Script(text="spam, clearly", match="lunch at one"),
        Script(text='{"label": "ham"}', match="lunch at one"),
        Script(text='{"label": "eggs"}', match="cheap pills"),
        Script(text='{"label": "bacon"}', match="cheap pills"),
    )
    r = k.run("%%deepseek --each mails --schema Label -o res --no-thinking\nSpam or ham? {item}", timeout=60)
    assert r.status == "ok", r.error
    assert len(srv.requests) == 5 and srv.queued == 0
    out = k.run("import json; print(json.dumps(res.table(as_dataframe=False), default=str))", timeout=30)
    rows = json.loads(out.raise_for_error().stdout)
    assert [row["status"] for row in rows] == ["ok", "ok", "error"]
    assert [row["attempts"] for row in rows] == [1, 2, 2]
    assert rows[1]["label"] == "ham"
    assert "label: Input should be 'spam' or 'ham'" in rows[2]["error"]
    assert set(rows[0]) >= {"label", "status", "tokens", "cost", "latency"}


def test_schema_option_errors_are_one_line(srv, k):
    srv.reset()
    alone = k.run("%%deepseek --schema Label\nx", timeout=30)
    assert alone.status == "error" and "--schema Label needs --each VAR" in alone.error.evalue
    missing = k.run("%%deepseek --each mails --schema Nope\nx {item}", timeout=30)
    assert missing.status == "error" and "no variable named 'Nope'" in missing.error.evalue
    both = k.run("%%deepseek --each mails --schema Label --json\nx {item}", timeout=30)
    assert both.status == "error" and "leave --json out" in both.error.evalue
    assert srv.requests == []


def test_comparison_grid_is_safe_html_with_a_summary_row(srv, k):
    srv.reset()
    srv.enqueue(
        Script(
            text="**bold** <script>alert(1)</script> <img src=x onerror=alert(2)>",
            match="(?s)^deepseek-flash\n.*one",
        ),
        Script(text="[link](javascript:alert(3))", match="(?s)^deepseek-v4-pro\n.*one"),
    )
    code = (
        "cmp = ds_magic.compare('Say {item}', ['one', 'two <b>x</b>'], "
        "variants={'flash': {'model': 'deepseek-flash'}, 'pro': {'model': 'deepseek-v4-pro'}}, "
        "score=lambda item, answer: len(answer), progress=False, thinking=False)\n"
        "cmp.wait(60)"
    )
    r = k.run(code, timeout=90).raise_for_error()
    results = [m for m in r.outputs if m["msg_type"] == "execute_result"]
    assert len(results) == 1
    data = results[0]["content"]["data"]
    page = data["text/html"]
    assert data["text/plain"].startswith("<Comparison of 2 items: flash: score")
    # the grid: a header per variant with its model, a row per item, the summary row
    assert "<th>flash<br><small>deepseek-flash</small></th>" in page
    assert "<th>pro<br><small>deepseek-v4-pro</small></th>" in page
    assert page.count("<tr>") == 3 and 'class="ds-sum"' in page and "all 2 items" in page
    assert "score " in page and " tokens" in page and "$" in page
    # answers through the safe renderer: Markdown rendered, raw HTML and javascript: links escaped
    assert "<strong>bold</strong>" in page
    for bad in ("<script", "<img", 'href="javascript:', "<b>x</b>"):
        assert bad not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "two &lt;b&gt;x&lt;/b&gt;" in page  # the item text is escaped too


def test_a_running_comparison_shows_its_text_only(srv, k):
    srv.reset()
    srv.enqueue(Script(text="slow", ttft=60, match="(?s)hold"))
    r = k.run(
        "c2 = ds_magic.compare('{item}', ['hold'], variants={'a': {}}, progress=False)\nc2", timeout=30
    ).raise_for_error()
    data = [m for m in r.outputs if m["msg_type"] == "execute_result"][0]["content"]["data"]
    assert "text/html" not in data and data["text/plain"].startswith("<Comparison of a: <BatchResult running")
    k.run("c2.cancel(); c2.wait(30)", timeout=40).raise_for_error()


def test_schema_dict_means_any_object(srv, k):
    srv.reset()
    r = k.run("%%deepseek --each mails --schema dict -o anyobj --no-thinking\nJSON about {item}", timeout=60)
    assert r.status == "ok", r.error
    cols = k.run("print(list(anyobj.table().columns))", timeout=30).raise_for_error().stdout
    assert cols.startswith("['offline', 'note', 'prompt', 'status'")  # the stand-in's generic object
