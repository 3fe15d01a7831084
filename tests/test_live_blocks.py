"""Cutting a growing Markdown answer into complete blocks (ds_magic/jupyter/blocks.py) and the HTML
the live view sends for them (render.block_html): tables of edges, and hypothesis properties (the
answer is untrusted input)."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ds_magic.jupyter.blocks import BlockCutter, tail_diff
from ds_magic.jupyter.render import block_html, compact_html, markdown_to_safe_html


def cut_whole(text: str) -> tuple[list[str], str]:
    c = BlockCutter()
    blocks = c.cut(text)
    return blocks, text[c.done :]


@pytest.mark.parametrize(
    ("text", "blocks", "tail"),
    [
        ("one\n\ntwo", ["one\n\n"], "two"),
        ("one\ntwo\n\n", [], "one\ntwo\n\n"),  # the next block has not started: the blank may grow
        ("- a\n- b\n\nafter", ["- a\n- b\n\n"], "after"),
        ("- a\n\n  more of a\n\nnext", ["- a\n\n  more of a\n\n"], "next"),  # an indented line continues
        (
            "1. step\n\n    ```\n    code\n\n    ```\n\nend",
            ["1. step\n\n    ```\n    code\n\n    ```\n\n"],
            "end",
        ),
        ("```py\nx\n\ny\n", [], "```py\nx\n\ny\n"),  # an open fence keeps its blank lines
        ("```py\nx\n\ny\n```\nText", ["```py\nx\n\ny\n```\n"], "Text"),  # a closed fence is a block
        ("~~~\n```\n~~~\n", ["~~~\n```\n~~~\n"], ""),  # a fence closes only with its own kind
        ("````\n```\n", [], "````\n```\n"),  # ... and at least as long
        ("\n\n\nHello\n\nWorld", ["\n\n\nHello\n\n"], "World"),  # leading blank lines join the block
        ("a\r\n\r\nb", ["a\r\n\r\n"], "b"),
        ("> quote\n>\n> more\n\nx", ["> quote\n>\n> more\n\n"], "x"),
    ],
)
def test_cuts(text, blocks, tail):
    assert cut_whole(text) == (blocks, tail)


def test_loose_list_items_render_as_lists_that_keep_their_numbers():
    blocks, tail = cut_whole("1. one\n\n2. two\n\n3. three")
    assert [block_html(b) for b in blocks] == ["<ol><li>one</li></ol>", '<ol start="2"><li>two</li></ol>']
    assert block_html(tail) == '<ol start="3"><li>three</li></ol>'


def test_compact_html_keeps_code_and_soft_breaks():
    rendered = markdown_to_safe_html(
        '**a**\n*b* "q"\n\n```\nx = "1"\n\n<b>\n```\n\n[l](https://x.org \'say "hi"\')'
    )
    compact = compact_html(rendered)
    assert "<strong>a</strong>\n<em>b</em>" in compact  # a soft break between inline tags stays
    assert '<code>x = "1"\n\n&lt;b&gt;\n</code>' in compact  # code keeps its lines; < stays escaped
    assert 'title="say &quot;hi&quot;"' in compact  # inside a tag a quote stays escaped


SAFE_TAGS = {
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "ul",
    "ol",
    "li",
    "blockquote",
    "pre",
    "code",
    "em",
    "strong",
    "a",
    "span",
    "hr",
    "br",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "s",
}


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, attrs))


MARKDOWNISH = st.lists(
    st.sampled_from(
        [
            "word",
            " ",
            "\n",
            "\n\n",
            "- ",
            "1. ",
            "  ",
            "    ",
            "```",
            "~~~",
            "`",
            "> ",
            "| a |",
            "|---|",
            "#",
            "**",
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "[x](javascript:alert(1))",
            "![i](http://e/x.png)",
            "\r\n",
            "\t",
            "é",
            "日本",
        ]
    ),
    max_size=60,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(MARKDOWNISH, st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_cutting_as_it_grows_gives_the_blocks_of_cutting_it_whole(text, stops):
    whole, tail = cut_whole(text)
    c = BlockCutter()
    grown: list[str] = []
    for stop in sorted(stops) + [len(text)]:
        grown += c.cut(text[: min(stop, len(text))])
    assert grown == whole and text[c.done :] == tail
    assert "".join(whole) + tail == text  # nothing lost, nothing repeated


@settings(max_examples=200, deadline=None)
@given(MARKDOWNISH)
def test_every_block_renders_without_live_markup(text):
    blocks, tail = cut_whole(text)
    for block in [*blocks, tail]:
        tags = Tags()
        tags.feed(block_html(block))
        for tag, attrs in tags.seen:
            assert tag in SAFE_TAGS, tag
            for name, value in attrs:
                assert name in ("href", "rel", "target", "title", "class", "start"), name
                if name == "href":
                    assert (value or "").startswith(("http://", "https://", "mailto:")), value


@given(st.text(max_size=80), st.text(max_size=80))
def test_tail_diff_rebuilds_the_new_tail_keeping_the_longest_prefix(old, new):
    keep, suffix = tail_diff(old, new)
    assert old[:keep] + suffix == new
    assert keep == len(new) or keep == len(old) or old[keep] != new[keep]
