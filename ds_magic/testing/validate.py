"""What the offline server accepts: models, limits, the API key, request bodies, and the documented errors.

A request the real API would refuse raises ``Reject`` with the status and message the API uses.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .framing import Request, phrase
from .script import Script
from .wire import estimate_tokens, message_tokens

V4_MODELS = ("deepseek-flash", "deepseek-v4-pro", "deepseek-v4-flash", "deepseek-v4-flash-vision-exp")
LEGACY_MODELS = ("deepseek-chat", "deepseek-reasoner")

MAX_TOKENS_LIMIT = 393_216
LEGACY_MAX_TOKENS_LIMIT = 8192
# Context lengths (deepseek-api.md §1.3): 1M for the V4 models, 128K for the legacy ids' last backing model.
CONTEXT_LIMIT = 1_048_576
LEGACY_CONTEXT_LIMIT = 131_072
MAX_TOOLS = 128  # §1.5 / §4.6
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
MAX_TOP_LOGPROBS = 20

REASONING_PASSBACK = "The `reasoning_content` in the thinking mode must be passed back to the API."
CONCURRENCY_MESSAGE = (
    "Your current concurrency is {current}, which exceeds your concurrency limit of {limit} based on your "
    "remaining balance. Please top up your balance to restore your concurrency."
)

# status -> (documented message, error type)
ERRORS: dict[int, tuple[str, str]] = {
    400: ("Invalid Format", "invalid_request_error"),
    401: ("Authentication Fails, Your api key: {key} is invalid", "authentication_error"),
    402: ("Insufficient Balance", "unknown_error"),
    404: ("Not Found", "invalid_request_error"),
    422: ("Invalid Parameters", "invalid_request_error"),
    429: (CONCURRENCY_MESSAGE, "rate_limit_error"),
    500: ("Server Error", "server_error"),
    502: ("Bad Gateway", "server_error"),
    503: ("Server Overloaded", "server_error"),
    504: ("Gateway Timeout", "server_error"),
}


class Reject(Exception):
    """A request the API would reject: status, message, error type, and whether the body is plain text."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", plain: bool = False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.plain = plain


# ---------------------------------------------------------------- the API key and scripted errors


def bearer_key(req: Request) -> str:
    scheme, _, key = req.headers.get("authorization", "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


def auth_error(req: Request, api_key: str | None) -> str | None:
    """The 401 message for a missing key, or one that is not *api_key* (None: any key will do)."""
    key = bearer_key(req)
    if not key or (api_key is not None and key != api_key):
        return ERRORS[401][0].format(key="****" + key[-4:])
    return None


def error_for(script: Script, req: Request, active: int) -> tuple[str, str]:
    """The message and error type of the scripted status (*active*: requests in flight, for 429)."""
    message, type_ = ERRORS.get(
        script.status,
        (phrase(script.status), "server_error" if script.status >= 500 else "invalid_request_error"),
    )
    if script.status == 401:
        message = message.format(key="****" + bearer_key(req)[-4:])
    elif script.status == 429:
        current = max(active, 2)
        message = message.format(current=current, limit=current - 1)
    return script.error_message or message, type_


def models(legacy: bool) -> dict[str, Any]:
    """The GET /models answer."""
    ids = V4_MODELS[:2] + (LEGACY_MODELS if legacy else ())
    return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "deepseek"} for m in ids]}


# ---------------------------------------------------------------- request bodies


def thinking_on(model: str, body: dict[str, Any]) -> bool:
    if model == "deepseek-reasoner":
        return True
    if model == "deepseek-chat":
        return False
    thinking = body.get("thinking")
    return not (isinstance(thinking, dict) and thinking.get("type") == "disabled")


def validate(raw: bytes, beta: bool, legacy: bool, deepseek: bool = True) -> dict[str, Any]:
    """The JSON body of a /chat/completions request, checked as the API checks it; raises Reject.
    ``deepseek=False`` (a plain OpenAI-compatible server): no thinking, so no reasoning pass-back."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        detail = str(exc).split(": line")[0] if isinstance(exc, json.JSONDecodeError) else "invalid UTF-8"
        text = f"Failed to parse the request body as JSON: {detail.lower()} at line 1 column 1"
        raise Reject(400, text, plain=legacy) from None
    body = _check_types(data, f"at line 1 column {len(raw)}", legacy)
    messages: list[dict[str, Any]] = body["messages"]
    model: str = body["model"]
    if not messages:
        raise Reject(400, "Invalid Format: `messages` must not be empty")
    allowed = V4_MODELS + (LEGACY_MODELS if legacy else ())
    if model not in allowed:
        raise Reject(400, "Model Not Exist")
    max_tokens = body.get("max_tokens")
    limit = LEGACY_MAX_TOKENS_LIMIT if model in LEGACY_MODELS else MAX_TOKENS_LIMIT
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= limit
    ):
        raise Reject(400, f"Invalid max_tokens value, the valid range of max_tokens is [1, {limit}]")
    _check_prefix(messages, beta)
    _check_options(body, model)
    _check_context(body, model)
    if model in LEGACY_MODELS:  # R1-era rule, for the legacy ids only: reasoning is never sent back as input
        for i, msg in enumerate(messages):
            if "reasoning_content" in msg and not msg.get("prefix"):
                raise Reject(
                    400,
                    f"Invalid Format: messages[{i}] has a `reasoning_content` field; remove it from the input "
                    "messages (the model's reasoning is not sent back as context)",
                )
    if model == "deepseek-reasoner":
        _check_reasoner_turns(messages)
    if deepseek and model in V4_MODELS and thinking_on(model, body):
        _check_passback(messages, bool(body.get("tools")))
    _check_strict(body.get("tools"), beta)
    return body


def _check_passback(messages: list[dict[str, Any]], tools: bool) -> None:
    """V4 thinking mode (deepseek-api.md §3.2, §4.2): the ``reasoning_content`` of an assistant turn
    that made tool calls must be sent back in every later request, or 400. With tools in the request
    the validator wants the field on every assistant message [obs: three independent reports, §4.2],
    so the offline server asks that too: what passes here passes there."""
    for msg in messages:
        if msg["role"] != "assistant" or msg.get("prefix") or "reasoning_content" in msg:
            continue
        if msg.get("tool_calls") or tools:
            raise Reject(400, REASONING_PASSBACK)


def _check_strict(tools: Any, beta: bool) -> None:
    """Strict function calling is a beta feature (§4.6): /beta only, every property required and
    ``additionalProperties: false`` on every object. The wording of these 400s is ours [inf]."""
    for i, tool in enumerate(tools or ()):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or fn.get("strict") is not True:
            continue
        if not beta:
            raise Reject(
                400,
                f"Invalid Format: tools[{i}]: `strict` function calling is only supported on the beta "
                "endpoint; use the base URL https://api.deepseek.com/beta",
            )
        bad = _open_object(fn.get("parameters"))
        if bad is not None:
            raise Reject(
                400, f"Invalid Format: tools[{i}].function.parameters{bad}: in strict mode {_STRICT}"
            )


_STRICT = "every object needs `additionalProperties: false` and every property in `required`"


def _open_object(schema: Any, at: str = "") -> str | None:
    """Where a strict schema has an object that is open or has an optional property, or None."""
    if isinstance(schema, dict):
        props = schema.get("properties")
        if schema.get("type") == "object" and isinstance(props, dict):
            required = schema.get("required") or []
            if schema.get("additionalProperties") is not False or set(props) - set(required):
                return at
        for key, value in schema.items():
            found = _open_object(value, f"{at}.{key}")
            if found is not None:
                return found
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            found = _open_object(value, f"{at}[{i}]")
            if found is not None:
                return found
    return None


def check_openai(body: dict[str, Any]) -> None:
    """A plain OpenAI-compatible server refuses fields it does not know, as ``transformers serve`` does
    (422 "Unexpected fields in the request"): the DeepSeek-only ones (deepseek-api.md §1.5)."""
    found: list[str] = sorted(f for f in ("thinking", "reasoning_effort", "user_id") if f in body)
    for m in body["messages"]:
        found += [f for f in ("prefix", "reasoning_content") if f in m and f not in found]
    if found:
        raise Reject(422, f"Unexpected fields in the request: {set(found)}")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, (int, float)):
        return f"number `{value}`"
    if isinstance(value, str):
        return f"string {json.dumps(value)}"
    if isinstance(value, list):
        return "sequence"
    return "map"


def _check_types(body: Any, end: str, legacy: bool) -> dict[str, Any]:
    """*body*, raising the deserialization errors (a field missing or of the wrong type) first.

    *end* is where the errors say the body ends.
    """

    def deser(detail: str) -> Reject:
        msg = f"Failed to deserialize the JSON body into the target type: {detail}"
        return Reject(422, msg, plain=True) if legacy else Reject(400, msg)

    if not isinstance(body, dict):
        raise deser(f"invalid type: {_kind(body)}, expected struct ChatCompletionRequest at line 1 column 1")
    for name in ("messages", "model"):
        if name not in body:
            raise deser(f"missing field `{name}` {end}")
    messages = body["messages"]
    if not isinstance(messages, list):
        raise deser(f"messages: invalid type: {_kind(messages)}, expected a sequence {end}")
    roles = ("system", "user", "assistant", "tool")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise deser(f"messages[{i}]: invalid type: {_kind(msg)}, expected a message object {end}")
        if "role" not in msg:
            raise deser(f"messages[{i}]: missing field `role` {end}")
        if msg["role"] not in roles:
            raise deser(
                f"messages[{i}]: unknown variant `{msg['role']}`, expected one of `system`, `user`, `assistant`, `tool` {end}"
            )
        content = msg.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise deser(f"messages[{i}].content: invalid type: {_kind(content)}, expected a string {end}")
    model = body["model"]
    if not isinstance(model, str):
        raise deser(f"model: invalid type: {_kind(model)}, expected a string {end}")
    thinking = body.get("thinking")
    if thinking is not None:
        if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled"):
            value = thinking.get("type") if isinstance(thinking, dict) else thinking
            raise deser(f"thinking.type: unknown variant `{value}`, expected `enabled` or `disabled` {end}")
    stop = body.get("stop")
    if stop is not None and not (
        isinstance(stop, str)
        or (isinstance(stop, list) and len(stop) <= 16 and all(isinstance(s, str) for s in stop))
    ):
        raise deser(f"stop: invalid type: {_kind(stop)}, expected a string or up to 16 strings {end}")
    return body


def _check_options(body: dict[str, Any], model: str) -> None:
    """response_format, tools and logprobs as the API checks them (deepseek-api.md §1.5, §4.5, §4.6)."""
    fmt = body.get("response_format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") in ("text", "json_object")):
        kind = fmt.get("type") if isinstance(fmt, dict) else fmt
        raise Reject(
            400,
            f"Invalid Format: response_format: unknown variant `{kind}`, expected `text` or `json_object`",
        )
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise Reject(400, "Invalid Format: tools must be a list of functions")
        if len(tools) > MAX_TOOLS:
            raise Reject(
                400, f"Invalid Format: too many tools ({len(tools)}); at most {MAX_TOOLS} are supported"
            )
        for i, tool in enumerate(tools):
            kind = tool.get("type") if isinstance(tool, dict) else None
            if kind != "function":
                raise Reject(
                    400, f"Invalid Format: tools[{i}]: unknown variant `{kind}`, expected `function`"
                )
            fn = tool.get("function")
            name = fn.get("name") if isinstance(fn, dict) else None
            if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
                raise Reject(
                    400,
                    f"Invalid Format: tools[{i}].function.name {json.dumps(name)} must be 1 to 64 of a-z, A-Z, "
                    "0-9, underscores and dashes",
                )
    logprobs, top = body.get("logprobs"), body.get("top_logprobs")
    if (logprobs or top is not None) and model == "deepseek-reasoner":
        raise Reject(400, "deepseek-reasoner does not support the parameters: logprobs, top_logprobs")
    if top is not None:
        if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= MAX_TOP_LOGPROBS:
            raise Reject(
                400, f"Invalid top_logprobs value, the valid range of top_logprobs is [0, {MAX_TOP_LOGPROBS}]"
            )
        if logprobs is not True:
            raise Reject(400, "Invalid Format: top_logprobs requires logprobs to be true")


def _check_context(body: dict[str, Any], model: str) -> None:
    """A prompt longer than the model's context gets DeepSeek's 400, in its OpenAI-style wording [inf]."""
    limit = LEGACY_CONTEXT_LIMIT if model in LEGACY_MODELS else CONTEXT_LIMIT
    messages = body["messages"]
    if sum(len(str(m.get("content") or "")) for m in messages) * 0.6 < limit // 2:
        return  # far below the limit: no need to count every character
    prompt = sum(message_tokens(m) for m in messages)
    if body.get("tools"):
        prompt += estimate_tokens(json.dumps(body["tools"], ensure_ascii=False))
    completion = body.get("max_tokens") or 0
    if prompt + completion > limit:
        raise Reject(
            400,
            f"This model's maximum context length is {limit} tokens. However, you requested "
            f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the completion). "
            "Please reduce the length of the messages or completion.",
        )


def _check_prefix(messages: list[dict[str, Any]], beta: bool) -> None:
    """Chat prefix completion: only on /beta, and only on a last assistant message."""
    for i, msg in enumerate(messages):
        if msg.get("prefix") is True:
            if not beta:
                raise Reject(
                    400,
                    "Invalid Format: `prefix` (chat prefix completion) is only supported on the beta "
                    "endpoint; use the base URL https://api.deepseek.com/beta",
                )
            if i != len(messages) - 1 or msg["role"] != "assistant":
                raise Reject(
                    400,
                    "Invalid Format: only the last message may be an assistant message with `prefix: true`",
                )


def _check_reasoner_turns(messages: list[dict[str, Any]]) -> None:
    """deepseek-reasoner's rules on turns: a user message first, then user and assistant in turn."""
    chat = [m for m in messages if m["role"] != "system"]
    if chat and chat[0]["role"] != "user":
        raise Reject(
            400,
            "The first message (except the system message) of deepseek-reasoner must be a user message, "
            "but an assistant message detected.",
        )
    for a, b in zip(chat, chat[1:], strict=False):
        if a["role"] == b["role"] and a["role"] in ("user", "assistant"):
            raise Reject(
                400,
                "deepseek-reasoner does not support successive user or assistant messages. You should "
                "interleave the user/assistant messages in the message sequence.",
            )
