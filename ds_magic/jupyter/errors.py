"""The one error edge of the notebook layer: a core error becomes the notebook's one-line message.

Core errors say what happened (``.what``) and what to do in core terms (``.hint``: ``DEEPSEEK_API_KEY``,
``Client(timeout=...)``). In a notebook the user acts through ``%deepseek key``, ``%config
DeepSeekMagics...`` and cell options, so the edge swaps the hint for one in those terms, per error
class. Every cell failure and every inline error of the chat is worded here.
"""

from __future__ import annotations

from IPython.core.error import UsageError

from ..errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    DeepSeekError,
    MissingAPIKeyError,
    SecretInPromptError,
    StreamInterruptedError,
)
from ..response import Response

__all__ = ["DeepSeekCellError", "CELL_HINTS", "CHAT_HINTS", "error_text", "cell_error", "ended_text"]


class DeepSeekCellError(UsageError):
    """Shown by IPython as one line (no traceback), and the cell fails so Run All stops."""


#: The notebook's hint per core error class (first match wins); other errors keep the core's hint.
CELL_HINTS: dict[type[DeepSeekError], str] = {
    MissingAPIKeyError: "set DEEPSEEK_API_KEY or run %deepseek key",
    AuthenticationError: "the API key was rejected; check DEEPSEEK_API_KEY or run %deepseek key",
    APITimeoutError: "try again, or raise the timeout: %config DeepSeekMagics.timeout = 600",
    APIConnectionError: "check the network and the base URL (DEEPSEEK_BASE_URL or "
    "%config DeepSeekMagics.base_url), then try again",
    StreamInterruptedError: "run the cell again to retry",
    SecretInPromptError: "remove it, or add --allow-secrets if you really mean to send it",
}

#: The chat has no cell to run again and no cell options: its own words for those two.
CHAT_HINTS: dict[type[DeepSeekError], str] = {
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
                return f"{exc.what.rstrip('.')} — {hint}"
    return " ".join(str(exc).split())


def ended_text(resp: Response, *, chat: bool = False) -> str:
    """Why a request that did not end "ok" failed, in the notebook's words."""
    if resp.error is not None:
        return error_text(resp.error, chat=chat)
    return f"The request ended with status {resp.status}"


def cell_error(exc: BaseException) -> DeepSeekCellError:
    """``raise cell_error(exc) from None``: the cell fails with the notebook's one-line message."""
    return DeepSeekCellError(error_text(exc))
