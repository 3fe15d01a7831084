"""The tool view's widget model: synced traits and the front end (``tool_widget.js``), no logic.

One widget per step of a tool loop (tool_view.py writes it). Why anywidget, like the chat
(chat_widget.py): the Run / Deny / Always buttons, the collapsible results and the live call line
are a few lines of browser code, and anywidget ships them inside the widget state, so no JupyterLab
extension is needed.

Who writes what (kernel-and-widgets.md §5): the listener thread writes ``live`` (the call that is
streaming now); the kernel's main thread writes everything else. The front end writes nothing; a
button click arrives as a custom message ``{"event": "decide", "id": CALL_ID, "decision":
"run" | "deny" | "always"}``, or ``{"event": "stop"}`` (stop the loop), handled while the cell awaits
(ipykernel ≥ 7.4, §2.4).

Untrusted text (tool names, arguments, results, prints) reaches the front end only as plain strings,
put into ``textContent``; the ``python`` tool's code comes as ``[css class, text]`` tokens (pygments'
lexer, run kernel-side), each token a ``<span>`` with ``textContent``. Nothing is ever markup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

__all__ = ["ToolWidget"]

_HERE = Path(__file__).parent


class ToolWidget(anywidget.AnyWidget):
    _esm = (_HERE / "tool_widget.js").read_text(encoding="utf-8")
    _css = (_HERE / "tool_widget.css").read_text(encoding="utf-8")

    #: One entry per complete call: {"id", "name", "args" (text), "code" ([[cls, text], ...] or []),
    #: "status" (pending|asking|running|ok|error|denied|cancelled|skipped), "note", "output",
    #: "result", "error", "duration"}.
    calls = t.List(t.Dict()).tag(sync=True)
    #: The call streaming now, e.g. 'calling get_weather(city="Pa…' ('' when none).
    live = t.Unicode("").tag(sync=True)
    #: The id of the call waiting for a decision ('' when none): its buttons are shown.
    asking = t.Unicode("").tag(sync=True)
    status = t.Unicode("").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
