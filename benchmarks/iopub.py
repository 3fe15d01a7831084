"""What a ``%%deepseek`` cell costs over iopub (issue 13, "The live view: one widget, O(n) bytes").

A real kernel (tests/kernel_harness.py) against the offline server, which paces the tokens. For each
answer it runs one cell and reads the iopub messages a frontend would get:

* live bytes: the JSON ``content`` of every output and comm message before the final output (the
  widget's ``comm_open`` with its loader, the display, the updates), as the harness counts them. The
  harness is no browser: a page also asks once for the view's code (4.5 KB, once per page, not per
  cell) and, when a view is drawn after the first updates went out, for the state so far;
* total bytes: everything the cell sends, the final output and the closing messages included;
* updates: the live view's update messages; the goals allow ~150 bytes of framing for each;
* comm opens per cell, and the widget state a notebook executed by nbclient keeps per cell.

Goals: live ≤ 1.5 × answer + 150 × updates, total ≤ 4 × answer + 150 × updates, ≤ 2 comm opens,
≤ 2 KB saved widget state per finished cell. The answer is Markdown like a model's (headings,
paragraphs, lists, code fences, a table): 4,000 tokens, 16,000 bytes.

    PYTHONPATH=. python benchmarks/iopub.py [--quick]

``--quick`` skips the 100 tok/s run (40 s). Point PYTHONPATH at another checkout to measure it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from kernel_harness import KernelSession  # noqa: E402
from live_helpers import FRAMING, cell_traffic  # noqa: E402

from ds_magic.testing import OfflineServer, Script  # noqa: E402
from ds_magic.testing.wire import split_tokens  # noqa: E402

KEY = "sk-bench0123456789abcdef0123456789"

_PARAGRAPH = (
    "The loop reads every chunk on its own thread, so a slow front never holds it back. "
    "Each update sends only what is new: a whole block once, and the open tail as a small diff. "
    "Those bytes stay close to the size of the answer, which keeps a busy page smooth. "
    "Lists, fences and tables close in their turn, while the tail grows word after word."
)
_CODE = '```python\ndef total(rows):\n    return sum(r["tokens"] for r in rows if r.get("ok"))\n```\n'
_LIST = "- first, the **status** line\n- then the `thinking` section\n- and last the answer\n"
_TABLE = "| speed | bytes |\n|---|---|\n| 100 tok/s | 1.1× |\n| 2,000 tok/s | 1.1× |\n"

_CYCLE = [_PARAGRAPH, _LIST, _PARAGRAPH, _PARAGRAPH, _CODE, _PARAGRAPH, _PARAGRAPH, _TABLE]


def markdown_answer(target_bytes: int, tokens: int | None = None) -> str:
    """A Markdown answer of about ``target_bytes``, cut to ``tokens`` tokens as the offline server
    splits it (about 4 bytes a token, as in English)."""
    parts: list[str] = []
    i = 0
    while sum(len(p) for p in parts) < target_bytes:
        kind = i % len(_CYCLE)
        if kind == 0:
            parts.append(f"## Part {i // len(_CYCLE) + 1}\n\n")
        parts.append(_CYCLE[kind] + "\n\n")
        i += 1
    text = "".join(parts)[:target_bytes]
    if tokens is not None:
        text = "".join(split_tokens(text)[:tokens])
    return text.rstrip() + "\n"


def saved_state_per_cell(url: str, text: str, cells: int = 3) -> float:
    """Run a notebook of ``cells`` %%deepseek cells with nbclient; bytes of widget state per cell."""
    import os

    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"%%deepseek --no-history\nquestion {i}") for i in range(cells)]
    env = {**os.environ, "DEEPSEEK_API_KEY": KEY, "DEEPSEEK_BASE_URL": url}
    old = dict(os.environ)
    os.environ.update(env)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            NotebookClient(
                nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": tmp}}
            ).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    return len(json.dumps(state)) / cells


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="skip the 100 tok/s run")
    args = ap.parse_args()
    long_text = markdown_answer(20_000, tokens=4_000)
    short_text = markdown_answer(200)
    cases = [("4,000 tokens at 2,000 tok/s", long_text, "", 2000.0)]
    if not args.quick:
        cases.append(("4,000 tokens at 100 tok/s", long_text, "", 100.0))
    cases.append(("200 characters at 100 tok/s", short_text, "", 100.0))
    cases.append(("thinking 16 KB + answer 16 KB, 2,000 tok/s", long_text, long_text, 2000.0))
    rows = []
    with OfflineServer() as srv:
        env = {"DEEPSEEK_API_KEY": KEY, "DEEPSEEK_BASE_URL": srv.url}
        with KernelSession(env=env) as k:
            srv.enqueue(Script(text="warm", reasoning=""))  # imports, the first widget, a connection
            k.run("%%deepseek --no-history\nwarm up", timeout=30)
            for name, text, reasoning, tps in cases:
                srv.enqueue(Script(text=text, reasoning=reasoning, tokens_per_second=tps))
                mark = k.mark()
                r = k.run("%%deepseek --no-history\nanswer", timeout=300)
                assert r.status == "ok", k.describe()
                traffic = cell_traffic(k, mark)
                n = len((text + reasoning).encode("utf-8"))
                tokens = len(split_tokens(text)) + len(split_tokens(reasoning))
                rows.append((name, n, tokens, traffic))
        state = saved_state_per_cell(srv.url, short_text)
    head = f"{'answer':44} {'bytes':>7} {'tokens':>6} {'live':>7} {'total':>7} {'updates':>7} {'live/ans':>8} {'(−150/upd)':>10} {'total/ans':>9} {'(−150/upd)':>10} {'opens':>5}"
    print(head)
    for name, n, tokens, t in rows:
        allowance = FRAMING * t["updates"]
        print(
            f"{name:44} {n:7,} {tokens:6,} {t['live']:7,} {t['total']:7,} {t['updates']:7} "
            f"{t['live'] / n:8.2f} {(t['live'] - allowance) / n:10.2f} "
            f"{t['total'] / n:9.2f} {(t['total'] - allowance) / n:10.2f} {t['opens']:5}"
        )
    print(f"saved widget state per finished cell (nbclient): {state:,.0f} bytes")


if __name__ == "__main__":
    main()
