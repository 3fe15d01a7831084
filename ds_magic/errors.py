"""The one error tree of ds_magic.

::

    DeepSeekError
     ├─ MissingAPIKeyError              no key configured; says how to set one
     ├─ APIStatusError (status_code, body)   an HTTP error answer from the API
     │   ├─ BadRequestError              400, 422
     │   ├─ AuthenticationError          401
     │   ├─ InsufficientBalanceError     402
     │   ├─ RateLimitError (retry_after) 429
     │   └─ ServerError                  5xx
     ├─ APITimeoutError (kind, partial)  connect / first-token / idle / total deadline
     ├─ APIConnectionError               could not reach the server, or it hung up before answering
     ├─ StreamInterruptedError (partial) the stream broke after it had started
     ├─ StreamDecodeError (raw)          a data event that is not the JSON we expect
     └─ StreamError (partial)            an error object sent inside a 200 stream

Every message is one line that says what to do next. The API key never appears in any of
them: :func:`redact` scrubs anything that looks like a key from text taken from servers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

__all__ = [
    "DeepSeekError",
    "MissingAPIKeyError",
    "APIStatusError",
    "BadRequestError",
    "AuthenticationError",
    "InsufficientBalanceError",
    "RateLimitError",
    "ServerError",
    "APITimeoutError",
    "APIConnectionError",
    "StreamInterruptedError",
    "StreamDecodeError",
    "StreamError",
    "SecretInPromptError",
    "redact",
    "with_partial",
]

# DeepSeek keys look like "sk-" + 32 hex; be generous so that other bearer-like secrets are caught too.
_KEY_RE = re.compile(r"(sk-[A-Za-z0-9_\-]{6,}|Bearer\s+[A-Za-z0-9_\-\.]{8,})")


def redact(text: str, *secrets: str | None) -> str:
    """Remove API keys from ``text``: the given secrets and anything shaped like a key."""
    for s in secrets:
        if s:
            text = text.replace(s, "****")
    return _KEY_RE.sub("****", text)


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class DeepSeekError(Exception):
    """Base class of every error ds_magic raises on purpose.

    The message is ``what`` happened, then `` — `` and the ``hint``: what to do, in core terms
    (``DEEPSEEK_API_KEY``, ``Client(timeout=...)``). A user interface may show its own hint for the
    same error instead (the notebook layer names ``%deepseek key``, ``%config ...``).
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.what = _one_line(redact(message))
        self.hint = _one_line(redact(hint)) if hint else None
        super().__init__(f"{self.what} — {self.hint}" if self.hint else self.what)

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class MissingAPIKeyError(DeepSeekError):
    def __init__(self, message: str | None = None) -> None:
        if message is not None:
            super().__init__(message)
        else:
            super().__init__(
                "No DeepSeek API key",
                "set the DEEPSEEK_API_KEY environment variable or pass Client(api_key=...)",
            )


class APIStatusError(DeepSeekError):
    """The API answered with an HTTP error status."""

    status_code: int
    hint: str | None = "check the request and try again"

    def __init__(
        self, status_code: int, server_message: str, body: Any = None, hint: str | None = None
    ) -> None:
        self.status_code = status_code
        self.body = body
        self.server_message = _one_line(redact(server_message), 200)
        text = f"{status_code}: {self.server_message}" if self.server_message else f"HTTP {status_code}"
        super().__init__(text, hint or type(self).hint)


class BadRequestError(APIStatusError):
    hint = "the request was rejected as invalid; fix the parameters named in the message"


class AuthenticationError(APIStatusError):
    hint = "the API key was rejected; check DEEPSEEK_API_KEY (or Client(api_key=...))"


class InsufficientBalanceError(APIStatusError):
    hint = "the account has run out of balance; top up at platform.deepseek.com"


class RateLimitError(APIStatusError):
    hint = "too many concurrent requests; wait a little or lower the concurrency"

    def __init__(
        self, status_code: int, server_message: str, body: Any = None, retry_after: float | None = None
    ) -> None:
        self.retry_after = retry_after
        super().__init__(status_code, server_message, body)


class ServerError(APIStatusError):
    hint = "the DeepSeek server had a problem; try again in a moment"


class _PartialMixin:
    partial: str
    partial_reasoning: str


class APITimeoutError(DeepSeekError, _PartialMixin):
    """A deadline passed. ``kind`` is ``connect``, ``first_token``, ``idle`` or ``total``."""

    def __init__(
        self, kind: str, seconds: float | None, partial: str = "", partial_reasoning: str = ""
    ) -> None:
        self.kind = kind
        self.seconds = seconds
        self.partial = partial
        self.partial_reasoning = partial_reasoning
        what = {
            "connect": "could not connect",
            "first_token": "no answer started",
            "idle": "the answer stalled (no new text)",
            "total": "the request ran past its overall deadline",
        }.get(kind, kind)
        after = f" within {seconds:g} s" if seconds is not None and kind != "idle" else ""
        if kind == "idle" and seconds is not None:
            after = f" for {seconds:g} s"
        kept = f"; the partial answer ({len(partial)} chars) was kept" if partial else ""
        super().__init__(
            f"Timed out: {what}{after}{kept}", "try again, or raise the timeout (Client(timeout=...))"
        )


class APIConnectionError(DeepSeekError):
    def __init__(self, detail: str, url: str = "") -> None:
        where = f" to {url}" if url else ""
        super().__init__(
            f"Could not connect{where}: {detail}", "check the network and DEEPSEEK_BASE_URL, then try again"
        )


class StreamInterruptedError(DeepSeekError, _PartialMixin):
    """The stream broke after it had started; what arrived is in ``partial``."""

    def __init__(self, detail: str, partial: str = "", partial_reasoning: str = "") -> None:
        self.partial = partial
        self.partial_reasoning = partial_reasoning
        self.detail = detail
        kept = f"; the partial answer ({len(partial)} chars) was kept" if partial or partial_reasoning else ""
        super().__init__(f"The answer was interrupted: {detail}{kept}", "send it again to retry")


class StreamDecodeError(DeepSeekError):
    """A data event that could not be decoded as a DeepSeek chunk."""

    def __init__(self, detail: str, raw: str) -> None:
        self.raw = raw
        preview = raw[:80] + ("…" if len(raw) > 80 else "")
        super().__init__(
            f"DeepSeek sent data that is not valid JSON ({detail}): {preview!r}",
            "check the API status and try again",
        )


class StreamError(DeepSeekError, _PartialMixin):
    """An ``{"error": {...}}`` object arrived inside a successful (200) stream."""

    def __init__(
        self, server_message: str, body: Any = None, partial: str = "", partial_reasoning: str = ""
    ) -> None:
        self.body = body
        self.partial = partial
        self.partial_reasoning = partial_reasoning
        super().__init__(
            f"The server reported an error mid-stream: {server_message}", "try again in a moment"
        )


def with_partial(exc: DeepSeekError, partial: str, partial_reasoning: str) -> DeepSeekError:
    """``exc`` carrying what had arrived when it ended the answer (its message says what was kept)."""
    if isinstance(exc, StreamInterruptedError):
        return StreamInterruptedError(exc.detail, partial, partial_reasoning)
    if isinstance(exc, _PartialMixin):
        exc.partial, exc.partial_reasoning = partial, partial_reasoning
    return exc


class SecretInPromptError(DeepSeekError):
    """The prompt looks like it holds a secret, so it was not sent (guard.py).

    ``findings`` says what kind and where; the secret itself is never part of the message.
    """

    def __init__(self, findings: Sequence[Any]) -> None:
        self.findings = list(findings)
        first = self.findings[0].describe()
        more = f" and {len(self.findings) - 1} more" if len(self.findings) > 1 else ""
        super().__init__(
            f"Not sent: the prompt contains what looks like {first}{more}",
            "remove it, or pass allow_secrets=True if you really mean to send it",
        )
