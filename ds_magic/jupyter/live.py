"""What a live answer shows while it streams and when it ends, written once for the cell's view
(stream_view.py) and the chat (chat.py): the throttled live update, the status line, the live
"first token … · N tokens · tok/s" line and the footer.

The throttle (kernel-and-widgets.md §9.5): the first token shows at once, then at most one update per
``throttle_ms``. For a view whose every update resends the whole answer (the chat) the interval
grows with the answer (1/30 of the time so far): the message count then grows with the log of the
answer's length, not linearly (about 90 updates for 2,000 tokens at 100 tok/s). The cell's view
sends only what is new (stream_view.py), so it keeps the flat interval (``grow=False``). A trailing update is scheduled on the
engine loop, so a pause in the stream never leaves stale text on screen. The final full update is
the view's own (at the end it shows the static output).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..dialect import answer_dialect, answer_note
from ..engine import get_engine
from ..pricing import cost_of, estimate_cost
from ..response import Response
from ..tokens import estimate_message_tokens
from ..types import Event, Usage
from .errors import ended_text
from .render import Throttle, format_footer

if TYPE_CHECKING:
    from ..turn import Turn

__all__ = [
    "LiveUpdate",
    "TOKEN_KINDS",
    "status_text",
    "live_line",
    "footer_text",
    "prompt_estimate",
    "turn_footer",
]

#: Events that grow the answer (and so call for a live update).
TOKEN_KINDS = ("answer", "reasoning", "tool_call")


class LiveUpdate:
    """Throttled live updates of one streaming ``Response``: ``render()`` is the view's "draw now".

    :meth:`start` listens to the response (listeners run on a listener thread, pump.py), :meth:`stop`
    stops listening and cancels any trailing update. A status event (a retry wait, a resume) goes to
    ``on_status(message)`` when given, else it is drawn at once.
    """

    def __init__(
        self,
        resp: Response,
        render: Callable[[], None],
        *,
        throttle_ms: int,
        on_status: Callable[[str], None] | None = None,
        grow: bool = True,
    ) -> None:
        self.resp = resp
        self._grow = grow
        self._render = render
        self._on_status = on_status
        self._base_interval = max(int(throttle_ms), 0) / 1000
        self._throttle = Throttle(self._base_interval)
        self._scheduled = False
        self._stopped = False
        # One bound-method object for add_listener and remove_listener: each ``self._on_event`` is
        # a new object and remove_listener matches by identity, so removing a fresh one left the
        # view (and its ~50 closed widgets) attached to a Response that Out[] keeps (soak.py).
        self._listener = self._on_event

    def start(self) -> None:
        self.resp.add_listener(self._listener)
        # The request streams from the moment it was sent, and a listener gets only what comes after
        # it was added: text that came before (on a warm connection, the first words, then perhaps a
        # stall) is drawn now, on the engine loop like a trailing update, not at the next event.
        resp = self.resp
        if resp.chars or resp.tool_calls:
            self._schedule(0.0)

    def stop(self) -> None:
        self._stopped = True
        self.resp.remove_listener(self._listener)

    def render_now(self) -> None:
        """Draw the current state at once."""
        self._throttle.mark()
        self._render()

    def _on_event(self, ev: Event) -> None:
        if ev.kind == "status":
            if self._on_status is not None:
                self._on_status(ev.message)
            else:
                self.render_now()
            return
        if ev.kind not in TOKEN_KINDS:
            return
        resp = self.resp
        if self._grow:
            self._throttle.interval = max(self._base_interval, resp.timing.elapsed / 30)
        if self._throttle.ready(resp.chars):  # chars, not len(text_so_far): that joins every piece
            self.render_now()
        else:
            self._schedule(self._throttle.interval)

    def _schedule(self, delay: float) -> None:
        """A trailing update after ``delay`` seconds, unless one is due already."""
        if not self._scheduled:
            self._scheduled = True
            loop = get_engine().loop
            loop.call_soon_threadsafe(lambda: loop.call_later(delay, self._trailing))

    def _trailing(self) -> None:
        self._scheduled = False
        if not self._stopped and not self.resp.done:
            self.render_now()


def status_text(resp: Response) -> str:
    """The one status line: waiting, queued, retrying, thinking, streaming, or how it ended."""
    st = resp.status
    if st == "ok":
        note = answer_note(resp)  # DeepSeek-only options this server was not sent
        return ("cached" if resp.cached else "done") + (f" · {note}" if note else "")
    if st == "cancelled":
        return f"cancelled after {resp.timing.tokens} tokens"
    if st in ("error", "interrupted"):
        return ended_text(resp) if resp.error else st
    if resp.status_message and not resp.text_so_far and not resp.reasoning:
        return resp.status_message
    if resp.text_so_far:
        return f"streaming… (resumed ×{resp.resumes})" if resp.resumes else "streaming…"
    if resp.reasoning:
        return "thinking…"
    return "waiting for the first token…"


def live_line(resp: Response) -> str:
    """``first token 0.31 s · 212 tokens · 48.2 tok/s`` while streaming; "" before the first token."""
    t = resp.timing
    if t.time_to_first_token is None:
        return ""
    tps = f" · {t.tokens_per_second:.1f} tok/s" if t.tokens_per_second else ""
    return f"first token {t.time_to_first_token:.2f} s · {t.tokens} tokens{tps}"


def prompt_estimate(resp: Response) -> int:
    """Rough prompt tokens of the request (tokens.py's estimate). Take it while the answer streams:
    at the end a conversation's request keeps only its own turn (parts.own_turn)."""
    msgs = resp.request.get("messages")
    return estimate_message_tokens(m for m in msgs if isinstance(m, dict)) if isinstance(msgs, list) else 0


def _estimated_cost(resp: Response, prompt_tokens: int | None) -> str | None:
    """A stopped answer has no usage (the server sends it last): price the prompt, estimated, and
    the tokens received, and say it is an estimate (issue 13)."""
    if resp.usage is not None or resp.status == "ok" or resp.cached:
        return None
    prompt = prompt_estimate(resp) if prompt_tokens is None else prompt_tokens
    received = resp.timing.tokens
    usage = Usage(prompt_tokens=prompt, completion_tokens=received, cache_miss_tokens=prompt)
    cost = estimate_cost(resp.model, usage, datetime.fromtimestamp(resp.created, timezone.utc))
    if cost is None:
        return None
    return f"{cost} estimated (prompt ≈{prompt:,} tokens + {received:,} received)"


def footer_text(resp: Response, *, prompt_tokens: int | None = None) -> str:
    """The footer of an answer that has ended (or the state so far). ``prompt_tokens``: the prompt's
    estimated size, for the estimate of a stopped answer's cost (:func:`prompt_estimate`)."""
    t = resp.timing
    cost = cost_of(resp)
    shown = str(cost) if cost is not None else None
    if shown is None and answer_dialect(resp) != "openai":
        shown = _estimated_cost(resp, prompt_tokens)
    if shown is None and answer_dialect(resp) == "openai":
        shown = "cost unknown"  # no DeepSeek prices for another server's answer (set_prices to give some)
    return format_footer(
        ttft=t.time_to_first_token,
        tokens=t.tokens,
        tokens_per_second=t.tokens_per_second,
        elapsed=t.total if t.total is not None else t.elapsed,
        cache_hit_tokens=resp.usage.cache_hit_tokens if resp.usage else 0,
        cost=shown,
        cached=resp.cached,
        status=resp.status,
        retries=resp.retries,
        model=resp.model,
        resumes=resp.resumes,
    )


_USAGE_FIELDS = (
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cache_hit_tokens",
    "cache_miss_tokens",
)


@dataclass(frozen=True)
class _StoredAnswer:
    """A stored turn as ``cost_of`` reads it (a stored answer was a real request: not cached)."""

    model: str
    usage: Usage | None
    created: float
    cached: bool = False


def turn_footer(turn: Turn) -> str:
    """The footer of an answer stored earlier (by the chat, a cell, or an imported file)."""
    meta = turn.meta or {}
    found = meta.get("timing")
    timing: Mapping[str, Any] = found if isinstance(found, dict) else {}
    found = meta.get("usage")
    usage = Usage(**{k: int(found.get(k) or 0) for k in _USAGE_FIELDS}) if isinstance(found, dict) else None
    cost = cost_of(_StoredAnswer(turn.model or "", usage, turn.created))
    elapsed = timing.get("total") if timing.get("total") is not None else timing.get("elapsed")
    return format_footer(
        ttft=timing.get("time_to_first_token"),
        tokens=int(timing.get("tokens") or (usage.completion_tokens if usage else 0)),
        tokens_per_second=timing.get("tokens_per_second"),
        elapsed=elapsed,
        cache_hit_tokens=usage.cache_hit_tokens if usage else 0,
        cost=str(cost) if cost is not None else None,
        status=turn.status,
        model=turn.model,
    )
