"""Where a growing Markdown answer can be cut into blocks that are complete, so the live view renders
and sends each of them once and re-sends only the open tail (issue 13, "Live traffic is O(n)").

A cut is made only where nothing that follows can change what comes before it (CommonMark 0.31):

* before a line that starts in column 0 with a non-space character and follows a blank line, outside
  a fenced code block: the blank line closed the paragraph, table or list item before it, and a line
  in column 0 is no continuation of a list item or indented code (those need indentation);
* after the closing line of a fenced code block opened in column 0 (§4.5): the fence is complete.

Every cut depends only on the text before it plus the first character of the next line, so cutting an
answer as it grows gives the same blocks as cutting it whole (tests/test_live_blocks.py checks that
with hypothesis). Rendering the blocks one by one differs from rendering the whole text only in
rare places, and the static output reuses the same blocks, so the page does not jump at the end:
a loose list becomes one list per item (the margins between them collapse to the same gap), and a
link reference definition only serves its own block.

Nothing here imports IPython or ipywidgets.
"""

from __future__ import annotations

import re

__all__ = ["BlockCutter", "tail_diff"]

# A fence opens with 3+ backticks or tildes after at most 3 spaces; a backtick fence's info string
# holds no backtick (CommonMark §4.5).
_FENCE_OPEN = re.compile(r" {0,3}(`{3,}(?=[^`]*$)|~{3,})")


class BlockCutter:
    """Cut the answer so far into complete blocks; the state is where the last cut was.

    ``cut(text)`` takes the whole answer so far (each call's text extends the previous one) and
    returns the blocks completed since the last call, in order; ``text[done:]`` is the open tail.
    """

    def __init__(self) -> None:
        #: Offset just after the last complete block.
        self.done = 0
        #: Offset of the first line not yet classified (always at a line start, >= done).
        self._scan = 0
        self._fence: tuple[str, int, bool] | None = None  # (char, length, opened in column 0)
        self._blank_before = False  # the line before _scan was blank

    def cut(self, text: str) -> list[str]:
        blocks: list[str] = []
        pos = self._scan
        while True:
            if pos < len(text) and self._blank_before and not text[pos].isspace():
                self._take(text, pos, blocks)  # a column-0 line after a blank line
            end = text.find("\n", pos)
            if end < 0:
                break  # the last line is not complete: classify it when it is
            closed_top_fence = self._classify(text[pos:end])
            pos = end + 1
            if closed_top_fence:
                self._take(text, pos, blocks)
        self._scan = pos
        return blocks

    def _take(self, text: str, pos: int, blocks: list[str]) -> None:
        block = text[self.done : pos]
        if block.strip():  # leading blank lines join the next block
            blocks.append(block)
            self.done = pos

    def _classify(self, line: str) -> bool:
        """Note one complete line; True if it closes a fence that was opened in column 0."""
        fence = self._fence
        self._blank_before = False
        if fence is not None:
            char, length, top = fence
            stripped = line.rstrip(" \t\r")
            body = stripped.lstrip(" ")
            if len(stripped) - len(body) <= 3 and len(body) >= length and body == char * len(body):
                self._fence = None
                return top
            return False
        m = _FENCE_OPEN.match(line)
        if m:
            run = m.group(1)
            self._fence = (run[0], len(run), not line.startswith(" "))
        else:
            self._blank_before = not line.strip(" \t\r")
        return False


def tail_diff(old: str, new: str) -> tuple[int, str]:
    """``(keep, suffix)`` with ``new == old[:keep] + suffix`` and ``keep`` as large as possible.

    The open tail's HTML mostly grows at its end, except for its closing tags, so an update sends a
    few bytes plus the new text instead of the whole tail again.
    """
    limit = min(len(old), len(new))
    keep = 0
    # Compare in halving strides: O(log n) slice comparisons in C instead of a Python loop per char.
    step = 1 << max(limit.bit_length() - 1, 0)
    while step:
        nxt = keep + step
        if nxt <= limit and old[keep:nxt] == new[keep:nxt]:
            keep = nxt
        else:
            step >>= 1
    return keep, new[keep:]
