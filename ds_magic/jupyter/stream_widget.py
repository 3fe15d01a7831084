"""The live view's one widget model: an anywidget whose front end (``stream_widget.js``) draws what
the kernel sends, plus the HTML frame that the live view and the static output share.

Why one anywidget instead of a tree of ipywidgets (issue 13): each ipywidget is a comm and its state
is resent whole on every change; here a cell opens two comms (this model and the ``Layout`` every
DOM widget has), and each update is one small custom message that only appends (``stream_view.py``
says what is in it). The chat's widget works the same way (chat_widget.py).

The code: each model's ``_esm`` is a small loader (``stream_loader.js``); the view's code goes once
per page, to the first view that asks for it, instead of in every cell's ``comm_open``.

The frame: the live view and the static output that replaces it are the same elements with the same
inline styles (``STYLES``, put into the ES module below), so nothing moves when the output turns
static. Inline styles rather than a stylesheet: JupyterLab keeps ``style`` attributes when it
sanitizes an untrusted notebook's HTML, and an anywidget ``_css`` is one stylesheet per widget class,
so shrinking one cell's state would restyle every other cell. Colours are JupyterLab's theme
variables (with light fallbacks elsewhere), so the light and dark themes both meet WCAG AA
(tests/browser/test_live_theme.py measures it).
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import uuid
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t
from ipywidgets import Layout, widget_serialization

__all__ = ["StreamWidget", "STYLES", "frame_html", "pre_html", "EMPTY_ESM", "VIEW_CODE", "LOADER"]

_HERE = Path(__file__).parent

# Secondary text and rules: JupyterLab's second content colour (72% of the first), which keeps AA
# contrast on its own layout colours in the light and the dark theme.
_MUTED = "var(--jp-content-font-color2,#4a4a4a)"
_RULE = "var(--jp-border-color2,#e0e0e0)"

#: The inline style of the parts of the frame that have one, by class name (the rest inherit).
STYLES: dict[str, str] = {
    # The type of JupyterLab's rendered Markdown on the whole frame: the static output inherits it
    # from its HTML container, the widget would not, and the Thinking line would differ in height.
    "ds-live": "font-size:var(--jp-content-font-size1,14px);line-height:var(--jp-content-line-height,1.6)",
    "ds-think": "margin:0 0 .4em",
    "ds-think-summary": f"cursor:pointer;color:{_MUTED}",
    "ds-reasoning": f"white-space:pre-wrap;padding-left:.6em;border-left:2px solid {_RULE};color:{_MUTED}",
    "ds-pre": "white-space:pre-wrap;margin:0",
    "ds-note": f"white-space:pre-wrap;color:{_MUTED}",
    "ds-bar": (
        "display:flex;align-items:center;gap:.6em;flex-wrap:wrap;margin-top:.3em;min-height:1.6em;"
        f"font-size:var(--jp-ui-font-size1,13px);color:{_MUTED}"
    ),
    "ds-cancel": (
        "cursor:pointer;font:inherit;padding:1px 10px;border-radius:2px;"
        "color:var(--jp-ui-font-color1,#1f1f1f);background:var(--jp-layout-color2,#eee);"
        "border:1px solid var(--jp-border-color1,#bdbdbd)"
    ),
    "ds-error": "color:var(--jp-error-color1,#c62828)",
    "ds-hint": "font-style:italic",
}

#: What the model's ``_esm`` becomes before it is closed: the saved notebook keeps no code.
EMPTY_ESM = "export default {};"


_TRAILING_COMMENT = re.compile(r"\s// [^\"'`]*$")


def _minified(name: str) -> str:
    """A JS file without its comments and indentation (it travels over iopub)."""
    source = (_HERE / name).read_text(encoding="utf-8")
    lines = (_TRAILING_COMMENT.sub("", line).strip() for line in source.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("//"))


#: The view's code, sent once per page when its loader asks (stream_loader.js).
VIEW_CODE = _minified("stream_widget.js").replace("__DS_STYLES__", json.dumps(STYLES, separators=(",", ":")))
#: What each model carries: the loader, keyed by this version of the code.
LOADER = _minified("stream_loader.js").replace(
    "__DS_KEY__", "ds-stream-view-" + hashlib.sha256(VIEW_CODE.encode()).hexdigest()[:12]
)


def _el(cls: str, tag: str = "div", inner: str = "", extra: str = "") -> str:
    style = STYLES.get(cls)
    attr = f' style="{style}"' if style else ""
    return f'<{tag} class="{cls}{extra}"{attr}>{inner}</{tag}>'


def frame_html(
    *,
    body: str,
    reasoning: str = "",
    notes: tuple[str, ...] = (),
    status: str = "",
    status_is_error: bool = False,
    footer: str = "",
) -> str:
    """The static output, built as ``stream_widget.js`` builds the live view (same classes, styles).

    ``body`` is safe HTML (rendered blocks, or ``<pre>`` text); everything else is plain text.
    """
    # ds-magic-answer: only on the static output (the live view is "ds-live" alone).
    parts = [f'<div class="ds-live ds-magic-answer" style="{STYLES["ds-live"]}">']
    if reasoning:
        summary = _el("ds-think-summary", "summary", "Thinking")
        parts.append(_el("ds-think", "details", summary + _el("ds-reasoning", inner=html.escape(reasoning))))
    parts.append(_el("ds-md", inner=body))
    parts.append(_el("ds-notes", inner="".join(_el("ds-note", inner=html.escape(n)) for n in notes)))
    bar = ""
    if status:
        bar += _el("ds-error" if status_is_error else "ds-status", "span", html.escape(status))
    if footer:
        bar += _el("ds-status", "span", html.escape(footer))
    parts.append(_el("ds-bar", inner=bar))
    parts.append("</div>")
    return "".join(parts)


def pre_html(text: str) -> str:
    """Plain (non-Markdown) answer text as the live view shows it."""
    return _el("ds-pre", "pre", html.escape(text))


class StreamWidget(anywidget.AnyWidget):
    """The model of one live answer. Its traits are set once; the content arrives as custom messages."""

    _esm = LOADER
    # No Layout model: every DOM widget gets one (a second comm, ~1 KB of nulls in each comm_open and
    # in a saved notebook) and this view never uses it; ipywidgets' view skips a null layout.
    layout = t.Instance(Layout, allow_none=True, default_value=None).tag(sync=True, **widget_serialization)

    #: "markdown" (rendered blocks) or "text" (escaped, pre-wrapped).
    fmt = t.Unicode("markdown").tag(sync=True)
    #: A line shown next to Cancel (block mode: "press ■ (interrupt) to stop").
    hint = t.Unicode("").tag(sync=True)
    #: The model's id: the page keeps one state per model under it (stream_widget.js).
    _ds_id = t.Unicode("").tag(sync=True)

    def __init__(self, *, plain: str = "", **kwargs: Any) -> None:
        super().__init__(_ds_id=uuid.uuid4().hex, **kwargs)
        self._plain = plain

    def send_code(self) -> None:
        """Answer the loader's ``{event: "code"}`` (once per page, from the first view drawn)."""
        self.send({"code": VIEW_CODE})

    def set_plain(self, text: str) -> None:
        """The ``text/plain`` of the output from now on (frontends that draw no widgets show it)."""
        self._plain = text

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, meta = bundle
        return {**data, "text/plain": self._plain}, meta

    def view_bundle(self) -> dict[str, Any]:
        """The display's data as shown now: the same widget view (this model's id), the current
        ``text/plain`` (fallback.py re-sends it as the fallback grows)."""
        bundle = self._repr_mimebundle_()
        return bundle[0] if bundle is not None else {"text/plain": self._plain}

    def shrink(self) -> None:
        """Empty the state a saved notebook would keep (nbclient keeps closed widgets' state too)."""
        with self.hold_sync():  # one message
            self.hint = ""
            self._esm = EMPTY_ESM  # a synced trait (anywidget adds it at __init__)
