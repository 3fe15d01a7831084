"""A ``%%deepseek --tools python`` cell in JupyterLab (headless Chromium): the call shows with its code,
the Run button is clicked in the page, the code runs in the kernel and the result is shown.

What the kernel tests cannot check: that the tool view's front end (tool_widget.js) draws the call
and its buttons, that a real click reaches the kernel while the cell awaits (JupyterLab sends
``allow_stdin: true``, so this is not a headless run), and that the result is on the screen.
"""

from __future__ import annotations

import json
from typing import Any

from ds_magic.testing import OfflineServer, Script

CODE = "total = sum(range(10))\nprint('printed from the tool')\ntotal * 2"


def test_python_tool_approved_in_jupyterlab(nb: Any, lab: Any, offline: OfflineServer) -> None:
    offline.enqueue(
        Script(text="", tool_calls=[{"name": "python", "arguments": json.dumps({"code": CODE})}]),
        Script(text="The doubled total is **90**."),
    )
    lab.write_notebook(
        "tools-browser.ipynb", ["%%deepseek --tools python\nAdd up 0..9 and double it.", "total"]
    )
    nb.open("tools-browser.ipynb")
    nb.run(0)
    out = nb.output(0)
    run = out.locator(".ds-tools-buttons .ds-tools-run")
    run.wait_for(timeout=30_000)
    call = out.locator(".ds-tools-call").first
    assert "python(" in call.locator(".ds-tools-head").inner_text()
    code = call.locator(".ds-tools-code")
    assert code.inner_text() == CODE  # the code, shown before it runs
    assert code.locator(".ds-tok-k, .ds-tok-f, .ds-tok-b, .ds-tok-s, .ds-tok-n").count() > 0  # highlighted
    assert out.locator(".ds-tools-always").inner_text() == "Always allow python"
    assert len(offline.requests) == 1  # nothing goes on until the click
    nb.screenshot("asking")
    run.click()
    nb.wait_text(0, "The doubled total is", timeout=30)
    nb.wait_finished(0, timeout=30)
    text = nb.output_text(0)
    assert "python(…) ok" in text and "2 requests · 1 tool call" in text
    tool_msg = [m for m in offline.requests[1].body["messages"] if m["role"] == "tool"][0]["content"]
    assert tool_msg == "stdout:\nprinted from the tool\n\nvalue:\n90"
    nb.screenshot("answered")
    # the result is in a collapsible section: closed, then opened by a click
    result = nb.output(0).locator("details", has_text="result").first
    assert "printed from the tool" not in result.inner_text()
    result.locator("summary").click()
    assert "stdout:\nprinted from the tool\n\nvalue:\n90" in result.inner_text()
    nb.screenshot("result-open")
    # the code really ran in the kernel's namespace
    nb.run(1)
    nb.wait_text(1, "45", timeout=20)


WEATHER = '''def get_weather(city: str) -> str:
    """The weather in a city now.

    Args:
        city: The city's name.
    """
    return "sunny in " + city'''


def test_chat_with_tools_run_clicked_in_the_chat(nb: Any, lab: Any, offline: OfflineServer) -> None:
    offline.enqueue(
        Script(
            text="", tool_calls=[{"name": "get_weather", "arguments": json.dumps({"city": "<b>Paris</b>"})}]
        ),
        Script(text="It is sunny there."),
    )
    lab.write_notebook(
        "chat-tools-browser.ipynb",
        [WEATHER + "\nfrom ds_magic import Chat\nchat = Chat(chat='tools-b', tools=[get_weather])\nchat"],
    )
    nb.open("chat-tools-browser.ipynb")
    nb.run(0)
    nb.wait_finished(0, timeout=30)
    chat = nb.output(0)
    box = chat.locator(".ds-chat-input")
    box.wait_for(timeout=30_000)
    box.click()
    nb.page.keyboard.type("Weather?")
    nb.page.keyboard.press("Enter")
    run = chat.locator(".ds-chat-tool-run")
    run.wait_for(timeout=30_000)
    head = chat.locator(".ds-chat-tool-head").first.inner_text()
    assert 'get_weather(city="<b>Paris</b>")' in head  # the model's text, shown as text
    assert chat.locator(".ds-chat-tool b").count() == 0  # never as markup
    nb.screenshot("chat-asking")
    run.click()
    answers = chat.locator(".ds-chat-history .ds-chat-assistant")
    nb.poll(
        lambda: answers.last.inner_text() if answers.count() else "", lambda t: "It is sunny there." in t, 30
    )
    tool_msg = [m for m in offline.requests[1].body["messages"] if m["role"] == "tool"][0]["content"]
    assert tool_msg == "sunny in <b>Paris</b>"
    assert chat.locator(".ds-chat-tool-run").count() == 0  # the buttons are gone
    nb.screenshot("chat-answered")
