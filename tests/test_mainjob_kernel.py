"""The main job's notebook in a real kernel (issue 13, "The main job looks finished"), read on iopub:
the ``--each`` progress bar moves as each item ends, ``%deepseek stats`` shows an image and rounded
figures, ``%deepseek cache stats`` prints once, and tables are DataFrames rounded for people."""

from __future__ import annotations

import base64
import re

import pytest
from offline_helpers import KEY

from ds_magic.testing import Script

pytestmark = pytest.mark.kernel

#: IntProgress values, and the label text, as iopub carried them (comm_open state, then updates).
BAR = "IntProgressModel"


@pytest.fixture
def k(kernel_factory, server, tmp_path):
    env = {
        "DEEPSEEK_API_KEY": KEY,
        "DEEPSEEK_BASE_URL": server.url,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    session = kernel_factory(env=env)
    session.run("%load_ext ds_magic", timeout=30).raise_for_error()
    return session


def _bar_updates(k, bar_id: str, since: int) -> list[int]:
    values = []
    for m in k.iopub_messages(msg_type="comm_msg", since=since):
        c = m["content"]
        state = c.get("data", {}).get("state", {})
        if c.get("comm_id") == bar_id and "value" in state:
            values.append(state["value"])
    return values


def _label_texts(k, since: int) -> list[str]:
    texts = []
    for m in k.iopub_messages(msg_type="comm_msg", since=since):
        value = m["content"].get("data", {}).get("state", {}).get("value")
        if isinstance(value, str) and "batch " in value:
            texts.append(re.sub(r"<[^>]+>", "", value))
    return texts


def test_each_progress_bar_moves_as_each_item_ends(srv, k):
    # Six answers of different lengths at 100 tok/s end 0.2 s apart, as a real model's would
    # (the stand-in's default answers are all one length, so they end together).
    srv.enqueue(*[Script(answer_tokens=10 + 20 * i, reasoning="", tokens_per_second=100) for i in range(6)])
    k.run("words = ['a', 'b', 'c', 'd', 'e', 'f']", timeout=10).raise_for_error()
    since = k.mark()
    r = k.run("%%deepseek --each words -o defs --no-thinking\nDefine {item}", timeout=60)
    assert r.status == "ok", r.error
    [bar] = [
        m["content"]["comm_id"]
        for m in k.comm_opens()
        if m["content"]["data"]["state"].get("_model_name") == BAR
    ]
    # Every item's end reached the frontend as its own step of the bar, in order.
    assert _bar_updates(k, bar, since) == [1, 2, 3, 4, 5, 6]
    labels = _label_texts(k, since)
    first = next(t for t in labels if t.startswith("batch 1/6 done"))
    assert "5 running" in first  # shown while the other five still streamed
    final = [m["content"]["data"] for m in r.outputs if m["msg_type"] == "update_display_data"]
    assert final[-1]["text/plain"].startswith("batch 6/6 done")
    # That line is the cell's whole output: the BatchResult is not printed again as Out[].
    assert [m for m in r.outputs if m["msg_type"] in ("execute_result", "display_data")][1:] == []
    again = k.run("defs", timeout=10).raise_for_error()  # asked for later, it shows as usual
    shown = [m["content"]["data"]["text/plain"] for m in again.outputs if m["msg_type"] == "display_data"]
    assert len(shown) == 1 and shown[0].startswith("<BatchResult finished")


def test_each_progress_moves_on_the_stand_ins_default_answers(srv, k):
    """The experiments notebook's cell on the offline stand-in, as scripts/run serves it: its default
    answers differ in length by the question (104 to 162 tokens for these words), so the bar moves
    in steps instead of jumping from 0/6 to 6/6."""
    words = ["serendipity", "ephemeral", "ubiquitous", "quixotic", "laconic", "petrichor"]
    k.run(f"words = {words!r}", timeout=10).raise_for_error()
    since = k.mark()
    cell = "%%deepseek --each words -o defs --no-thinking\nDefine the word {item} in one sentence. [[offline tps=100]]"
    r = k.run(cell, timeout=60)
    assert r.status == "ok", r.error
    bar = [
        m["content"]["comm_id"]
        for m in k.comm_opens()
        if m["content"]["data"]["state"].get("_model_name") == BAR
    ][-1]
    steps = _bar_updates(k, bar, since)
    assert steps == sorted(steps) and steps[-1] == 6 and len(steps) >= 4, steps


def test_stats_shows_rounded_totals_and_a_plot_image(srv, k):
    srv.enqueue(Script(text="one two three", reasoning="", tokens_per_second=200))
    srv.enqueue(Script(text="four five six seven", reasoning="", tokens_per_second=200))
    k.run("%%deepseek --no-history\nq1", timeout=30).raise_for_error()
    k.run("%%deepseek --no-history\nq2", timeout=30).raise_for_error()
    r = k.run("%deepseek stats", timeout=60)
    assert r.status == "ok", r.error
    text = r.stdout
    assert "requests:    2 (2 ok)" in text and "first token: median" in text and "tok/s" in text
    # No figure printed with more digits than a person reads (dollars keep two significant digits).
    assert not re.search(r"(?<![$\d.])\d+\.\d{3,}", text), text
    images = [m["content"]["data"] for m in r.outputs if "image/png" in m["content"].get("data", {})]
    assert len(images) == 1
    png = base64.b64decode(images[0]["image/png"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000
    assert "latency, tokens/s and cost" in images[0]["text/plain"]
    assert "<Figure" not in str(r.outputs)
    # The same totals as a value are rounded too (IPython's pretty printer).
    value = k.run("import ds_magic\nds_magic.stats()", timeout=30)
    assert value.result_text is not None and value.result_text.startswith("requests:    2")


def test_cache_stats_prints_once(srv, k):
    k.run("%%deepseek --cache --no-history\nName three uses of a cache.", timeout=30).raise_for_error()
    r = k.run("%deepseek cache stats", timeout=30)
    assert r.status == "ok", r.error
    assert r.result_text is None  # not printed a second time as Out[]
    assert r.stdout.count("entries: 1") == 1 and "size: " in r.stdout and "limit 200 MB" in r.stdout


def test_tables_are_dataframes_rounded_for_people(srv, k):
    pytest.importorskip("pandas")
    srv.enqueue(*[Script(text="x " * 30, reasoning="", tokens_per_second=300)] * 2)
    k.run("xs = ['p', 'q']", timeout=10).raise_for_error()
    k.run("%%deepseek --each xs -o res --no-thinking\n{item}", timeout=60).raise_for_error()
    kinds = k.run(
        "import ds_magic\nprint(type(res.table()).__name__, type(ds_magic.records()).__name__)", timeout=30
    ).raise_for_error()
    assert kinds.stdout.strip() == "DataFrame DataFrame"
    # What the notebook shows (the DataFrame's text/plain and text/html): no long tails of digits.
    for code in (
        "res.table()[['ttft', 'tokens/s', 'cost']]",
        "ds_magic.records()[['time', 'ttft', 'total', 'tokens_per_second', 'cost']]",
    ):
        shown = k.run(code, timeout=30).raise_for_error()
        [data] = [m["content"]["data"] for m in shown.outputs if m["msg_type"] == "execute_result"]
        for mime in ("text/plain", "text/html"):
            numbers = re.findall(r"\d+\.\d+(?:e-?\d+)?", data[mime])
            assert numbers, data[mime]
            assert all("e" not in n and len(n.split(".")[1]) <= 6 for n in numbers), data[mime]
        assert not re.search(r":\d\d\.\d", data["text/plain"])  # times to the second


def test_experiments_notebook_run_all_looks_finished(monkeypatch, tmp_path):
    """Run All of notebooks/experiments.ipynb (nbclient, a real kernel with the extension loaded as
    in the main job) and read what the saved notebook shows."""
    import nbformat
    from nbclient import NotebookClient

    from ds_magic.testing import OfflineServer

    pytest.importorskip("pandas")
    pytest.importorskip("matplotlib")
    path = __import__("pathlib").Path(__file__).resolve().parents[1] / "notebooks" / "experiments.ipynb"
    with OfflineServer() as srv:
        monkeypatch.setenv("DEEPSEEK_API_KEY", "offline-stand-in")
        monkeypatch.setenv("DEEPSEEK_BASE_URL", srv.url)
        monkeypatch.setenv("DS_MAGIC_OFFLINE", "1")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        nb = nbformat.read(path, as_version=4)
        # As scripts/run's kernels do (jupyter-config/ipython_kernel_config.json): the extension
        # is loaded before the first cell, so a bare %load_ext would say "already loaded".
        NotebookClient(
            nb,
            timeout=120,
            kernel_name="python3",
            extra_arguments=["--InteractiveShellApp.extra_extensions=['ds_magic']"],
            resources={"metadata": {"path": str(tmp_path)}},
        ).execute()
    cells = [c for c in nb.cells if c.cell_type == "code"]

    def outputs(prefix: str) -> list[dict]:
        [cell] = [c for c in cells if c.source.startswith(prefix)]
        return list(cell.get("outputs", []))

    everything = nbformat.writes(nb)
    assert "already loaded" not in everything and '"output_type": "error"' not in everything
    # No figure shown as its text alone ("<Figure size ...>" is fine beside the image it describes).
    bundles = [o.get("data", {}) for c in cells for o in c.get("outputs", [])]
    assert all("image/png" in d for d in bundles if d.get("text/plain", "").startswith("<Figure"))
    assert any("<table" in o.get("data", {}).get("text/html", "") for o in outputs("defs.table()"))
    assert any("<table" in o.get("data", {}).get("text/html", "") for o in outputs("ds_magic.records()"))
    cache = outputs("print(_.cached)")
    assert [o["output_type"] for o in cache] == ["stream"] and cache[0]["text"].count("entries:") == 1
    stats = outputs("%deepseek stats")
    assert any("image/png" in o.get("data", {}) for o in stats)
    text = "".join(o.get("text", "") for o in stats)
    assert "requests:" in text and not re.search(r"(?<![$\d.])\d+\.\d{3,}", text)
