"""Which API a base URL speaks: DeepSeek's own (``deepseek``) or plain OpenAI chat completions (``openai``).

Users point ``DEEPSEEK_BASE_URL`` at LiteLLM, vLLM, llama.cpp, Ollama or ``transformers serve``. Those
servers speak the OpenAI chat-completions API: they refuse DeepSeek-only body fields (``thinking``,
``reasoning_effort``, ``user_id``: deepseek-api.md §1.5; strict ones answer 422), have no ``/beta``
prefix completion to resume a dropped answer with (§4.3), no ``/user/balance``, and DeepSeek's prices
do not apply to them (issue 15).

The dialect of a base URL is, in this order: the user's choice (``Client(dialect=...)``); ``deepseek``
for DeepSeek's hosts; what a server said of itself (our offline server names its dialect in the
``X-DS-Magic-Dialect`` header of every answer, and at ``GET /_offline/dialect``; an offline server
started in this process registers its address); otherwise ``openai``. A request that carries
DeepSeek-only fields to a server not yet known asks ``GET /_offline/dialect`` first (once per base URL):
any other server answers 404 there, which means ``openai``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from typing import Any

import httpx

from .errors import DialectError
from .types import StatusEvent

__all__ = [
    "DIALECTS",
    "DIALECT_HEADER",
    "PROBE_PATH",
    "DialectError",
    "Wire",
    "answer_dialect",
    "answer_note",
    "check_dialect",
    "host_dialect",
    "known_dialect",
    "remember",
    "to_openai",
]

DIALECTS = ("deepseek", "openai")
#: The response header in which our offline server names its dialect.
DIALECT_HEADER = "x-ds-magic-dialect"
#: Where our offline server answers ``{"dialect": ...}``; any other server answers 404 (openai).
PROBE_PATH = "/_offline/dialect"
#: Body fields only DeepSeek accepts (deepseek-api.md §1.5).
DEEPSEEK_FIELDS = ("thinking", "reasoning_effort", "user_id")
#: Message fields only DeepSeek accepts: chat prefix completion and reasoning input (§1.5, §4.3).
DEEPSEEK_MESSAGE_FIELDS = ("prefix", "reasoning_content")

NO_RESUME = "this server cannot continue a partial answer (OpenAI dialect: no prefix completion)"

_lock = threading.Lock()
_known: dict[str, str] = {}  # base URL -> dialect, said by the server or registered
_answers: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_notes: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def check_dialect(value: Any) -> str | None:
    """``"deepseek"`` or ``"openai"``; None (or ``"auto"``, ``""``): found from the base URL."""
    if value is None or value in ("auto", ""):
        return None
    if value not in DIALECTS:
        raise ValueError(f"dialect must be 'deepseek', 'openai' or 'auto', got {value!r}")
    return str(value)


def host_dialect(base_url: str) -> str | None:
    """``deepseek`` for DeepSeek's own hosts (api.deepseek.com and its subdomains), else None."""
    try:
        host = httpx.URL(base_url).host.lower()
    except (httpx.InvalidURL, ValueError):
        return None
    return "deepseek" if host == "deepseek.com" or host.endswith(".deepseek.com") else None


def _key(base_url: str) -> str:
    return base_url.rstrip("/").removesuffix("/v1").removesuffix("/beta")


def remember(base_url: str, dialect: str) -> None:
    """Note what the server at ``base_url`` speaks (an offline server registers itself here)."""
    with _lock:
        _known[_key(base_url)] = dialect


def known_dialect(base_url: str) -> str | None:
    """The dialect of ``base_url`` if known now without asking the server."""
    with _lock:
        said = _known.get(_key(base_url))
    return host_dialect(base_url) or said


def answer_dialect(answer: Any) -> str | None:
    """The dialect of the server that gave ``answer`` (a ``Response``); None when not recorded."""
    try:
        return _answers.get(answer)
    except TypeError:
        return None


def answer_note(answer: Any) -> str | None:
    """The note of the DeepSeek-only fields left out of ``answer``'s request (a ``Response``), if any:
    the status line shows it when the request starts; a view may keep it on show after the end."""
    try:
        return _notes.get(answer)
    except TypeError:
        return None


def needs_deepseek(body: Mapping[str, Any]) -> bool:
    """Whether ``body`` carries anything only DeepSeek accepts (then the dialect must be known first)."""
    return bool(_deepseek_parts(body))


def _deepseek_parts(body: Mapping[str, Any]) -> list[str]:
    found = [f for f in DEEPSEEK_FIELDS if f in body]
    for m in body.get("messages", ()):
        if isinstance(m, Mapping):
            found += [f"messages[].{f}" for f in DEEPSEEK_MESSAGE_FIELDS if f in m]
    return list(dict.fromkeys(found))


def to_openai(body: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``body`` with the DeepSeek-only fields taken out, and the names of those it had."""
    dropped = _deepseek_parts(body)
    out = {k: v for k, v in body.items() if k not in DEEPSEEK_FIELDS}
    if any(n.startswith("messages[]") for n in dropped):
        out["messages"] = [
            {k: v for k, v in m.items() if k not in DEEPSEEK_MESSAGE_FIELDS} if isinstance(m, Mapping) else m
            for m in body.get("messages", ())
        ]
    return out, dropped


def from_headers(headers: httpx.Headers) -> str | None:
    said = headers.get(DIALECT_HEADER, "").strip().lower()
    return said if said in DIALECTS else None


async def probe(http: httpx.AsyncClient, base_url: str, headers: Mapping[str, str], seconds: float) -> str:
    """Ask the server at ``base_url`` for its dialect (``GET /_offline/dialect``); ``openai`` unless it
    says otherwise. A server that cannot be reached is not remembered: the request itself will say why."""
    url = _key(base_url) + PROBE_PATH
    auth = {"Authorization": headers.get("Authorization", ""), "Accept": "application/json"}
    request = http.build_request("GET", url, headers=auth, timeout=seconds)
    try:
        r = await http.send(request, stream=True, follow_redirects=False)  # the headers are the answer
        await r.aclose()
    except httpx.HTTPError:
        return "openai"
    said = from_headers(r.headers) or "openai"
    remember(base_url, said)
    return said


class Wire:
    """One request's view of its server's dialect (``RequestSpec.wire``): the runner asks it to fit
    the body before sending, tells it the answer's headers, and asks it whether a drop can be resumed."""

    def __init__(
        self,
        base_url: str,
        choice: str | None,
        headers: Mapping[str, str],
        answer: Any,
        noted: set[str],
        probe_seconds: float,
    ) -> None:
        self.base_url = base_url
        self.choice = choice
        self.dialect = choice or known_dialect(base_url)
        self._headers = headers
        self._answer = answer
        self._noted = noted  # the client's: each dropped field is told once per client
        self._seconds = probe_seconds
        self._note: str | None = None
        if self.dialect is not None:
            self._mark(self.dialect)

    def _mark(self, dialect: str) -> None:
        self.dialect = dialect
        try:
            _answers[self._answer] = dialect
        except TypeError:
            pass

    async def fit(self, body: dict[str, Any], http: httpx.AsyncClient) -> dict[str, Any]:
        """The body as this server takes it: DeepSeek-only fields dropped for an ``openai`` server."""
        if self.dialect is None and needs_deepseek(body):
            self._mark(await probe(http, self.base_url, self._headers, self._seconds))
        if self.dialect != "openai":
            return body
        out, dropped = to_openai(body)
        new = [f for f in dropped if f not in self._noted]
        if new:
            self._noted.update(new)
            self._note = (
                f"not sent: {', '.join(new)} (DeepSeek-only; this server speaks the OpenAI dialect, "
                "Client(dialect='deepseek') to send them)"
            )
        return out

    def started(self, push: Any) -> None:
        """The request has started: tell the note of dropped fields, once (``push``: the writer's)."""
        if self._note is not None:
            push(StatusEvent(self._note))
            try:
                _notes[self._answer] = self._note
            except TypeError:
                pass
            self._note = None

    def learn(self, response: httpx.Response) -> None:
        """An answer came: a server that names its dialect is remembered; one that does not is
        ``openai``. Only a 200 teaches: an error page may come from anything in between."""
        if self.choice is not None or response.status_code != 200:
            return
        said = from_headers(response.headers)
        if said is not None or self.dialect is None:
            remember(self.base_url, said or "openai")
            self._mark(said or "openai")

    def why_no_resume(self) -> str | None:
        """Why a drop cannot be resumed on this server (None: it can)."""
        return NO_RESUME if self.dialect == "openai" else None
