"""The one place where HTTP-level failures become ds_magic errors (errors.py has the tree)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    DeepSeekError,
    InsufficientBalanceError,
    RateLimitError,
    ServerError,
)

__all__ = ["error_from_response", "error_from_transport", "body_preview", "transport_detail"]

_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientBalanceError,
    422: BadRequestError,
    429: RateLimitError,
}

_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def body_preview(body: bytes, content_type: str) -> tuple[str, Any]:
    """The server's message and parsed body, for JSON, HTML and plain-text error bodies alike.

    DeepSeek errors are JSON (deepseek-api.md §3.2) but a proxy may answer with an HTML page and
    old deserialisation errors came as plain text: report those, never feed them to a decoder.
    """
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return "", None
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        err = parsed.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"], parsed
        if isinstance(err, str):
            return err, parsed
        if isinstance(parsed.get("message"), str):
            return parsed["message"], parsed
        return text[:200], parsed
    if "html" in content_type.lower() or text.lower().startswith(("<!doctype", "<html")):
        m = _TITLE.search(body)
        title = m.group(1).decode("utf-8", "replace").strip() if m else ""
        what = f"an HTML page ({title})" if title else "an HTML page"
        return f"the server answered with {what} instead of JSON, a proxy or gateway may be in the way", None
    return text[:200], None


def error_from_response(
    status: int, body: bytes, headers: httpx.Headers, retry_after: float | None = None
) -> APIStatusError:
    message, parsed = body_preview(body, headers.get("content-type", ""))
    if status == 429:
        return RateLimitError(status, message or "Rate Limit Reached", parsed, retry_after=retry_after)
    cls = _STATUS_CLASSES.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else APIStatusError
    if status == 404:
        return cls(
            status,
            message or "Not Found",
            parsed,
            hint="check DEEPSEEK_BASE_URL (normally https://api.deepseek.com)",
        )
    return cls(status, message, parsed)


def error_from_transport(exc: Exception, url: str, seconds: float | None = None) -> DeepSeekError:
    """httpx transport failures before the stream started."""
    if isinstance(exc, httpx.ConnectTimeout):
        return APITimeoutError("connect", seconds)
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError("first_token", seconds)
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        detail = f"connection failed ({detail})"
    elif isinstance(exc, httpx.RemoteProtocolError):
        detail = f"the server closed the connection before answering ({detail})"
    return APIConnectionError(detail, url)


def transport_detail(exc: Exception) -> str:
    """What broke, for an httpx transport failure after the answer had started."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the server closed the connection mid-answer ({text})"
    return f"the connection broke mid-answer ({text})"
