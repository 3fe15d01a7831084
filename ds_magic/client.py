"""``Client``: start DeepSeek chat requests on the engine and get a streaming ``Response`` back at once."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from .engine import get_engine
from .transport import body_preview, error_from_response, error_from_transport
from .retry import RetryPolicy
from .runner import RequestSpec, Timeout, run_request
from .errors import MissingAPIKeyError, SecretInPromptError
from .response import Response

if TYPE_CHECKING:
    from .cache import ResponseCache
    from .conversation import Conversation
    from .redact import RedactRules

__all__ = ["Client", "DEFAULT_BASE_URL", "DEFAULT_MODEL", "build_body"]

DEFAULT_BASE_URL = "https://api.deepseek.com"
DEFAULT_MODEL = "deepseek-flash"

_EFFORTS = ("minimal", "low", "medium", "high", "xhigh", "max", "ultra")


def _thinking(value: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, bool):
        return {"type": "enabled" if value else "disabled"}
    if value in ("enabled", "disabled"):
        return {"type": str(value)}
    raise ValueError(f"thinking must be True, False, 'enabled' or 'disabled', got {value!r}")


def build_body(
    messages: list[dict[str, Any]],
    model: str,
    *,
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
    stop: str | Sequence[str] | None = None,
    response_format: Mapping[str, Any] | str | None = None,
    thinking: bool | str | Mapping[str, Any] | None = None,
    reasoning_effort: str | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: str | Mapping[str, Any] | None = None,
    user_id: str | None = None,
    extra_body: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body of a streaming chat request (deepseek-api.md §1.5), with clear errors for bad values."""
    if not isinstance(model, str) or not model:
        raise ValueError("model must be a model name such as 'deepseek-flash'")
    if not messages:
        raise ValueError("messages is empty: give a prompt or a list of {'role': ..., 'content': ...} dicts")
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if temperature is not None:
        if not 0 <= float(temperature) <= 2:
            raise ValueError(f"temperature must be between 0 and 2, got {temperature}")
        body["temperature"] = float(temperature)
    if top_p is not None:
        if not 0 < float(top_p) <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        body["top_p"] = float(top_p)
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        body["max_tokens"] = max_tokens
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else list(stop)
        if len(stops) > 16 or not all(isinstance(s, str) and s for s in stops):
            raise ValueError("stop must be a string or a list of at most 16 non-empty strings")
        body["stop"] = stops if len(stops) > 1 else stops[0]
    if response_format is not None:
        body["response_format"] = (
            {"type": response_format} if isinstance(response_format, str) else dict(response_format)
        )
    if thinking is not None:
        body["thinking"] = _thinking(thinking)
    if reasoning_effort is not None:
        if reasoning_effort not in _EFFORTS:
            raise ValueError(
                f"reasoning_effort must be one of {', '.join(_EFFORTS)}, got {reasoning_effort!r}"
            )
        body["reasoning_effort"] = reasoning_effort
    if tools is not None:
        body["tools"] = [dict(t) for t in tools]
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    if user_id is not None:
        body["user_id"] = user_id
    if extra_body:
        body.update(extra_body)
    return body


def _track(resp: Response) -> None:
    from .records import track  # imported at the first request, not with the client

    track(resp)


def _resolve_cache(cache: ResponseCache | bool | None) -> ResponseCache | None:
    if cache is None or cache is False:
        return None  # no sqlite3 import unless a cache is asked for
    from .cache import resolve

    return resolve(cache)


def _check_messages(messages: Any) -> list[dict[str, Any]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    if not isinstance(messages, Sequence) or not all(
        isinstance(m, Mapping) and "role" in m for m in messages
    ):
        raise ValueError("messages must be a prompt string or a list of {'role': ..., 'content': ...} dicts")
    return [dict(m) for m in messages]


class Client:
    """A DeepSeek client. Requests run on the shared engine thread; ``chat`` returns at once.

    >>> client = Client()                     # key from DEEPSEEK_API_KEY
    >>> for event in client.chat("Hi"): ...   # stream
    >>> client.chat("Hi").text                # or wait for the answer
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: Timeout | float | None = None,
        max_retries: int = 2,
        retry: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
        model: str = DEFAULT_MODEL,
        cache: ResponseCache | bool | None = None,
        resume: int = 2,
        filters: RedactRules | Sequence[str | re.Pattern[str]] | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("DEEPSEEK_API_KEY", "")
        key = key.strip()
        if not key:
            raise MissingAPIKeyError()
        if not key.isascii() or any(c.isspace() for c in key):
            raise MissingAPIKeyError(
                "The DeepSeek API key has spaces or non-ASCII characters: copy it again from platform.deepseek.com/api_keys."
            )
        self._api_key = key
        base = base_url or os.environ.get("DEEPSEEK_BASE_URL") or DEFAULT_BASE_URL
        if not base.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base!r}")
        self.base_url = base.rstrip("/")
        self.timeout = Timeout.coerce(timeout)
        self.retry = retry if retry is not None else RetryPolicy(max_retries=max_retries)
        self.model = model
        self._http = http_client
        # Opt-in response cache (cache.py): True = the default file, or a ResponseCache.
        self.cache: ResponseCache | None = _resolve_cache(cache)
        # A stream that breaks after text arrived is continued by chat prefix completion on the
        # beta endpoint, at most this many times per answer (deepseek-api.md §4.3); 0 turns it off.
        if not isinstance(resume, int) or isinstance(resume, bool) or resume < 0:
            raise ValueError(f"resume must be a whole number of resumes >= 0 (0 = off), got {resume!r}")
        self.resume = resume
        # Words and patterns masked in every answer as it streams (redact.py): words, "re:<pattern>"
        # or compiled patterns. Checked here, so a bad rule is an error now, not mid-stream.
        self.filters: RedactRules | None = None
        if filters is not None:
            from .redact import RedactRules  # only when asked for: keeps `import ds_magic` light

            self.filters = RedactRules.coerce(filters)

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r}, api_key='****{self._api_key[-4:] if len(self._api_key) >= 16 else ''}')"

    @property
    def masked_key(self) -> str:
        return "****" + (self._api_key[-4:] if len(self._api_key) >= 16 else "")

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._api_key}",
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            # A compressing intermediary can re-batch deltas; ask for the bytes as they are made.
            "Accept-Encoding": "identity",
        }

    def _url(self, path: str, beta: bool = False) -> str:
        base = self.base_url
        if beta:
            base = base.removesuffix("/v1").removesuffix("/beta") + "/beta"
        return base + path

    def chat(
        self,
        messages: str | Sequence[Mapping[str, Any]],
        *,
        model: str | None = None,
        conversation: Conversation | None = None,
        system: str | None = None,
        beta: bool = False,
        timeout: Timeout | float | None = None,
        cache: ResponseCache | bool | None = None,
        allow_secrets: bool = False,
        **params: Any,
    ) -> Response:
        """Start a streaming chat request and return its :class:`Response` at once.

        ``messages`` is a prompt string or a list of message dicts. With ``conversation``, it must be
        the new prompt: the request carries the conversation's history, is queued behind any earlier
        turn of the same conversation, and the exchange is stored there when it ends.
        Parameters: temperature, top_p, max_tokens, stop, response_format, thinking,
        reasoning_effort, tools, tool_choice, user_id, extra_body.
        ``cache`` overrides the client's response cache for this call (False: none).
        A prompt that looks like it holds a secret (an API key, a private key block, this client's
        own key) raises :class:`SecretInPromptError` and is not sent, unless ``allow_secrets=True``.
        """
        if not allow_secrets:
            self._guard(messages, system)
        model = model or self.model
        prepare = None
        lock = None
        if conversation is not None:
            if not isinstance(messages, str):
                raise ValueError("with conversation=..., pass the new prompt as a string")
            prompt = messages
            thinking_on = _thinking(params.get("thinking", True)).get("type") != "disabled"
            probe = build_body(
                [{"role": "user", "content": prompt}], model, **params
            )  # validate now, in the caller

            def prepare(body: dict[str, Any]) -> dict[str, Any]:
                msgs = conversation.messages(
                    prompt, system=system, thinking=thinking_on, tools=bool(params.get("tools"))
                )
                return {**body, "messages": msgs}

            body = probe
            lock = conversation.__dict__.setdefault("_ds_engine_lock", asyncio.Lock())
        else:
            msgs = _check_messages(messages)
            if system is not None:
                msgs = [
                    {"role": "system", "content": system},
                    *[m for m in msgs if m.get("role") != "system"],
                ]
            body = build_body(msgs, model, **params)
        resp = Response(
            model=model,
            request=body,
            chat=conversation.name if conversation is not None else None,
            redact=self.filters,
        )
        if conversation is not None:
            conv, prompt_text = conversation, messages
            resp.add_done_callback(lambda r: conv.record(str(prompt_text), r))
        _track(resp)  # a run record when it ends: ds_magic.records() / stats() / metrics
        spec = RequestSpec(
            url=self._url("/chat/completions", beta),
            headers=self._headers(),
            body=body,
            timeout=Timeout.coerce(timeout) if timeout is not None else self.timeout,
            retry=self.retry,
            prepare=prepare,
            lock=lock,
            resume=self.resume,
            resume_url=self._url("/chat/completions", beta=True),
        )
        engine = get_engine()
        http = self._http if self._http is not None else engine.http
        store = self.cache if cache is None else _resolve_cache(cache)
        if store is not None:
            from .cache import run_cached

            engine.submit(run_cached(resp, http, spec, store, beta=beta))
        else:
            engine.submit(run_request(resp, http, spec))
        return resp

    def _guard(self, messages: str | Sequence[Mapping[str, Any]], system: str | None) -> None:
        """The outbound secret check (guard.py): what the user is about to send, never the reply."""
        texts: list[tuple[str, str]] = []
        if isinstance(messages, str):
            texts.append(("prompt", messages))
        else:
            for i, m in enumerate(messages):
                content = m.get("content") if isinstance(m, Mapping) else None
                if isinstance(content, str) and m.get("role") in ("user", "system"):
                    texts.append((f"message {i + 1}", content))
        if system:
            texts.append(("system prompt", system))
        from .guard import check_messages

        found = check_messages(texts, api_key=self._api_key)
        if found:
            raise SecretInPromptError(found)

    # ----------------------------------------------------------------- small JSON endpoints
    def _get_json(self, path: str) -> Any:
        async def get() -> Any:
            engine = get_engine()
            http = self._http if self._http is not None else engine.http
            t = self.timeout
            try:
                r = await http.get(
                    self._url(path),
                    headers={"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"},
                    timeout=httpx.Timeout(
                        connect=t.connect, read=t.first_token, write=t.connect, pool=t.connect
                    ),
                )
            except httpx.TransportError as exc:
                raise error_from_transport(exc, self._url(path), t.connect) from None
            if r.status_code != 200:
                raise error_from_response(r.status_code, r.content, r.headers)
            try:
                return r.json()
            except ValueError:
                msg, _ = body_preview(r.content, r.headers.get("content-type", ""))
                raise error_from_response(502, r.content, r.headers) from ValueError(msg)

        return get_engine().run(get())

    def models(self) -> list[str]:
        """Model ids from ``GET /models``."""
        data = self._get_json("/models")
        return [m["id"] for m in data.get("data", []) if isinstance(m, dict) and "id" in m]

    def balance(self) -> dict[str, Any]:
        """The account balance from ``GET /user/balance``."""
        data = self._get_json("/user/balance")
        return data if isinstance(data, dict) else {}
