"""The one place where HTTP-level failures become ds_magic errors (errors.py has the tree).

Every known httpx failure gets a cause and a fix here, never "Unexpected error: DecodingError"; a
3xx becomes :class:`RedirectError` (redirects are never followed: the runner and the client send
each request with ``follow_redirects=False``). Error bodies are read with a cap (``read_limited``).
"""

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
    RedirectError,
    ServerError,
    StreamDecodeError,
)
from .retry import RetryPolicy, is_retryable_status, parse_retry_after

__all__ = [
    "MAX_ERROR_BODY",
    "body_preview",
    "check_event_stream",
    "decoding_error",
    "error_from_exception",
    "error_from_response",
    "error_from_transport",
    "read_limited",
    "status_error",
    "transport_detail",
]

MAX_ERROR_BODY = 64 * 1024

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
    except (ValueError, RecursionError):
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


def _location(headers: httpx.Headers, url: str) -> str | None:
    """Where a redirect points: host[:port], resolved against the request URL."""
    loc = headers.get("location")
    if not loc:
        return None
    try:
        target = httpx.URL(url).join(loc) if url else httpx.URL(loc)
    except (httpx.InvalidURL, ValueError):
        return f"an unreadable Location ({loc[:80]!r})"
    host = target.host or "the same host"
    return f"{host}:{target.port}" if target.port else host


def error_from_response(
    status: int,
    body: bytes,
    headers: httpx.Headers,
    *,
    url: str = "",
    retry_after: float | None = None,
    asked: float | None = None,
    max_wait: float | None = None,
) -> APIStatusError:
    """The error for an HTTP answer other than 200. ``asked``: the server's Retry-After when it is
    longer than we wait (``max_wait``), which is then why the request was not retried."""
    if 300 <= status < 400:
        return RedirectError(status, _location(headers, url))
    message, parsed = body_preview(body, headers.get("content-type", ""))
    hint = None
    if asked is not None and max_wait is not None:
        hint = (
            f"the server asked to wait {asked:g} s before retrying, longer than the {max_wait:g} s we "
            "wait (RetryPolicy(max_retry_after=...)); wait that long, then try again"
        )
    if status == 429:
        return RateLimitError(
            status,
            message or "Rate Limit Reached",
            parsed,
            retry_after=asked if asked is not None else retry_after,
            hint=hint,
        )
    cls = _STATUS_CLASSES.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else APIStatusError
    if status == 404:
        return cls(status, message or "Not Found", parsed, hint=not_found_hint(url))
    return cls(status, message, parsed, hint=hint)


def not_found_hint(url: str) -> str:
    """A 404's hint names what was missing: a DeepSeek-only endpoint is not a wrong base URL (issue 15)."""
    try:
        parsed = httpx.URL(url)
        path, origin = parsed.path, f"{parsed.scheme}://{parsed.netloc.decode('ascii', 'replace')}"
    except (httpx.InvalidURL, ValueError):
        path, origin = "", ""
    where = f"{origin} has no {path}" if path else "the server has no such endpoint"
    if path.endswith("/user/balance"):
        return f"{where}: the balance is a DeepSeek-only endpoint, this server does not offer it"
    if "/beta/" in path:
        return (
            f"{where}: DeepSeek's beta endpoint (prefix completion, FIM) is not offered by this server; "
            "Client(dialect='openai') does not use it"
        )
    return (
        f"{where}: check DEEPSEEK_BASE_URL (normally https://api.deepseek.com; other servers often want /v1)"
    )


_TLS_HINT = "check the system clock, and SSL_CERT_FILE if a proxy re-signs TLS traffic"
_PROXY_HINT = "check the HTTPS_PROXY / HTTP_PROXY / ALL_PROXY environment variables, then try again"


def error_from_transport(exc: Exception, url: str, seconds: float | None = None) -> DeepSeekError:
    """httpx failures outside an answer's body: each known kind with its cause and fix."""
    if isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)):
        return APITimeoutError("connect", seconds)
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError("first_token", seconds)
    if isinstance(exc, httpx.DecodingError):
        return decoding_error(exc, None)
    text = str(exc) or type(exc).__name__
    hint = None
    if isinstance(exc, httpx.ConnectError) and ("CERTIFICATE" in text or "SSL" in text):
        detail, hint = f"the server's TLS certificate was not accepted ({text})", _TLS_HINT
    elif isinstance(exc, httpx.ConnectError):
        detail = f"connection failed ({text})"
    elif isinstance(exc, httpx.RemoteProtocolError):
        detail = f"the server closed the connection before answering ({text})"
    elif isinstance(exc, httpx.ProxyError):
        detail, hint = f"the proxy failed ({text})", _PROXY_HINT
    elif isinstance(exc, httpx.UnsupportedProtocol):
        detail = f"the address is not http:// or https:// ({text})"
    elif isinstance(exc, httpx.LocalProtocolError):
        detail = f"the request could not be sent as HTTP ({text})"
    elif isinstance(exc, httpx.TooManyRedirects):
        detail = f"the server kept redirecting ({text}); redirects are never followed"
    else:
        detail = f"the connection failed ({type(exc).__name__}: {text})"
    return APIConnectionError(detail, url, hint)


def error_from_exception(exc: Exception, url: str) -> DeepSeekError:
    """Whatever ended a request, as a ds_magic error: ours as it is, a known httpx failure with its
    cause and fix, anything else (a bug) as "Unexpected error", so the response still ends."""
    if isinstance(exc, DeepSeekError):
        return exc
    if isinstance(exc, httpx.HTTPError):
        return error_from_transport(exc, url)
    return DeepSeekError(f"Unexpected error: {type(exc).__name__}: {exc}")


def decoding_error(exc: Exception, encoding: str | None) -> StreamDecodeError:
    """A body that is not what its Content-Encoding says (a proxy that mangles the stream)."""
    marked = f"is marked Content-Encoding: {encoding}" if encoding else "has a Content-Encoding"
    return StreamDecodeError(
        str(exc) or type(exc).__name__,
        summary=f"The server's reply {marked} but could not be decoded",
        hint="a proxy between here and DEEPSEEK_BASE_URL may be mangling the stream; check it, then try again",
    )


async def read_limited(response: httpx.Response, limit: int = MAX_ERROR_BODY) -> bytes:
    """At most ``limit`` bytes of a body (an error page, a small JSON answer): a server cannot make
    us hold more."""
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            parts.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
    except httpx.DecodingError as exc:
        raise decoding_error(exc, response.headers.get("content-encoding")) from None
    return b"".join(parts)[:limit]


async def status_error(
    response: httpx.Response, url: str, retry: RetryPolicy, attempt: int
) -> tuple[APIStatusError, float | None]:
    """The error of an answer other than 200, and how long to wait before retrying it (None: not
    retried). A retryable status with no delay is one whose server asked for longer than we wait."""
    raw = await read_limited(response)
    retryable = is_retryable_status(response.status_code)
    delay = retry.delay(attempt, response.headers) if retryable else None
    asked = parse_retry_after(response.headers, retry.clock()) if retryable and delay is None else None
    err = error_from_response(
        response.status_code,
        raw,
        response.headers,
        url=url,
        retry_after=delay,
        asked=asked,
        max_wait=retry.max_retry_after,
    )
    return err, delay


async def check_event_stream(response: httpx.Response, url: str) -> None:
    """Like httpx-sse's Content-Type check: a 200 that is not an event stream is never decoded."""
    ctype = response.headers.get("content-type", "")
    if "text/event-stream" in ctype.split(";")[0].lower():
        return
    raw = await read_limited(response)
    if ctype.split(";")[0].strip().lower() == "application/json" and b'"error"' in raw[:4096]:
        raise error_from_response(502, raw, response.headers, url=url)
    raise StreamDecodeError(
        f"expected an event stream but the server sent {ctype or 'no content type'}",
        raw[:200].decode("utf-8", "replace"),
    )


def transport_detail(exc: Exception) -> str:
    """What broke, for an httpx transport failure after the answer had started."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the server closed the connection mid-answer ({text})"
    return f"the connection broke mid-answer ({text})"
