"""The chat's finished messages: widget entries built from the shared conversation, and the static
transcript a saved notebook shows without the kernel (chat.py).

An entry is ``{"id", "role": user|assistant|error|note, "html", "reasoning", "footer", "status",
"model", "restore"}`` (chat_widget.py); ``html`` and ``reasoning`` are safe HTML rendered here,
kernel-side (kernel-and-widgets.md §8). The chat's own notes (errors, "New chat") are not turns of the
conversation: they sit between the turns at the place they were made.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Sequence
from typing import Any

from ..turn import Turn
from .live import turn_footer
from .render import answer_html, escape_pre

__all__ = ["ChatEntries", "plain_html"]


def plain_html(text: str) -> str:
    # Typed by a person, but shown as text all the same: the chat never renders a prompt as markup.
    return f'<div style="white-space:pre-wrap">{html.escape(text)}</div>'


class ChatEntries:
    """Entries of one chat: the turns (rendered once, cached) and the chat's notes among them."""

    def __init__(self, *, show_reasoning: bool) -> None:
        self.show_reasoning = show_reasoning
        self._notes: list[tuple[int, dict[str, Any]]] = []
        self._footers: dict[int, str] = {}
        self._cache: dict[tuple[int, int], dict[str, Any]] = {}
        self._seq = itertools.count(1)

    def next_id(self, prefix: str) -> str:
        """A fresh entry id: ``p`` a pending prompt, ``a`` a live answer, ``n`` a note."""
        return f"{prefix}{next(self._seq)}"

    def set_footer(self, turn: Turn, footer: str) -> None:
        """The exact footer of an answer this chat just streamed (cached · $0, retries...)."""
        self._footers[id(turn)] = footer

    def note(self, role: str, text: str, *, at: int, restore: str = "") -> None:
        """Add a note (``user``, ``error`` or ``note``) after the first ``at`` turns."""
        entry: dict[str, Any] = {
            "id": self.next_id("n"),
            "role": role,
            "html": plain_html(text),
            "text": text,
        }
        if role == "error":
            entry["status"] = "error"
        if restore:
            entry["restore"] = restore
        self._notes.append((at, entry))

    def restore_with_last_note(self, text: str, *, at: int) -> None:
        """Text for the front end to put back into the input, with the newest note."""
        if not self._notes:
            self.note("note", "New chat.", at=at)
        self._notes[-1][1]["restore"] = text

    def restart(self) -> None:
        """A new thread: the notes and rendered turns of the old one are gone."""
        self._notes = []
        self._cache.clear()

    def _turn_entry(self, index: int, turn: Turn) -> dict[str, Any]:
        key = (index, id(turn))
        cached = self._cache.get(key)
        if cached is not None and cached.get("_len") == len(turn.content):
            return cached
        entry: dict[str, Any] = {"id": f"t{index}", "role": turn.role, "text": turn.content}
        if turn.role == "user":
            entry["html"] = plain_html(turn.content)
        elif turn.role == "assistant":
            entry["html"] = answer_html(turn.content, "markdown") if turn.content else ""
            if turn.reasoning and self.show_reasoning:
                entry["reasoning"] = escape_pre(turn.reasoning)
            entry["footer"] = self._footers.get(id(turn)) or turn_footer(turn)
            entry["status"] = turn.status
            entry["model"] = turn.model or ""
            if turn.status != "ok" and not turn.content:
                entry["html"] = "<div style='color:#888'>(no text)</div>"
        else:  # a tool result: shown as text
            entry["role"] = "note"
            entry["html"] = escape_pre(turn.content)
        entry["_len"] = len(turn.content)
        self._cache[key] = entry
        return entry

    def entries(self, turns: Sequence[Turn], pending: str | None = None) -> list[dict[str, Any]]:
        """Every entry in order, kernel-side fields included; ``pending``: a prompt not stored yet."""
        notes = sorted(self._notes, key=lambda n: n[0])
        out: list[dict[str, Any]] = []
        ni = 0
        for i, turn in enumerate(turns):
            while ni < len(notes) and notes[ni][0] <= i:
                out.append(notes[ni][1])
                ni += 1
            out.append(self._turn_entry(i, turn))
        out.extend(n[1] for n in notes[ni:])
        if pending is not None:
            out.append(
                {"id": self.next_id("p"), "role": "user", "html": plain_html(pending), "text": pending}
            )
        return out

    def wire(self, turns: Sequence[Turn], pending: str | None = None) -> list[dict[str, Any]]:
        """Entries as the page gets them: rendered HTML only. The raw model text ("text") stays in
        the kernel, for the plain-text transcript; "_len" is a cache check."""
        return [
            {k: v for k, v in e.items() if k != "text" and not k.startswith("_")}
            for e in self.entries(turns, pending)
        ]

    def transcript(self, name: str, turns: Sequence[Turn]) -> tuple[str, str]:
        """The conversation as (safe HTML, plain text): what a saved notebook shows without the kernel."""
        entries = self.entries(turns)
        html_parts = [
            f"<div style='font-weight:600;margin-bottom:4px'>DeepSeek chat {html.escape(repr(name))}"
            f" <span style='color:#888;font-weight:normal;font-size:0.85em'>· transcript</span></div>"
        ]
        plain_parts = [f"DeepSeek chat {name!r}"]
        if not entries:
            html_parts.append("<div style='color:#888'>(no messages yet)</div>")
            plain_parts.append("(no messages yet)")
        for e in entries:
            role = e.get("role")
            who = "You" if role == "user" else ("Error" if role == "error" else e.get("model") or "DeepSeek")
            color = "#b00" if role == "error" else "inherit"
            bg = "background:#f2f2f2;" if role == "user" else ""
            part = [
                f"<div style='{bg}border-radius:6px;padding:4px 8px;margin:6px 0;color:{color}'>"
                f"<div style='color:#888;font-size:0.8em'>{html.escape(str(who))}</div>"
            ]
            if e.get("reasoning"):
                part.append(
                    "<details><summary style='color:#666'>Thinking</summary>"
                    f"<div style='color:#666'>{e['reasoning']}</div></details>"
                )
            part.append(str(e.get("html", "")))
            if e.get("footer"):
                part.append(
                    f"<div style='color:#888;font-size:0.85em;margin-top:0.3em'>{html.escape(e['footer'])}</div>"
                )
            part.append("</div>")
            html_parts.append("".join(part))
            plain = f"{who}: {e.get('text', '')}"
            if e.get("footer"):
                plain += f"\n— {e['footer']}"
            plain_parts.append(plain)
        return (
            "<div class='ds-chat-transcript'>" + "".join(html_parts) + "</div>",
            "\n\n".join(plain_parts),
        )
