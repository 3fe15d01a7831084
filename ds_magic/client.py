"""``Client``: start DeepSeek chat requests on the engine and get a streaming ``Response`` back at once."""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

import httpx

from .deadlines import Timeout
from .dialect import Wire, check_dialect, known_dialect, to_openai
from .engine import get_engine
from .errors import DialectError, MissingAPIKeyError, SecretInPromptError, scrubbing
from .guard import Finding, check_messages, mask_key
from .request import plan_request
from .response import Response, ResponseWriter
from .retry import RetryPolicy
from .runner import RequestSpec, finish_in_turn, run_request
from .sse import DEFAULT_MAX_EVENT_BYTES
from .transport import error_from_response, error_from_transport, read_limited

if TYPE_CHECKING:
    from .cache import ResponseCache
    from .conversation import Conversation
    from .redact import RedactRules
    from .tool_loop import Approver, ToolLoop
    from .tools import Tool

__all__ = ["Client", "DEFAULT_BASE_URL", "DEFAULT_MODEL"]

DEFAULT_BASE_URL = "https://api.deepseek.com"
DEFAULT_MODEL = "deepseek-flash"
# The largest answer of a small JSON endpoint (/models, /user/balance) we read.
_MAX_JSON_BODY = 1024 * 1024


def _track(writer: ResponseWriter) -> None:
    from .run_records import track  # imported at the first request, not with the client

    track(writer)


def _resolve_cache(cache: ResponseCache | bool | None) -> ResponseCache | None:
    if cache is None or cache is False:
        return None  # no sqlite3 import unless a cache is asked for
    from .cache import resolve

    return resolve(cache)


def _check_base_url(base: str) -> None:
    """A base URL httpx would only reject at the first request (a bad port, no host) fails now."""
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"base_url must start with http:// or https://, got {base!r}")
    try:
        url = httpx.URL(base)
        ok = bool(url.host) and (url.port is None or 0 < url.port < 65536)
    except (httpx.InvalidURL, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"base_url is not a usable http(s) address (host and port), got {base!r}")


# One asyncio lock per conversation, taken on the engine loop: its turns run one after another, in
# the order they were asked (a cell and a chat turn of the same conversation included).
_turn_locks: weakref.WeakKeyDictionary[Conversation, asyncio.Lock] = weakref.WeakKeyDictionary()
_turn_locks_guard = threading.Lock()


def _turn_lock(conversation: Conversation) -> asyncio.Lock:
    with _turn_locks_guard:
        lock = _turn_locks.get(conversation)
        if lock is None:
            lock = _turn_locks[conversation] = asyncio.Lock()
        return lock


class Client:
    """A DeepSeek client. Requests run on the shared engine thread; ``chat`` returns at once.

    >>> client = Client()                     # key from DEEPSEEK_API_KEY
    >>> for event in client.chat("Hi"): ...   # stream
    >>> client.chat("Hi").text                # or wait for the answer

    ``max_event_bytes`` caps one line or event of a stream (default 16 MiB, far above any real
    DeepSeek event): a server that sends more ends the answer with :class:`EventTooLargeError`, the
    partial answer kept, instead of filling memory. Redirects are never followed, whatever
    ``http_client`` does: a 3xx is a :class:`RedirectError` naming where it pointed.

    ``dialect`` is what the server speaks (dialect.py): ``"deepseek"``, ``"openai"`` (any other
    OpenAI-compatible server: only standard fields are sent, DeepSeek-only ones are dropped with a
    note, a dropped stream is not resumed, no balance, no DeepSeek prices), or None (default): found
    from the base URL.
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
        redact: RedactRules | Sequence[str | re.Pattern[str]] | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        dialect: str | None = None,
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
        _check_base_url(base)
        self.base_url = base.rstrip("/")
        if (
            isinstance(max_event_bytes, bool)
            or not isinstance(max_event_bytes, int)
            or max_event_bytes < 1024
        ):
            raise ValueError(
                f"max_event_bytes must be a whole number of bytes ≥ 1024, got {max_event_bytes!r}"
            )
        self.max_event_bytes = max_event_bytes
        self.dialect = check_dialect(dialect)  # None: found from the base URL (dialect.py)
        self._noted: set[str] = set()  # DeepSeek-only fields already told as dropped
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
        self.redact: RedactRules | None = None
        if redact is not None:
            from .redact import RedactRules  # only when asked for: keeps `import ds_magic` light

            self.redact = RedactRules.coerce(redact)

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r}, api_key={mask_key(self._api_key)!r})"

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

    @overload
    def chat(
        self,
        messages: str | Sequence[Mapping[str, Any]] | None,
        *,
        tools: Sequence[Callable[..., Any] | Tool],
        max_steps: int = ...,
        approve: Approver | None = ...,
        **params: Any,
    ) -> ToolLoop: ...
    @overload
    def chat(
        self,
        messages: str | Sequence[Mapping[str, Any]] | None,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        **params: Any,
    ) -> Response: ...
    def chat(
        self,
        messages: str | Sequence[Mapping[str, Any]] | None,
        *,
        model: str | None = None,
        conversation: Conversation | None = None,
        system: str | None = None,
        beta: bool = False,
        timeout: Timeout | float | None = None,
        cache: ResponseCache | bool | None = None,
        allow_secrets: bool = False,
        tools: Sequence[Any] | None = None,
        **params: Any,
    ) -> Any:
        """Start a streaming chat request and return its :class:`Response` at once.

        ``messages`` is a prompt string or a list of message dicts. With ``conversation``, it must be
        the new prompt: the request carries the conversation's history, is queued behind any earlier
        turn of the same conversation, and the exchange is stored there when it ends.
        Parameters: temperature, top_p, max_tokens, stop, response_format, thinking,
        reasoning_effort, tools, tool_choice, user_id, extra_body.
        ``cache`` overrides the client's response cache for this call (False: none).
        A prompt that looks like it holds a secret (an API key, a private key block, this client's
        own key) raises :class:`SecretInPromptError` and is not sent, unless ``allow_secrets=True``.

        ``tools`` of functions (or ``ds_magic.tool`` objects) return a :class:`ToolLoop` instead, not
        started: ``.run()`` or ``await`` it (tool_loop.py; also ``max_steps=``, ``approve=``).
        Raw ``{"type": "function", ...}`` specs are sent as they are, and the calls are yours to run.
        """
        if tools is not None:
            from .tools import needs_beta, wants_loop  # only with tools: keeps `import ds_magic` light

            if wants_loop(tools):
                from .tool_loop import ToolLoop

                kw: dict[str, Any] = {"model": model, "beta": beta, "timeout": timeout, "cache": cache}
                kw.update(conversation=conversation, system=system, allow_secrets=allow_secrets)
                return ToolLoop(self, messages, tools, **kw, **params)
            params["tools"] = tools
            beta = beta or needs_beta(tools)  # strict schemas go to /beta (deepseek-api.md §4.6)
        if not allow_secrets:
            self._guard(messages, system)
        model = model or self.model
        plan = plan_request(messages, model, conversation=conversation, system=system, **params)
        body = plan.body
        prepare = plan.final_body if conversation is not None else None
        lock = _turn_lock(conversation) if conversation is not None else None
        resp = Response(
            model=model,
            request=body,
            chat=conversation.name if conversation is not None else None,
            redact=self.redact,
        )
        writer = ResponseWriter(resp)
        if conversation is not None:
            conv, prompt = conversation, None if messages is None else str(messages)
            writer.before_done(lambda r: conv.record(prompt, r))  # history before it reports done
        _track(writer)  # a run record when it ends: ds_magic.records() / stats() / metrics
        scope = ("beta" if beta else "", self.redact.fingerprint if self.redact is not None else "")
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
            cache=self.cache if cache is None else _resolve_cache(cache),
            cache_scope=scope,
            secret=self._api_key,
            max_event_bytes=self.max_event_bytes,
            wire=Wire(
                self.base_url, self.dialect, self._headers(), resp, self._noted, self.timeout.connect or 10.0
            ),
        )
        engine = get_engine()
        http = self._http if self._http is not None else engine.http
        never_started = None
        if lock is not None:
            turn_lock = lock

            def never_started() -> None:  # cancelled before its task ran: stored in its turn
                engine.submit(finish_in_turn(writer, turn_lock))

        writer.bind(engine.submit(run_request(writer, http, spec)), never_started)
        return resp

    def request_body(
        self,
        messages: str | Sequence[Mapping[str, Any]],
        *,
        model: str | None = None,
        conversation: Conversation | None = None,
        system: str | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """The exact JSON body :meth:`chat` would send now, built by the same code; nothing is sent.

        For a conversation it holds the history as of now (what a dry run should show). For a server
        known to speak the OpenAI dialect the DeepSeek-only fields are left out, as they are when sent.
        """
        if params.get("tools"):
            from .tools import as_tools, wants_loop

            if wants_loop(params["tools"]):  # functions: the specs the loop's first step sends
                params["tools"] = [t.spec() for t in as_tools(params["tools"])]
        plan = plan_request(messages, model or self.model, conversation=conversation, system=system, **params)
        body = plan.final_body()
        return to_openai(body)[0] if self.known_dialect() == "openai" else body

    def _guard(self, messages: str | Sequence[Mapping[str, Any]] | None, system: str | None) -> None:
        """The outbound secret check (guard.py): what the user is about to send, never the reply."""
        texts: list[tuple[str, str]] = []
        if isinstance(messages, str):
            texts.append(("prompt", messages))
        else:
            for i, m in enumerate(messages or ()):
                content = m.get("content") if isinstance(m, Mapping) else None
                if isinstance(content, str) and m.get("role") in ("user", "system"):
                    texts.append((f"message {i + 1}", content))
        if system:
            texts.append(("system prompt", system))
        found = self.find_secrets(texts)
        if found:
            raise SecretInPromptError(found)

    def find_secrets(self, texts: Iterable[tuple[str, str]]) -> list[Finding]:
        """The outbound secret check (guard.py) of ``(where, text)`` pairs, this client's key included."""
        return check_messages(texts, api_key=self._api_key)

    # ----------------------------------------------------------------- small JSON endpoints
    def _get_json(self, path: str) -> Any:
        url = self._url(path)

        async def get() -> Any:
            with scrubbing(self._api_key):  # every error made here is scrubbed of the key
                return await fetch()

        async def fetch() -> Any:
            engine = get_engine()
            http = self._http if self._http is not None else engine.http
            t = self.timeout
            request = http.build_request(
                "GET",
                url,
                headers={"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"},
                timeout=httpx.Timeout(connect=t.connect, read=t.first_token, write=t.connect, pool=t.connect),
            )
            try:
                r = await http.send(request, stream=True, follow_redirects=False)  # never redirected
            except httpx.RequestError as exc:
                raise error_from_transport(exc, url, t.connect) from None
            try:
                content = await read_limited(r, _MAX_JSON_BODY)
            finally:
                await r.aclose()
            if r.status_code != 200:
                raise error_from_response(r.status_code, content, r.headers, url=url)
            try:
                return json.loads(content)
            except (ValueError, RecursionError):
                raise error_from_response(502, content, r.headers, url=url) from None

        return get_engine().run(get())

    def models(self) -> list[str]:
        """Model ids from ``GET /models``."""
        data = self._get_json("/models")
        return [m["id"] for m in data.get("data", []) if isinstance(m, dict) and "id" in m]

    def known_dialect(self) -> str | None:
        """What the server at ``base_url`` speaks, ``"deepseek"`` or ``"openai"``, if known yet: the
        ``dialect`` given, DeepSeek's hosts, or what the server said in an answer (dialect.py)."""
        return self.dialect or known_dialect(self.base_url)

    def balance(self) -> dict[str, Any]:
        """The account balance from ``GET /user/balance``: DeepSeek only (:class:`DialectError` for a
        server known to speak the OpenAI dialect; one not known yet is asked, and a 404 says why)."""
        if self.known_dialect() == "openai":
            raise DialectError(
                f"{self.base_url} speaks the OpenAI dialect: it has no account balance (GET /user/balance "
                "is DeepSeek's own)",
                "see the provider of that server for its usage, or Client(dialect='deepseek') if it has one",
            )
        data = self._get_json("/user/balance")
        return data if isinstance(data, dict) else {}
