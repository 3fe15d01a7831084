"""The view of one ``Response`` in plain terminal IPython: tokens print as they arrive, then the footer."""

from __future__ import annotations

import sys

from ..response import Response
from .live import footer_text, status_text

__all__ = ["TextView"]


class TextView:
    """``run()`` prints the answer as it streams (Ctrl-C cancels it: iterating a Response does)."""

    def __init__(self, resp: Response, *, show_reasoning: bool = True) -> None:
        self.resp = resp
        self.show_reasoning = show_reasoning

    def run(self) -> None:
        out = sys.stdout
        mode = ""
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
        except Exception:
            pass  # the error is reported by the magic, once
        if self.resp.status != "ok":
            out.write(f"\n[{status_text(self.resp)}]")
        out.write(f"\n— {footer_text(self.resp)}\n")
        out.flush()
