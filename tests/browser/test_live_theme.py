"""The chat and a streaming cell in JupyterLab's light and dark themes (issue 13): readable, every
control of ours at WCAG AA contrast, and no jump when the live view turns static.

Contrast is computed in the page from computed styles: each element's text colour composited over
the first opaque background behind it, WCAG 2.1's relative luminance, (L1 + 0.05) / (L2 + 0.05) ≥ 4.5.
Screenshots land in test-artifacts/browser/<test>/ (git-ignored; CI keeps them as artifacts).
"""

from __future__ import annotations

import json
import urllib.request

import pytest

THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}
OURS = (
    ".ds-live .ds-cancel, .ds-live .ds-status, .ds-live .ds-hint, .ds-live .ds-think-summary, "
    ".ds-live .ds-reasoning, .ds-live .ds-note, "
    ".ds-chat button, .ds-chat select, .ds-chat-input, .ds-chat-title, .ds-chat-who, .ds-chat-footer, "
    ".ds-chat-status, .ds-chat-note, .ds-chat-reasoning"
)

# WCAG 2.1 contrast of each visible element that matches, from its computed colours.
CONTRAST = """(selector) => {
  const parse = (c) => {
    const m = /rgba?\\(([^)]+)\\)/.exec(c || '');
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, under) => [0, 1, 2].map(i => top[i] * top[3] + under[i] * (1 - top[3])).concat([1]);
  const background = (el) => {
    const layers = [];
    for (let n = el; n; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    let bg = [255, 255, 255, 1];
    for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
    return bg;
  };
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  return Array.from(document.querySelectorAll(selector))
    .filter(el => el.getClientRects().length && (el.innerText || el.value || el.placeholder || '').trim())
    .map(el => {
      const bg = background(el);
      const fg = over(parse(getComputedStyle(el).color), bg);
      const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
      return { cls: el.className, text: (el.innerText || el.placeholder || '').slice(0, 40),
               ratio: Math.round((hi + 0.05) / (lo + 0.05) * 100) / 100 };
    });
}"""

# Where the first line of the answer is drawn (to compare the live view with the static output).
FIRST_LINE = """(i) => {
  const cell = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')[i];
  const p = cell && cell.querySelector('.ds-live .ds-md p');
  if (!p) return null;
  const r = p.getBoundingClientRect();
  return { top: r.top, left: r.left, width: r.width, text: p.innerText.slice(0, 30) };
}"""


def set_theme(lab, theme: str) -> None:
    """JupyterLab's theme setting, through its settings API (what Settings → Theme writes)."""
    body = json.dumps({"raw": json.dumps({"theme": theme})}).encode()
    req = urllib.request.Request(
        f"{lab.url}/lab/api/settings/@jupyterlab/apputils-extension:themes",
        data=body,
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(req, timeout=10).close()


@pytest.mark.timeout(300)  # JupyterLab starts in the first test; this machine is slow
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_chat_and_a_streaming_cell_are_readable(nb, lab, offline, theme):
    readable(nb, lab, theme, [])


@pytest.mark.timeout(300)
def test_the_answer_does_not_move_when_the_view_turns_static(nb, lab, offline):
    jumps: list = []
    readable(nb, lab, "light", jumps)
    [(live_line, static_line)] = jumps
    # Where the first paragraph is drawn, and how wide (a narrower one would wrap its lines anew).
    assert all(abs(static_line[key] - live_line[key]) <= 1 for key in ("top", "left", "width")), (
        live_line,
        static_line,
    )


def readable(nb, lab, theme: str, jumps: list) -> None:
    """Both cells in ``theme``: visible text and AA contrast live and static; where the answer's
    first line was drawn live and static goes into ``jumps``."""
    set_theme(lab, THEMES[theme])
    try:
        name = lab.write_notebook(
            f"theme-{theme}.ipynb",
            [
                "from ds_magic import Chat\nChat(chat='theme')",
                "%%deepseek\nExplain the themes. [[offline tokens=300 tps=20]]",
                "items = ['a', 'b']",
                "%%deepseek --each items\nSay {item}. [[offline tokens=100 tps=20 think=0]]",
            ],
        )
        nb.open(name)
        light = "true" if theme == "light" else "false"
        nb.page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'", timeout=30_000)
        nb.run(0)
        nb.output(0).locator(".ds-chat-input").wait_for(timeout=30_000)
        nb.run(2)
        nb.wait_finished(2, timeout=30)
        nb.run(3)  # a batch: its progress view has our third control, an ipywidgets Cancel
        nb.output(3).locator(".widget-button", has_text="Cancel").wait_for(timeout=30_000)
        batch = nb.page.evaluate(CONTRAST, ".jp-OutputArea .widget-button")
        assert batch and all(m["ratio"] >= 4.5 for m in batch), (
            f"the batch's Cancel in the {theme} theme: {batch}"
        )
        nb.wait_finished(3, timeout=60)  # the kernel runs one cell at a time
        nb.run(1)
        nb.output(1).locator(".ds-live .ds-cancel").wait_for(timeout=30_000)
        nb.page.wait_for_function(f"() => ({FIRST_LINE})(1) !== null", timeout=30_000)
        live_line = nb.page.evaluate(FIRST_LINE, 1)
        nb.screenshot(f"{theme}-streaming")
        live_text = nb.output_text(1)
        assert "Cancel" in live_text and "streaming" in live_text and "Thinking" in live_text, live_text
        assert "Send" in nb.output_text(0) and "New chat" in nb.output_text(0)
        measured = nb.page.evaluate(CONTRAST, OURS)
        classes = " ".join(m["cls"] for m in measured)
        assert "ds-cancel" in classes and "ds-chat-send" in classes and "ds-status" in classes, measured
        low = [m for m in measured if m["ratio"] < 4.5]
        assert not low, f"below WCAG AA (4.5:1) in the {theme} theme: {low}"

        nb.wait_finished(1, timeout=60)
        nb.output(1).locator(".ds-magic-answer").wait_for(timeout=10_000)
        nb.screenshot(f"{theme}-answered")
        jumps.append((live_line, nb.page.evaluate(FIRST_LINE, 1)))
        footer = nb.output_text(1)
        assert "first token" in footer and "tok/s" in footer
        low = [m for m in nb.page.evaluate(CONTRAST, OURS) if m["ratio"] < 4.5]
        assert not low, f"below WCAG AA in the {theme} theme once static: {low}"
    finally:
        set_theme(lab, THEMES["light"])
