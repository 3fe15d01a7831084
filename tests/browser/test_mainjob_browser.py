"""Issue 13, "Done means", in JupyterLab and in Notebook 7: a cell that errors, a cell stopped with ■,
and Run All of notebooks/experiments.ipynb with its plot visible. Each test asserts the visible text
and keeps screenshots under artifacts/screenshots/<test>/ (CI keeps that folder).

The one-line error and the "Stopped after N tokens" line are built on branch ``errors``; these tests
assert what issue 13 promises a person sees.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from mainjob_pages import FRONTENDS, Page, make_page

from ds_magic.testing import Script

#: What a traceback through our own code looks like on the page (IPython's frames, ds_magic's files).
TRACEBACK_SIGNS = ("Traceback", "File ", "ds_magic/", "__ds_magic_run__", "----> ", "Cell In[")


@pytest.fixture(params=FRONTENDS)
def ui(request: pytest.FixtureRequest, chromium: Any, lab: Any) -> Iterator[Page]:
    context, page = make_page(chromium, lab, request.param, request.node.name)
    try:
        yield page
    finally:
        try:
            page.screenshot("end")
        except Exception:
            pass
        context.close()
        try:
            lab.shutdown_kernels()
        except Exception:
            pass


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_a_cell_that_errors_shows_one_line(ui: Page, lab: Any, offline: Any) -> None:
    name = lab.write_notebook(f"error-{ui.kind}.ipynb", ["%%deepseek -m nope\nhello", "6 * 7"])
    ui.open(name)
    ui.run(0)
    ui.wait_finished(0, timeout=30)
    error = ui.output(0).locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    error.first.wait_for(timeout=10_000)
    ui.screenshot("error", ui.cell(0))
    text = ui.visible_text(0)
    assert "nope" in text, text
    assert not [sign for sign in TRACEBACK_SIGNS if sign in text], text
    # The error output (IPython's error message as the frontend renders it) is one line, fix included.
    assert error.count() == 1
    shown = str(error.first.inner_text())
    assert len(_lines(shown)) == 1 and "nope" in shown, shown
    # The cell failed (Run All would stop here), and the kernel goes on.
    ui.run(1)
    ui.wait_text(1, "42", timeout=20)


def test_a_cell_stopped_with_the_stop_button_says_how_far_it_got(ui: Page, lab: Any, offline: Any) -> None:
    offline.enqueue(Script(answer_tokens=600, tokens_per_second=20, reasoning=""))
    name = lab.write_notebook(f"stop-{ui.kind}.ipynb", ["%%deepseek\nA long essay, please.", "6 * 7"])
    ui.open(name)
    ui.run(0)
    ui.wait_text(0, "tok/s", timeout=20)  # it streams
    ui.screenshot("streaming", ui.cell(0))
    ui.interrupt()
    gone = offline.wait_for_disconnect(timeout=10)
    assert gone is not None and gone.chunks_sent < 600, "■ did not stop the HTTP stream"
    ui.wait_finished(0, timeout=20)
    text = ui.wait_text(0, "partial answer", timeout=10)
    ui.screenshot("stopped", ui.cell(0))
    # Issue 13: one line, e.g. "Stopped after 312 tokens; the partial answer is kept".
    stopped = [line for line in text.splitlines() if re.search(r"stopped after \d+ tokens", line, re.I)]
    assert len(stopped) == 1, text
    assert "partial answer is kept" in stopped[0], text
    assert not [sign for sign in TRACEBACK_SIGNS if sign in text], text
    ui.run(1)
    ui.wait_text(1, "42", timeout=20)


def test_run_all_of_the_experiments_notebook_shows_its_plot(ui: Page, offline: Any) -> None:
    ui.open("experiments.ipynb")
    ui.run_all()
    last = ui.code_cell_index("%deepseek stats")
    ui.wait_finished(last, timeout=180)
    image = ui.output(last).locator("img")
    image.wait_for(timeout=20_000)
    image.scroll_into_view_if_needed()
    assert image.is_visible()
    width = ui.page.evaluate("(img) => img.naturalWidth", image.element_handle())
    assert width >= 600, f"the plot image did not load (naturalWidth {width})"
    ui.screenshot("stats-plot", ui.cell(last))
    stats_text = ui.visible_text(last)
    assert "requests:" in stats_text and "first token: median" in stats_text, stats_text
    assert not re.search(r"(?<![$\d.])\d+\.\d{3,}", stats_text), stats_text  # rounded for people
    page_text = str(ui.page.locator(".jp-Notebook").first.inner_text())
    assert "already loaded" not in page_text
    assert "Traceback" not in page_text
    # table() and records() are DataFrames (rendered as HTML tables), not pages of dicts.
    for source in ("defs.table()", "ds_magic.records()"):
        index = ui.code_cell_index(source)
        assert ui.output(index).locator("table.dataframe").count() == 1, source
    table = ui.code_cell_index("defs.table()")
    ui.output(table).scroll_into_view_if_needed()
    ui.screenshot("table", ui.cell(table))
    # %deepseek cache stats printed once.
    cache = ui.code_cell_index("print(_.cached)")
    assert ui.visible_text(cache).count("entries:") == 1
    # The --each cell ended with its static line: all six done.
    each = ui.code_cell_index("%%deepseek --each words")
    assert ui.visible_text(each).count("batch 6/6 done") == 1  # and not again as Out[]
