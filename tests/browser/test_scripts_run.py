"""The README's first command: ``scripts/run`` with no key starts JupyterLab on the quickstart, offline."""

from __future__ import annotations

from pathlib import Path

from conftest import ARTIFACTS, ROOT, NotebookPage
from mainjob_pages import scripts_run


def test_scripts_run_opens_the_quickstart_on_the_offline_server(chromium, tmp_path: Path):
    notebook = ROOT / "notebooks" / "quickstart.ipynb"
    before = notebook.read_bytes()
    with scripts_run(tmp_path) as lab:
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        try:
            text = lab.log.read_text()
            assert "No DEEPSEEK_API_KEY: using the offline stand-in at http://127.0.0.1:" in text
            assert f"http://127.0.0.1:{lab.port}/lab" in text  # bound to loopback
            nb = NotebookPage(context.new_page(), lab, ARTIFACTS / "test_scripts_run")
            nb.open("quickstart.ipynb")
            first = nb.code_cell_index("import os")
            nb.run(first)
            nb.wait_finished(first)
            assert "Offline: talking to the ds_magic stand-in server at http://127.0.0.1:" in nb.output_text(
                first
            )
            nb.screenshot("first-output")
            assert nb.dialogs == []
        finally:
            context.close()
    assert notebook.read_bytes() == before
