"""``scripts/run`` works on copies in a git-ignored workspace (issue 13): opening, running and saving a
notebook never modifies the checkout, the user's edited copies are never overwritten, and it says
where the workspace is."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import nbformat
from conftest import ROOT
from mainjob_pages import make_page, scripts_run


def _checkout_state() -> tuple[dict[str, bytes], str]:
    tracked = {p.name: p.read_bytes() for p in sorted((ROOT / "notebooks").glob("*.ipynb"))}
    status = subprocess.run(
        ["git", "status", "--porcelain", "--", "notebooks"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    return tracked, status


def test_scripts_run_saves_into_the_workspace_and_keeps_the_users_copies(chromium: Any, tmp_path: Path):
    workspace = tmp_path / "workspace"
    (workspace / ".originals").mkdir(parents=True)

    def notebook(source: str) -> bytes:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(source)]
        return nbformat.writes(nb).encode()

    # experiments: copied from an older version, then edited by the user. quickstart: an untouched
    # copy of an older version. chat: no copy yet.
    (workspace / ".originals" / "experiments.ipynb").write_bytes(notebook("print('old version')"))
    (workspace / "experiments.ipynb").write_bytes(edited := notebook("print('my own edit')"))
    old_quickstart = notebook("print('old quickstart')")  # (each notebook() has new cell ids)
    (workspace / ".originals" / "quickstart.ipynb").write_bytes(old_quickstart)
    (workspace / "quickstart.ipynb").write_bytes(old_quickstart)
    before = _checkout_state()

    with scripts_run(tmp_path) as lab:
        context, nb = make_page(chromium, lab, "lab", "test_scripts_run_workspace")
        try:
            log = lab.log.read_text()
            assert f"Your notebooks: {workspace} (copies of notebooks/" in log
            # The missing copy was made and the untouched old one brought up to date; the user's
            # edited one was left alone, and the newer version is named once.
            assert sorted(p.name for p in workspace.glob("*.ipynb")) == sorted(before[0])
            assert (workspace / "quickstart.ipynb").read_bytes() == before[0]["quickstart.ipynb"]
            assert (workspace / "chat.ipynb").read_bytes() == before[0]["chat.ipynb"]
            assert (workspace / "experiments.ipynb").read_bytes() == edited
            assert log.count("notebooks/experiments.ipynb has changed since your copy was made") == 1
            assert "notebooks/quickstart.ipynb has changed" not in log
            # Jupyter does not list the folder of originals.
            names = [c["name"] for c in lab.api("GET", "/api/contents")["content"]]
            assert ".originals" not in names and "quickstart.ipynb" in names

            nb.open("quickstart.ipynb")
            first = nb.code_cell_index("import os")
            nb.run(first)
            nb.wait_finished(first)
            assert "Offline: talking to the ds_magic stand-in server" in nb.output_text(first)
            nb.save()
            nb.screenshot("saved")
            saved = nbformat.read(str(workspace / "quickstart.ipynb"), as_version=4)
            outputs = [o for c in saved.cells if c.cell_type == "code" for o in c.get("outputs", [])]
            assert any("Offline: talking" in o.get("text", "") for o in outputs)  # saved in the workspace
            assert nb.dialogs == []
        finally:
            context.close()
    assert _checkout_state() == before  # the checkout's notebooks are as they were
    assert (workspace / "experiments.ipynb").read_bytes() == edited
