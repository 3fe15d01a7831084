"""``Chat(tools=[...])`` in a real kernel, driven through comm messages as its front end would: a
message answered by a tool loop whose function runs on the kernel's main thread, with the approval
clicked (Run) or automatic, and the calls shown in the chat as plain strings."""

from __future__ import annotations

import json

import pytest

from ds_magic.testing import Script

pytestmark = pytest.mark.kernel

SETUP = """
import threading
from ds_magic import Chat
ran = []
def get_weather(city: str) -> str:
    '''The weather in a city now.

    Args:
        city: The city's name.
    '''
    ran.append((city, threading.current_thread() is threading.main_thread()))
    return "sunny in " + city
"""


@pytest.fixture
def k(module_kernel):
    module_kernel.run(SETUP, timeout=20).raise_for_error()
    return module_kernel


@pytest.fixture(autouse=True)
def fresh(srv, k):
    srv.reset()
    k.run("ran.clear()").raise_for_error()


def open_chat(k, name: str) -> str:
    k.run(
        f"chat_{name} = Chat(chat={name!r}, tools=[get_weather])\nchat_{name}", timeout=20
    ).raise_for_error()
    return k.wait_for_widget(lambda s: s.get("title") == name and "tool_calls" in s, model_name="AnyModel")


def send(k, wid: str, text: str) -> None:
    k.comm_msg(wid, {"method": "custom", "content": {"event": "send", "text": text}})


def weather(city: str) -> Script:
    return Script(text="", tool_calls=[{"name": "get_weather", "arguments": json.dumps({"city": city})}])


def test_a_chat_message_runs_a_tool_after_the_run_click(srv, k):
    wid = open_chat(k, "tc1")
    srv.enqueue(weather("Paris"), Script(text="It is sunny in Paris."))
    send(k, wid, "Weather in Paris?")
    st = k.wait_for(lambda: (lambda s: s if s["tool_asking"] else None)(k.widget_state(wid)), 20)
    call = st["tool_calls"][0]
    assert call["name"] == "get_weather" and call["args"] == 'city="Paris"' and call["status"] == "asking"
    assert len(srv.requests) == 1
    k.comm_msg(
        wid, {"method": "custom", "content": {"event": "decide", "id": st["tool_asking"], "decision": "run"}}
    )
    done = k.wait_for(
        lambda: (
            lambda s: (
                s
                if any("sunny in Paris." in e.get("html", "") for e in s["entries"]) and not s["busy"]
                else None
            )
        )(k.widget_state(wid)),
        30,
        what="the final answer in the chat",
    )
    assert done["tool_calls"] == [] and done["tool_asking"] == ""
    assert k.evaluate("ran") == "[('Paris', True)]"  # on the kernel's main thread
    tool_msg = [m for m in srv.requests[1].body["messages"] if m["role"] == "tool"][0]
    assert tool_msg["content"] == "sunny in Paris"
    assert "get_weather" in k.run("%deepseek history tc1").stdout  # the chat's conversation keeps it whole


def test_auto_approval_in_the_chat_and_a_second_message(srv, k):
    k.run("%config DeepSeekMagics.tool_approval = 'auto'").raise_for_error()
    try:
        wid = open_chat(k, "tc2")
        srv.enqueue(weather("Oslo"), Script(text="Snow in Oslo."), Script(text="You asked about Oslo."))
        send(k, wid, "Oslo?")
        k.wait_for(
            lambda: any("Snow in Oslo." in e.get("html", "") for e in k.widget_state(wid)["entries"]), 30
        )
        send(k, wid, "What did I ask?")
        k.wait_for(
            lambda: any("You asked about Oslo." in e.get("html", "") for e in k.widget_state(wid)["entries"]),
            30,
        )
    finally:
        k.run("%config DeepSeekMagics.tool_approval = 'ask'")
    assert k.evaluate("ran") == "[('Oslo', True)]"
    assert len(srv.requests) == 3
    last = srv.requests[2].body["messages"]
    assert [m["role"] for m in last] == ["user", "assistant", "tool", "assistant", "user"]
