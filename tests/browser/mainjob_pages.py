"""Pages for the main job's browser tests (issue 13): the same notebook helpers in JupyterLab and in
Notebook 7, and screenshots under ``artifacts/screenshots/<test>/`` (git-ignored; CI keeps the folder).

Both frontends are served by the one ``lab`` server of conftest.py: installing the ``notebook``
package adds Notebook 7's ``/notebooks/<name>`` pages to any Jupyter server.
"""

from __future__ import annotations

import re
import shutil
import time
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

    def wait_idle(self, name: str, timeout: float = 60) -> None:
        if self.kind == "lab":
            super().wait_idle(name, timeout)
            return
        # Notebook 7 has no status bar; its toolbar's kernel status shows the connection state.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sessions = self.lab.api("GET", "/api/sessions")
            ready = any(
                s["path"].endswith(name) and (s.get("kernel") or {}).get("execution_state") == "idle"
                for s in sessions
            )
            shown = self.page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count() > 0
            if ready and shown:
                return
            time.sleep(0.2)
        raise AssertionError(f"the kernel for {name} never became idle in {timeout} s ({self.kind})")

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
