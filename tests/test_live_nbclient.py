"""A notebook executed by nbclient keeps little widget state for a finished live view (issue 13).

nbclient saves the state of every widget it saw, closed ones too, in the notebook's metadata; the live
view empties its state before it closes (stream_view.py), so what is saved per cell is small and
holds neither the answer nor the view's code.
"""

from __future__ import annotations

import json

import nbformat
import pytest
from nbclient import NotebookClient
from offline_helpers import KEY

from ds_magic.testing import Script

pytestmark = pytest.mark.kernel

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def test_saved_widget_state_per_finished_cell_is_small(srv, tmp_path, monkeypatch):
    answers = [f"Answer number {i}: " + "words of the answer " * 40 for i in range(3)]
    srv.enqueue(*(Script(text=a, reasoning="some thinking " * 30, tokens_per_second=400) for a in answers))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"%%deepseek --no-history\nquestion {i}") for i in range(3)]
    # The kernel nbclient starts inherits this environment (the test's own, not ds_magic's).
    monkeypatch.setenv("DEEPSEEK_API_KEY", KEY)
    monkeypatch.setenv("DEEPSEEK_BASE_URL", srv.url)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    path = tmp_path / "run.ipynb"
    nbformat.write(nb, str(path))
    saved = nbformat.read(str(path), as_version=4)
    for cell, answer in zip(saved.cells, answers, strict=True):
        [out] = [o for o in cell.outputs if o.output_type == "display_data"]
        assert out.data["text/plain"].startswith(answer)  # the static output, not the widget
        assert "application/vnd.jupyter.widget-view+json" not in out.data
    state = saved.metadata["widgets"][WIDGET_STATE]["state"]
    assert len(state) == 3  # one model per cell, no Layout
    per_cell = len(json.dumps(state)) / 3
    assert per_cell <= 2048, per_cell
    text = json.dumps(state)
    assert "words of the answer" not in text and "some thinking" not in text
    assert "msg:custom" not in text  # the view's code is not kept
