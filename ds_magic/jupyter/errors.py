"""The one error edge of the notebook layer: a core error becomes the notebook's one-line message.

Core errors say what happened (``.what``) and what to do in core terms (``.hint``: ``DEEPSEEK_API_KEY``,
``Client(timeout=...)``). In a notebook the user acts through ``%deepseek key``, ``%config
DeepSeekMagics...`` and cell options, so the edge swaps the hint for one in those terms, per error
class. Every cell failure and every inline error of the chat is worded here.

How IPython shows them (issue 13): IPython special-cases ``etype is UsageError`` only, so a subclass
would get the whole traceback through ``await __ds_magic_run__(...)`` and the magic's frames. Both
IPython's ``InteractiveShell.showtraceback`` (terminal) and ipykernel (whose ``_showtraceback`` sends
the ``error`` iopub message and keeps it for the ``execute_reply``) use an exception's
``_render_traceback_()`` as the structured traceback when it has one (IPython 8 and 9 alike), so
:class:`DeepSeekCellError` renders as its one line, plain text like IPython's own ``UsageError:``
line (no ANSI codes: the frontends show it in the same stderr colours), and the cell still fails, so
Run All stops. An exception we did not anticipate becomes a :class:`DeepSeekBugError` (bug_report.py):
the real traceback, headed by a line saying it is a ds_magic bug and how to report it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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
from .bug_report import DeepSeekBugError

__all__ = [
    "DeepSeekCellError",
    "CELL_HINTS",
    "CHAT_HINTS",
    "CACHE_OFF",
    "LOG_WORDING",
    "error_text",
    "cell_error",
    "stopped_error",
    "batch_stopped_error",
    "cell_edge",
    "DeepSeekBugError",
    "ended_text",
]


class DeepSeekCellError(UsageError):
    """Shown by IPython as one line (no traceback), and the cell fails so Run All stops.

    ``label`` is the word before the colon: ``UsageError`` for what the user can fix in the cell, the
    core error's class name (``AuthenticationError``, ``RateLimitError``) for a failed request, and
    ``KeyboardInterrupt`` for ■ / Ctrl-C.
    """

    def __init__(self, message: str, *, label: str = "UsageError") -> None:
        super().__init__(message)
        self.label = label

    def _render_traceback_(self) -> list[str]:
        # IPython's structured traceback: a list of lines, joined for the terminal and sent as the
        # error message's ``traceback`` by ipykernel. One line (a stray newline in a server's
        # message included), and no frame of ours.
        return [f"{self.label}: {' '.join(str(self).split())}"]


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
    label = type(exc).__name__ if isinstance(exc, DeepSeekError) else "UsageError"
    return DeepSeekCellError(error_text(exc), label=label)


def stopped_error(resp: Response, *, history: bool = True) -> DeepSeekCellError:
    """■ / Ctrl-C during a stream: the same one line in every wait mode and in the terminal."""
    tokens = resp.timing.tokens
    if not tokens and not resp.text_so_far and not resp.reasoning:
        return DeepSeekCellError(
            "Stopped before the first token; nothing was received", label="KeyboardInterrupt"
        )
    where = "_ds_last and the history, marked cancelled" if history else "_ds_last"
    return DeepSeekCellError(
        f"Stopped after {tokens} tokens; the partial answer is kept in {where}", label="KeyboardInterrupt"
    )


def batch_stopped_error(done: int, total: int) -> DeepSeekCellError:
    """■ / Ctrl-C during ``--each``: what finished is kept."""
    return DeepSeekCellError(
        f"Stopped with {done} of {total} answers finished; the batch is kept in _ds_batch",
        label="KeyboardInterrupt",
    )


@contextmanager
def cell_edge() -> Iterator[None]:
    """Around everything a ``%%deepseek`` / ``%deepseek`` runs: what fails leaves as one line, and
    what we did not anticipate as a :class:`DeepSeekBugError` (a traceback that says so).

    IPython's own ``UsageError`` becomes ours too: IPython shows a plain one on stderr and sends no
    ``error`` message, so a frontend would not see the cell fail. An ``OSError`` (a file that is not
    there, a folder not writable) is the machine's, not a bug. ■ / Ctrl-C where no stream was
    being waited for (the waits say "Stopped after N tokens" themselves) is one line too.
    """
    try:
        yield
    except DeepSeekCellError:
        raise
    except UsageError as exc:
        raise DeepSeekCellError(str(exc)) from None
    except DeepSeekError as exc:
        raise cell_error(exc) from None
    except OSError as exc:
        raise DeepSeekCellError(" ".join(str(exc).split()), label=type(exc).__name__) from None
    except (KeyboardInterrupt, asyncio.CancelledError):
        raise DeepSeekCellError("Stopped", label="KeyboardInterrupt") from None
    except Exception as exc:
        raise DeepSeekBugError(exc) from exc


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
