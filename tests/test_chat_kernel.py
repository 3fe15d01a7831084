"""ds_magic.Chat in a real ipykernel, driven through comm messages as a front end would drive it.

The widget's front end (ds_magic/jupyter/chat_widget.js) reports the user's actions as custom messages
(``{"event": "send", "text": ...}``, ``cancel``, ``new_chat``) and the text being typed as the
``draft`` trait; these tests send exactly those messages and read the widget state the kernel
publishes on iopub, against the offline server on 127.0.0.1.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kernel_harness import KernelSession
from offline_helpers import KEY

from ds_magic.testing import Script

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

pytestmark = pytest.mark.kernel


@pytest.fixture
def k(module_kernel):
    return module_kernel


@pytest.fixture(autouse=True)
def fresh(srv, k):
    srv.reset()


_names = iter(range(1_000_000))


def open_chat(k: KernelSession, code: str = "", name: str | None = None) -> tuple[str, str, Any]:
    """Run a cell that shows a chat; return (conversation name, widget comm id, the cell's result)."""
    name = name or f"c{next(_names)}"
    res = k.run(
        code or f"from ds_magic import Chat\nchat_{name} = Chat(chat={name!r})\nchat_{name}", timeout=20
    )
    res.raise_for_error()
    wid = k.wait_for_widget(
        lambda s: s.get("title") == name and "entries" in s, model_name="AnyModel", timeout=10
    )
    return name, wid, res


def send(k: KernelSession, wid: str, text: str) -> str:
    return k.comm_msg(wid, {"method": "custom", "content": {"event": "send", "text": text}})


def event(k: KernelSession, wid: str, name: str) -> str:
    return k.comm_msg(wid, {"method": "custom", "content": {"event": name}})


def state(k: KernelSession, wid: str) -> dict[str, Any]:
    return k.widget_state(wid)


def wait_state(k: KernelSession, wid: str, pred, timeout: float = 20.0) -> dict[str, Any]:
    return k.wait_for(lambda: (lambda s: s if pred(s) else None)(state(k, wid)), timeout)


def roles(st: dict[str, Any]) -> list[str]:
    return [e["role"] for e in st["entries"]]


def widget_updates(k: KernelSession, wid: str, since: int) -> list[dict[str, Any]]:
    return [
        m["content"]["data"]["state"]
        for m in k.all_iopub[since:]
        if m["msg_type"] == "comm_msg"
        and m["content"]["comm_id"] == wid
        and m["content"]["data"].get("method") == "update"
    ]


def test_type_send_stream_and_share_history_with_cells(srv, k):
    srv.enqueue(
        Script(
            text="Hello **there**\n\n```python\nprint('hi')\n```\n\n" + "more words " * 60,
            reasoning="thinking it over",
            tokens_per_second=80,
        )
    )
    name, wid, res = open_chat(k)  # background mode: the cell returns (open_chat's timeout is the guard)
    display = res.displays()[0]["content"]
    assert set(display["data"]) >= {WIDGET_MIME, "text/html", "text/plain"}
    assert display["transient"]["display_id"].startswith("ds-chat-")

    # "type": the front end reports the text in the input as the draft trait.
    k.wait_idle(k.set_widget_state(wid, {"draft": "What is 2+2?"}), 10)
    assert k.run(f"print(chat_{name}.draft)", timeout=10).stdout.strip() == "What is 2+2?"

    mark = k.mark()
    send(k, wid, "What is 2+2?")
    wait_state(k, wid, lambda s: s["busy"] and s["live"].get("id"))
    wait_state(k, wid, lambda s: not s["busy"])
    st = state(k, wid)
    assert roles(st) == ["user", "assistant"]
    answer = st["entries"][1]
    assert "<strong>there</strong>" in answer["html"] and "language-python" in answer["html"]
    assert "thinking it over" in answer["reasoning"]  # the collapsible thinking
    assert "first token" in answer["footer"] and "tok/s" in answer["footer"] and "$" in answer["footer"]

    # It streamed: several partial answers were published, throttled (not one per token).
    partial = [u["live_html"] for u in widget_updates(k, wid, mark) if u.get("live_html")]
    assert len(partial) >= 3
    assert len(partial) < 60  # ~130 tokens; per-token updates would be ~130
    assert any("Hello" in p and "more words" not in p for p in partial)

    # Shared with the magic: the history shows the chat's turns, a -c cell continues the thread.
    hist = k.run(f"%deepseek history {name}", timeout=10).stdout
    assert "[1] user: What is 2+2?" in hist and "Hello **there**" in hist
    srv.enqueue(Script(text="cell answer", reasoning=""))
    assert k.run(f"%%deepseek -c {name}\nand now from a cell?", timeout=30).status == "ok"
    contents = [m["content"] for m in srv.requests[-1].body["messages"]]
    assert contents[0] == "What is 2+2?" and contents[1].startswith("Hello **there**")
    assert contents[-1] == "and now from a cell?"

    # The next chat message sees the cell's turn too, and the chat shows it.
    srv.enqueue(Script(text="third", reasoning=""))
    send(k, wid, "and again from the chat")
    st = wait_state(k, wid, lambda s: len(s["entries"]) == 6 and not s["busy"])
    contents = [m["content"] for m in srv.requests[-1].body["messages"]]
    assert contents[-3:] == ["and now from a cell?", "cell answer", "and again from the chat"]

    # The output shown when the chat opened is never re-rendered: an update_display would rebuild
    # the live widget (the input would lose its focus). Its model id is in its state, which is how
    # the front end keeps a read-only copy in a saved notebook (tested in the browser suite).
    display_id = display["transient"]["display_id"]
    assert not [
        m
        for m in k.all_iopub
        if m["msg_type"] == "update_display_data" and m["content"]["transient"]["display_id"] == display_id
    ]
    assert display["data"][WIDGET_MIME]["model_id"] == wid == st["_ds_chat_id"]
    assert "DeepSeek chat" in display["data"]["text/html"] and name in display["data"]["text/plain"]


def test_history_shown_on_open_and_line_magic(srv, k):
    name = f"c{next(_names)}"
    srv.enqueue(Script(text="earlier *answer*", reasoning=""))
    assert k.run(f"%%deepseek -c {name}\nearlier question", timeout=30).status == "ok"
    res = k.run(f"%deepseek chat {name}", timeout=20)
    assert res.status == "ok"
    wid = k.wait_for_widget(lambda s: s.get("title") == name, model_name="AnyModel")
    st = state(k, wid)
    assert roles(st) == ["user", "assistant"]
    assert "<em>answer</em>" in st["entries"][1]["html"]
    data = res.displays()[0]["content"]["data"]
    assert "earlier question" in data["text/plain"] and "<em>answer</em>" in data["text/html"]
    assert k.run("print(type(_).__name__)", timeout=10).stdout.strip() == "Chat"
    bad = k.run("%deepseek chat two words", timeout=10)
    assert bad.status == "error" and "Usage: %deepseek chat" in bad.error.evalue


def test_cancel_click_stops_the_stream_and_keeps_the_partial_answer(srv, k):
    srv.enqueue(Script(text="word " * 800, reasoning="", tokens_per_second=50))
    name, wid, _ = open_chat(k)
    send(k, wid, "long answer please")
    wait_state(k, wid, lambda s: "word word" in s["live_html"])  # the partial answer is on screen
    k.wait_for(lambda: srv.active == 1, 10)
    event(k, wid, "cancel")
    d = srv.wait_for_disconnect(5)
    # The HTTP stream is closed while most of the 801 words were still to come, so billing stops
    # (how fast: benchmarks/cancel_latency.py).
    assert d is not None and d.chunks_sent < 400 and d.request_index not in srv.completed, d
    st = wait_state(k, wid, lambda s: not s["busy"] and len(s["entries"]) == 2)
    answer = st["entries"][1]
    assert answer["status"] == "cancelled" and "word word" in answer["html"]
    assert "cancelled" in answer["footer"]
    assert "assistant (cancelled): word word" in k.run(f"%deepseek history {name}", timeout=10).stdout
    # The chat goes on after a cancel.
    srv.enqueue(Script(text="after cancel", reasoning=""))
    send(k, wid, "again")
    st = wait_state(k, wid, lambda s: len(s["entries"]) == 4 and not s["busy"])
    assert "after cancel" in st["entries"][3]["html"]


def test_second_message_is_queued_not_interleaved(srv, k):
    srv.enqueue(
        Script(text="first answer " * 40, reasoning="", tokens_per_second=80),
        Script(text="second answer", reasoning=""),
    )
    name, wid, _ = open_chat(k)
    send(k, wid, "first?")
    wait_state(k, wid, lambda s: "first answer" in s["live_html"])
    send(k, wid, "second?")
    st = wait_state(k, wid, lambda s: s["queue"] == ["second?"])
    assert st["busy"] and "1 queued" in st["status"]
    assert len(srv.requests) == 1  # the second waits in the chat, it is not sent yet
    st = wait_state(k, wid, lambda s: len(s["entries"]) == 4 and not s["busy"], timeout=30)
    assert st["queue"] == []
    assert srv.max_active == 1
    texts = [e["html"] for e in st["entries"]]
    assert "first?" in texts[0] and "first answer" in texts[1]
    assert "second?" in texts[2] and "second answer" in texts[3]
    msgs = [m["content"] for m in srv.requests[-1].body["messages"]]
    assert msgs[0] == "first?" and msgs[1].startswith("first answer") and msgs[2] == "second?"


@pytest.mark.parametrize(
    ("scripts", "needle"),
    [
        ([Script(status=401)], "DEEPSEEK_API_KEY"),
        ([Script(status=402)], "top up"),
        ([Script(status=429)] * 3, "too many concurrent requests"),
    ],
    ids=["401", "402", "429-after-retries"],
)
def test_errors_inline_and_the_prompt_goes_back_to_the_input(srv, k, scripts, needle):
    srv.enqueue(*scripts)
    name, wid, _ = open_chat(k)
    mark = k.mark()
    send(k, wid, "my unsent question")
    st = wait_state(k, wid, lambda s: not s["busy"] and any(e["role"] == "error" for e in s["entries"]), 30)
    err = [e for e in st["entries"] if e["role"] == "error"][0]
    assert needle in err["html"]
    assert err["restore"] == "my unsent question"  # the front end puts it back into the input
    assert roles(st) == ["user", "error"]  # the question stays visible above the error
    assert len(srv.requests) == len(scripts)  # 429: two retries, then the error
    if len(scripts) == 3:
        infos = [u.get("live_info", "") for u in widget_updates(k, wid, mark)]
        assert any("429" in i or "retry" in i.lower() for i in infos)  # retries were shown while waiting
    assert KEY not in json.dumps([m["content"] for m in k.all_iopub[mark:]])
    # Nothing half-done is stored: the history stays clean, and the chat still works.
    assert "is empty" in k.run(f"%deepseek history {name}", timeout=10).stdout
    srv.enqueue(Script(text="works now", reasoning=""))
    send(k, wid, "my unsent question")
    st = wait_state(k, wid, lambda s: not s["busy"] and "works now" in s["entries"][-1]["html"])


def test_timeout_shows_inline_and_keeps_the_partial_answer(srv, k):
    # The server sends a few words, then goes silent: the idle deadline ends the request.
    srv.enqueue(Script(text="half an answer " * 20, reasoning="", fault="stall", fault_after=6))
    k.run("%config DeepSeekMagics.timeout = 0.8", timeout=10).raise_for_error()
    try:
        name, wid, _ = open_chat(k)
        send(k, wid, "a slow question")
        st = wait_state(k, wid, lambda s: not s["busy"] and len(s["entries"]) >= 2, 30)
    finally:
        k.run("%config DeepSeekMagics.timeout = None", timeout=10).raise_for_error()
    assert srv.wait_for_disconnect(5) is not None  # the silent request was closed, not left open
    answer = next(e for e in st["entries"] if e["role"] == "assistant")
    answer, error = st["entries"][1], st["entries"][2]
    assert answer["role"] == "assistant" and answer["status"] == "interrupted"
    assert "half an answer" in answer["html"] and "interrupted" in answer["footer"]  # the partial is kept
    assert error["role"] == "error" and "Timed out" in error["html"] and "0.8 s" in error["html"]
    assert "DeepSeekMagics.timeout" in error["html"]  # says what to do
    assert error["restore"] == "a slow question"  # and the question goes back into the input
    assert "assistant (interrupted): half an answer" in k.run(f"%deepseek history {name}", timeout=10).stdout


def test_error_returns_queued_messages_to_the_input(srv, k):
    srv.enqueue(Script(status=402, delay_headers=0.8))
    name, wid, _ = open_chat(k)
    send(k, wid, "one")
    wait_state(k, wid, lambda s: s["busy"])
    send(k, wid, "two")
    wait_state(k, wid, lambda s: s["queue"] == ["two"])
    st = wait_state(k, wid, lambda s: not s["busy"] and any(e["role"] == "error" for e in s["entries"]))
    err = [e for e in st["entries"] if e["role"] == "error"][0]
    assert err["restore"] == "one\n\ntwo"
    assert st["queue"] == [] and len(srv.requests) == 1


def test_new_chat_keeps_the_old_thread_and_model_selector(srv, k):
    srv.enqueue(Script(text="old answer", reasoning=""), Script(text="new answer", reasoning=""))
    name, wid, _ = open_chat(k)
    send(k, wid, "old question")
    wait_state(k, wid, lambda s: len(s["entries"]) == 2 and not s["busy"])
    event(k, wid, "new_chat")
    st = wait_state(k, wid, lambda s: roles(s) == ["note"])
    assert f"{name}-1" in st["entries"][0]["html"]
    assert "old question" in k.run(f"%deepseek history {name}-1", timeout=10).stdout
    # The model selector: the next message uses the model the front end picked.
    k.wait_idle(k.set_widget_state(wid, {"model": "deepseek-v4-pro"}), 10)
    send(k, wid, "new question")
    st = wait_state(k, wid, lambda s: len(s["entries"]) == 3 and not s["busy"])
    assert srv.requests[-1].body["model"] == "deepseek-v4-pro"
    assert [m["content"] for m in srv.requests[-1].body["messages"]] == ["new question"]
    assert st["entries"][2]["model"] == "deepseek-v4-pro"


HOSTILE = "<img src=x onerror=alert(1)>\n\n<script>alert(1)</script>\n\n[click](javascript:alert(1))"


def test_hostile_answer_never_reaches_the_page_as_markup(srv, k):
    srv.enqueue(Script(text=HOSTILE, reasoning="<svg onload=alert(2)>", tokens_per_second=200))
    name, wid, _ = open_chat(k)
    mark = k.mark()
    send(k, wid, "x")
    wait_state(k, wid, lambda s: len(s["entries"]) == 2 and not s["busy"])
    published = []
    for m in k.all_iopub[mark:]:
        c = m["content"]
        if m["msg_type"] in ("display_data", "update_display_data"):
            published.append(c["data"].get("text/html", ""))
        elif m["msg_type"] in ("comm_open", "comm_msg"):
            published.append(json.dumps(c.get("data", {})))
    text = "\n".join(published)
    for bad in ("<img", "<script", "<svg", 'href="javascript:'):
        assert bad not in text
    assert "&lt;script&gt;" in text


def test_close_leaves_a_static_transcript_and_closes_the_comm(srv, k):
    srv.enqueue(Script(text="kept answer", reasoning=""))
    name, wid, res = open_chat(k)
    send(k, wid, "question")
    wait_state(k, wid, lambda s: len(s["entries"]) == 2 and not s["busy"])
    k.run(f"chat_{name}.close()", timeout=20).raise_for_error()
    display_id = res.displays()[0]["content"]["transient"]["display_id"]
    last = [
        m["content"]["data"]
        for m in k.all_iopub
        if m["msg_type"] == "update_display_data" and m["content"]["transient"]["display_id"] == display_id
    ][-1]
    assert WIDGET_MIME not in last  # no "Error displaying widget" once the kernel is gone
    assert "kept answer" in last["text/html"] and "question" in last["text/plain"]
    assert wid in k.closed_comm_ids()


def test_chat_from_code_and_wait(srv, k):
    srv.enqueue(Script(text="from code", reasoning=""))
    name = f"c{next(_names)}"
    out = k.run(
        f"from ds_magic import Chat\nc = Chat(chat={name!r})\nc.send('hello')\nprint(c.wait(20), c.busy)\n"
        f"print(c.conversation.last_answer)",
        timeout=30,
    )
    assert out.stdout.split("\n")[:2] == ["True False", "from code"]
