"""``scripts/run`` works on copies in a git-ignored workspace (issue 13): opening, running and saving a
notebook never modifies the checkout, the user's edited copies are never overwritten, and it says
where the workspace is."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import nbformat
from conftest import ROOT, Lab
from mainjob_pages import make_page


def _wait_for_lab(lab: Lab, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 180  # a first run may still install into .venv
    while True:
        try:
            urllib.request.urlopen(lab.url + "/api/status", timeout=1).close()
            return
        except OSError:
            assert proc.poll() is None, f"scripts/run exited:\n{lab.log_tail()}"
            assert time.monotonic() < deadline, f"JupyterLab never answered:\n{lab.log_tail()}"
            time.sleep(0.3)


def _checkout_state() -> tuple[dict[str, bytes], str]:
    tracked = {p.name: p.read_bytes() for p in sorted((ROOT / "notebooks").glob("*.ipynb"))}
    status = subprocess.run(
        ["git", "status", "--porcelain", "--", "notebooks"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    return tracked, status


def test_scripts_run_saves_into_the_workspace_and_keeps_the_users_copies(chromium: Any, tmp_path: Path):
    from conftest import _free_port

    workspace = tmp_path / "workspace"
    workspace.mkdir()
    mine = nbformat.v4.new_notebook()
    mine.cells = [nbformat.v4.new_code_cell("print('my own edit')")]
    nbformat.write(mine, str(workspace / "experiments.ipynb"))
    edited = (workspace / "experiments.ipynb").read_bytes()
    before = _checkout_state()

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEEPSEEK_", "DS_MAGIC_", "JUPYTER"))}
    env.update(
        OPEN_BROWSER="False",
        DS_MAGIC_WORKSPACE=str(workspace),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "lab-workspaces"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
    )
    log = tmp_path / "run.log"
    cmd = [str(ROOT / "scripts" / "run"), f"--port={port}", "--port-retries=0", "--IdentityProvider.token="]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    lab = Lab(workspace, port, proc, log)
    context, nb = make_page(chromium, lab, "lab", "test_scripts_run_workspace")
    try:
        _wait_for_lab(lab, proc)
        assert f"Your notebooks: {workspace} (copies of notebooks/" in log.read_text()
        # The missing copies were made; the user's edited one was left alone.
        assert sorted(p.name for p in workspace.glob("*.ipynb")) == sorted(before[0])
        assert (workspace / "quickstart.ipynb").read_bytes() == before[0]["quickstart.ipynb"]
        assert (workspace / "experiments.ipynb").read_bytes() == edited
        assert [c["name"] for c in lab.api("GET", "/api/contents")["content"] if c["type"] == "notebook"]

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
        try:
            lab.shutdown_kernels()
        except Exception:
            pass
        os.killpg(proc.pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
    assert _checkout_state() == before  # the checkout's notebooks are as they were
    assert (workspace / "experiments.ipynb").read_bytes() == edited
