"""Property: ``chunks.decode_json`` (msgspec first, json for what msgspec refuses) gives exactly what
``json.loads`` gives, value for value and type for type, or fails where json fails: the faster
decoder of the hot path (issue 17) changes nothing a server can send."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ds_magic.chunks import decode_json


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types all the way down (NaN equals NaN, -0.0 is not 0.0 or 0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def outcome(fn: Any, text: str) -> tuple[str, Any]:
    try:
        return "ok", fn(text)
    except (ValueError, RecursionError) as exc:
        return "error", type(exc)


BIG_INTS = st.integers() | st.sampled_from([2**63, -(2**63) - 1, 2**64, -(2**64), 10**40])
SCALARS = (
    st.none()
    | st.booleans()
    | BIG_INTS
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.sampled_from(["\ud800", "a\udfffb", "\x00", "\u2028", "\U0001f600"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)
# Text near JSON: its tokens, digits, escapes and whitespace, in any order.
NEAR_JSON = st.lists(
    st.sampled_from(list('{}[],:"\\ \t\n\r0123456789.eE+-tfnulrsaNIy') + ["\\u", "d800", "00e9", "\x01"]),
    max_size=30,
).map("".join)


@settings(max_examples=600, deadline=None)
@given(
    value=VALUES,
    ascii_only=st.booleans(),
    pad=st.sampled_from(["", " ", "\n", " \t\r\n"]),
    dup=st.booleans(),
)
def test_any_json_value_decodes_as_json_decodes_it(value: Any, ascii_only: bool, pad: str, dup: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)
    if dup and text.startswith("{") and len(text) > 2:
        text = '{"k": 1, "k": ' + text + ", " + text[1:]  # a duplicate key: the last one wins
    text = pad + text + pad
    want, got = outcome(json.loads, text), outcome(decode_json, text)
    assert got[0] == want[0] and (same(got[1], want[1]) if got[0] == "ok" else got[1] == want[1]), (
        text,
        got,
        want,
    )


@settings(max_examples=1500, deadline=None)
@given(text=NEAR_JSON)
def test_text_near_json_decodes_or_fails_as_json_does(text: str) -> None:
    want, got = outcome(json.loads, text), outcome(decode_json, text)
    assert got[0] == want[0], (text, got, want)
    if got[0] == "ok":
        assert same(got[1], want[1]), (text, got, want)


def test_the_shapes_a_server_sends() -> None:
    for text in [
        '{"choices":[{"index":0,"delta":{"content":" tok"},"finish_reason":null}]}',
        '{"a": NaN, "b": Infinity, "c": -Infinity}',  # json's extensions: json decides
        '{"a": "\\ud800"}',  # a lone surrogate escape
        '{"a": 1e400, "b": -1e400, "c": 1e-400}',
        '{"a": 123456789012345678901234567890, "b": -9223372036854775809}',
        '{"a": 1} x',  # trailing data: json's error
        "[" * 100_000,  # nested too deeply
        "",
    ]:
        want, got = outcome(json.loads, text), outcome(decode_json, text)
        assert got[0] == want[0], (text[:40], got, want)
        assert same(got[1], want[1]) if got[0] == "ok" else got[1] == want[1], text[:40]
