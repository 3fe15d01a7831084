"""Property: whatever JSON a server puts in whatever place of a chunk, the stream ends, in ``ok`` or a
one-line ``DeepSeekError``, within its deadline; ``cancel()`` always ends it; reading the response
never raises (issue 14). Served over a real socket (tests/hostile.py), one request per example.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from hostile import GOOD, Queue, RawServer, chunk, sse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from offline_helpers import KEY, wait_until

from ds_magic import Client, DeepSeekError, RetryPolicy, Timeout

BOUND = 15.0

# Every place of a chunk a value can go (deepseek-api.md §2.2), as a path from the top.
BASE: dict[str, Any] = chunk(
    {
        "role": "assistant",
        "content": "x",
        "reasoning_content": None,
        "tool_calls": [
            {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": "{"}}
        ],
    },
    usage={"prompt_tokens": 1, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 0}},
)
PATHS: list[tuple[Any, ...]] = [
    (),
    ("choices",),
    ("usage",),
    ("error",),
    ("id",),
    ("choices", 0),
    ("choices", 0, "delta"),
    ("choices", 0, "finish_reason"),
    ("choices", 0, "index"),
    ("choices", 0, "delta", "content"),
    ("choices", 0, "delta", "reasoning_content"),
    ("choices", 0, "delta", "role"),
    ("choices", 0, "delta", "tool_calls"),
    ("choices", 0, "delta", "tool_calls", 0),
    ("choices", 0, "delta", "tool_calls", 0, "index"),
    ("choices", 0, "delta", "tool_calls", 0, "id"),
    ("choices", 0, "delta", "tool_calls", 0, "function"),
    ("choices", 0, "delta", "tool_calls", 0, "function", "name"),
    ("choices", 0, "delta", "tool_calls", 0, "function", "arguments"),
    ("usage", "prompt_tokens"),
    ("usage", "completion_tokens"),
    ("usage", "prompt_cache_hit_tokens"),
    ("usage", "completion_tokens_details"),
    ("usage", "prompt_tokens_details"),
    ("usage", "prompt_tokens_details", "cached_tokens"),
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def put(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    """``obj`` with ``value`` at ``path``; a path through something that is no longer a container
    (an earlier replacement) is skipped."""
    if not path:
        return value
    node = obj
    for step in path[:-1]:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return obj
    try:
        node[path[-1]] = value
    except (IndexError, TypeError):
        pass
    return obj


@st.composite
def hostile_chunks(draw: st.DrawFn) -> Any:
    obj: Any = copy.deepcopy(BASE)
    for path in draw(st.lists(st.sampled_from(PATHS), min_size=1, max_size=3)):
        obj = put(obj, path, draw(json_values))
    return obj


@pytest.fixture(scope="module")
def hostile() -> Iterator[tuple[RawServer, Queue]]:
    queue = Queue()
    with RawServer(queue) as server:
        yield server, queue


def check_readable(resp: Any) -> None:
    # Reading a response never raises, whatever came in, and its text can be saved.
    resp.text_so_far.encode("utf-8")
    resp.reasoning.encode("utf-8")
    repr(resp)
    resp.to_dict()
    for call in resp.tool_calls:
        call.to_message()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bad=st.lists(hostile_chunks(), min_size=1, max_size=2), stall=st.booleans())
def test_any_json_in_any_place_ends_cleanly(hostile, bad, stall):
    server, queue = hostile
    queue.put(sse([GOOD, *bad], done=not stall), stall=stall)
    client = Client(
        api_key=KEY,
        base_url=server.url,
        retry=RetryPolicy(max_retries=0),
        resume=0,
        timeout=Timeout(connect=5, first_token=10, idle=10),
    )
    resp = client.chat("q")
    if stall:  # the server goes silent: the parser ends it, or cancel() must
        assert wait_until(lambda: resp.done or resp.chars > 0, BOUND)
        check_readable(resp)
        resp.cancel()
    assert resp.join(BOUND), f"still {resp.status} after {BOUND} s"
    check_readable(resp)
    assert resp.status in ("ok", "cancelled", "error", "interrupted"), resp.status
    if resp.status in ("error", "interrupted"):
        assert isinstance(resp.error, DeepSeekError), repr(resp.error)
        message = str(resp.error)
        assert "\n" not in message and "Unexpected error" not in message, message
    else:
        assert resp.error is None
    if resp.status != "error":
        assert resp.text_so_far.startswith("kept ")
