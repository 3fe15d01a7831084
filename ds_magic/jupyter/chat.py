"""``ds_magic.Chat``: a chat that is an ipywidget, sharing the kernel's conversations with ``%%deepseek``.

    from ds_magic import Chat
    Chat(chat="review")            # or: %deepseek chat review

The widget (``chat_widget.py``) only draws and reports clicks; this module decides everything:

* **Background mode** (kernel-and-widgets.md §5, §9.2): the cell that shows the chat returns at once,
  so clicks are handled whenever the kernel is idle. Requests run on the core's engine thread, and
  every write to the widget happens on that thread too, so the widget has one kernel-side writer
  (§5: "exactly one thread writes to a given widget"); comm handlers only post work to it.
* **One thread**: the chat's turns live in the magic's ``ConversationStore`` under ``chat``, so
  ``%deepseek history NAME`` shows them and ``%%deepseek -c NAME`` continues them; the store's
  per-conversation engine lock orders a chat turn and a cell turn (§9.2, per-conversation ordering).
* **Queued, not interleaved**: a message sent while an answer streams waits in the chat's queue and
  starts when that answer ends. Cancel stops the answer that streams; the queue then goes on.
* **Same renderer as the magic** (§9.5, §8): the answer is throttled by the same ``LiveUpdate`` as
  ``StreamView`` (live.py: first token at once, then at most one update per ``throttle_ms``, slower
  as the answer grows) and reaches the page only as kernel-rendered safe HTML; only changed values
  are sent. Finished messages and the transcript are built in chat_transcript.py.
* **Errors inline**: a failed request shows its one-line message (which says what to do) in the
  chat, and its prompt, with any queued messages, goes back into the input.
* **Saved notebooks**: the chat's output is the widget plus a safe ``text/html`` + ``text/plain``
  transcript taken when it was shown (what nbviewer, GitHub and VS Code show). It is not refreshed
  kernel-side: an ``update_display`` re-renders a widget output, so every refresh would rebuild the
  live chat (the input loses its focus) and leave the old view listening. Instead, when JupyterLab or
  Notebook 7 saves, the front end writes a read-only copy of the chat into the notebook's
  widget-state metadata, which ipywidgets restores on reopen (``chat_widget.js``): the reopened
  notebook shows the transcript, not "Error displaying widget". ``close()`` replaces the widget by
  the static transcript (as ``StreamView.finalize`` does).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ..client import DEFAULT_MODEL
from ..conversation import Conversation
from ..engine import get_engine
from ..response import Response
from .chat_tools import ChatTools
from .chat_transcript import ChatEntries
from .chat_view import ChatView
from .chat_widget import ChatWidget
from .errors import ended_text, error_text
from .live import LiveUpdate, footer_text
from .session import session
from .settings import chat_params

__all__ = ["Chat", "DEFAULT_MODELS"]

#: The model selector's choices; the chat's own model is added first when it is not among them.
DEFAULT_MODELS = (DEFAULT_MODEL, "deepseek-v4-pro")


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
        tools: list[Any] | None = None,
        **params: Any,
    ) -> None:
        settings = session.settings
        self.name = chat
        conv = self.conversation
        if system is not None:
            conv.system = system or None
        elif conv.system is None and settings is not None and settings.system and not conv.turns:
            conv.system = settings.system
        if settings is not None:
            conv.max_history_tokens = settings.max_history_tokens
        self.show_reasoning = bool(
            show_reasoning if show_reasoning is not None else (settings.show_reasoning if settings else True)
        )
        self._throttle_ms = (
            throttle_ms if throttle_ms is not None else (settings.throttle_ms if settings else 100)
        )
        self._params = chat_params(settings, model=model, **params)
        first = self._params.pop("model")  # the selector's value is the model of each message
        names = list(models or DEFAULT_MODELS)
        if first not in names:
            names.insert(0, first)

        self._cond = threading.Condition()
        self._pending = 0  # send() calls not yet taken up by the engine thread
        self._queue: list[str] = []
        self._resp: Response | None = None
        self._prompt = ""
        self._live: LiveUpdate | None = None
        self._restore_after_new = ""
        self._entries = ChatEntries(show_reasoning=self.show_reasoning)
        self._new_after_cancel = False
        self._closed = False

        # Written here on the caller's thread before anything is displayed; from now on only the
        # engine thread writes to the widget.
        self.widget = ChatWidget(title=chat, model=first, models=names)
        self.widget.entries = self._wire()
        self.widget.status = self._idle_status()
        self.widget.on_msg(self._on_msg)
        self._tools = ChatTools(self.widget, tools) if tools else None  # tools=[fn, "python", ...]
        self._view = ChatView(self.widget, show_reasoning=self.show_reasoning)
        self.display_id = self._view.display_id

    # ------------------------------------------------------------------ public
    @property
    def conversation(self) -> Conversation:
        """The shared conversation (looked up each time: ``%deepseek import`` may replace it)."""
        return session.store.get(self.name)

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
        self._view.show(self.transcript(), closed=self._closed)

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
        if self._tools is not None:
            self._tools.cancel()

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
        return self._entries.transcript(self.name, self.conversation.turns)

    # ------------------------------------------------------------------ helpers
    def _wire(self, pending: str | None = None) -> list[dict[str, Any]]:
        return self._entries.wire(self.conversation.turns, pending)

    def _note(self, role: str, text: str, *, restore: str = "") -> None:
        self._entries.note(role, text, at=len(self.conversation.turns), restore=restore)

    def _idle_status(self) -> str:
        n = len(self.conversation)
        return f"{n} turn{'' if n == 1 else 's'} · continue in a cell with %%deepseek -c {self.name}"

    def _busy_status(self) -> str:
        q = len(self._queue)
        return "answering…" + (f" · {q} queued" if q else "")

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
        elif event == "decide" and self._tools is not None:
            self._tools.decide(content)

    def _enqueue(self, text: str) -> None:
        try:
            with self._cond:
                streaming = self._resp is not None
                if self._closed:
                    return
                if streaming:
                    self._queue.append(text)
            if streaming:
                self._view.show_queue(list(self._queue), self._busy_status())
            else:
                self._start(text)
        finally:
            # Counted as pending until it streams, waits in the queue or has failed, so that
            # wait() never sees a gap between send() and the start of the request.
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()

    def _start(self, text: str) -> None:
        if self._tools is not None:  # a tool loop, driven on the kernel's thread (chat_tools.py)
            hooks = (self._guard, self._begin, self._finished, self._fail)
            self._tools.start(text, self._params, self.model or None, self.conversation, *hooks)
            return
        try:
            # The magic's pooled client: same key, base URL and timeouts as the cells.
            resp = session.client(session.settings).chat(
                text, model=self.model or None, conversation=self.conversation, **self._params
            )
        except Exception as exc:  # a missing key, a bad parameter: shown inline like a failed request
            self._fail(text, error_text(exc, chat=True))
            return
        self._begin(text, resp, True)
        resp.add_done_callback(lambda r: get_engine().call_soon(self._guard, self._finished, r))

    def _begin(self, text: str, resp: Response, first: bool) -> None:
        """Show ``resp`` streaming (a tool loop's later steps: ``first`` False, no pending prompt)."""
        if self._live is not None:
            self._live.stop()
        with self._cond:
            self._resp = resp
            self._prompt = text
        self._view.start_answer(
            self._wire(pending=text if first else None),
            self._entries.next_id("a"),
            resp.model,
            list(self._queue),
            self._busy_status(),
        )
        self._live = LiveUpdate(resp, lambda: self._update_live(resp), throttle_ms=self._throttle_ms)
        self._live.start()

    def _update_live(self, resp: Response) -> None:
        if resp is self._resp:
            self._view.update_answer(resp)

    def _finished(self, resp: Response) -> None:
        if resp is not self._resp:
            return
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self._closed:
            with self._cond:
                self._resp = None
                self._cond.notify_all()
            return
        prompt = self._prompt
        turns = self.conversation.turns
        if turns and turns[-1].role == "assistant" and turns[-1].content == resp.text_so_far:
            self._entries.set_footer(turns[-1], footer_text(resp))
        restore: list[str] = []
        if resp.status in ("error", "interrupted"):
            recorded = bool(resp.text_so_far or resp.reasoning or resp.tool_calls)
            if not recorded:
                # The store keeps no turn for an answer that failed before any text (conversation.record),
                # so the chat shows the prompt itself, next to the error.
                self._note("user", prompt)
            with self._cond:
                restore = [prompt, *self._queue]
                self._queue.clear()
            self._note("error", ended_text(resp, chat=True), restore="\n\n".join(restore))
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
        status = self._busy_status() if self._queue else self._idle_status()
        self._view.settle(self._wire(), list(self._queue), status)

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
        store = session.store
        self._entries.restart()
        if conv.turns:
            k = 1
            while f"{self.name}-{k}" in store:
                k += 1
            kept = f"{self.name}-{k}"
            store.fork(self.name, kept)
            conv.clear()
            self._note(
                "note", f"New chat. The previous thread is kept as {kept!r} (%deepseek history {kept})."
            )
        if self._restore_after_new:
            self._entries.restore_with_last_note(self._restore_after_new, at=len(conv.turns))
            self._restore_after_new = ""

    def _close(self) -> None:
        with self._cond:
            self._closed = True
            self._queue.clear()
            resp = self._resp
        if resp is not None:
            resp.cancel()
        self._view.close(self.transcript())
        with self._cond:
            self._cond.notify_all()
