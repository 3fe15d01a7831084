"""``ds_magic.Chat``: a chat that is an ipywidget, sharing the kernel's conversations with ``%%deepseek``.

    from ds_magic import Chat
    Chat(chat="review")            # or: %deepseek chat review

The widget (``_chat_widget.py``) only draws and reports clicks; this module decides everything:

* **Background mode** (kernel-and-widgets.md §5, §9.2): the cell that shows the chat returns at once,
  so clicks are handled whenever the kernel is idle. Requests run on the core's engine thread, and
  every write to the widget happens on that thread too, so the widget has one kernel-side writer
  (§5: "exactly one thread writes to a given widget"); comm handlers only post work to it.
* **One thread**: the chat's turns live in the magic's ``ConversationStore`` under ``chat``, so
  ``%deepseek history NAME`` shows them and ``%%deepseek -c NAME`` continues them; the store's
  per-conversation engine lock orders a chat turn and a cell turn (§9.2, per-conversation ordering).
* **Queued, not interleaved**: a message sent while an answer streams waits in the chat's queue and
  starts when that answer ends. Cancel stops the answer that streams; the queue then goes on.
* **Same renderer as the magic** (§9.5, §8): the answer is throttled exactly like ``StreamView``
  (first token at once, then at most one update per ``throttle_ms``, slower as the answer grows) and
  reaches the page only as kernel-rendered safe HTML; only changed values are sent.
* **Errors inline**: a failed request shows its one-line message (which says what to do) in the
  chat, and its prompt, with any queued messages, goes back into the input.
* **Saved notebooks**: the chat's output is the widget plus a safe ``text/html`` + ``text/plain``
  transcript taken when it was shown (what nbviewer, GitHub and VS Code show). It is not refreshed
  kernel-side: an ``update_display`` re-renders a widget output, so every refresh would rebuild the
  live chat (the input loses its focus) and leave the old view listening. Instead, when JupyterLab or
  Notebook 7 saves, the front end writes a read-only copy of the chat into the notebook's
  widget-state metadata, which ipywidgets restores on reopen (``_chat_widget.js``): the reopened
  notebook shows the transcript, not "Error displaying widget". ``close()`` replaces the widget by
  the static transcript (as ``StreamView.finalize`` does).
"""

from __future__ import annotations

import html
import itertools
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ..conversation import Conversation, Turn
from ..engine import get_engine
from ..pricing import estimate_cost
from ..response import Response
from ..types import Event, Usage
from .render import Throttle, escape_pre, format_footer
from .stream_view import _answer_html, footer_text, status_text

__all__ = ["Chat", "chat_command"]

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
DEFAULT_MODELS = ("deepseek-flash", "deepseek-v4-pro")
_USAGE_FIELDS = (
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cache_hit_tokens",
    "cache_miss_tokens",
)


def _plain_html(text: str) -> str:
    # Typed by a person, but shown as text all the same: the chat never renders a prompt as markup.
    return f'<div style="white-space:pre-wrap">{html.escape(text)}</div>'


def _turn_footer(turn: Turn) -> str:
    """The footer of an answer stored earlier (by this chat, a cell, or an imported file)."""
    meta = turn.meta or {}
    found = meta.get("timing")
    timing: dict[str, Any] = found if isinstance(found, dict) else {}
    found = meta.get("usage")
    raw: dict[str, Any] | None = found if isinstance(found, dict) else None
    usage = Usage(**{k: int(raw.get(k) or 0) for k in _USAGE_FIELDS}) if raw else None
    cost = None
    if usage is not None and turn.model:
        c = estimate_cost(turn.model, usage, datetime.fromtimestamp(turn.created, timezone.utc))
        cost = str(c) if c is not None else None
    elapsed = timing.get("total") if timing.get("total") is not None else timing.get("elapsed")
    return format_footer(
        ttft=timing.get("time_to_first_token"),
        tokens=int(timing.get("tokens") or (usage.completion_tokens if usage else 0)),
        tokens_per_second=timing.get("tokens_per_second"),
        elapsed=elapsed,
        cache_hit_tokens=usage.cache_hit_tokens if usage else 0,
        cost=cost,
        status=turn.status,
        model=turn.model,
    )


def _magics_state() -> Any:
    from .magics import _state

    return _state


class Chat:
    """An interactive DeepSeek chat in the notebook; evaluate it (or call ``show()``) to display it.

    ``chat`` names the conversation shared with ``%%deepseek -c NAME`` and ``%deepseek history NAME``;
    ``model`` and ``system`` default to the magic's settings (``%config DeepSeekMagics``). Other
    keyword arguments (``temperature``, ``max_tokens``, ``thinking``, ``reasoning_effort``, ``cache``)
    go into every request. From code: ``send(text)``, ``cancel()``, ``new_chat()``, ``wait()``,
    ``close()``.
    """

    def __init__(
        self,
        chat: str = "default",
        *,
        model: str | None = None,
        system: str | None = None,
        models: list[str] | None = None,
        show_reasoning: bool | None = None,
        throttle_ms: int | None = None,
        **params: Any,
    ) -> None:
        from .chat_widget import ChatWidget

        state = _magics_state()
        magics = state.magics
        self.name = chat
        self._state = state
        conv = self.conversation
        if system is not None:
            conv.system = system or None
        elif conv.system is None and magics is not None and magics.system and not conv.turns:
            conv.system = magics.system
        if magics is not None:
            conv.max_history_tokens = magics.max_history_tokens
        self.show_reasoning = bool(
            show_reasoning if show_reasoning is not None else (magics.show_reasoning if magics else True)
        )
        throttle = throttle_ms if throttle_ms is not None else (magics.throttle_ms if magics else 100)
        self._base_interval = max(int(throttle), 0) / 1000
        self._params = self._default_params(magics)
        self._params.update(params)
        first = model or (magics.model if magics is not None else "deepseek-flash")
        names = list(models or DEFAULT_MODELS)
        if first not in names:
            names.insert(0, first)

        self.display_id = "ds-chat-" + uuid.uuid4().hex
        self._cond = threading.Condition()
        self._pending = 0  # send() calls not yet taken up by the engine thread
        self._queue: list[str] = []
        self._resp: Response | None = None
        self._prompt = ""
        self._listener: Callable[[Event], None] | None = None
        self._throttle = Throttle(self._base_interval)
        self._flush_scheduled = False
        self._sent_text = self._sent_reasoning = 0
        self._restore_after_new = ""
        self._notes: list[tuple[int, dict[str, Any]]] = []
        self._footers: dict[int, str] = {}
        self._cache: dict[tuple[int, int], dict[str, Any]] = {}
        self._seq = itertools.count(1)
        self._new_after_cancel = False
        self._closed = False
        self._shown = False

        # Written here on the caller's thread before anything is displayed; from now on only the
        # engine thread writes to the widget.
        self.widget = ChatWidget(title=chat, model=first, models=names)
        self.widget._ds_chat_id = self.widget.model_id
        self.widget.entries = self._wire()
        self.widget.status = self._idle_status()
        self.widget.on_msg(self._on_msg)

    # ------------------------------------------------------------------ public
    @property
    def conversation(self) -> Conversation:
        """The shared conversation (looked up each time: ``%deepseek import`` may replace it)."""
        conv: Conversation = self._state.store.get(self.name)
        return conv

    @property
    def model(self) -> str:
        """The model the selector shows; the next message uses it."""
        return str(self.widget.model)

    @property
    def draft(self) -> str:
        """The text in the input box, as the front end last reported it."""
        return str(self.widget.draft)

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._pending > 0 or self._resp is not None or bool(self._queue)

    @property
    def last(self) -> Response | None:
        """The answer streaming now, else None."""
        return self._resp

    def show(self) -> None:
        """Display the chat (with its transcript as the static fallback of the same output)."""
        from IPython.display import display

        if self._closed:
            display(self._static_bundle(), raw=True)  # type: ignore[no-untyped-call]
            return
        display(self._bundle(), raw=True, display_id=self.display_id)  # type: ignore[no-untyped-call]
        self._shown = True

    def _ipython_display_(self) -> None:
        self.show()

    def __repr__(self) -> str:
        return f"<ds_magic.Chat {self.name!r}: {len(self.conversation)} turns>"

    def send(self, text: str) -> None:
        """Send a message as if typed: it starts now, or waits in the queue if an answer streams."""
        if not text or not text.strip():
            return
        with self._cond:
            self._pending += 1
        get_engine().call_soon(self._guard, self._enqueue, text)

    def cancel(self) -> None:
        """Stop the answer that streams now (thread-safe; the partial answer is kept)."""
        resp = self._resp
        if resp is not None:
            resp.cancel()

    def new_chat(self) -> None:
        """Start a fresh thread under the same name; the old turns are kept as ``NAME-1``, ``NAME-2``…"""
        get_engine().call_soon(self._guard, self._new_chat)

    def wait(self, timeout: float | None = 60) -> bool:
        """Block until no answer streams and nothing is queued; False if ``timeout`` ran out."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._pending == 0 and self._resp is None and not self._queue, timeout
            )

    def close(self) -> None:
        """Stop streaming, replace the widget by the static transcript, and close its comm."""
        done = threading.Event()

        def run() -> None:
            try:
                self._close()
            finally:
                done.set()

        engine = get_engine()
        if engine.in_engine_thread():
            run()
        else:
            engine.call_soon(run)
            done.wait(10)

    def transcript(self) -> tuple[str, str]:
        """The conversation as (safe HTML, plain text): what a saved notebook shows without the kernel."""
        entries = self._entries()
        html_parts = [
            f"<div style='font-weight:600;margin-bottom:4px'>DeepSeek chat {html.escape(repr(self.name))}"
            f" <span style='color:#888;font-weight:normal;font-size:0.85em'>· transcript</span></div>"
        ]
        plain_parts = [f"DeepSeek chat {self.name!r}"]
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

    # ------------------------------------------------------------------ settings
    @staticmethod
    def _default_params(magics: Any) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if magics is None:
            return params
        if magics.temperature is not None:
            params["temperature"] = magics.temperature
        if magics.max_tokens is not None:
            params["max_tokens"] = magics.max_tokens
        if magics.thinking is not None:
            params["thinking"] = bool(magics.thinking)
        if magics.reasoning_effort:
            params["reasoning_effort"] = magics.reasoning_effort
        if magics.cache:
            params["cache"] = True
        return params

    def _client(self) -> Any:
        magics = self._state.magics
        if magics is not None:
            return magics._client()  # the magic's pooled client: same key, base URL and timeouts
        from ..client import Client

        return Client(api_key=self._state.api_key)

    # ------------------------------------------------------------------ entries
    def _turn_entry(self, index: int, turn: Turn) -> dict[str, Any]:
        key = (index, id(turn))
        cached = self._cache.get(key)
        if cached is not None and cached.get("_len") == len(turn.content):
            return cached
        entry: dict[str, Any] = {"id": f"t{index}", "role": turn.role, "text": turn.content}
        if turn.role == "user":
            entry["html"] = _plain_html(turn.content)
        elif turn.role == "assistant":
            entry["html"] = _answer_html(turn.content, "markdown") if turn.content else ""
            if turn.reasoning and self.show_reasoning:
                entry["reasoning"] = escape_pre(turn.reasoning)
            entry["footer"] = self._footers.get(id(turn)) or _turn_footer(turn)
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

    def _entries(self, pending: str | None = None) -> list[dict[str, Any]]:
        turns = list(self.conversation.turns)
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
                {"id": f"p{next(self._seq)}", "role": "user", "html": _plain_html(pending), "text": pending}
            )
        return out

    def _wire(self, pending: str | None = None) -> list[dict[str, Any]]:
        """Entries as the page gets them: rendered HTML only. The raw model text ("text") stays in
        the kernel, for the plain-text transcript; "_len" is a cache check."""
        return [
            {k: v for k, v in e.items() if k != "text" and not k.startswith("_")}
            for e in self._entries(pending)
        ]

    def _idle_status(self) -> str:
        n = len(self.conversation)
        return f"{n} turn{'' if n == 1 else 's'} · continue in a cell with %%deepseek -c {self.name}"

    # ------------------------------------------------------------------ engine thread
    def _guard(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn`` on the engine thread; a bug shows in the chat instead of vanishing in a log."""
        try:
            fn(*args)
        except Exception as exc:  # pragma: no cover - a safety net, not a code path
            self._note("error", f"Internal error in the chat: {exc}")
            self._publish_done()

    def _on_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        # Comm handler (main or subshell thread): read the message, post the work, touch nothing.
        if not isinstance(content, dict):
            return
        event = content.get("event")
        if event == "send":
            self.send(str(content.get("text", "")))
        elif event == "cancel":
            self.cancel()
        elif event == "new_chat":
            self.new_chat()

    def _enqueue(self, text: str) -> None:
        try:
            with self._cond:
                streaming = self._resp is not None
                if self._closed:
                    return
                if streaming:
                    self._queue.append(text)
            if streaming:
                with self.widget.hold_sync():
                    self.widget.queue = list(self._queue)
                    self.widget.status = self._busy_status()
            else:
                self._start(text)
        finally:
            # Counted as pending until it streams, waits in the queue or has failed, so that
            # wait() never sees a gap between send() and the start of the request.
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()

    def _busy_status(self) -> str:
        q = len(self._queue)
        return "answering…" + (f" · {q} queued" if q else "")

    def _start(self, text: str) -> None:
        params = dict(self._params)
        try:
            resp = self._client().chat(
                text, model=self.model or None, conversation=self.conversation, **params
            )
        except Exception as exc:  # a missing key, a bad parameter: shown inline like a failed request
            self._fail(text, str(exc))
            return
        n = next(self._seq)
        with self._cond:
            self._resp = resp
            self._prompt = text
        self._throttle = Throttle(self._base_interval)
        self._flush_scheduled = False
        self._sent_text = self._sent_reasoning = 0
        with self.widget.hold_sync():
            self.widget.entries = self._wire(pending=text)
            self.widget.live = {"id": f"a{n}", "model": resp.model}
            self.widget.live_html = ""
            self.widget.live_reasoning = ""
            self.widget.live_info = "waiting for the first token…"
            self.widget.busy = True
            self.widget.queue = list(self._queue)
            self.widget.status = self._busy_status()

        def listener(ev: Event, r: Response = resp) -> None:
            self._on_event(r, ev)

        self._listener = listener
        resp.add_listener(listener)
        resp.add_done_callback(lambda r: get_engine().call_soon(self._guard, self._finished, r))

    def _on_event(self, resp: Response, ev: Event) -> None:
        if resp is not self._resp:
            return
        if ev.kind == "status":
            self._update_live(resp)
            return
        if ev.kind not in ("answer", "reasoning", "tool_call"):
            return
        # The magic's throttle (StreamView._on_event, kernel-and-widgets.md §9.5): first token at
        # once, then one update per interval, the interval growing with the answer (1/30 of the
        # time so far) because every update resends the whole answer.
        size = len(resp.text_so_far) + len(resp.reasoning)
        self._throttle.interval = max(self._base_interval, resp.timing.elapsed / 30)
        if self._throttle.ready(size):
            self._update_live(resp)
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            loop = get_engine().loop
            loop.call_soon_threadsafe(lambda: loop.call_later(self._throttle.interval, self._trailing, resp))

    def _trailing(self, resp: Response) -> None:
        self._flush_scheduled = False
        if resp is self._resp and not resp.done:
            self._update_live(resp)

    def _update_live(self, resp: Response) -> None:
        self._throttle.mark()
        text = resp.text_so_far
        reasoning = resp.reasoning if self.show_reasoning else ""
        t = resp.timing
        info = status_text(resp)
        if t.time_to_first_token is not None:
            tps = f" · {t.tokens_per_second:.1f} tok/s" if t.tokens_per_second else ""
            info += f" · first token {t.time_to_first_token:.2f} s · {t.tokens} tokens{tps}"
        # hold_sync sends the changed values only, in one comm message.
        with self.widget.hold_sync():
            if len(text) != self._sent_text:
                self._sent_text = len(text)
                self.widget.live_html = _answer_html(text, "markdown") if text else ""
            if reasoning and len(reasoning) != self._sent_reasoning:
                self._sent_reasoning = len(reasoning)
                self.widget.live_reasoning = escape_pre(reasoning)
            self.widget.live_info = info

    def _finished(self, resp: Response) -> None:
        if resp is not self._resp:
            return
        if self._closed:
            with self._cond:
                self._resp = None
                self._cond.notify_all()
            return
        if self._listener is not None:
            resp.remove_listener(self._listener)
            self._listener = None
        prompt = self._prompt
        turns = self.conversation.turns
        if turns and turns[-1].role == "assistant" and turns[-1].content == resp.text_so_far:
            self._footers[id(turns[-1])] = footer_text(resp)  # exact (cached · $0, retries) for this answer
        restore: list[str] = []
        if resp.status in ("error", "interrupted"):
            recorded = bool(resp.text_so_far or resp.reasoning or resp.tool_calls)
            if not recorded:
                # The store keeps no turn for an answer that failed before any text (conversation.record),
                # so the chat shows the prompt itself, next to the error.
                self._note("user", prompt)
            message = str(resp.error) if resp.error else f"The request ended with status {resp.status}"
            with self._cond:
                restore = [prompt, *self._queue]
                self._queue.clear()
            self._note("error", message, restore="\n\n".join(restore))
        with self._cond:
            self._resp = None
            self._prompt = ""
        new_thread = self._new_after_cancel
        if new_thread:
            self._new_after_cancel = False
            self._archive()
        self._publish_done()
        if not restore and not new_thread:
            with self._cond:
                nxt = self._queue.pop(0) if self._queue and not self._closed else None
            if nxt is not None:
                self._start(nxt)
                return
        with self._cond:
            self._cond.notify_all()

    def _note(self, role: str, text: str, *, restore: str = "") -> None:
        entry: dict[str, Any] = {
            "id": f"n{next(self._seq)}",
            "role": role,
            "html": _plain_html(text),
            "text": text,
        }
        if role == "error":
            entry["status"] = "error"
        if restore:
            entry["restore"] = restore
        self._notes.append((len(self.conversation.turns), entry))

    def _fail(self, prompt: str, message: str) -> None:
        with self._cond:
            restore = [prompt, *self._queue]
            self._queue.clear()
        self._note("user", prompt)
        self._note("error", message, restore="\n\n".join(restore))
        self._publish_done()
        with self._cond:
            self._cond.notify_all()

    def _publish_done(self) -> None:
        """Show the finished state: entries from the store, no live answer."""
        with self.widget.hold_sync():
            self.widget.entries = self._wire()
            self.widget.live = {}
            self.widget.live_html = self.widget.live_reasoning = self.widget.live_info = ""
            self.widget.busy = bool(self._queue)
            self.widget.queue = list(self._queue)
            self.widget.status = self._busy_status() if self._queue else self._idle_status()

    def _static_bundle(self) -> dict[str, Any]:
        html_text, plain = self.transcript()
        return {"text/html": html_text, "text/plain": plain}

    def _bundle(self) -> dict[str, Any]:
        shown = self.widget._repr_mimebundle_()
        assert shown is not None  # None only for a widget without a view, which ChatWidget has
        data, _meta = shown
        html_text, plain = self.transcript()
        # Readers without widgets (GitHub, VS Code's saved file) see this, frozen at display time.
        note = "Live chat: later turns are in the notebook's widget state; chat.close() writes them here."
        html_text += f"<div style='color:#888;font-size:0.85em'>{html.escape(note)}</div>"
        return {WIDGET_MIME: data[WIDGET_MIME], "text/html": html_text, "text/plain": f"{plain}\n\n{note}"}

    def _new_chat(self) -> None:
        resp = self._resp
        if resp is not None:
            # The cancelled answer is recorded when it ends; archive after that, so it stays in the old thread.
            self._new_after_cancel = True
            with self._cond:
                # Queued messages were never sent: they go back into the input, not away.
                self._restore_after_new = "\n\n".join(self._queue)
                self._queue.clear()
            resp.cancel()
            return
        self._archive()
        self._publish_done()

    def _archive(self) -> None:
        conv = self.conversation
        store = self._state.store
        if conv.turns:
            k = 1
            while f"{self.name}-{k}" in store:
                k += 1
            kept = f"{self.name}-{k}"
            store.fork(self.name, kept)
            conv.clear()
            self._notes = []
            self._cache.clear()
            self._note(
                "note", f"New chat. The previous thread is kept as {kept!r} (%deepseek history {kept})."
            )
        else:
            self._notes = []
        if self._restore_after_new:
            if not self._notes:
                self._note("note", "New chat.")
            self._notes[-1][1]["restore"] = self._restore_after_new
            self._restore_after_new = ""

    def _close(self) -> None:
        with self._cond:
            self._closed = True
            self._queue.clear()
            resp = self._resp
        if resp is not None:
            resp.cancel()
        if self._shown:
            from IPython.display import update_display

            update_display(self._static_bundle(), raw=True, display_id=self.display_id)  # type: ignore[no-untyped-call]
        self.widget.close()
        with self._cond:
            self._cond.notify_all()


def chat_command(rest: list[str]) -> Chat:
    """``%deepseek chat [NAME]``: a chat on conversation NAME (default: the magic's default one)."""
    if len(rest) > 1:
        from .magics import DeepSeekCellError

        raise DeepSeekCellError("Usage: %deepseek chat [NAME] — one conversation name, no spaces")
    return Chat(chat=rest[0] if rest else "default")
