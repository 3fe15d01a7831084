"""Browser fixtures: JupyterLab (no token, loopback, free port) + the offline server + headless Chromium.

- ``offline``: an in-process :class:`OfflineServer`, cleared before each test; the kernels of ``lab``
  talk to it, so a test can script answers (``offline.enqueue(Script(...))``) and read the server's
  records (requests, disconnects with ``time.monotonic()`` stamps) directly.
- ``lab``: one JupyterLab server per session, rooted in a temporary copy of ``notebooks/``.
  ``lab.write_notebook(name, sources)`` adds a notebook of code cells to that root.
- ``nb``: a fresh browser page (own context) wrapped in :class:`NotebookPage`, which knows how to open a
  notebook, run a cell, read its output and take a screenshot into ``test-artifacts/browser/``. It
  records every request the page makes and every dialog that fires (dialogs are dismissed).

Chromium is Debian's (``apt-get install chromium``, done by ``.ci/run``); Playwright never downloads a
browser here. Without it these tests fail with a message saying what to install, unless
``DS_MAGIC_SKIP_BROWSER=1`` asks to skip them.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ds_magic.testing import OfflineServer

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("DS_MAGIC_CHROMIUM", "/usr/bin/chromium")
# The notebook in the visible tab (hidden tabs keep their DOM).
NB = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"
KEY = "sk-browser-test-key-0000000000000000"

# Without the networking flags Chromium keeps trying to reach Google's hosts on this closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = str(Path(__file__).parent)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.browser)


def _require_browser() -> None:
    problem = None
    if not Path(CHROMIUM).exists():
        problem = (
            f"Chromium not found at {CHROMIUM}: install it with `apt-get install chromium` (.ci/run does)"
        )
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is missing: pip install -e '.[test]'"
    if problem:
        if os.environ.get("DS_MAGIC_SKIP_BROWSER") == "1":
            pytest.skip(f"browser tests skipped (DS_MAGIC_SKIP_BROWSER=1): {problem}")
        pytest.fail(f"{problem}; or set DS_MAGIC_SKIP_BROWSER=1 to skip the browser tests", pytrace=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def offline_server() -> Iterator[OfflineServer]:
    with OfflineServer() as srv:
        yield srv


@pytest.fixture
def offline(offline_server: OfflineServer) -> OfflineServer:
    """The session's offline server with its script queue and records cleared."""
    offline_server.reset()
    return offline_server


class Lab:
    """A running JupyterLab server."""

    def __init__(self, root: Path, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.root = root
        self.port = port
        self.proc = proc
        self.log = log
        self.url = f"http://127.0.0.1:{port}"

    def write_notebook(self, name: str, sources: list[str]) -> str:
        """Write a notebook of code cells into the server's root; returns its name."""
        import nbformat

        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, str(self.root / name))
        return name

    def api(self, method: str, path: str) -> Any:
        import json

        req = urllib.request.Request(self.url + path, method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """End every session (and so its kernel): each test starts from a fresh kernel."""
        for s in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{s['id']}")
        for k in self.api("GET", "/api/kernels"):
            self.api("DELETE", f"/api/kernels/{k['id']}")

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@pytest.fixture(scope="session")
def lab(offline_server: OfflineServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab on a free loopback port, no token, rooted in a copy of notebooks/, kernels on the offline server."""
    _require_browser()
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    shutil.copytree(ROOT / "notebooks", root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    # Render every cell (JupyterLab 4 only renders the cells in view by default), so tests can find
    # cells by their source; and no toasts over the outputs.
    settings = base / "settings"
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text('{"windowingMode": "none"}')
    port = _free_port()
    env = dict(
        os.environ,
        DEEPSEEK_BASE_URL=offline_server.url,
        DEEPSEEK_API_KEY=KEY,
        DS_MAGIC_OFFLINE="1",
        # This checkout's package, whatever the environment has installed.
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
    )
    log = base / "lab.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        # The tests end sessions through the REST API with plain urllib (no XSRF cookie).
        "--ServerApp.disable_check_xsrf=True",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.workspaces_dir={base / 'workspaces'}",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # CI runs as root
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    server = Lab(root, port, proc, log)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(server.url + "/api/status", timeout=1).close()
            break
        except urllib.error.HTTPError:
            break  # it answers
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"JupyterLab did not start:\n{server.log_tail()}", pytrace=False)
            time.sleep(0.2)  # poll interval of this wait (hang guard: the deadline)
    try:
        yield server
    finally:
        try:
            server.shutdown_kernels()
        except Exception:
            pass
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def chromium(lab: Lab) -> Iterator[Any]:
    """Headless Debian Chromium, one per test module: Playwright's sync API keeps an asyncio loop
    running in this thread while it is open, which would break later tests that call asyncio.run()."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class NotebookPage:
    """One browser page on the lab server, with notebook helpers. All waits are bounded."""

    def __init__(self, page: Any, lab: Lab, shots_dir: Path) -> None:
        self.page = page
        self.lab = lab
        self.shots_dir = shots_dir
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self._shot = 0
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("dialog", self._on_dialog)

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def open(self, name: str) -> None:
        """Open a notebook and wait until its kernel is connected and idle."""
        # ?reset: start from an empty workspace, not the tabs an earlier test left open.
        self.page.goto(f"{self.lab.url}/lab/tree/{name}?reset")
        self.page.wait_for_selector(f"{NB} .jp-Cell", timeout=60_000)
        self.wait_idle(name, timeout=60)
        # Dismiss any notification toast so it cannot cover the outputs.
        self.page.evaluate("() => document.querySelectorAll('.Toastify').forEach(e => e.remove())")

    def wait_idle(self, name: str, timeout: float = 60) -> None:
        """Wait until the server has an idle kernel for ``name`` and the page shows it as Idle.

        The toolbar's execution indicator says "idle" before the kernel is even connected, and a cell
        run while the page is still "Connecting" can be lost, so both ends are checked.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sessions = self.lab.api("GET", "/api/sessions")
            ready = any(
                s["path"].endswith(name) and (s.get("kernel") or {}).get("execution_state") == "idle"
                for s in sessions
            )
            if ready and self.shows_idle():
                return
            time.sleep(0.2)  # poll interval of this wait (hang guard: the deadline)
        raise AssertionError(f"the kernel for {name} never became idle in {timeout} s")

    def shows_idle(self) -> bool:
        """Whether the page shows the kernel as idle (JupyterLab's status bar)."""
        return bool(self.page.locator(".jp-StatusBar-TextItem", has_text="| Idle").count() > 0)

    def cell(self, index: int) -> Any:
        return self.page.locator(f"{NB} .jp-Cell").nth(index)

    def code_cell_index(self, startswith: str) -> int:
        """The index of the first cell whose source starts with ``startswith``."""
        sources: list[str] = []
        deadline = time.monotonic() + 15  # the editors fill in shortly after the cells appear
        while time.monotonic() < deadline:
            sources = self.page.evaluate(
                f"() => Array.from(document.querySelectorAll('{NB} .jp-Cell')).map("
                "c => { const e = c.querySelector('.cm-content'); return e ? e.innerText : ''; })"
            )
            for i, src in enumerate(sources):
                if src.startswith(startswith):
                    return i
            time.sleep(0.1)  # poll interval of this wait (hang guard: the deadline)
        raise AssertionError(f"no cell starts with {startswith!r}; sources: {[s[:40] for s in sources]}")

    def run(self, index: int) -> None:
        """Select cell ``index`` and run it (Shift+Enter), as a user would."""
        editor = self.cell(index).locator(".cm-content")
        editor.click()
        self.page.keyboard.press("Shift+Enter")

    def output(self, index: int) -> Any:
        return self.cell(index).locator(".jp-OutputArea")

    def output_text(self, index: int) -> str:
        out = self.output(index)
        return str(out.inner_text()) if out.count() else ""

    def execution_count(self, index: int) -> str:
        """The input prompt's text, e.g. "[3]:", "[*]:" while running, "[ ]:" before."""
        return str(self.cell(index).locator(".jp-InputPrompt").inner_text()).strip()

    def wait_finished(self, index: int, timeout: float = 30) -> str:
        """Wait for cell ``index`` to show its execution count; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            count = self.execution_count(index)
            if re.fullmatch(r"\[\d+\]:", count):
                return count
            time.sleep(0.05)  # poll interval of this wait (hang guard: the deadline)
        raise AssertionError(
            f"cell {index} did not finish in {timeout} s (prompt {self.execution_count(index)!r})"
        )

    def wait_text(self, index: int, needle: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.output_text(index)
            if needle in text:
                return text
            time.sleep(0.05)  # poll interval of this wait (hang guard: the deadline)
        raise AssertionError(f"{needle!r} never appeared in cell {index}'s output; last: {text[-300:]!r}")

    def poll(self, read: Any, ok: Any, timeout: float = 10) -> Any:
        """Call ``read()`` until ``ok(value)``; return the value (fail after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        value = read()
        while not ok(value):
            if time.monotonic() > deadline:
                raise AssertionError(f"still {value!r} after {timeout} s")
            time.sleep(0.05)  # poll interval of this wait (hang guard: the deadline)
            value = read()
        return value

    def code_cells(self) -> Any:
        return self.page.locator(f"{NB} .jp-CodeCell")

    def save(self) -> None:
        """Ctrl+S, then wait until the tab has no unsaved-changes mark."""
        self.page.keyboard.press("Control+s")
        self.page.wait_for_function("() => !document.querySelector('.jp-mod-dirty')", timeout=10_000)

    def screenshot(self, step: str, locator: Any = None) -> Path:
        """Save a screenshot of the page (or one element) as test-artifacts/browser/<test>/<nn>-<step>.png."""
        self._shot += 1
        path = self.shots_dir / f"{self._shot:02d}-{step}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        (locator or self.page).screenshot(path=str(path))
        return path


@pytest.fixture
def nb(chromium: Any, lab: Lab, request: pytest.FixtureRequest) -> Iterator[NotebookPage]:
    """A fresh page (own browser context) on the lab server; screenshots go under test-artifacts/browser/."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    shutil.rmtree(ARTIFACTS / name, ignore_errors=True)  # only this run's screenshots
    helper = NotebookPage(page, lab, ARTIFACTS / name)
    try:
        yield helper
    finally:
        try:
            helper.screenshot("end")
        except Exception:
            pass
        context.close()
        try:
            lab.shutdown_kernels()  # each test starts from a fresh kernel
        except Exception:
            pass
