"""Pages for the main job's browser tests (issue 13): the same notebook helpers in JupyterLab and in
Notebook 7, and screenshots under ``artifacts/screenshots/<test>/`` (git-ignored; CI keeps the folder).

Both frontends are served by the one ``lab`` server of conftest.py: installing the ``notebook``
package adds Notebook 7's ``/notebooks/<name>`` pages to any Jupyter server.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conftest import ROOT, Lab, NotebookPage

SHOTS = ROOT / "artifacts" / "screenshots"
FRONTENDS = ("lab", "notebook7")
#: The notebook in view: a visible panel in JupyterLab, the one notebook in Notebook 7.
VISIBLE_NB = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"


class Page(NotebookPage):
    """A notebook page in JupyterLab (``kind="lab"``) or Notebook 7 (``kind="notebook7"``)."""

    def __init__(self, page: Any, lab: Lab, shots_dir: Path, kind: str) -> None:
        super().__init__(page, lab, shots_dir)
        self.kind = kind

    def open(self, name: str) -> None:
        if self.kind == "lab":
            super().open(name)
            return
        self.page.goto(f"{self.lab.url}/notebooks/{name}")
        self.page.wait_for_selector(f"{VISIBLE_NB} .jp-Cell", timeout=60_000)
        self.wait_idle(name, timeout=60)
        self.page.evaluate("() => document.querySelectorAll('.Toastify').forEach(e => e.remove())")

    def shows_idle(self) -> bool:
        if self.kind == "lab":
            return super().shows_idle()
        # Notebook 7 has no status bar; its toolbar's execution indicator shows the kernel's state.
        return bool(self.page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count() > 0)

    def run_all(self) -> None:
        """Run → Run All Cells, from the menu bar, as a user would (same menu in both frontends)."""
        self.page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
        self.page.locator(".lm-Menu-item:not(.lm-mod-hidden)", has_text="Run All Cells").first.click()

    def interrupt(self) -> None:
        """The toolbar's ■ (interrupt the kernel)."""
        self.page.locator("[data-command='notebook:interrupt-kernel']").first.click()

    def visible_text(self, index: int) -> str:
        """What the cell's output shows a person: the rendered text of its output area."""
        return self.output_text(index)


def make_page(chromium: Any, lab: Lab, kind: str, test_name: str) -> tuple[Any, Page]:
    """A fresh browser context and page; the caller closes the context."""
    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
    shutil.rmtree(SHOTS / name, ignore_errors=True)  # only this run's screenshots
    return context, Page(page, lab, SHOTS / name, kind)


@contextlib.contextmanager
def scripts_run(tmp_path: Path, **env_extra: str) -> Iterator[Lab]:
    """Start ``scripts/run`` as a user would (no key, no browser, a free port, Jupyter's own folders
    in ``tmp_path``), wait until JupyterLab answers, and stop its whole process group at the end."""
    from conftest import _free_port

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEEPSEEK_", "DS_MAGIC_", "JUPYTER"))}
    settings = tmp_path / "settings" / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text('{"autosave": false}')  # a test writes a notebook only when it saves it
    env.update(
        OPEN_BROWSER="False",
        DS_MAGIC_WORKSPACE=str(tmp_path / "workspace"),  # not the checkout's own workspace/
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "lab-workspaces"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
    )
    env.update(env_extra)
    log = tmp_path / "run.log"
    cmd = [str(ROOT / "scripts" / "run"), f"--port={port}", "--port-retries=0", "--IdentityProvider.token="]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    lab = Lab(Path(env["DS_MAGIC_WORKSPACE"]), port, proc, log)
    try:
        deadline = time.monotonic() + 180  # a first run may still install into .venv
        while True:
            try:
                urllib.request.urlopen(lab.url + "/api/status", timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, f"scripts/run exited:\n{lab.log_tail()}"
                assert time.monotonic() < deadline, f"JupyterLab never answered:\n{lab.log_tail()}"
                time.sleep(0.3)  # poll interval of this wait (hang guard: the deadline)
        yield lab
    finally:
        try:
            lab.shutdown_kernels()
        except Exception:
            pass
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
