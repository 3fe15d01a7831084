"""Reading the live view off iopub as a frontend would (tests/test_live_*.py and benchmarks/iopub.py).

The live view (ds_magic/jupyter/stream_view.py) is one anywidget model whose updates are custom comm
messages; :func:`replay` applies them exactly as ``stream_widget.js`` does, so a test can compare
what the page showed with the static output that replaced it.
"""

from __future__ import annotations

import json
from typing import Any

from kernel_harness import KernelSession

#: What a cell sends that a frontend receives (not the kernel's busy/idle or the input echo).
OUTPUT_TYPES = {"display_data", "update_display_data", "execute_result", "stream", "error"}
COMM_TYPES = {"comm_open", "comm_msg", "comm_close"}
#: The goals' allowance of framing per update message (issue 13).
FRAMING = 150


def size(msg: dict[str, Any]) -> int:
    """Bytes of the JSON ``content``, as KernelSession.iopub_bytes counts them."""
    return len(json.dumps(msg["content"], ensure_ascii=False, default=str).encode("utf-8", "surrogateescape"))


def cell_traffic(k: KernelSession, mark: int) -> dict[str, Any]:
    """Live and total bytes, update messages and comm opens of the cell run after ``mark``.

    Live: everything before the final ``update_display_data`` (the static output); total: all of it.
    """
    msgs = [m for m in k.all_iopub[mark:] if m["msg_type"] in OUTPUT_TYPES | COMM_TYPES]
    finals = [i for i, m in enumerate(msgs) if m["msg_type"] == "update_display_data"]
    cut = finals[-1] if finals else len(msgs)
    return {
        "live": sum(size(m) for m in msgs[:cut]),
        "total": sum(size(m) for m in msgs),
        "updates": sum(1 for m in msgs[:cut] if m["msg_type"] in ("comm_msg", "update_display_data")),
        "opens": sum(1 for m in msgs if m["msg_type"] == "comm_open"),
        "closes": sum(1 for m in msgs if m["msg_type"] == "comm_close"),
        "final": msgs[cut]["content"]["data"] if finals else None,
        "first_display": next((m["content"]["data"] for m in msgs if m["msg_type"] == "display_data"), None),
    }


def stream_widget_ids(k: KernelSession, mark: int = 0) -> list[str]:
    """Comm ids of the live views opened after ``mark``."""
    return [
        m["content"]["comm_id"]
        for m in k.all_iopub[mark:]
        if m["msg_type"] == "comm_open"
        and str(m["content"]["data"]["state"].get("_anywidget_id", "")).endswith("StreamWidget")
    ]


def custom_messages(k: KernelSession, mark: int = 0, comm_id: str | None = None) -> list[dict[str, Any]]:
    """The live view's update messages (their ``content``) after ``mark``."""
    out = []
    for m in k.all_iopub[mark:]:
        c = m["content"]
        if m["msg_type"] == "comm_msg" and c.get("data", {}).get("method") == "custom":
            if comm_id is None or c.get("comm_id") == comm_id:
                out.append(c["data"]["content"])
    return out


def replay(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The page's state after these messages, as stream_widget.js ``apply`` builds it."""
    st: dict[str, Any] = {
        "n": 0,
        "blocks": [],
        "tail": "",
        "reasoning": "",
        "text": "",
        "status": "",
        "notes": [],
    }
    for msg in messages:
        if msg.get("full"):
            st = {"n": 0, "blocks": [], "tail": "", "reasoning": "", "text": "", "status": "", "notes": []}
        elif msg["n"] != st["n"] + 1:
            raise AssertionError(f"message {msg['n']} after {st['n']}: the page would ask to sync")
        st["n"] = msg["n"]
        if "b" in msg:  # the tail became complete blocks, sent as a diff against it
            st["blocks"].append(st["tail"][: msg.get("p", 0)] + msg["b"])
            st["tail"] = ""
        if "t" in msg:
            st["tail"] = st["tail"][: msg.get("k", 0)] + msg["t"]
        st["reasoning"] += msg.get("r", "")
        st["text"] += msg.get("x", "")
        if "s" in msg:
            st["status"] = msg["s"]
        st["notes"] += msg.get("o", [])
    return st


def open_live_views(k: KernelSession) -> list[str]:
    """Comm ids of the live views still open (a finished cell leaves none)."""
    closed = k.closed_comm_ids()
    return [cid for cid in stream_widget_ids(k) if cid not in closed]


def cancel(k: KernelSession, comm_id: str) -> str:
    """Click ■ Cancel: the custom message stream_widget.js sends."""
    return k.comm_msg(comm_id, {"method": "custom", "content": {"event": "cancel"}})


def shown(k: KernelSession, text: str) -> bool:
    """Is ``text`` in an open live view (what the page shows now)?"""
    for cid in open_live_views(k):
        page = replay(custom_messages(k, 0, cid))
        if text in "".join(page["blocks"]) + page["tail"] + page["text"]:
            return True
    return False
