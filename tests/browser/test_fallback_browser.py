"""The plain-text fallback's refreshes (fallback.py) as JupyterLab draws them (issue 13).

Each refresh is an ``update_display_data`` of the live display with the same widget model: the page
must keep streaming through it, with the Thinking section as the person left it, with no "Loading widget..." frame, no drop in height (a jump), and
Cancel must still work after it. Every animation frame is sampled in the page, so a flash that lasts
one frame is seen.
"""

from __future__ import annotations

from itertools import pairwise

import pytest

# Per frame: does the output show "Loading widget", its height, and which .ds-live element it is.
SAMPLER = """() => {
  const out = () => document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell')[0]
    ?.querySelector('.jp-OutputArea');
  window.__dsFrames = [];
  let next = 0;
  const tick = () => {
    const o = out();
    if (o) {
      const live = o.querySelector('.ds-live');
      if (live && !live.__dsMark) live.__dsMark = ++next;
      window.__dsFrames.push({ loading: o.innerText.includes('Loading widget'),
        h: o.getBoundingClientRect().height, mark: live ? live.__dsMark : 0,
        static: !!o.querySelector('.ds-magic-answer'), chars: live ? live.innerText.length : 0,
        open: !!(live && live.querySelector('details.ds-think[open]')) });
    }
    if (window.__dsFrames.length < 20000) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""


@pytest.mark.timeout(300)
def test_refreshes_keep_the_view_streaming_without_a_flash_and_cancel_works(nb, lab, offline):
    name = lab.write_notebook(
        "fallback.ipynb", ["%%deepseek\nExplain the fallback. [[offline tokens=600 tps=40 think=1]]"]
    )
    nb.open(name)
    nb.page.evaluate(SAMPLER)
    nb.run(0)
    nb.output(0).locator(".ds-live .ds-cancel").wait_for(timeout=30_000)
    # Open the Thinking section: a refresh must not close it again (the page keeps it per model).
    nb.output(0).locator(".ds-live .ds-think-summary").click()
    opened_in = nb.page.evaluate("() => document.querySelector('.ds-live').__dsMark")
    # The first token and the 3 s refresh have gone out (fallback.py) once the view shows ~5 s of
    # answer at 40 tok/s: wait for the text, not the clock.
    nb.poll(lambda: len(nb.output_text(0)), lambda n: n > 900, timeout=60)
    nb.screenshot("streaming-after-refresh")
    live = nb.output_text(0)
    assert "Cancel" in live and "streaming" in live, live[-200:]
    nb.output(0).locator(".ds-live .ds-cancel").click()
    nb.wait_finished(0, timeout=30)
    text = nb.wait_text(0, "cancelled after", timeout=30)
    nb.screenshot("cancelled")
    stopped = int(text.split("cancelled after ", 1)[1].split(" ", 1)[0])
    assert stopped < 600 and nb.output(0).locator(".ds-cancel").count() == 0, text[-200:]
    frames = nb.page.evaluate("() => window.__dsFrames")
    live_frames = [f for f in frames if not f["static"] and f["mark"]]
    assert live_frames, frames[-5:]
    assert not [f for f in frames if f["loading"]], "a frame showed 'Loading widget...'"
    first = next(i for i, f in enumerate(frames) if f["mark"])
    streaming = [f for f in frames[first:] if not f["static"]]
    drops = [(a["h"], b["h"]) for a, b in pairwise(streaming) if b["h"] < a["h"] - 1]
    assert not drops, f"the live view's height dropped (a jump): {drops[:5]}"
    shrunk = [(a["chars"], b["chars"]) for a, b in pairwise(streaming) if b["chars"] < a["chars"]]
    assert not shrunk, f"the live view lost text for a frame: {shrunk[:5]}"
    # Whether JupyterLab drew a new view of the model for a refresh (ipywidgets' renderer does on
    # every update of a widget output): seamless either way, but the count is reported.
    views = sorted({f["mark"] for f in live_frames})
    later = [f for f in live_frames if f["mark"] > opened_in]
    assert later, f"no refresh drew a new view after Thinking was opened (views {views})"
    assert all(f["open"] for f in later), "a refresh closed the Thinking section again"
    print(f"views of the model drawn while streaming: {len(views)}")
