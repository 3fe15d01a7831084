from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

from ds_magic.jupyter.render import (
    Throttle,
    escape_pre,
    format_footer,
    is_safe_href,
    markdown_to_safe_html,
)

DISALLOWED_TAGS = {
    "script",
    "iframe",
    "svg",
    "style",
    "object",
    "embed",
    "img",
    "math",
    "form",
    "base",
    "link",
    "meta",
}
SAFE_HREF_PREFIXES = ("http://", "https://", "mailto:")


class Elements(HTMLParser):
    """Every start tag with its attributes, as a browser's tokenizer would see them."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def hrefs(self) -> list[str | None]:
        return [attrs["href"] for tag, attrs in self.elements if "href" in attrs]


def assert_safe(markup: str) -> Elements:
    parsed = Elements(markup)
    for tag, attrs in parsed.elements:
        assert tag not in DISALLOWED_TAGS, (tag, markup)
        assert "src" not in attrs, markup
        for name, value in attrs.items():
            assert not name.startswith("on"), (name, markup)
            if name == "href":
                assert value is not None and value.lower().startswith(SAFE_HREF_PREFIXES), markup
        if tag == "a" and "href" in attrs:
            assert attrs.get("rel") == "noopener noreferrer nofollow" and attrs.get("target") == "_blank"
    # Nothing tag-like survives unescaped, even where a lenient parser might see one.
    assert not re.search(r"<\s*/?\s*(script|img|svg|iframe|style|object|embed)\b", markup, re.I), markup
    return parsed


HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "<IMG SRC=\"jav&#x09;ascript:alert('XSS');\">",
    "<script>alert(1)</script>",
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<iframe src=https://evil.example>",
    "<style>body{display:none}</style>",
    "<object data=https://evil.example/x.swf></object>",
    "<embed src=https://evil.example/x.swf>",
    "<div onclick=alert(1)>hi</div>",
    '<a href="javascript:alert(1)">x</a>',
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](java&#x09;script:alert(1))",
    "[x](java\tscript:alert(1))",
    "[x]( javascript:alert(1))",
    "[x](<javascript:alert(1)>)",
    "[x](&#106;avascript:alert(1))",
    "[x](vbscript:msgbox(1))",
    "[x](file:///etc/passwd)",
    "[x](data:text/html;base64,PHNjcmlwdD4=)",
    "[x](//evil.example/path)",
    "[x](/relative) and [y](#anchor)",
    '[x](https://ok.example "a\\" onmouseover=\\"alert(1)")',
    "![i](https://evil.example/pixel.png)",
    "![i](data:image/png;base64,iVBORw0KGgo=)",
    "![i](javascript:alert(1))",
    '![i](https://evil.example/p.png "t")',
    "[![i](https://evil.example/p.png)](https://ok.example)",
    "[![i](https://evil.example/p.png)](javascript:alert(1))",
    "<https://evil.example>",
    "<javascript:alert(1)>",
    "<mailto:a@b.example>",
    "[x][r]\n\n[r]: javascript:alert(1)",
    "[x][r]\n\n[r]: data:text/html;base64,PHNjcmlwdD4=",
    "![i][p]\n\n[p]: https://evil.example/pixel.png",
    '[x][r]\n\n[r]: https://ok.example "title"',
    "```html\n<script>alert(1)</script>\n```",
    '```python" onmouseover="alert(1)\nx = 1\n```',
    "`<img src=x onerror=alert(1)>`",
    "    <script>indented code</script>",
    "| a | b |\n|---|---|\n| <img src=x onerror=alert(1)> | [x](javascript:alert(1)) |",
    "> <svg onload=alert(1)>\n\n- <iframe src=x>",
    "$<img src=x onerror=alert(1)>$",
    "\x00<script>alert(1)</script>",
]


@pytest.mark.parametrize("source", HOSTILE)
def test_hostile_markdown_renders_inert(source: str) -> None:
    assert_safe(markdown_to_safe_html(source))


def test_all_hostile_inputs_at_once() -> None:
    assert_safe(markdown_to_safe_html("\n\n".join(HOSTILE)))


def test_markdown_it_validate_link_is_not_enough_on_its_own() -> None:
    # What markdown-it itself does (checked here, not assumed): it blocks the classic schemes...
    md = MarkdownIt("commonmark")
    for url in [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "vbscript:x",
        "file:///etc/passwd",
        "data:text/html,x",
    ]:
        assert not md.validateLink(url), url
    # ...but lets through image data: URLs, relative and protocol-relative URLs, and an entity-encoded
    # tab inside "javascript" (normalized to java%09script). Hence our own allowlist.
    for url in [
        "data:image/png;base64,xx",
        "/relative",
        "//evil.example",
        md.normalizeLink("java\tscript:x"),
    ]:
        assert md.validateLink(url), url
    assert 'href="java%09script:alert(1)"' in md.render("[x](java&#x09;script:alert(1))")


@pytest.mark.parametrize(
    ("href", "safe"),
    [
        ("https://example.com/a?b=c#d", True),
        ("HTTP://EXAMPLE.COM", True),
        ("mailto:a@b.example", True),
        ("java%09script:alert(1)", False),
        ("javascript:alert(1)", False),
        ("//evil.example", False),
        ("/relative", False),
        ("https://ok.example/\tx", False),
        ("https://ok.example/ x", False),
        ("https:evil.example", False),
        ("", False),
    ],
)
def test_is_safe_href(href: str, safe: bool) -> None:
    assert is_safe_href(href) is safe


def test_disallowed_link_keeps_its_label_as_text() -> None:
    out = markdown_to_safe_html("see [the docs](javascript:alert(1)) now")
    assert "the docs" in out
    assert "<a" not in out


def test_image_becomes_a_link_never_an_img() -> None:
    out = markdown_to_safe_html("![a chart](https://example.com/c.png)")
    parsed = assert_safe(out)
    assert [tag for tag, _ in parsed.elements] == ["p", "a"]
    assert parsed.hrefs() == ["https://example.com/c.png"]
    assert "[image: a chart]" in out


def test_image_inside_link_is_text_inside_that_link() -> None:
    parsed = assert_safe(markdown_to_safe_html("[![logo](https://e.example/l.png)](https://ok.example)"))
    assert parsed.hrefs() == ["https://ok.example"]


def test_fenced_code_is_escaped_in_pre_code() -> None:
    out = markdown_to_safe_html("```python\nif a < b and c > d:\n    print('&')\n```")
    assert out.startswith('<pre><code class="language-python">')
    assert "if a &lt; b and c &gt; d:" in out
    assert "&amp;" in out


def test_pipe_table_renders_as_table() -> None:
    parsed = assert_safe(markdown_to_safe_html("| a | b |\n|:--|--:|\n| 1 | 2 |"))
    tags = [tag for tag, _ in parsed.elements]
    assert tags[0] == "table"
    assert {"thead", "tbody", "th", "td"} <= set(tags)


def test_lists_emphasis_and_strikethrough() -> None:
    out = markdown_to_safe_html("- *one*\n- **two**\n\n1. ~~three~~\n2. `four`")
    tags = [tag for tag, _ in assert_safe(out).elements]
    for tag in ("ul", "ol", "li", "em", "strong", "s", "code"):
        assert tag in tags, tag


def test_normal_links_stay_links_with_rel_and_target() -> None:
    out = markdown_to_safe_html('[docs](https://api-docs.deepseek.com/ "DeepSeek") and <mailto:x@y.example>')
    parsed = assert_safe(out)
    assert parsed.hrefs() == ["https://api-docs.deepseek.com/", "mailto:x@y.example"]
    assert 'title="DeepSeek"' in out


def test_raw_html_is_shown_as_text() -> None:
    out = markdown_to_safe_html("a <b>bold</b> claim")
    assert "&lt;b&gt;bold&lt;/b&gt;" in out


def test_math_is_left_alone() -> None:
    assert markdown_to_safe_html("$E = mc^2$ and $$x$$") == "<p>$E = mc^2$ and $$x$$</p>\n"


def test_escape_pre() -> None:
    assert escape_pre("<b>&'\"") == (
        '<pre style="white-space:pre-wrap;margin:0">&lt;b&gt;&amp;&#x27;&quot;</pre>'
    )
    assert_safe(escape_pre("<img src=x onerror=alert(1)>"))


def test_render_modules_do_not_import_jupyter() -> None:
    code = (
        "import sys, ds_magic.jupyter.render, ds_magic.pricing; "
        "bad = [m for m in ('IPython', 'ipywidgets', 'ipykernel') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_first_call_is_immediate() -> None:
    throttle = Throttle(0.1, clock=FakeClock())
    assert throttle.ready()
    assert throttle.ready(10_000_000)  # even with a huge state: the first token shows at once


def test_throttle_spacing() -> None:
    clock = FakeClock()
    throttle = Throttle(0.1, clock=clock)
    assert throttle.ready()
    throttle.mark()  # at t = 1000.0
    clock.now = 1000.05
    assert not throttle.ready()
    clock.now = 1000.1
    assert throttle.ready()
    throttle.mark()
    assert not throttle.ready()
    clock.now = 1000.3  # a long pause: ready again, not "owed" several updates
    assert throttle.ready()


def test_throttle_stretches_for_large_state() -> None:
    clock = FakeClock()
    throttle = Throttle(0.1, clock=clock)
    throttle.mark()
    clock.now += 0.5
    assert throttle.ready(15_000)  # 15 KB / 150 KB/s = 0.1 s
    assert not throttle.ready(150_000)  # 1 s
    clock.now += 0.5
    assert throttle.ready(150_000)
    assert not throttle.ready(300_000)  # 2 s


def test_footer_example() -> None:
    text = format_footer(
        model="deepseek-flash",
        ttft=0.314,
        tokens=212,
        tokens_per_second=48.21,
        elapsed=4.71,
        cache_hit_tokens=128,
        cost="≈$0.0002",
    )
    assert (
        text
        == "deepseek-flash · first token 0.31 s · 212 tokens · 48.2 tok/s · 4.7 s · cache hit 128 · ≈$0.0002"
    )


def test_footer_leaves_out_none_and_zero_parts() -> None:
    assert format_footer(ttft=None, tokens=1, tokens_per_second=None, elapsed=None) == "1 token"


def test_footer_cached() -> None:
    text = format_footer(ttft=None, tokens=212, tokens_per_second=None, elapsed=None, cached=True, cost="≈$1")
    assert text == "212 tokens · cached · $0"


def test_footer_cancelled_with_retries() -> None:
    text = format_footer(
        ttft=1.0, tokens=1234, tokens_per_second=None, elapsed=75.4, status="cancelled", retries=2, model="m"
    )
    assert text == "m · cancelled · first token 1.00 s · 1,234 tokens · 1 min 15 s · 2 retries"
    assert "1 retry" in format_footer(ttft=None, tokens=0, tokens_per_second=None, elapsed=None, retries=1)
