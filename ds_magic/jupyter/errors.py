"""The one error edge of the notebook layer: a core error becomes the notebook's one-line message.

Core errors say what happened (``.what``) and what to do in core terms (``.hint``: ``DEEPSEEK_API_KEY``,
``Client(timeout=...)``). In a notebook the user acts through ``%deepseek key``, ``%config
DeepSeekMagics...`` and cell options, so the edge swaps the hint for one in those terms, per error
class. Every cell failure and every inline error of the chat is worded here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from IPython.core.error import UsageError

from ..errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    CacheError,
    DeepSeekError,
    DialectError,
    EventTooLargeError,
    MissingAPIKeyError,
    RedirectError,
    SecretInPromptError,
    StreamInterruptedError,
)
from ..private_file import ELSEWHERE
from ..response import Response

__all__ = [
    "DeepSeekCellError",
    "CELL_HINTS",
    "CHAT_HINTS",
    "CACHE_OFF",
    "LOG_WORDING",
    "error_text",
    "cell_error",
    "ended_text",
]


class DeepSeekCellError(UsageError):
    """Shown by IPython as one line (no traceback), and the cell fails so Run All stops."""


#: The notebook's way out of a cache it cannot trust, instead of the core's ``ResponseCache(path=...)``.
CACHE_OFF = (
    "set XDG_CACHE_HOME to a folder of your own, or turn the cache off: %config DeepSeekMagics.cache = False"
)


def _cache_hint(exc: DeepSeekError) -> str:
    """The core's fix for that folder or file (chmod it, remove the link, delete a damaged file),
    with the notebook's way out in place of the core's."""
    hint = exc.hint or ELSEWHERE
    return hint.replace(ELSEWHERE, CACHE_OFF) if ELSEWHERE in hint else f"{hint}, or {CACHE_OFF}"


#: A fixed hint, or one made from the error (when the core's names the file to fix).
Hint = str | Callable[[DeepSeekError], str]

#: The notebook's hint per core error class (first match wins); other errors keep the core's hint.
CELL_HINTS: dict[type[DeepSeekError], Hint] = {
    MissingAPIKeyError: "set DEEPSEEK_API_KEY or run %deepseek key",
    AuthenticationError: "the API key was rejected; check DEEPSEEK_API_KEY or run %deepseek key",
    APITimeoutError: "try again, or raise the timeout: %config DeepSeekMagics.timeout = 600",
    APIConnectionError: "check the network and the base URL (DEEPSEEK_BASE_URL or "
    "%config DeepSeekMagics.base_url), then try again",
    StreamInterruptedError: "run the cell again to retry",
    SecretInPromptError: "remove it, or add --allow-secrets if you really mean to send it",
    RedirectError: "set DEEPSEEK_BASE_URL (or %config DeepSeekMagics.base_url) to the address that "
    "answers directly",
    # The magic has no setting for the event cap (Client(max_event_bytes=...) in code): a DeepSeek
    # event is far below it, so in a notebook the cause to look at is the server or proxy.
    EventTooLargeError: "the server or a proxy in between is misbehaving; check DEEPSEEK_BASE_URL "
    "(or %config DeepSeekMagics.base_url); the partial answer is kept",
    CacheError: _cache_hint,
    DialectError: "if that server really is DeepSeek's, say so: %config DeepSeekMagics.dialect = 'deepseek'",
}

#: The chat has no cell to run again and no cell options: its own words for those two.
CHAT_HINTS: dict[type[DeepSeekError], Hint] = {
    **CELL_HINTS,
    StreamInterruptedError: "send it again to retry",
    SecretInPromptError: "remove it, or pass Chat(allow_secrets=True) if you really mean to send it",
}


def error_text(exc: BaseException, *, chat: bool = False) -> str:
    """The one-line message the notebook shows for ``exc``, with the notebook's hint.

    A ``ValueError`` / ``TypeError`` of a bad parameter is shown as it is: it names the value.
    """
    if isinstance(exc, DeepSeekError):
        for cls, hint in (CHAT_HINTS if chat else CELL_HINTS).items():
            if isinstance(exc, cls):
                return f"{exc.what.rstrip('.')} — {hint if isinstance(hint, str) else hint(exc)}"
    return " ".join(str(exc).split())


def ended_text(resp: Response, *, chat: bool = False) -> str:
    """Why a request that did not end "ok" failed, in the notebook's words."""
    if resp.error is not None:
        return error_text(resp.error, chat=chat)
    return f"The request ended with status {resp.status}"


def cell_error(exc: BaseException) -> DeepSeekCellError:
    """``raise cell_error(exc) from None``: the cell fails with the notebook's one-line message."""
    return DeepSeekCellError(error_text(exc))


class _LogWording(logging.Filter):
    """The core logs the errors it recovers from (a cache it cannot use: the request is sent without
    it) with the error as an argument; in a notebook they read with the notebook's hint too."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, DeepSeekError) for a in args):
            record.args = tuple(error_text(a) if isinstance(a, DeepSeekError) else a for a in args)
        return True


#: Added to the ``ds_magic`` logger while the extension is loaded (extension.py).
LOG_WORDING = _LogWording()
