"""The one error tree of ds_magic.

::

    DeepSeekError
     ├─ MissingAPIKeyError              no key configured; says how to set one
     ├─ APIStatusError (status_code, body)   an HTTP error answer from the API
     │   ├─ RedirectError (location)     3xx: never followed, nothing is sent to the other host
     │   ├─ BadRequestError              400, 422
     │   ├─ AuthenticationError          401
     │   ├─ InsufficientBalanceError     402
     │   ├─ RateLimitError (retry_after) 429
     │   └─ ServerError                  5xx
     ├─ APITimeoutError (kind, partial)  connect / first-token / idle / total deadline
     ├─ APIConnectionError               could not reach the server, or it hung up before answering
     ├─ StreamInterruptedError (partial) the stream broke after it had started
     ├─ StreamDecodeError (raw, partial) a data event that is not the JSON we expect
     │   └─ EventTooLargeError (limit)   one line or event over max_event_bytes
     ├─ StreamError (partial)            an error object sent inside a 200 stream
     ├─ SecretInPromptError (findings)   the prompt looks like it holds a secret: not sent
     ├─ CacheError (path)                the response cache folder or file is not safe or not usable
     ├─ DialectError                     a DeepSeek-only feature asked of a server of another dialect
     ├─ StructuredOutputError (problem)  an answer that is not valid against its schema, even after the retry
     ├─ ToolError                        a function that cannot be a tool (tools.py), found at registration
     └─ RunError (run)                   a persisted run cannot be used as asked (run_store.py)

Every message is one line that says what to do next. The API key never appears in any of
them, nor in any attribute that holds server text or a server body: :func:`redact` scrubs the
configured key itself, whatever its shape, and then anything that looks like a key. The runner and
the client run each request inside :func:`scrubbing` (its key), so every error made for that
request is scrubbed as it is made, the exact key before the patterns (a pattern that matched first
would leave part of an odd-shaped key behind).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Re-exported: the error tree and its scrubbing are one public surface (ds_magic.errors.redact).
from .scrub import MIN_SECRET_CHARS, redact, redact_json, scrubbing

__all__ = [
    "json_kind",
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
    "DialectError",
    "ToolError",
    "RedirectError",
    "EventTooLargeError",
    "CacheError",
    "StructuredOutputError",
    "RunError",
    "MIN_SECRET_CHARS",
    "redact",
    "redact_json",
    "scrubbing",
    "with_partial",
]


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
        self.body = redact_json(body)
        self.server_message = _one_line(redact(server_message), 200)
        text = f"{status_code}: {self.server_message}" if self.server_message else f"HTTP {status_code}"
        super().__init__(text, hint or type(self).hint)


class RedirectError(APIStatusError):
    """A 3xx answer. Redirects are never followed: the request (prompt, history, key) would go to
    another host, and a 302 would turn it into a GET. ``location`` is the host it pointed at."""

    hint = "set DEEPSEEK_BASE_URL (or Client(base_url=...)) to the address that answers directly"

    def __init__(self, status_code: int, location: str | None, body: Any = None) -> None:
        self.location = location
        where = location or "another address (no Location given)"
        super().__init__(
            status_code,
            f"the server redirected the request to {where}; redirects are never followed, so nothing was sent there",
            body,
        )


class BadRequestError(APIStatusError):
    hint = "the request was rejected as invalid; fix the parameters named in the message"


class AuthenticationError(APIStatusError):
    hint = "the API key was rejected; check DEEPSEEK_API_KEY (or Client(api_key=...))"


class InsufficientBalanceError(APIStatusError):
    hint = "the account has run out of balance; top up at platform.deepseek.com"


class RateLimitError(APIStatusError):
    hint = "too many concurrent requests; wait a little or lower the concurrency"

    def __init__(
        self,
        status_code: int,
        server_message: str,
        body: Any = None,
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(status_code, server_message, body, hint)


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
    def __init__(self, detail: str, url: str = "", hint: str | None = None) -> None:
        where = f" to {url}" if url else ""
        super().__init__(
            f"Could not connect{where}: {detail}",
            hint or "check the network and DEEPSEEK_BASE_URL, then try again",
        )


class StreamInterruptedError(DeepSeekError, _PartialMixin):
    """The stream broke after it had started; what arrived is in ``partial``."""

    def __init__(self, detail: str, partial: str = "", partial_reasoning: str = "") -> None:
        self.partial = partial
        self.partial_reasoning = partial_reasoning
        self.detail = detail
        kept = f"; the partial answer ({len(partial)} chars) was kept" if partial or partial_reasoning else ""
        super().__init__(f"The answer was interrupted: {detail}{kept}", "send it again to retry")


class StreamDecodeError(DeepSeekError, _PartialMixin):
    """A data event that could not be decoded as a DeepSeek chunk; what had arrived is in
    ``partial``. ``summary`` replaces the default "not valid JSON" for other decoding failures."""

    summary = "DeepSeek sent data that is not valid JSON"

    def __init__(
        self, detail: str, raw: str = "", *, summary: str | None = None, hint: str | None = None
    ) -> None:
        self.raw = redact(raw)
        self.detail = detail
        self.partial = self.partial_reasoning = ""
        preview = f": {self.raw[:80] + ('…' if len(self.raw) > 80 else '')!r}" if raw else ""
        super().__init__(
            f"{summary or self.summary} ({detail}){preview}", hint or "check the API status and try again"
        )


def json_kind(value: Any) -> str:
    """How a JSON value is named in an error message: "a string", "an object", "null"..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


def _size(n: int) -> str:
    for unit, name in ((1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= unit and n % unit == 0:
            return f"{n // unit} {name}"
    return f"{n:,} bytes"


class EventTooLargeError(StreamDecodeError):
    """One SSE line or event grew past ``max_event_bytes`` (an endless line, a hostile server)."""

    def __init__(self, limit: int, raw: str = "") -> None:
        self.limit = limit
        super().__init__(
            "max_event_bytes",
            raw,
            summary=f"DeepSeek sent an event larger than the {_size(limit)} limit",
            hint="the server or a proxy is misbehaving; if such events are expected, raise Client(max_event_bytes=...)",
        )


class StreamError(DeepSeekError, _PartialMixin):
    """An ``{"error": {...}}`` object arrived inside a successful (200) stream."""

    def __init__(
        self, server_message: str, body: Any = None, partial: str = "", partial_reasoning: str = ""
    ) -> None:
        self.body = redact_json(body)
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


class CacheError(DeepSeekError):
    """The response cache cannot be used safely or at all: a folder or file another user could
    read or write, a symlink, a damaged file. ``path`` is the folder or file concerned."""

    def __init__(self, message: str, hint: str, path: str) -> None:
        self.path = path
        super().__init__(message, hint)


class DialectError(DeepSeekError):
    """A DeepSeek-only feature (the balance, say) asked of a server that speaks another dialect."""


class StructuredOutputError(DeepSeekError):
    """An answer of a ``schema=`` batch that is not valid against the schema, after the one retry
    with the validation error fed back (structured_result.py). ``problem`` is what was wrong."""

    def __init__(self, problem: str, attempts: int) -> None:
        self.problem = problem
        self.attempts = attempts
        super().__init__(
            f"the answer does not match the schema after {attempts} tries: {problem}",
            "check the schema and the prompt (or raise max_tokens if the answer was cut off)",
        )


class ToolError(DeepSeekError):
    """A function that cannot be a tool (tools.py): a parameter with no JSON schema, a bad or repeated
    name, too many tools. Raised at registration; the message names the function and parameter."""


class RunError(DeepSeekError):
    """A persisted run (``batch(..., run=NAME)``) cannot be used as asked: other settings under the
    same name, unknown name, a damaged run file. ``run`` is the run's name."""

    def __init__(self, message: str, hint: str | None, run: str) -> None:
        self.run = run
        super().__init__(message, hint)
