"""Figures for people (issue 13): stats() as exact numbers and as rounded text, the plot of each
request as a PNG, and tables rounded in a DataFrame but exact as rows. Real requests to the offline
server feed the records."""

from __future__ import annotations

import re

import pytest
from offline_helpers import KEY

import ds_magic
from ds_magic import Client
from ds_magic.run_stats import figure_png, format_stats, plot_records
from ds_magic.tables import rounded
from ds_magic.testing import Script


@pytest.fixture(autouse=True)
def fresh_records():
    ds_magic.clear_records()
    yield
    ds_magic.clear_records()


def _run(srv, n: int = 3) -> None:
    client = Client(api_key=KEY, base_url=srv.url)
    for i in range(n):
        srv.enqueue(Script(text="word " * (5 + 7 * i), reasoning="", tokens_per_second=500))
        client.chat(f"q{i}").wait()


def test_stats_is_exact_for_programs_and_rounded_for_people(srv):
    _run(srv)
    s = ds_magic.stats()
    assert isinstance(s, dict) and s["requests"] == 3 and isinstance(s["ttft_mean"], float)
    text = str(s)
    assert text == format_stats(s)
    assert text.splitlines()[0] == "requests:    3 (3 ok)"
    assert re.search(r"first token: median \d+ ms · mean \d+ ms", text), text
    assert re.search(r"speed:       median [\d,.]+ tok/s", text), text
    assert not re.search(r"(?<![$\d.])\d+\.\d{3,}", text), text  # no long tails of digits
    assert format_stats(ds_magic.stats()) == text  # the same records, the same text


def test_the_plot_has_latency_tokens_per_second_and_cost_per_request(srv):
    pytest.importorskip("matplotlib")
    _run(srv)
    fig = plot_records()
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["latency (s)", "tokens/s", "cost (µ$, estimated)"]
    assert all(len(ax.patches) == 3 for ax in fig.axes[1:])  # one bar per request
    png = figure_png(fig)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000


def test_a_dataframe_is_rounded_and_the_rows_are_exact(srv):
    pd = pytest.importorskip("pandas")
    _run(srv, 2)
    rows = ds_magic.records(as_dataframe=False)
    df = ds_magic.records()
    assert isinstance(df, pd.DataFrame)
    for row, (_, shown) in zip(rows, df.iterrows(), strict=True):
        assert shown["ttft"] == round(row["ttft"], 3) and shown["cost"] == round(row["cost"], 6)
        assert shown["tokens_per_second"] == round(row["tokens_per_second"], 1)
        assert shown["time"].microsecond == 0
    assert rounded({"ttft": 0.123456, "text": "0.123456", "tokens": 7}) == {
        "ttft": 0.123,
        "text": "0.123456",
        "tokens": 7,
    }
