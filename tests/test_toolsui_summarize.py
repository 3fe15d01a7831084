"""Rich values in ``{name}`` interpolation (summarize.py): what a prompt carries of a DataFrame,
Series, ndarray, dict, list or long string, and that ``!r``/``!s`` keep the raw text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ds_magic.interpolate import interpolate
from ds_magic.summarize import markdown_table, summarize


def test_dataframe_shape_dtypes_head_and_tail_as_a_markdown_table():
    df = pd.DataFrame({"city": [f"c{i}" for i in range(100)], "temp": np.arange(100) / 4})
    text = interpolate("Look at {df}", {"df": df}, max_chars=4000)
    assert text.startswith("Look at DataFrame: 100 rows × 2 columns\ndtypes: city: ")
    assert "temp: float64" in text
    assert "| 0 | c0 | 0 |" in text and "| 4 | c4 | 1 |" in text  # head
    assert "| 99 | c99 | 24.75 |" in text  # tail
    assert "| 50 | c50 |" not in text
    assert "(90 rows not shown)" in text


def test_small_dataframe_whole_table_nothing_cut():
    df = pd.DataFrame({"a": [1, 2], "b": ["x|y", "line\nbreak"]})
    text = summarize(df)
    assert "| 0 | 1 | x\\|y |" in text and "| 1 | 2 | line break |" in text
    assert "not shown" not in text


def test_series_and_ndarray():
    s = pd.Series(range(30), name="n")
    assert summarize(s).startswith("Series 'n': 30 values, dtype int64\n")
    assert "(20 rows not shown)" in summarize(s)
    a = np.arange(40).reshape(20, 2)
    text = summarize(a)
    assert text.startswith("ndarray: shape (20, 2), dtype int64") and "| 19 | 38 | 39 |" in text
    cube = summarize(np.zeros((10, 10, 10)))  # 3 edge items of each axis
    assert cube.startswith("ndarray: shape (10, 10, 10), dtype float64") and "..." in cube


def test_long_dict_list_and_string_say_what_was_cut():
    d = {f"k{i}": i for i in range(100)}
    assert "(… 80 more keys not shown)" in summarize(d)
    items = list(range(1000))
    text = summarize(items)
    assert text.startswith("list of 1,000 items") and "- [999] 999" in text and "990 items not shown" in text
    long = "a" * 5000 + "b" * 5000
    cut = summarize(long, 1000)
    assert len(cut) <= 1000 and cut.startswith("a") and cut.endswith("b")
    assert "characters cut from the middle of a 10,000-character string" in cut


def test_short_containers_and_plain_values_keep_their_text():
    ns = {"xs": [1, 2, 3], "d": {"a": 1}, "n": 7, "s": "short"}
    assert interpolate("{xs} {d} {n} {s}", ns, max_chars=4000) == "[1, 2, 3] {'a': 1} 7 short"


def test_r_and_s_conversions_keep_todays_raw_text():
    df = pd.DataFrame({"a": range(100)})
    ns = {"df": df, "s": "it's"}
    assert interpolate("{df!s}", ns, max_chars=4000) == str(df)
    assert interpolate("{s!r}", ns, max_chars=4000) == repr("it's")
    assert interpolate("{missing!r} {df!x}", ns, max_chars=4000) == "{missing!r} {df!x}"


def test_in_out_and_underscore_from_the_ipython_namespace():
    ns = {"In": ["", "x = 1", "df.describe()"], "Out": {2: pd.DataFrame({"a": range(50)})}, "_": 42}
    text = interpolate("code {In[2]} gave {Out[2]}; last {_}", ns, max_chars=4000)
    assert text.startswith("code df.describe() gave DataFrame: 50 rows × 1 columns")
    assert text.endswith("; last 42")
    assert interpolate("{Out[9]}", ns, max_chars=4000) == "{Out[9]}"  # no such output: left as written


def test_without_max_chars_interpolation_is_unchanged():
    df = pd.DataFrame({"a": range(100)})
    assert interpolate("{df}", {"df": df}) == str(df)


def test_markdown_table_cuts_wide_cells():
    table = markdown_table(["h"], [["x" * 200]])
    assert table.splitlines()[2] == "| " + "x" * 59 + "… |"


@pytest.mark.parametrize("cap", [50, 200, 1000])
def test_the_cap_holds_for_every_rich_kind(cap):
    wide = pd.DataFrame({f"col{i}": ["v" * 50] * 200 for i in range(40)})
    for value in (
        wide,
        wide["col0"],
        np.ones((500, 20)),
        {i: "v" * 100 for i in range(500)},
        ["v" * 100] * 500,
    ):
        text = summarize(value, cap)
        assert len(text) <= cap, type(value)
        assert "cut" in text or "not shown" in text


_VALUES = st.one_of(
    st.integers(),
    st.text(max_size=3000),
    st.lists(st.integers(), max_size=300),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=200),
)


@given(st.text(max_size=300), st.dictionaries(st.sampled_from(["a", "b", "_", "In"]), _VALUES, max_size=4))
def test_interpolate_never_raises_and_caps_each_value(template, ns):
    assert isinstance(interpolate(template, ns, max_chars=600), str)
    for name, value in ns.items():
        filled = interpolate("{" + name + "}", ns, max_chars=600)
        raw = str(value)
        if len(raw) <= 500 or (isinstance(value, str) and len(raw) <= 600):
            assert filled == raw  # short values and strings within the cap are pasted as they are
        else:
            assert len(filled) <= 600 and ("cut" in filled or "not shown" in filled)
