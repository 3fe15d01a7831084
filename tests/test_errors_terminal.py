"""Issue 13 in terminal IPython: the same one-line errors as in a kernel, and Ctrl-C during a stream
prints the "Stopped after N tokens" line and the footer, with no traceback through threading.py and
no empty ``Out[n]:``. A real terminal: IPython runs on a pseudo-terminal (pexpect), Ctrl-C is the
terminal's interrupt character, in IPython 9 and IPython 8 (``.venv-ipython8``).
"""

from __future__ import annotations

import re
import sys

import pexpect
import pytest
from ipython8 import ipython8_python
from offline_helpers import KEY

from ds_magic.testing import Script

PROMPT = re.compile(r"In \[(\d+)\]: ")
LONG = Script(text="word " * 2000, reasoning="", tokens_per_second=40)
FRAME_SIGNS = ("Traceback", "File ", "threading.py", ".py:", "ds_magic/")


@pytest.fixture(params=["9", "8"], ids=["ipython9", "ipython8"])
def term(request, srv, tmp_path):
    python = sys.executable if request.param == "9" else ipython8_python()
    env = {
        "DEEPSEEK_API_KEY": KEY,
        "DEEPSEEK_BASE_URL": srv.url,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "PATH": "/usr/bin:/bin",
        "TERM": "dumb",
    }
    argv = ["-m", "IPython", "--no-banner", "--simple-prompt", "--colors=NoColor", "--no-confirm-exit"]
    child = pexpect.spawn(python, argv, env=env, encoding="utf-8", timeout=60, dimensions=(50, 400))
    child.expect(PROMPT)
    t = Terminal(child)
    t.run("import IPython, ds_magic; print('IPython', IPython.__version__)")
    assert f"IPython {request.param}." in t.last
    t.run("%load_ext ds_magic")
    try:
        yield t
    finally:
        child.sendline("exit")
        try:
            child.expect(pexpect.EOF, timeout=10)
        finally:
            child.close(force=True)


class Terminal:
    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child
        self.last = ""

    def send(self, *lines: str) -> None:
        for line in lines:
            self.child.sendline(line)

    def wait_prompt(self) -> str:
        """What the terminal showed up to the next ``In [n]:`` prompt."""
        self.child.expect(PROMPT)
        self.last = self.child.before.replace("\r\n", "\n")
        return self.last

    def run(self, *lines: str) -> str:
        self.send(*lines)
        return self.wait_prompt()


def one_line(shown: str, *parts: str) -> str:
    """The output holds one error line with ``parts`` and no traceback."""
    for sign in FRAME_SIGNS:
        assert sign not in shown, shown
    lines = [line for line in shown.splitlines() if all(p in line for p in parts)]
    assert len(lines) == 1, shown
    assert KEY not in shown
    return lines[0]


def test_errors_are_one_line_in_the_terminal(srv, term):
    # A cell typed at the simple prompt never ends (a cell magic waits for more lines), so cells run
    # through run_cell, which shows its error as the prompt does (InteractiveShell.showtraceback).
    # (A body of "" is IPython's own one-line UsageError, before the magic runs: one of blanks is ours.)
    one_line(term.run("get_ipython().run_cell('%%deepseek\\n  \\n');"), "UsageError: The cell is empty")
    one_line(term.run("get_ipython().run_cell('%%deepseek --nope\\nhi');"), "--nope", "%%deepseek?")
    one_line(term.run("%deepseek"), "UsageError: Usage: %deepseek SUBCOMMAND", "history", "cancel-all")
    one_line(term.run("%deepseek histroy"), "did you mean `%deepseek history`?")
    one_line(term.run("%deepseek -m nope hi"), "Unknown model 'nope'", "deepseek-v4-pro")
    srv.enqueue(Script(status=401))
    one_line(term.run("%deepseek hi"), "AuthenticationError: 401", "%deepseek key")
    srv.enqueue(*[Script(status=429, headers={"Retry-After": "0"})] * 3)
    one_line(term.run("%deepseek hi"), "RateLimitError: 429")


def test_a_finished_answer_leaves_no_empty_out_prompt(srv, term):
    srv.enqueue(Script(text="Terminal answer here.", reasoning=""))
    shown = term.run("%deepseek hello")
    assert "Terminal answer here." in shown and "tok/s" in shown  # the answer, then the footer
    assert "Out[" not in shown
    srv.enqueue(Script(text="Later.", reasoning=""))
    shown = term.run("%deepseek --bg hello")  # nothing prints it as it streams: Out[] says what it is
    assert re.search(r"Out\[\d+\]: <Response ", shown), shown


def test_ctrl_c_prints_the_stopped_line_and_the_footer(srv, term):
    srv.enqueue(LONG)
    term.send("%deepseek long answer please")
    term.child.expect("word word")
    term.child.sendintr()
    shown = term.wait_prompt()
    line = one_line(shown, "KeyboardInterrupt: Stopped after", "the partial answer is kept")
    assert int(re.search(r"after (\d+) tokens", line).group(1)) > 0
    footer = [row for row in shown.splitlines() if row.startswith("— ")]
    assert footer and "tokens" in footer[-1], shown  # the footer, after the partial answer
    assert "Out[" not in shown
    assert srv.wait_for_disconnect(10) is not None
    assert "'cancelled'" in term.run("_ds_last.status")
    # The terminal is fine afterwards: the next cell runs.
    assert "2" in term.run("1 + 1")
