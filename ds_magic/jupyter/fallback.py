"""When the live view refreshes its plain-text fallback: the answer so far, at a bounded cost.

A frontend that draws no widgets (nbconvert to text, a viewer of a notebook saved mid-stream, a
console) shows a display's ``text/plain``. The live view's updates are custom widget messages, which
such a frontend ignores, so the fallback only changes when the kernel re-sends the display
(``update_display_data`` of the same display id: the same widget bundle, a new ``text/plain``;
issue 13, "The plain-text fallback of a live output is the answer so far").

Each refresh carries the whole answer so far, so refreshing on every update would cost O(n²). Here a
refresh is due only when the answer has grown by :data:`FACTOR` since the last one, and at least
:data:`MIN_INTERVAL` seconds after it. The refreshes' sizes then form a geometric series whose last
term is at most the answer, so all of them together carry at most ``FACTOR / (FACTOR - 1)`` × the
answer (4/3 with ``FACTOR = 4``) in the worst case, whatever the speed, in at most ``log4(n) + 1`` messages; the time
floor only leaves some out (a fast answer gets one or two). The final output is the view's own.
"""

from __future__ import annotations

import time

__all__ = ["FallbackSchedule", "FACTOR", "MIN_INTERVAL"]

#: How much the answer must have grown since the last refresh (the bound above is FACTOR/(FACTOR-1)).
FACTOR = 4.0
#: Seconds between two refreshes: the fallback is read by people (JupyterLab autosaves every two
#: minutes), and an answer that streams for less than this needs no copy of itself mid-stream: the
#: first refresh (the first token) and the final output cover it. It also keeps the refreshes out of
#: the live budget of a fast answer (benchmarks/iopub.py: 2,000 tok/s, 16 KB in two seconds).
MIN_INTERVAL = 3.0


class FallbackSchedule:
    """``due(chars)``: is a refresh of the fallback due now, for an answer of ``chars`` characters?

    A ``True`` answer counts as sent: the caller refreshes then.
    """

    def __init__(self, *, factor: float = FACTOR, min_interval: float = MIN_INTERVAL) -> None:
        self._factor = factor
        self._min_interval = min_interval
        self._sent = 0  # characters in the last refresh (0: the first display's status only)
        self._at = -float("inf")
        self.refreshes = 0

    def due(self, chars: int, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if chars <= 0 or chars < self._sent * self._factor or now - self._at < self._min_interval:
            return False
        self._sent, self._at = chars, now
        self.refreshes += 1
        return True
