"""After `pip install`, every kernel loads the extension (jupyter-config/); block mode on ipykernel 6;
and plain terminal IPython prints the answer as it streams."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from kernel_harness import KernelSession
from live_helpers import shown

from ds_magic.testing import OfflineServer, Script

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-installtest0123456789abcdef987"


@pytest.fixture(scope="module")
def srv():
    with OfflineServer() as s:
        yield s


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory):
    """A new virtual environment with our wheel and an ipykernel 6 (the older kernel line)."""
    tmp = tmp_path_factory.mktemp("fresh")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"), str(ROOT)],
        check=True,
        timeout=300,
    )
    wheel = next((tmp / "dist").glob("ds_magic-*.whl"))
    venv = tmp / "venv"
    # The base interpreter, not this venv's, so nothing of ours leaks in through site-packages.
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", str(wheel), "ipykernel>=6.29,<7"], check=True, timeout=600
    )
    return py


def test_pip_install_loads_extension_in_every_kernel(fresh_env, srv):
    with KernelSession(
        python=str(fresh_env), env={"DEEPSEEK_API_KEY": KEY, "DEEPSEEK_BASE_URL": srv.url}
    ) as k:
        r = k.run("import ipykernel, sys; print(ipykernel.__version__.split('.')[0], sys.prefix)", timeout=30)
        major, prefix = r.stdout.split()
        assert major == "6" and prefix == str(fresh_env.parent.parent)
        out = k.run("print('deepseek' in get_ipython().magics_manager.magics['cell'])", timeout=30)
        assert out.stdout.strip() == "True"  # no %load_ext: the installed config loaded it
        # On ipykernel 6 the cell blocks (polling in slices) and ■ cancels the stream.
        srv.reset()
        srv.enqueue(Script(text="word " * 800, reasoning="", tokens_per_second=50))
        mid = k.execute("%%deepseek\nlong")
        k.wait_for(lambda: srv.active == 1, 15)
        # The view tells the user how to stop: the Cancel click cannot reach a blocking cell here.
        hint = k.wait_for(
            lambda: [s for s in k.widgets().values() if "interrupt" in str(s.get("hint", ""))], 10
        )
        assert "■" in hint[0]["hint"]  # the live view's hint next to its Cancel
        k.wait_for(lambda: shown(k, "word word"), 10, what="the first words in the live view")
        k.interrupt()
        d = srv.wait_for_disconnect(5)
        # ■ closed the stream with most of its 801 words still to come (latency:
        # benchmarks/cancel_latency.py).
        assert d is not None and d.chunks_sent < 400 and d.request_index not in srv.completed, d
        assert k.result(mid, 15).status == "error"
        k.wait_for(lambda: "cancelled" in k.run("%deepseek history", timeout=15).stdout, 15, what="history")


def test_terminal_ipython_prints_as_it_streams(srv, tmp_path):
    srv.reset()
    srv.enqueue(Script(text="Terminal answer here.", reasoning="some thought"))
    code = (
        "ip = get_ipython(); ip.run_line_magic('load_ext', 'ds_magic'); "
        "ip.run_cell_magic('deepseek', '', 'hello from the terminal'); "
        "ip.run_line_magic('deepseek', 'history')"
    )
    env = {
        "DEEPSEEK_API_KEY": KEY,
        "DEEPSEEK_BASE_URL": srv.url,
        "PATH": "/usr/bin:/bin",
        "IPYTHONDIR": str(tmp_path),
    }
    res = subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", "--quick", "--colors=NoColor", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "[thinking] some thought" in out
    assert "Terminal answer here." in out
    assert "first token" in out and "tok/s" in out  # the footer
    assert "[1] user: hello from the terminal" in out
    assert KEY not in out + res.stderr
