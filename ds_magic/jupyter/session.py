"""The kernel's ds_magic session: conversations, the API key, the requests in flight, the clients.

One ``session`` per kernel, shared by ``%%deepseek``, ``%deepseek`` and ``Chat`` (so a chat and a cell
continue the same conversation, and ``%deepseek cancel-all`` stops both). The key set by
``%deepseek key`` lives here, in memory only.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ..client import DEFAULT_MODEL, Client
from ..conversation_store import ConversationStore
from ..response import Response
from .settings import Settings

__all__ = ["Session", "session", "cancel_all"]

#: What a pooled client is built from: api key, base URL, timeout, resume, redact rules.
ClientKey = tuple[str, str, float | None, int, tuple[str, ...], str]


@dataclass
class Session:
    #: The loaded ``DeepSeekMagics`` (None until ``%load_ext ds_magic``).
    settings: Settings | None = None
    store: ConversationStore = field(default_factory=ConversationStore)
    api_key: str | None = None
    #: Requests started by cells that have not ended (``cancel_all`` stops them).
    active: set[Response] = field(default_factory=set)
    #: The last request a cell started.
    last: Response | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    clients: dict[ClientKey, Client] = field(default_factory=dict)

    def client(self, settings: Settings | None) -> Client:
        """The pooled client for these settings and the session's key (raises the core's errors:
        ``MissingAPIKeyError``, ``ValueError`` for a bad base URL)."""
        key = self.api_key
        base_url = settings.base_url if settings is not None else ""
        timeout = settings.timeout if settings is not None else None
        resume = settings.resume if settings is not None else 2
        redact = tuple(settings.redact) if settings is not None else ()
        dialect = settings.dialect if settings is not None else "auto"
        ident: ClientKey = (key or "", base_url, timeout, resume, redact, dialect)
        with self.lock:
            client = self.clients.get(ident)
            if client is None:
                client = Client(
                    api_key=key,
                    base_url=base_url or None,
                    timeout=timeout,
                    model=(settings.model if settings is not None else "") or DEFAULT_MODEL,
                    resume=resume,
                    redact=list(redact) or None,
                    dialect=dialect,
                )
                self.clients[ident] = client
            return client

    def set_api_key(self, key: str) -> None:
        """Use ``key`` from now on (clients built with the old key are dropped)."""
        with self.lock:
            self.api_key = key
            self.clients.clear()

    def track(self, resp: Response) -> None:
        """A cell started ``resp``: it is the last one, and active until it ends."""
        with self.lock:
            self.active.add(resp)
            self.last = resp
        resp.add_done_callback(self._forget)

    def _forget(self, resp: Response) -> None:
        with self.lock:
            self.active.discard(resp)

    def cancel_all(self) -> int:
        """Cancel every request a cell started that is still running; how many there were."""
        with self.lock:
            active = list(self.active)
        for r in active:
            r.cancel()
        return len(active)

    def close(self) -> None:
        """The extension is unloaded: cancel what runs and forget the settings and clients."""
        self.cancel_all()
        with self.lock:
            self.settings = None
            self.clients.clear()


session = Session()


def cancel_all() -> int:
    """``%deepseek cancel-all``: cancel every running request started by a cell."""
    return session.cancel_all()
