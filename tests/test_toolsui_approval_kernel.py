"""Tool calls in a real kernel against the offline server, driven as JupyterLab drives them: the
approval buttons clicked by comm message (Run, Deny, Always), ■ inside a slow tool, the headless
default (deny, said in the output), and the built-in python tool."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kernel_harness import KernelSession

from ds_magic.testing import Script

pytestmark = pytest.mark.kernel

SETUP = """
import time
calls = []
def get_weather(city: str) -> str:
    '''The weather in a city now.

    Args:
        city: The city's name.
    '''
    print(f"looking up {city}")
    calls.append(city)
    return f"sunny in {city}"

def slow(seconds: float) -> str:
    '''Wait a while.

    Args:
        seconds: How long.
    '''
    calls.append("slow started")
    for _ in range(int(seconds * 100)):
        time.sleep(0.01)  # the scenario (a slow tool), not a wait
    calls.append("slow finished")
    return "done"
"""


@pytest.fixture
def k(module_kernel):
    module_kernel.run(SETUP, timeout=20).raise_for_error()
    return module_kernel


@pytest.fixture(autouse=True)
def fresh(srv, k):
    srv.reset()
    k.run("%deepseek reset\ncalls.clear()", timeout=10).raise_for_error()


def weather_call(city: str = "Paris") -> Script:
    return Script(text="", tool_calls=[{"name": "get_weather", "arguments": json.dumps({"city": city})}])


def tool_widget(k: KernelSession, pred, timeout: float = 20.0) -> tuple[str, dict[str, Any]]:
    def find():
        for cid, st in k.widgets(open_only=True).items():
            if "asking" in st and "calls" in st and pred(st):
                return cid, st
        return None

    return k.wait_for(find, timeout, what="a tool widget in the wanted state")


def decide(k: KernelSession, wid: str, call_id: str, decision: str) -> None:
    k.comm_msg(wid, {"method": "custom", "content": {"event": "decide", "id": call_id, "decision": decision}})


def tool_messages(srv, index: int) -> list[dict[str, Any]]:
    return [m for m in srv.requests[index].body["messages"] if m["role"] == "tool"]


def final_text(res) -> str:
    return "\n".join(
        str(m["content"]["data"].get("text/plain", ""))
        for m in res.outputs
        if m["msg_type"] in ("update_display_data", "display_data")
    )


def test_run_click_runs_the_function_and_its_result_goes_back(srv, k):
    srv.enqueue(weather_call(), Script(text="It is **sunny** in Paris."))
    mid = k.execute("%%deepseek --tools get_weather\nWeather in Paris?", allow_stdin=True)
    wid, st = tool_widget(k, lambda s: s["asking"])
    call = st["calls"][0]
    assert call["name"] == "get_weather" and call["args"] == 'city="Paris"' and call["status"] == "asking"
    assert len(srv.requests) == 1  # the loop waits for the click (an execute would queue behind the cell)
    decide(k, wid, st["asking"], "run")
    res = k.result(mid, 30).raise_for_error()
    assert k.evaluate("calls") == "['Paris']"
    assert tool_messages(srv, 1)[0]["content"] == "printed:\nlooking up Paris\nreturned: sunny in Paris"
    text = final_text(res)
    assert 'get_weather(city="Paris") — ok' in text and "printed: looking up Paris" in text
    assert "It is **sunny** in Paris." in text and "2 requests · 1 tool call" in text


def test_deny_click_tells_the_model_and_runs_nothing(srv, k):
    srv.enqueue(weather_call(), Script(text="Fine, no weather."))
    mid = k.execute("%%deepseek --tools get_weather\nWeather?", allow_stdin=True)
    wid, st = tool_widget(k, lambda s: s["asking"])
    decide(k, wid, st["asking"], "deny")
    res = k.result(mid, 30).raise_for_error()
    assert k.evaluate("calls") == "[]"
    assert tool_messages(srv, 1)[0]["content"].startswith("denied by the user")
    assert 'get_weather(city="Paris") — denied' in final_text(res)


def test_always_allow_skips_the_question_for_the_rest_of_the_kernel(srv, k):
    srv.enqueue(weather_call("Oslo"), Script(text="Cold."))
    mid = k.execute("%%deepseek --tools get_weather\nOslo?", allow_stdin=True)
    wid, st = tool_widget(k, lambda s: s["asking"])
    decide(k, wid, st["asking"], "always")
    k.result(mid, 30).raise_for_error()
    # the next cell: the same tool runs without asking
    srv.enqueue(weather_call("Rome"), Script(text="Warm."))
    res = k.run("%%deepseek --tools get_weather\nRome?", timeout=30, allow_stdin=True).raise_for_error()
    assert k.evaluate("calls") == "['Oslo', 'Rome']"
    assert "always allowed" in final_text(res)
    k.run("from ds_magic.jupyter.tool_cell import KERNEL_ALLOWED; KERNEL_ALLOWED.clear()").raise_for_error()


def test_interrupt_inside_a_slow_tool_stops_it(srv, k):
    srv.enqueue(Script(text="", tool_calls=[{"name": "slow", "arguments": '{"seconds": 30}'}]))
    k.run(
        "from ds_magic.jupyter.tool_cell import KERNEL_ALLOWED; KERNEL_ALLOWED.add('slow')"
    ).raise_for_error()
    try:
        mid = k.execute("%%deepseek --tools slow\nwait", allow_stdin=True)
        tool_widget(k, lambda s: [c["status"] for c in s["calls"]] == ["running"])  # the view says it runs
        k.interrupt()
        res = k.result(mid, 20)
        assert res.status == "error" and "Interrupted: the tool was stopped" in res.error.evalue
        assert k.evaluate("'slow finished' in calls") == "False"  # it never finished
        assert len(srv.requests) == 1  # and nothing more was asked of the model
        assert "slow(seconds=30) — cancelled" in final_text(res)
        assert "ok" in k.run("print('ok')").stdout  # the kernel goes on
    finally:
        k.run("KERNEL_ALLOWED.clear()")


def test_headless_denies_and_says_so(srv, k):
    srv.enqueue(weather_call(), Script(text="Could not look."))
    res = k.run("%%deepseek --tools get_weather\nWeather?", timeout=30).raise_for_error()  # allow_stdin False
    assert k.evaluate("calls") == "[]"
    assert "no approver: denied" in tool_messages(srv, 1)[0]["content"]
    assert "Headless run (no one to approve)" in final_text(res)


def test_auto_approval_and_the_python_tool(srv, k):
    code = "import math\nprint('root')\nx_from_tool = 40 + 2\nmath.sqrt(x_from_tool - 6)"
    srv.enqueue(
        Script(text="", tool_calls=[{"name": "python", "arguments": json.dumps({"code": code})}]),
        Script(text="x is 42."),
    )
    k.run("%config DeepSeekMagics.tool_approval = 'auto'").raise_for_error()
    try:
        res = k.run("%%deepseek --tools python,variables\nCompute", timeout=30).raise_for_error()
    finally:
        k.run("%config DeepSeekMagics.tool_approval = 'ask'")
    assert k.evaluate("x_from_tool") == "42"
    assert tool_messages(srv, 1)[0]["content"] == "stdout:\nroot\n\nvalue:\n6.0"
    assert [t["function"]["name"] for t in srv.requests[0].body["tools"]] == ["python", "variables"]
    text = final_text(res)
    assert "math.sqrt(x_from_tool - 6)" in text  # the code is shown


def test_unknown_tool_name_is_one_line(srv, k):
    res = k.run("%%deepseek --tools nope\nhi", timeout=20)
    assert res.status == "error"
    assert "--tools nope: no function by that name in the namespace" in res.error.evalue
    assert srv.requests == []


def test_stop_while_waiting_for_approval_denies_and_ends_the_loop(srv, k):
    srv.enqueue(weather_call(), Script(text="never asked"))
    mid = k.execute("%%deepseek --tools get_weather\nWeather?", allow_stdin=True)
    wid, _st = tool_widget(k, lambda s: s["asking"])
    k.comm_msg(wid, {"method": "custom", "content": {"event": "stop"}})
    res = k.result(mid, 30).raise_for_error()
    assert len(srv.requests) == 1  # the result of a stopped loop is not sent
    assert k.evaluate("calls") == "[]"
    text = final_text(res)
    assert "denied · cancelled while waiting for approval" in text


def test_interrupt_while_waiting_for_approval(srv, k):
    srv.enqueue(weather_call(), Script(text="never asked"))
    mid = k.execute("%%deepseek --tools get_weather\nWeather?", allow_stdin=True)
    tool_widget(k, lambda s: s["asking"])
    k.interrupt()
    res = k.result(mid, 30)
    assert res.status == "error" and "Interrupted: the tool loop was stopped" in res.error.evalue
    assert len(srv.requests) == 1 and k.evaluate("calls") == "[]"
    assert "cancelled while waiting for approval" in final_text(res)
