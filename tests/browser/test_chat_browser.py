"""ds_magic.Chat in JupyterLab (headless Chromium): type, Enter, stream, Cancel, send again, code tools.

The chat's front end is ds_magic/jupyter/chat_widget.js; these tests press the real keys and buttons, so
they check what the kernel tests cannot: that Enter sends and Shift+Enter makes a new line without
triggering the notebook's own shortcuts, that Cancel is clickable while the answer streams, that a
failed message comes back into the input, and that "Insert as cell" and "Copy" really work.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import nbformat
from conftest import NB

from ds_magic.testing import OfflineServer, Script

CELL = 0  # the chat's cell in these notebooks
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
STATE_MIME = "application/vnd.jupyter.widget-state+json"

CODE = "def double(x):\n    return 2 * x"


def _open_chat(nb: Any, lab: Any, notebook: str, name: str) -> int:
    lab.write_notebook(notebook, [f"from ds_magic import Chat\nchat = Chat(chat={name!r})\nchat"])
    nb.open(notebook)
    nb.run(CELL)
    nb.wait_finished(CELL, timeout=30)  # background mode: the cell is done before anything is asked
    nb.output(CELL).locator(".ds-chat-input").wait_for(timeout=30_000)
    return CELL


def _streaming_text(nb: Any, cell: int) -> str:
    body = nb.output(cell).locator(".ds-chat-streaming .ds-chat-body")
    return str(body.inner_text()) if body.count() else ""


def test_type_enter_stream_cancel_and_send_again(nb: Any, lab: Any, offline: OfflineServer) -> None:
    cell = _open_chat(nb, lab, "chat.ipynb", "browser")
    count = nb.execution_count(cell)
    cells_before = nb.code_cells().count()
    chat = nb.output(cell)
    box = chat.locator(".ds-chat-input")

    # Shift+Enter is a new line in the message (not "run cell"); Enter sends it.
    offline.enqueue(Script(text="word " * 600, reasoning="", tokens_per_second=30))
    box.click()
    nb.page.keyboard.type("first line")
    nb.page.keyboard.press("Shift+Enter")
    nb.page.keyboard.type("second line")
    nb.screenshot("typed")
    nb.page.keyboard.press("Enter")
    nb.poll(lambda: len(offline.requests), lambda n: n == 1, 15)
    assert offline.requests[0].body["messages"][-1]["content"] == "first line\nsecond line"
    assert box.input_value() == ""  # sent, so the input is empty again

    # The answer streams: the live text grows while the request is open.
    seen = [len(_streaming_text(nb, cell))]
    for _ in range(3):
        seen.append(nb.poll(lambda: len(_streaming_text(nb, cell)), lambda n, last=seen[-1]: n > last, 15))
    assert offline.active == 1
    nb.screenshot("streaming")

    # Cancel is clickable while it streams and closes the request.
    chat.locator(".ds-chat-cancel").click()
    assert offline.wait_for_disconnect(5) is not None
    footer = chat.locator(".ds-chat-history .ds-chat-assistant .ds-chat-footer").last
    nb.poll(lambda: footer.inner_text() if footer.count() else "", lambda t: "cancelled" in t, 15)
    assert chat.locator(".ds-chat-cancel").is_hidden()
    nb.screenshot("cancelled")

    # Send again: the new answer (with a code block) arrives after the cancelled one. The next
    # question, typed while it streams, stays in the input, which keeps the focus when it ends (a
    # re-rendered widget would drop both, and the next keys would hit notebook shortcuts).
    offline.enqueue(
        Script(text=f"Here you go:\n\n```python\n{CODE}\n```", reasoning="", tokens_per_second=20)
    )
    box.click()
    nb.page.keyboard.type("and a function, please")
    nb.page.keyboard.press("Enter")
    nb.poll(lambda: _streaming_text(nb, cell), lambda t: "Here" in t, 15)
    nb.page.keyboard.type("next question")
    answers = chat.locator(".ds-chat-history .ds-chat-assistant")
    nb.poll(lambda: answers.count(), lambda n: n == 2, 30)
    assert offline.active == 0 and len(offline.requests) == 2  # typing sent nothing
    nb.page.keyboard.type(", typed on")
    assert box.input_value() == "next question, typed on"
    assert nb.page.evaluate("document.activeElement.classList.contains('ds-chat-input')")
    assert "Here you go" in answers.last.inner_text()
    msgs = [m["content"] for m in offline.requests[-1].body["messages"]]
    assert (
        msgs[0] == "first line\nsecond line"
        and msgs[1].startswith("word")
        and msgs[-1] == "and a function, please"
    )
    nb.screenshot("answered-again")

    # None of these keys reached the notebook: the chat's cell did not run again, no cell was added.
    assert nb.execution_count(cell) == count
    assert nb.code_cells().count() == cells_before

    # When the kernel restarts (toolbar ↻, then "Restart" in the dialog), the chat says so and stops
    # offering an input that would go nowhere.
    nb.page.locator(
        '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Toolbar [data-command*="restart"]'
    ).first.click()
    nb.page.locator(".jp-Dialog .jp-mod-accept").click()
    status = chat.locator(".ds-chat-status")
    nb.poll(lambda: status.inner_text(), lambda t: "Not connected to a kernel" in t, 20)
    assert box.is_hidden() and chat.locator(".ds-chat-static").count() == 1
    assert "Here you go" in chat.inner_text()  # the conversation stays on the page


def test_code_tools_error_inline_and_saved_transcript(nb: Any, lab: Any, offline: OfflineServer) -> None:
    nb.page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=lab.url)
    cell = _open_chat(nb, lab, "chat-tools.ipynb", "tools")
    chat = nb.output(cell)
    box = chat.locator(".ds-chat-input")

    offline.enqueue(Script(text=f"Use this:\n\n```python\n{CODE}\n```", reasoning=""))
    box.click()
    nb.page.keyboard.type("show me code")
    nb.page.keyboard.press("Enter")
    answer = chat.locator(".ds-chat-history .ds-chat-assistant").last
    answer.locator(".ds-chat-copy").wait_for(timeout=30_000)

    # "Copy" puts the code on the clipboard.
    answer.locator(".ds-chat-copy").click()
    nb.poll(lambda: answer.locator(".ds-chat-copy").inner_text(), lambda t: t == "Copied", 5)
    assert nb.page.evaluate("navigator.clipboard.readText()").rstrip("\n") == CODE

    # "Insert as cell" adds a code cell right below the chat's cell, holding the code.
    before = nb.code_cells().count()
    answer.locator(".ds-chat-insert").click()
    nb.poll(lambda: nb.code_cells().count(), lambda n: n == before + 1, 10)
    inserted = nb.code_cells().nth(1)
    nb.poll(lambda: inserted.locator(".cm-content").inner_text(), lambda t: t.strip() == CODE, 10)
    nb.screenshot("inserted")

    # An error shows inline with what to do, and the text comes back into the input.
    offline.enqueue(Script(status=402))
    box.click()
    nb.page.keyboard.type("a question that fails")
    nb.page.keyboard.press("Enter")
    error = chat.locator(".ds-chat-history .ds-chat-error")
    error.wait_for(timeout=30_000)
    assert "top up" in error.inner_text()
    nb.poll(lambda: box.input_value(), lambda v: v == "a question that fails", 10)
    nb.screenshot("error")

    # Saved while the chat is open: the notebook's widget-state metadata holds a read-only copy of
    # the chat (and its Layout), so the output can be restored without the kernel.
    path = lab.root / "chat-tools.ipynb"
    # (Ctrl+S pressed with the focus still in the chat's input: application shortcuts get through.)
    nb.save()
    saved = nbformat.read(path, as_version=4)  # joins multi-line strings
    data = _chat_output(saved)
    model_id = data[WIDGET_MIME]["model_id"]
    states = saved.metadata["widgets"][STATE_MIME]["state"]
    copy = states[model_id]["state"]
    assert copy["_ds_saved"] is True and copy["_ds_chat_id"] == model_id
    assert copy["layout"].removeprefix("IPY_MODEL_") in states
    record = " ".join(e.get("html", "") for e in copy["entries"])
    assert "show me code" in record and "def double" in record and "top up" in record
    assert copy["draft"] == "" and copy["busy"] is False  # the unsent text is not part of the record
    assert "DeepSeek chat" in data["text/html"] and "<script" not in data["text/html"]

    # Reopened after the kernel is gone: the transcript, read-only, and no "Error displaying widget".
    lab.shutdown_kernels()
    nb.page.reload()
    nb.page.wait_for_selector(f"{NB} .jp-Cell", timeout=60_000)
    nb.wait_idle("chat-tools.ipynb", timeout=60)
    chat = nb.output(cell)
    chat.locator(".ds-chat-static").wait_for(timeout=30_000)
    text = chat.inner_text()
    assert "show me code" in text and "Use this" in text and "top up" in text
    assert "Error displaying widget" not in nb.output_text(cell)
    assert chat.locator(".ds-chat-input").is_hidden() and chat.locator(".ds-chat-new").is_hidden()
    assert "Saved transcript" in chat.locator(".ds-chat-status").inner_text()
    restored = chat.locator(".ds-chat-history .ds-chat-assistant").first
    restored.locator(".ds-chat-copy").click()  # the code tools still work on the record
    nb.poll(lambda: restored.locator(".ds-chat-copy").inner_text(), lambda t: t == "Copied", 5)
    assert nb.page.evaluate("navigator.clipboard.readText()").rstrip("\n") == CODE
    nb.screenshot("reopened")

    # Saved again from the new kernel: the copy is kept, since the output still shows it.
    _save_and_wait(nb, path)
    again = nbformat.read(path, as_version=4)
    assert again.metadata["widgets"][STATE_MIME]["state"][model_id]["state"]["_ds_saved"] is True

    # Run the cell again: a new live chat replaces the old output, and the next save drops the old copy.
    nb.run(cell)
    nb.wait_finished(cell, timeout=30)
    nb.output(cell).locator(".ds-chat-input").wait_for(timeout=30_000)
    _save_and_wait(nb, path)
    third = nbformat.read(path, as_version=4)
    new_id = _chat_output(third)[WIDGET_MIME]["model_id"]
    kept = third.metadata["widgets"][STATE_MIME]["state"]
    assert new_id != model_id and model_id not in kept and new_id in kept
    assert copy["layout"].removeprefix("IPY_MODEL_") not in kept  # the old chat's Layout went with it


def _chat_output(saved: Any) -> Any:
    outputs = saved["cells"][CELL]["outputs"]
    return [o for o in outputs if o.get("output_type") == "display_data"][0]["data"]


def _save_and_wait(nb: Any, path: Any) -> None:
    """Ctrl+S on a notebook that may have no unsaved changes: wait for the file itself to change and
    to be whole again (the server truncates it first, so a read right after the mtime moves can be empty)."""
    before = path.stat().st_mtime_ns
    nb.page.keyboard.press("Control+s")
    nb.poll(lambda: (path.stat().st_mtime_ns, _whole_json(path)), lambda v: v[0] != before and v[1], 10)


def _whole_json(path: Any) -> bool:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return False
    return True


def _widget_setting(lab: Any, save_state: bool) -> None:
    """Set ipywidgets' own "Save Widget State Automatically" through Lab's settings API."""
    url = f"{lab.url}/lab/api/settings/@jupyter-widgets/jupyterlab-manager:plugin"
    body = json.dumps({"raw": json.dumps({"saveState": save_state})}).encode()
    req = urllib.request.Request(url, data=body, method="PUT", headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()


def test_saved_chat_with_ipywidgets_own_state_saving_on(nb: Any, lab: Any, offline: OfflineServer) -> None:
    # With that setting on, ipywidgets writes every live widget's state first; the chat's copy must
    # still be the read-only one, and the other widgets' state must be left as ipywidgets wrote it.
    _widget_setting(lab, True)
    try:
        lab.write_notebook(
            "chat-state.ipynb",
            ["from ds_magic import Chat\nChat(chat='state')", "import ipywidgets as w\nw.IntSlider(3)"],
        )
        nb.open("chat-state.ipynb")
        for index in (0, 1):
            nb.run(index)
            nb.wait_finished(index, timeout=30)
        chat = nb.output(CELL)
        chat.locator(".ds-chat-input").wait_for(timeout=30_000)
        offline.enqueue(Script(text="an answer worth keeping", reasoning=""))
        chat.locator(".ds-chat-input").click()
        nb.page.keyboard.type("keep this")
        nb.page.keyboard.press("Enter")
        chat.locator(".ds-chat-history .ds-chat-assistant").wait_for(timeout=30_000)
        nb.save()
        saved = nbformat.read(lab.root / "chat-state.ipynb", as_version=4)
        states = saved.metadata["widgets"][STATE_MIME]["state"]
        chats = [s["state"] for s in states.values() if s["state"].get("_ds_chat_id")]
        assert len(chats) == 1 and chats[0]["_ds_saved"] is True
        assert "IntSliderModel" in [s["model_name"] for s in states.values()]

        lab.shutdown_kernels()
        nb.page.reload()
        nb.page.wait_for_selector(f"{NB} .jp-Cell", timeout=60_000)
        nb.wait_idle("chat-state.ipynb", timeout=60)
        nb.output(CELL).locator(".ds-chat-static").wait_for(timeout=30_000)
        assert "an answer worth keeping" in nb.output(CELL).inner_text()
        assert "Error displaying widget" not in nb.output_text(CELL) + nb.output_text(1)
        nb.screenshot("reopened")
    finally:
        _widget_setting(lab, False)
