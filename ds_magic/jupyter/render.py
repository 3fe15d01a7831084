"""Safe HTML from untrusted model text, the streaming throttle, and the footer line.

Model output is untrusted: ipywidgets' ``HTML`` sets ``innerHTML`` unsanitized, and JupyterLab
trusts the outputs of cells run in the session (kernel-and-widgets.md §8). So:

* while streaming, show ``escape_pre(text)``;
* at the end, show ``markdown_to_safe_html(text)``: CommonMark with raw HTML off, links limited to
  http(s)/mailto, and no images (they would load remote content the moment they render).

Nothing here imports IPython or ipywidgets.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

__all__ = [
    "markdown_to_safe_html",
    "is_safe_href",
    "escape_pre",
    "Throttle",
    "STATE_BYTES_PER_SECOND",
    "format_footer",
    "answer_html",
    "block_html",
    "compact_html",
]

# After markdown-it's normalizeLink the href is percent-encoded, so anything outside printable ASCII
# (spaces, tabs, controls) is already gone; requiring it here keeps that true whatever the input.
_SAFE_HREF = re.compile(r"(?:https?://|mailto:)[!-~]*\Z", re.IGNORECASE)
_LINK_ATTRS = {"rel": "noopener noreferrer nofollow", "target": "_blank"}


def is_safe_href(href: str) -> bool:
    """True for an ``http://``, ``https://`` or ``mailto:`` URL with no whitespace or controls."""
    return _SAFE_HREF.match(href) is not None


def _alt_text(image: Token) -> str:
    parts: list[str] = []
    for child in image.children or ():
        if child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        else:
            parts.append(child.content)
    return "".join(parts).strip() or str(image.attrs.get("alt", ""))


def _text(content: str) -> Token:
    return Token("text", "", 0, content=content)


def _image_as_link(image: Token, inside_link: bool) -> list[Token]:
    """``![alt](url)`` → a link labelled "[image: alt]" (or just that text), never an ``<img>``."""
    alt = _alt_text(image)
    label = _text(f"[image: {alt}]" if alt else "[image]")
    src = str(image.attrs.get("src", ""))
    if inside_link or not is_safe_href(src):
        return [label]
    return [
        Token("link_open", "a", 1, attrs={"href": src, **_LINK_ATTRS}),
        label,
        Token("link_close", "a", -1),
    ]


def _sanitize_inline(children: Sequence[Token]) -> list[Token]:
    out: list[Token] = []
    open_links: list[Token] = []  # link_open tokens, kept (tag "a") or demoted (tag "span")
    for tok in children:
        if tok.type == "link_open":
            href = str(tok.attrs.get("href", ""))
            title = tok.attrs.get("title")
            if is_safe_href(href) and not any(t.tag == "a" for t in open_links):
                tok.attrs = {"href": href, **_LINK_ATTRS}
                if title is not None:
                    tok.attrs["title"] = title
            else:
                # Keep the label as plain text: javascript:, data:, relative and odd URLs lose the href.
                tok.tag, tok.attrs = "span", {}
            open_links.append(tok)
        elif tok.type == "link_close":
            tok.tag = open_links.pop().tag if open_links else "span"
        elif tok.type == "image":
            out.extend(_image_as_link(tok, inside_link=any(t.tag == "a" for t in open_links)))
            continue
        out.append(tok)
    return out


def _sanitize_links(state: StateCore) -> None:
    """Core rule, after inline parsing: allowlist hrefs, add rel/target, turn images into links."""
    for block in state.tokens:
        if block.type == "inline" and block.children:
            block.children = _sanitize_inline(block.children)


def _render_as_text(self: Any, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    # Raw HTML is disabled, so these should never be produced; if they are, print them as text.
    return html.escape(tokens[idx].content)


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    # markdown-it's own validateLink only blocks javascript:/vbscript:/file:/non-image data:, and
    # lets "java%09script:" through (tests/test_render.py); our allowlist runs after it.
    md.core.ruler.push("ds_magic_safe_links", _sanitize_links)
    for name in ("html_block", "html_inline", "image"):
        md.add_render_rule(name, _render_as_text)
    return md


def markdown_to_safe_html(text: str) -> str:
    """Render untrusted Markdown to HTML that is safe to put into ``innerHTML``.

    Raw HTML comes out escaped, code is escaped inside ``<pre><code class="language-x">``, only
    http(s)/mailto links survive (with ``rel="noopener noreferrer nofollow" target="_blank"``), and
    images become links. ``$...$`` is left as text.
    """
    rendered: str = _markdown().render(text)  # typed Any upstream; the HTML renderer returns str
    return rendered


# Newlines markdown-it writes after block tags (outside <pre>, where they would be content): the
# browser ignores them between block elements, and in a live view they cost two JSON bytes each.
_BLOCK_NEWLINE = re.compile(
    r"(</?(?:p|h[1-6]|ul|ol|li|blockquote|table|thead|tbody|tr|th|td|hr ?/?)(?: [^>]*)?>|</pre>)\n"
)
_TAG = re.compile(r"(<[^>]*>)")


def compact_html(rendered: str) -> str:
    """``markdown_to_safe_html`` output in fewer bytes, drawn the same: no newline after a block tag,
    and ``"`` unescaped in text (it is markup only inside a tag; attribute values keep ``&quot;``)."""
    parts = _TAG.split(_BLOCK_NEWLINE.sub(r"\1", rendered))
    for i in range(0, len(parts), 2):  # even parts are text between tags
        parts[i] = parts[i].replace("&quot;", '"')
    return "".join(parts)


def block_html(text: str) -> str:
    """One Markdown block as the live view sends it: safe HTML (markdown_to_safe_html), compacted."""
    return compact_html(markdown_to_safe_html(text))


def escape_pre(text: str) -> str:
    """Escaped text in a wrapping ``<pre>``, for the live view while tokens arrive."""
    return f'<pre style="white-space:pre-wrap;margin:0">{html.escape(text)}</pre>'


def answer_html(text: str, fmt: str) -> str:
    """An answer as the page gets it: safe Markdown for ``fmt == "markdown"``, else escaped text."""
    return markdown_to_safe_html(text) if fmt == "markdown" else escape_pre(text)


STATE_BYTES_PER_SECOND = 150_000
"""Budget for full-state updates (kernel-and-widgets.md §9.5): each update resends everything."""


class Throttle:
    """When should a streaming view push its next (full-state) update?

    ``ready()`` is True on the first call, so the first token shows at once; then only after
    ``max(interval, nbytes / 150_000)`` seconds since the last ``mark()``. The caller calls
    ``mark()`` after each update it sends, and always sends a final update itself::

        if throttle.ready(len(state)):
            view.value = state
            throttle.mark()
    """

    def __init__(self, interval: float = 0.1, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: float | None = None

    def ready(self, nbytes: int = 0) -> bool:
        if self._last is None:
            return True
        wait = max(self.interval, nbytes / STATE_BYTES_PER_SECOND)
        return self._clock() - self._last >= wait

    def mark(self) -> None:
        self._last = self._clock()

    def __repr__(self) -> str:
        return f"Throttle(interval={self.interval!r}, last={self._last!r})"


def _seconds(value: float, decimals: int) -> str:
    if value >= 60:
        minutes, secs = divmod(round(value), 60)
        return f"{minutes} min {secs} s"
    return f"{value:.{decimals}f} s"


def format_footer(
    *,
    ttft: float | None,
    tokens: int,
    tokens_per_second: float | None,
    elapsed: float | None,
    cache_hit_tokens: int = 0,
    cost: str | None = None,
    cached: bool = False,
    status: str = "ok",
    retries: int = 0,
    model: str | None = None,
    resumes: int = 0,
) -> str:
    """One line such as ``deepseek-flash · first token 0.31 s · 212 tokens · 48.2 tok/s · 4.7 s``.

    Parts that are None are left out. A cached answer ends in ``cached · $0`` instead of a cost;
    a status other than "ok" ("cancelled", "error", ...) is shown after the model.
    """
    parts: list[str] = []
    if model:
        parts.append(model)
    if status != "ok":
        parts.append(status)
    if ttft is not None:
        parts.append(f"first token {_seconds(ttft, 2)}")
    parts.append(f"{tokens:,} token{'' if tokens == 1 else 's'}")
    if tokens_per_second is not None:
        parts.append(f"{tokens_per_second:.1f} tok/s")
    if elapsed is not None:
        parts.append(_seconds(elapsed, 1))
    if cache_hit_tokens:
        parts.append(f"cache hit {cache_hit_tokens:,}")
    if retries:
        parts.append(f"{retries} retr{'y' if retries == 1 else 'ies'}")
    if resumes:
        parts.append(f"resumed ×{resumes}")
    if cached:
        parts += ["cached", "$0"]
    elif cost is not None:
        parts.append(cost)
    return " · ".join(parts)
