"""The view of one ``Response`` in plain terminal IPython: tokens print as they arrive, then the footer."""

from __future__ import annotations

import sys

from ..response import Response
from .live import footer_text, status_text

__all__ = ["TextView"]


class TextView:
    """``run()`` prints the answer as it streams (Ctrl-C cancels it: iterating a Response does).

    Ctrl-C ends the printing, not the cell's output: the footer still follows, and ``run`` returns
    True so that the cell fails with the one "Stopped after N tokens" line (cell.result), instead of
    a traceback through threading.py (issue 13).
    """

    def __init__(self, resp: Response, *, show_reasoning: bool = True) -> None:
        self.resp = resp
        self.show_reasoning = show_reasoning

    def run(self) -> bool:
        """Print the answer as it streams, then the footer; True if Ctrl-C stopped it."""
        out = sys.stdout
        mode = ""
        stopped = False
        try:
            for ev in self.resp:
                if ev.kind == "reasoning" and self.show_reasoning:
                    if mode != "reasoning":
                        out.write("[thinking] ")
                        mode = "reasoning"
                    out.write(ev.text)
                elif ev.kind == "answer":
                    if mode == "reasoning":
                        out.write("\n\n")
                    mode = "answer"
                    out.write(ev.text)
                elif ev.kind == "status":
                    out.write(f"[{ev.message}]\n")
                out.flush()
        except KeyboardInterrupt:
            stopped = True  # the iteration has cancelled the request
            self._settle()
        except Exception:
            pass  # the error is reported by the magic, once
        if self.resp.status != "ok" and not stopped:  # when stopped, the cell's error line says it
            out.write(f"\n[{status_text(self.resp)}]")
        out.write(f"\n— {footer_text(self.resp)}\n")
        out.flush()
        return stopped

    def _settle(self) -> None:
        """Let the cancelled request end, so the footer and the token count are final."""
        try:
            self.resp.join(5)
        except KeyboardInterrupt:  # Ctrl-C twice: it is already cancelled
            pass
