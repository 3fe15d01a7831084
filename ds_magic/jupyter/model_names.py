"""A request that failed, in one line; for an unknown model, the line lists the models the server
offers (issue 13: "the messages give the fix").

The list comes from ``GET /models`` (deepseek-api.md §4.9), asked only once a request has been
refused for its model, not before every first cell, and kept per base URL for the kernel's life:
a server's model list does not change under a running notebook, and a failed look-up is not kept.
"""

from __future__ import annotations

import threading

from ..client import Client
from ..errors import APIStatusError, DeepSeekError
from ..response import Response
from .errors import DeepSeekCellError, ended_text

__all__ = ["is_unknown_model", "offered_models", "request_failed", "forget_models"]

_lock = threading.Lock()
_offered: dict[str, tuple[str, ...]] = {}


def is_unknown_model(exc: BaseException | None) -> bool:
    """DeepSeek's 400 "Model Not Exist" (deepseek-api.md §3), or the OpenAI-style 404
    ``model_not_found`` of another server of the ``openai`` dialect."""
    if not isinstance(exc, APIStatusError) or exc.status_code not in (400, 404):
        return False
    message = exc.server_message.lower()
    error = exc.body.get("error") if isinstance(exc.body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return "model not exist" in message or code == "model_not_found"


def offered_models(client: Client) -> tuple[str, ...] | None:
    """The model ids ``client``'s server lists, or None if it could not be asked."""
    with _lock:
        known = _offered.get(client.base_url)
    if known is not None:
        return known
    try:
        found = tuple(client.models())
    except (DeepSeekError, ValueError, TypeError, KeyError):
        return None  # the plain message then: it still says the model was refused
    if not found:
        return None
    with _lock:
        _offered[client.base_url] = found
    return found


def forget_models() -> None:
    """Drop the kept lists (the next unknown model asks the server again)."""
    with _lock:
        _offered.clear()


def request_failed(resp: Response, client: Client) -> DeepSeekCellError:
    """The cell's error for a request that ended "error" or "interrupted"."""
    exc = resp.error
    label = type(exc).__name__ if exc is not None else "UsageError"
    if is_unknown_model(exc):
        offered = offered_models(client)
        if offered and resp.model not in offered:
            return DeepSeekCellError(
                f"Unknown model {resp.model!r}: {client.base_url} offers {', '.join(offered)} "
                f"— pick one with -m NAME, or %config DeepSeekMagics.model = {offered[0]!r}",
                label=label,
            )
    return DeepSeekCellError(ended_text(resp), label=label)
