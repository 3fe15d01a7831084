"""What the tool view puts on the page, in a real kernel: tool-call deltas live as they stream, a
tool that raises, and hostile names / arguments / results only ever as escaped text."""

from __future__ import annotations

import json

import pytest
from live_helpers import cancel, open_live_views

from ds_magic.testing import Script

pytestmark = pytest.mark.kernel

SETUP = """
from ds_magic.jupyter.tool_cell import KERNEL_ALLOWED
def get_weather(city: str) -> str:
    '''The weather in a city now.

    Args:
        city: The city's name.
    '''
    return f"sunny in {city}"

def broken(x: int) -> int:
    '''Always fails.

    Args:
        x: A number.
    '''
    print("about to fail")
    return x // 0

def echo(text: str) -> str:
    '''Say it back.

    Args:
        text: What to say.
    '''
    return text
"""


@pytest.fixture
def k(module_kernel):
    module_kernel.run(SETUP, timeout=20).raise_for_error()
    module_kernel.run("%config DeepSeekMagics.tool_approval = 'auto'").raise_for_error()
    return module_kernel


@pytest.fixture(autouse=True)
def fresh(srv, k):
    srv.reset()
    k.run("%deepseek reset", timeout=10).raise_for_error()


def widget_values(k, since: int, trait: str) -> list[str]:
    return [
        m["content"]["data"]["state"][trait]
        for m in k.all_iopub[since:]
        if m["msg_type"] == "comm_msg"
        and m["content"]["data"].get("method") == "update"
        and trait in m["content"]["data"].get("state", {})
    ]


def published_html(k, since: int) -> str:
    parts = []
    for m in k.all_iopub[since:]:
        c = m["content"]
        if m["msg_type"] in ("display_data", "update_display_data", "execute_result"):
            parts.append(str(c.get("data", {}).get("text/html", "")))
    return "\n".join(parts)


def test_tool_call_deltas_show_live_as_they_stream(srv, k):
    city = "Paris, the capital of France, on the Seine"
    srv.enqueue(
        Script(
            text="",
            tool_calls=[{"name": "get_weather", "arguments": json.dumps({"city": city})}],
            tokens_per_second=40,
        ),
        Script(text="Sunny."),
    )
    mark = k.mark()
    k.run("%%deepseek --tools get_weather\nWeather?", timeout=30).raise_for_error()
    live = [v for v in widget_values(k, mark, "live") if v]
    partial = [v for v in live if v.startswith('calling get_weather(city="Paris') and v.endswith("…")]
    assert partial, live  # seen while the arguments were still arriving
    assert len(set(live)) >= 2  # and it grew
    assert all(city not in v or v.endswith(")") for v in live)


def test_a_tool_that_raises_is_shown_and_sent_back(srv, k):
    srv.enqueue(
        Script(text="", tool_calls=[{"name": "broken", "arguments": '{"x": 1}'}]), Script(text="It failed.")
    )
    res = k.run("%%deepseek --tools broken\nTry it", timeout=30)
    assert res.status == "ok"  # the cell does not crash
    sent = [m for m in srv.requests[1].body["messages"] if m["role"] == "tool"][0]["content"]
    assert sent.startswith("error: ZeroDivisionError: integer division or modulo by zero")
    assert "about to fail" in sent
    html = published_html(k, 0)
    assert "ZeroDivisionError" in html and "about to fail" in html


HOSTILE = "<img src=x onerror=alert(1)><script>alert(2)</script>"


def test_hostile_arguments_and_results_never_reach_the_page_as_markup(srv, k):
    srv.enqueue(
        Script(text="", tool_calls=[{"name": "echo", "arguments": json.dumps({"text": HOSTILE})}]),
        Script(text="done"),
    )
    mark = k.mark()
    k.run("%%deepseek --tools echo\nSay it", timeout=30).raise_for_error()
    html = published_html(k, mark)
    assert "echo(" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<img" not in html and "<script" not in html
    # the widget carries it as plain strings (tool_widget.js puts them into textContent)
    calls = [c for v in widget_values(k, mark, "calls") for c in v]
    assert any(HOSTILE in c["args"] or HOSTILE in c.get("result", "") for c in calls)


def test_dry_run_shows_the_tool_specs_and_sends_nothing(srv, k):
    res = k.run("%%deepseek --dry-run --no-history --tools get_weather,variables\nWeather?", timeout=20)
    res.raise_for_error()
    body = json.loads(res.stdout)
    names = [t["function"]["name"] for t in body["tools"]]
    assert names == ["get_weather", "variables"]
    assert body["tools"][0]["function"]["parameters"]["properties"]["city"]["type"] == "string"
    assert srv.requests == []


def test_cancel_click_while_a_step_streams_stops_the_loop(srv, k):
    srv.enqueue(Script(text="word " * 600, tokens_per_second=40))
    mid = k.execute("%%deepseek --tools get_weather\nTalk a lot")
    views = k.wait_for(lambda: open_live_views(k), 20, what="the step's live view")
    k.wait_for(lambda: srv.active == 1, 10, what="the request to stream")
    cancel(k, views[-1])  # the custom message the view's ■ Cancel button sends
    assert srv.wait_for_disconnect(10) is not None  # the HTTP stream closed
    res = k.result(mid, 30).raise_for_error()
    assert len(srv.requests) == 1
    assert "cancelled during step 1" in "\n".join(
        str(m["content"]["data"].get("text/plain", "")) for m in res.outputs if "data" in m["content"]
    )
    assert k.evaluate("_ds_loop.state") == "'cancelled'"


def test_config_tools_is_the_default_set_of_every_cell(srv, k):
    k.run("%config DeepSeekMagics.tools = ['variables']").raise_for_error()
    try:
        srv.enqueue(Script(text="", tool_calls=[{"name": "variables", "arguments": "{}"}]), Script(text="ok"))
        k.run("%%deepseek\nWhat is defined?", timeout=30).raise_for_error()
    finally:
        k.run("%config DeepSeekMagics.tools = []").raise_for_error()
    assert [t["function"]["name"] for t in srv.requests[0].body["tools"]] == ["variables"]
    listing = [m for m in srv.requests[1].body["messages"] if m["role"] == "tool"][0]["content"]
    assert "| get_weather | function |" in listing and "| KERNEL_ALLOWED | set | len" in listing
    srv.enqueue(Script(text="plain"))
    k.run("%%deepseek\nno tools now", timeout=30).raise_for_error()
    assert "tools" not in srv.requests[2].body
