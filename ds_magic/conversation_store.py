"""The named conversations of a process (``ConversationStore``), their files, and the transcript.

Export writes JSON readable only by its owner; import never overwrites a conversation unless told
to. The file holds turns, system prompts and settings only: a Conversation holds no API key.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping

from .conversation import FORMAT, VERSION, Conversation, check_format
from .conversation_file import MAX_IMPORT_BYTES, load_json, read_capped
from .errors import json_kind

__all__ = ["ConversationStore", "history_text", "STORE_FORMAT"]

STORE_FORMAT = "ds_magic.conversations"


class ConversationStore:
    """The named conversations of this process; iterating yields their names."""

    def __init__(self) -> None:
        self._convs: dict[str, Conversation] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"ConversationStore(names={self.names()!r})"

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._convs

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        with self._lock:
            return len(self._convs)

    def _missing(self, name: str) -> KeyError:
        names = ", ".join(repr(n) for n in self._convs) or "none"
        return KeyError(f"No conversation named {name!r}; existing: {names}")

    def get(self, name: str = "default", *, create: bool = True) -> Conversation:
        """The conversation called ``name``, made empty if missing (KeyError when ``create=False``)."""
        with self._lock:
            conv = self._convs.get(name)
            if conv is None:
                if not create:
                    raise self._missing(name)
                conv = self._convs[name] = Conversation(name)
            return conv

    def names(self) -> list[str]:
        with self._lock:
            return list(self._convs)

    def reset(self, name: str = "default") -> None:
        """Clear the turns of ``name`` (its system prompt stays); a missing name has nothing to clear."""
        with self._lock:
            conv = self._convs.get(name)
        if conv is not None:
            conv.clear()

    def delete(self, name: str) -> None:
        with self._lock:
            if name not in self._convs:
                raise self._missing(name)
            del self._convs[name]

    def fork(self, src: str, dst: str, *, overwrite: bool = False) -> Conversation:
        """Copy ``src`` into a new conversation ``dst``; an existing ``dst`` is replaced only with ``overwrite``."""
        with self._lock:
            if src not in self._convs:
                raise self._missing(src)
            if dst in self._convs and not overwrite:
                raise ValueError(f"Conversation {dst!r} already exists; pass overwrite=True to replace it")
            new = self._convs[src].fork(dst)
            self._convs[dst] = new
            return new

    def export(self, path: str | os.PathLike[str], names: Iterable[str] | None = None) -> list[str]:
        """Write conversations (all by default) to a JSON file readable only by its owner (0600).

        Returns the names written.
        """
        with self._lock:
            chosen = self.names() if names is None else list(names)
            for n in chosen:
                if n not in self._convs:
                    raise self._missing(n)
            convs = [self._convs[n] for n in chosen]
        # Only turns, system prompts and settings go in: a Conversation holds no API key or header,
        # so none can leak into the file. 0600 anyway, since prompts may be private.
        doc = {"format": STORE_FORMAT, "version": VERSION, "conversations": [c.to_dict() for c in convs]}
        data = json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8")
        target = os.fspath(path)
        fd, tmp = tempfile.mkstemp(prefix=".ds_magic-", suffix=".json", dir=os.path.dirname(target) or ".")
        try:
            with os.fdopen(fd, "wb") as f:  # mkstemp creates the file 0600
                f.write(data)
            os.replace(tmp, target)  # atomic: a reader never sees half a file
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return chosen

    def import_(
        self, path: str | os.PathLike[str], *, replace: bool = False, max_bytes: int = MAX_IMPORT_BYTES
    ) -> list[str]:
        """Load conversations from an exported file (a single-conversation document works too).

        Names already in the store are kept and the imported copy gets a ``-imported`` suffix
        (``-imported-2`` and so on if that is taken too), unless ``replace=True``.
        Returns the names under which the conversations were stored.

        The file is untrusted: one larger than ``max_bytes`` (32 MiB) is refused before it is read
        whole, and every field is checked against the export schema (conversation_file.py). Any
        fault is one ValueError line that names the field, and then nothing is stored.
        """
        data = load_json(read_capped(path, max_bytes), STORE_FORMAT)
        check_format(data, STORE_FORMAT, FORMAT)
        if data["format"] == FORMAT:
            incoming = [Conversation.from_dict(data)]
        else:
            items = data.get("conversations")
            if not isinstance(items, list):
                raise ValueError(f"conversations: must be a list of conversations, not {json_kind(items)}")
            incoming = []
            for i, c in enumerate(items):
                if not isinstance(c, Mapping):
                    raise ValueError(f"conversations[{i}]: must be a conversation object, not {json_kind(c)}")
                doc = {**c, "format": FORMAT, "version": VERSION}
                incoming.append(Conversation.from_dict(doc, where=f"conversations[{i}]"))
        stored: list[str] = []
        with self._lock:
            for conv in incoming:
                name = conv.name
                if not replace and name in self._convs:
                    name = f"{conv.name}-imported"
                    n = 2
                    while name in self._convs:
                        name = f"{conv.name}-imported-{n}"
                        n += 1
                conv.name = name
                self._convs[name] = conv
                stored.append(name)
        return stored


# ---------------------------------------------------------------------------------- transcript


def history_text(conversation: Conversation) -> str:
    """A readable transcript for ``%deepseek history``; "" when there are no turns.

    One block per turn, numbered by exchange: ``[1] user: …``, ``[1] assistant (cancelled): …``.
    Texts are shown whole; thinking only as its length.
    """
    turns, system = conversation.snapshot()
    if not turns:
        return ""
    blocks: list[str] = [f"system: {system}"] if system else []
    n = 0
    for t in turns:
        if t.role == "user":
            n += 1
        label = t.role
        if t.role == "tool":
            label += f" ({t.tool_call_id})"
        elif t.role == "assistant" and t.status != "ok":
            label += f" ({t.status})"
        notes: list[str] = []
        if t.reasoning:
            notes.append(f"(thinking: {len(t.reasoning)} chars)")
        for call in t.tool_calls or ():
            fn = call.get("function") or {}
            notes.append(f"(tool call {call.get('id')}: {fn.get('name')}({fn.get('arguments')}))")
        text = t.content
        if not text and t.role == "assistant" and not notes:
            text = "(no text)"
        body = "\n".join([*notes, text] if text else notes)
        blocks.append(f"[{n}] {label}: {body}")
    return "\n\n".join(blocks)
