"""The chat's widget model: synced traits and the front end (``chat_widget.js``), no logic.

Why anywidget: Enter-sends / Shift+Enter-newline, copying to the clipboard and inserting a cell all
need a few lines of browser code, and anywidget ships such code as an ES module inside the widget
state, so the same widget works in JupyterLab, Notebook 7 and VS Code without a JupyterLab extension
(kernel-and-widgets.md §9.5 lists it as the second transport).

Who writes what (kernel-and-widgets.md §5, "exactly one thread writes to a given widget"): the kernel
writes ``title``, ``models``, ``entries``, ``live*``, ``queue``, ``busy`` and ``status``, always from
the engine thread (chat.py); the front end writes ``model`` (the selector) and ``draft`` (the text
in the input). Clicks and Enter arrive as custom messages: ``{"event": "send", "text": ...}``,
``{"event": "cancel"}``, ``{"event": "new_chat"}``, ``{"event": "decide", "id", "decision"}`` (a tool call).

Saved notebooks: ``_ds_chat_id`` (the model's own id, set when the widget is made) lets the front end
find its model, tell a live chat from a saved one, and keep a read-only copy of the chat in the
notebook's widget-state metadata when JupyterLab or Notebook 7 saves it (see ``chat_widget.js``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

__all__ = ["ChatWidget"]

_HERE = Path(__file__).parent


class ChatWidget(anywidget.AnyWidget):
    _esm = (_HERE / "chat_widget.js").read_text(encoding="utf-8")
    _css = (_HERE / "chat_widget.css").read_text(encoding="utf-8")

    title = t.Unicode("").tag(sync=True)
    model = t.Unicode("").tag(sync=True)
    models = t.List(t.Unicode()).tag(sync=True)
    #: Finished messages: {"id", "role": user|assistant|error, "html", "reasoning", "footer", "status",
    #: "model", "note", "restore"}. ``html`` and ``reasoning`` are safe HTML rendered kernel-side.
    entries = t.List(t.Dict()).tag(sync=True)
    #: The answer that is streaming now ({} when none): {"id", "model"}; its parts are separate traits
    #: so that an update sends only what changed (the thinking is not resent with every answer token).
    live = t.Dict().tag(sync=True)
    live_html = t.Unicode("").tag(sync=True)
    live_reasoning = t.Unicode("").tag(sync=True)
    live_info = t.Unicode("").tag(sync=True)
    #: Messages typed while an answer streams, sent one after another.
    queue = t.List(t.Unicode()).tag(sync=True)
    busy = t.Bool(False).tag(sync=True)
    status = t.Unicode("").tag(sync=True)
    draft = t.Unicode("").tag(sync=True)
    #: Chat(tools=...): the calls of the answer in progress, {"id", "name", "args", "status", "note",
    #: "result"} as plain strings (chat_tools.py), and the one whose Run / Deny / Always buttons show.
    tool_calls = t.List(t.Dict()).tag(sync=True)
    tool_asking = t.Unicode("").tag(sync=True)
    #: This model's id; marks the chat's state among other widgets' in the notebook metadata.
    _ds_chat_id = t.Unicode("").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ds_chat_id = self.model_id
