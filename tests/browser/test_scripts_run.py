"""The README's first command: ``scripts/run`` with no key starts JupyterLab on the quickstart, offline."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import ARTIFACTS, ROOT, Lab, NotebookPage, _free_port


def test_scripts_run_opens_the_quickstart_on_the_offline_server(chromium, tmp_path: Path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEEPSEEK_", "DS_MAGIC_", "JUPYTER"))}
    settings = tmp_path / "settings" / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings"
    settings.parent.mkdir(parents=True)
    settings.write_text('{"autosave": false}')  # the test must never write the user's notebook
    env.update(
        OPEN_BROWSER="False",
        DS_MAGIC_WORKSPACE=str(tmp_path / "workspace"),  # not the checkout's own workspace/
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
    )
    notebook = ROOT / "notebooks" / "quickstart.ipynb"
    before = notebook.read_bytes()
    log = tmp_path / "run.log"
    cmd = [str(ROOT / "scripts" / "run"), f"--port={port}", "--port-retries=0", "--IdentityProvider.token="]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    lab = Lab(notebook.parent, port, proc, log)
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        import time
        import urllib.request

        deadline = time.monotonic() + 180  # a first run may still install into .venv
        while True:
            try:
                urllib.request.urlopen(lab.url + "/api/status", timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, f"scripts/run exited:\n{lab.log_tail()}"
                assert time.monotonic() < deadline, f"JupyterLab never answered:\n{lab.log_tail()}"
                time.sleep(0.3)
        text = log.read_text()
        assert "No DEEPSEEK_API_KEY: using the offline stand-in at http://127.0.0.1:" in text
        assert f"http://127.0.0.1:{port}/lab" in text  # bound to loopback
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
        try:
            lab.shutdown_kernels()
        except Exception:
            pass
        os.killpg(proc.pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
    assert notebook.read_bytes() == before
