"""The notebook as context, in a real kernel against the offline server: ``%deepseek explain`` and
``fix`` after a real ZeroDivisionError cell, and a DataFrame summarised in a prompt (read from the
request the server got)."""

from __future__ import annotations

import pytest

from ds_magic.testing import Script

pytestmark = pytest.mark.kernel


@pytest.fixture
def k(module_kernel):
    return module_kernel


@pytest.fixture(autouse=True)
def fresh(srv, k):
    srv.reset()
    k.run("%deepseek reset", timeout=10)


def last_user_message(srv) -> str:
    return str(srv.requests[-1].body["messages"][-1]["content"])


def test_no_exception_yet_says_so_in_one_line(kernel_factory, server):
    fresh_kernel = kernel_factory(env={"DEEPSEEK_BASE_URL": server.url, "DEEPSEEK_API_KEY": "sk-x"})
    for what in ("explain", "fix"):
        r = fresh_kernel.run(f"%deepseek {what}", timeout=20).raise_for_error()
        assert r.stdout.strip().splitlines() == [
            f"No exception yet in this kernel: %deepseek {what} works on the last cell that raised one."
        ]
    assert server.requests == []


def test_explain_after_a_real_zero_division_cell(srv, k):
    k.run("import pandas as pd\ndef ratio(a, b):\n    return a / b", timeout=20).raise_for_error()
    bad = k.run("x = {'n': 1}\nratio(x['n'], 0)", timeout=20)
    assert bad.status == "error" and bad.error.ename == "ZeroDivisionError"
    srv.enqueue(Script(text="You divided by **zero** in `ratio`."))
    r = k.run("%deepseek explain", timeout=30).raise_for_error()
    prompt = last_user_message(srv)
    # the failing cell's source, whole and not interpolated ({'n': 1} stays as written)
    assert "x = {'n': 1}\nratio(x['n'], 0)" in prompt
    assert "raised ZeroDivisionError: division by zero" in prompt
    # the traceback: the cell's frame and the function's, no ANSI codes, no kernel machinery
    assert "in ratio\n    return a / b" in prompt and "Cell In[" in prompt
    assert "\x1b[" not in prompt and "interactiveshell.py" not in prompt
    assert "Explain" in prompt
    # streamed and shown like any answer (the final static output may land just after the reply)
    k.wait_for(
        lambda: [
            m
            for m in k.iopub_messages(parent=r.msg_id, msg_type="update_display_data")
            if "<strong>zero</strong>" in m["content"]["data"].get("text/html", "")
        ],
        20,
        what="the explanation's final output",
    )


def test_fix_puts_the_corrected_cell_below(srv, k):
    k.run("def mean(xs):\n    return sum(xs) / len(xs)", timeout=20).raise_for_error()
    assert k.run("mean([])", timeout=20).status == "error"
    srv.enqueue(Script(text="```python\nmean([]) if [] else 0.0\n```\nGuarded the empty list."))
    r = k.run("%deepseek fix", timeout=30).raise_for_error()
    assert "mean([])" in last_user_message(srv) and "corrected cell" in last_user_message(srv)
    payloads = r.reply["content"].get("payload", [])
    assert [p["text"] for p in payloads if p["source"] == "set_next_input"] == ["mean([]) if [] else 0.0"]
    assert "ZeroDivisionError" in k.run("%deepseek history", timeout=10).stdout  # in the conversation


def test_library_frames_are_trimmed(srv, k):
    k.run("import pandas as pd\ndf = pd.DataFrame({'a': [1]})", timeout=20).raise_for_error()
    assert k.run("df['missing']", timeout=20).status == "error"
    srv.enqueue(Script(text="No such column."))
    k.run("%deepseek explain --no-history", timeout=30).raise_for_error()
    prompt = last_user_message(srv)
    assert "KeyError: 'missing'" in prompt and "df['missing']" in prompt
    assert "frames in library code (pandas) left out" in prompt


def test_a_dataframe_is_summarised_in_the_prompt(srv, k):
    k.run(
        "import pandas as pd, numpy as np\n"
        "sales = pd.DataFrame({'month': pd.period_range('2024-01', periods=240, freq='M').astype(str),"
        " 'total': np.arange(240) * 10})",
        timeout=30,
    ).raise_for_error()
    srv.enqueue(Script(text="ok"))
    k.run(
        "%%deepseek\nPlot the monthly totals of {sales}; raw: {sales.shape!r}", timeout=30
    ).raise_for_error()
    prompt = last_user_message(srv)
    assert prompt.startswith("Plot the monthly totals of DataFrame: 240 rows × 2 columns\ndtypes: month: ")
    assert "| 0 | 2024-01 | 0 |" in prompt and "| 239 | 2043-12 | 2390 |" in prompt
    assert "(230 rows not shown)" in prompt and prompt.endswith("raw: (240, 2)")
    k.run("%config DeepSeekMagics.context_max_chars = 200", timeout=10).raise_for_error()
    try:
        srv.enqueue(Script(text="ok"))
        k.run("%%deepseek\n{sales}", timeout=30).raise_for_error()
        assert len(last_user_message(srv)) <= 200
    finally:
        k.run("%config DeepSeekMagics.context_max_chars = 4000", timeout=10)
