"""The chat and a streaming cell in Notebook 7's dark theme (issue 13, "Dark themes are readable"):
the visible text, and every control of ours at WCAG AA contrast, live and once static.

test_live_theme.py does JupyterLab's light and dark themes; this is the Notebook 7 page on the same
server (mainjob_pages.py), with the same contrast measure (computed styles, WCAG 2.1) and the same
theme setting (Notebook 7 reads JupyterLab's settings). Screenshots: artifacts/screenshots/<test>/.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from mainjob_pages import Page, make_page
from test_live_theme import CONTRAST, OURS, THEMES, set_theme

# How light the notebook's background is (0 black … 1 white): the dark theme must really be on.
BACKGROUND_LUMINANCE = """() => {
  const m = /rgba?\\(([^)]+)\\)/.exec(getComputedStyle(document.querySelector('.jp-Notebook')).backgroundColor);
  const [r, g, b] = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
  const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
}"""


@pytest.fixture
def ui(request: pytest.FixtureRequest, chromium: Any, lab: Any) -> Iterator[Page]:
    context, page = make_page(chromium, lab, "notebook7", request.node.name)
    set_theme(lab, THEMES["dark"])
    try:
        yield page
    finally:
        try:
            page.screenshot("end")
        except Exception:
            pass
        context.close()
        set_theme(lab, THEMES["light"])
        try:
            lab.shutdown_kernels()
        except Exception:
            pass


def low_contrast(ui: Page) -> tuple[list[dict[str, Any]], str]:
    measured = ui.page.evaluate(CONTRAST, OURS)
    return [m for m in measured if m["ratio"] < 4.5], " ".join(m["cls"] for m in measured)


@pytest.mark.timeout(300)  # the server starts in the first browser test; this machine is slow
def test_notebook7_dark_theme_chat_and_streaming_cell_are_readable(ui: Page, lab: Any, offline: Any) -> None:
    name = lab.write_notebook(
        "theme-nb7-dark.ipynb",
        [
            "from ds_magic import Chat\nChat(chat='theme-nb7')",
            "%%deepseek\nExplain the themes. [[offline tokens=300 tps=20]]",
        ],
    )
    ui.open(name)
    ui.page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=30_000)
    assert ui.page.evaluate(BACKGROUND_LUMINANCE) < 0.1, "Notebook 7 did not switch to the dark theme"
    ui.run(0)
    ui.output(0).locator(".ds-chat-input").wait_for(timeout=30_000)
    ui.run(1)
    ui.output(1).locator(".ds-live .ds-cancel").wait_for(timeout=30_000)
    ui.wait_text(1, "streaming", timeout=30)
    ui.screenshot("dark-streaming")
    live_text = ui.visible_text(1)
    assert "Cancel" in live_text and "streaming" in live_text and "Thinking" in live_text, live_text
    chat_text = ui.visible_text(0)
    assert "Send" in chat_text and "New chat" in chat_text, chat_text
    low, classes = low_contrast(ui)
    assert "ds-cancel" in classes and "ds-chat-send" in classes and "ds-status" in classes, classes
    assert not low, f"below WCAG AA (4.5:1) in Notebook 7's dark theme: {low}"

    ui.wait_finished(1, timeout=60)
    ui.output(1).locator(".ds-magic-answer").wait_for(timeout=10_000)
    ui.screenshot("dark-answered")
    footer = ui.visible_text(1)
    assert "first token" in footer and "tok/s" in footer, footer
    low, _ = low_contrast(ui)
    assert not low, f"below WCAG AA in Notebook 7's dark theme once static: {low}"
