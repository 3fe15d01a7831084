"""Conversation history: what was said, and what goes on the wire next.

The API is stateless (deepseek-api.md §4.1): every request carries the whole history. A
:class:`Conversation` keeps the turns kernel-side, with the thinking text and the end status of each
answer, and :meth:`Conversation.messages` turns them into the payload for the next request, following
the ``reasoning_content`` rules of §4.2 and trimming to a token estimate (§4.8). Named conversations
and their files are in conversation_store.py.

Turns may be appended by the engine thread while the kernel thread reads the history, so every
mutation and every snapshot happens under the conversation's lock.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from .conversation_file import check_conversation, load_json
from .tokens import estimate_message_tokens, estimate_tokens
from .turn import STATUSES, Turn

__all__ = [
    "Turn",
    "Conversation",
    "ResponseLike",
    "estimate_tokens",
    "estimate_message_tokens",
    "load_json",
    "check_format",
    "FORMAT",
    "VERSION",
]

FORMAT = "ds_magic.conversation"
VERSION = 1


class _ToolCallLike(Protocol):
    def to_message(self) -> dict[str, Any]: ...


class ResponseLike(Protocol):
    """What :meth:`Conversation.record` reads from a finished response (``ds_magic.Response`` fits).

    ``usage``, ``timing`` (each with ``to_dict()``) and ``error`` are read too when present.
    """

    @property
    def text(self) -> str: ...
    @property
    def reasoning(self) -> str: ...
    @property
    def tool_calls(self) -> Sequence[_ToolCallLike]: ...
    @property
    def status(self) -> str: ...
    @property
    def model(self) -> str: ...


# -------------------------------------------------------------------------------- conversation


def _exchanges(turns: Sequence[Turn]) -> list[list[Turn]]:
    """Split turns into exchanges: a user turn and everything up to the next user turn.

    Turns before the first user turn (unusual; only ``add_assistant`` makes them) form a group of
    their own.
    """
    groups: list[list[Turn]] = []
    for t in turns:
        if t.role == "user" or not groups:
            groups.append([t])
        else:
            groups[-1].append(t)
    return groups


def _turn_key(t: Turn) -> tuple[Any, ...]:
    # Everything the wire form depends on; a turn edited in place gets a new key (str hashes are cached).
    return (id(t), t.role, t.content, t.status, t.reasoning, t.tool_call_id, id(t.tool_calls))


def _exchange_messages(group: Sequence[Turn], *, thinking: bool, tools: bool) -> list[dict[str, Any]]:
    answered = {t.tool_call_id for t in group if t.role == "tool" and t.tool_call_id}
    out: list[dict[str, Any]] = []
    sent_ids: set[str] = set()
    skipped_failed = False
    for t in group:
        if t.role == "user":
            out.append({"role": "user", "content": t.content})
        elif t.role == "assistant":
            # An assistant message with tool_calls must be followed by a tool message for each call,
            # or the API rejects the request; calls nobody answered are left out.
            calls = [copy.deepcopy(c) for c in t.tool_calls or () if c.get("id") in answered]
            if t.status != "ok" and not t.content and not calls:
                skipped_failed = True  # nothing to show for it; see the policy in Conversation.record
                continue
            msg: dict[str, Any] = {"role": "assistant", "content": t.content}
            if calls:
                msg["tool_calls"] = calls
                sent_ids.update(str(c.get("id")) for c in calls)
            if thinking and calls:
                # §4.2: V4 thinking mode needs the reasoning of tool-call turns in every later request.
                msg["reasoning_content"] = t.reasoning or ""
            elif thinking and tools:
                # §4.2 [obs]: with tools in the request the validator wants the field on every assistant
                # message; the thinking of a plain turn is ignored anyway, so send it empty.
                msg["reasoning_content"] = ""
            out.append(msg)
        elif t.tool_call_id in sent_ids:
            out.append({"role": "tool", "tool_call_id": t.tool_call_id, "content": t.content})
    if skipped_failed and not any(m["role"] == "assistant" for m in out):
        return []  # keep user/assistant alternation: the question goes with its missing answer
    return out


class Conversation:
    """A named chat history, kept kernel-side, with its system prompt and history budget.

    >>> conv = Conversation(system="Be brief.")
    >>> _ = conv.add_user("Hi"), conv.add_assistant("Hello!")
    >>> [m["role"] for m in conv.messages("How are you?")]
    ['system', 'user', 'assistant', 'user']
    """

    def __init__(
        self, name: str = "default", system: str | None = None, max_history_tokens: int | None = None
    ) -> None:
        self.name = name
        self.system = system
        self.max_history_tokens = max_history_tokens
        self.turns: list[Turn] = []
        self._lock = threading.RLock()
        # The wire form of each exchange, reused by later requests while its turns are unchanged:
        # every Response keeps its request, so without this a long conversation kept in Out[]
        # would hold the whole history once per cell (found by benchmarks/soak.py).
        self._wire: dict[tuple[Any, ...], list[dict[str, Any]]] = {}

    def __repr__(self) -> str:
        return f"Conversation(name={self.name!r}, turns={len(self.turns)})"

    def __len__(self) -> int:
        return len(self.turns)

    def snapshot(self) -> tuple[list[Turn], str | None]:
        """A copy of the turns, and the system prompt, taken under the lock."""
        with self._lock:
            return list(self.turns), self.system

    @property
    def last_answer(self) -> str | None:
        """The text of the latest assistant turn (partial if it was cut short), or None."""
        with self._lock:
            for t in reversed(self.turns):
                if t.role == "assistant":
                    return t.content
        return None

    # ----------------------------------------------------------------------------- adding turns
    def _append(self, *turns: Turn) -> None:
        with self._lock:
            self.turns.extend(turns)

    def add_user(self, text: str) -> Turn:
        turn = Turn("user", text)
        self._append(turn)
        return turn

    def add_assistant(
        self,
        text: str,
        *,
        reasoning: str | None = None,
        tool_calls: Sequence[Mapping[str, Any]] | None = None,
        status: str = "ok",
        model: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Turn:
        """Store an answer; ``tool_calls`` are API-shaped ``{"id", "type", "function": {...}}`` dicts."""
        calls = [copy.deepcopy(dict(c)) for c in tool_calls] if tool_calls else None
        turn = Turn(
            "assistant",
            text,
            reasoning=reasoning or None,
            tool_calls=calls,
            status=status,
            model=model,
            meta=copy.deepcopy(dict(meta or {})),
        )
        self._append(turn)
        return turn

    def add_tool_result(
        self, tool_call_id: str, content: str, *, status: str = "ok", meta: Mapping[str, Any] | None = None
    ) -> Turn:
        """Store a tool's result; ``status`` marks a call that was not run ("cancelled")."""
        turn = Turn("tool", content, tool_call_id=tool_call_id, status=status, meta=dict(meta or {}))
        self._append(turn)
        return turn

    def record(self, prompt: str | None, response: ResponseLike) -> None:
        """Store a finished exchange: the prompt and the response's answer (with ``prompt`` None,
        the answer only: a tool loop's next step goes on from the tool results).

        Policy, by ``response.status``:

        * ``ok``: a user turn and an assistant turn.
        * ``cancelled`` / ``interrupted``: the same, the assistant turn holding whatever arrived
          (perhaps nothing) and marked with that status, so nothing is lost.
        * ``error`` with no text, thinking or tool calls: nothing is stored, so that running the
          cell again gives a clean history.
        * ``error`` after a partial answer: stored like ``interrupted``, marked ``error``.

        Any other status (a response that has not ended) is stored as ``interrupted``. Marked
        turns with no text are kept for ``history`` but left out of requests (see :meth:`messages`).
        Usage, timing and the error message go into the assistant turn's ``meta``.
        """
        status = str(response.status)
        if status not in STATUSES:
            status = "interrupted"
        reasoning = response.reasoning or ""
        calls = [c.to_message() for c in response.tool_calls or ()]
        try:
            text = response.text or ""
        except Exception:
            # ds_magic.Response.text re-raises the request's error when nothing arrived.
            if status != "error":
                raise
            text = ""
        if status == "error" and not text and not reasoning and not calls:
            return
        meta: dict[str, Any] = {}
        for key in ("usage", "timing"):
            value = getattr(response, key, None)
            to_dict = getattr(value, "to_dict", None)
            if callable(to_dict):
                meta[key] = to_dict()
        error = getattr(response, "error", None)
        if error is not None and status != "ok":
            meta["error"] = str(error)
        model = getattr(response, "model", None)
        head = [Turn("user", prompt)] if prompt is not None else []
        answer = Turn(
            "assistant",
            text,
            reasoning=reasoning or None,
            tool_calls=calls or None,
            status=status,
            model=str(model) if model else None,
            meta=meta,
        )
        self._append(*head, answer)

    # ------------------------------------------------------------------------------- the wire
    def messages(
        self,
        prompt: str | None = None,
        *,
        system: str | None = None,
        thinking: bool = True,
        tools: bool = False,
    ) -> list[dict[str, Any]]:
        """The ``messages`` of the next request: system, history, then ``prompt`` as a user message.

        * ``system`` overrides the conversation's system prompt for this request only.
        * Thinking is left out of assistant messages (§4.2: V4 ignores it, older backends reject
          it), except on turns that made tool calls when ``thinking`` is on: V4 requires their
          ``reasoning_content`` in every later request. With ``tools`` (tools in the request) and
          ``thinking`` on, every assistant message carries the field, empty for plain turns.
        * Tool calls that no stored tool result answers are left out, and so are tool results
          whose call is not in the history.
        * A cancelled/interrupted/error answer with no text is skipped together with the user
          turn it answered; a partial answer is sent as ordinary content.
        * With ``max_history_tokens``, whole exchanges (a user turn and everything up to the next
          one) are dropped oldest first until the estimate fits. The system message and the new
          prompt are always kept; with no prompt, the latest exchange (the one awaiting an answer)
          is kept instead. Stored turns are never changed.
        """
        turns, own_system = self.snapshot()
        sys_text = system if system is not None else own_system
        head: list[dict[str, Any]] = [{"role": "system", "content": sys_text}] if sys_text else []
        cache: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        groups = []
        for g in _exchanges(turns):
            key = (thinking, tools, *map(_turn_key, g))
            msgs = self._wire.get(key)
            if msgs is None:
                msgs = _exchange_messages(g, thinking=thinking, tools=tools)
            cache[key] = msgs
            groups.append(msgs)
        self._wire = cache  # only the exchanges still in the history
        history = [g for g in groups if g]  # shared lists: only read below, never changed
        if prompt is not None:
            tail: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        else:
            tail = history.pop() if history else []
        limit = self.max_history_tokens
        if limit is not None:
            budget = limit - estimate_message_tokens(head) - estimate_message_tokens(tail)
            costs = [estimate_message_tokens(g) for g in history]
            total, drop = sum(costs), 0
            while drop < len(history) and total > budget:
                total -= costs[drop]
                drop += 1
            history = history[drop:]
        return [*head, *(m for g in history for m in g), *tail]

    # ---------------------------------------------------------------------------- management
    def fork(self, name: str) -> Conversation:
        """An independent deep copy under a new name."""
        turns, system = self.snapshot()
        new = Conversation(name, system=system, max_history_tokens=self.max_history_tokens)
        new.turns = copy.deepcopy(turns)
        return new

    def clear(self) -> None:
        """Forget the turns; the system prompt and settings stay."""
        with self._lock:
            self.turns.clear()

    # ------------------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        turns, system = self.snapshot()
        return {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "system": system,
            "max_history_tokens": self.max_history_tokens,
            "turns": [t.to_dict() for t in turns],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "") -> Conversation:
        """A conversation from its saved form, every field checked against the export schema
        (conversation_file.py); a one-line ValueError naming the field (``where`` is the path of
        ``data`` in its file, for the message) otherwise."""
        check_format(data, FORMAT)
        checked = check_conversation(data, where)
        conv = cls(checked.name, system=checked.system, max_history_tokens=checked.max_history_tokens)
        conv.turns = [Turn(**t) for t in checked.turns]
        return conv

    def to_json(self, *, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> Conversation:
        return cls.from_dict(load_json(text, FORMAT))


def check_format(data: Any, *expected: str) -> None:
    """A ValueError unless ``data`` is an object of one of the ``expected`` formats, at ``VERSION``."""
    want = " or ".join(repr(e) for e in expected)
    if not isinstance(data, Mapping):
        raise ValueError(f"expected a JSON object with format {want}, got {type(data).__name__}")
    fmt = data.get("format")
    if fmt not in expected:
        raise ValueError(f"expected format {want} version {VERSION}, got format {fmt!r}")
    version = data.get("version")
    if version != VERSION:
        raise ValueError(f"expected format {fmt!r} version {VERSION}, got version {version!r}")
