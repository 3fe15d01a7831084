"""FIM (fill in the middle) completion on ``POST /beta/completions`` (deepseek-api.md §4.4).

``{"model", "prompt", "suffix"?, "max_tokens"?, "stream"?, ...}`` answers ``object: "text_completion"``
with the text in ``choices[0].text``; streaming chunks have the same shape. The offline text is a
fixed stand-in (it is not a model), cut to ``max_tokens`` and at ``stop``.
"""

from __future__ import annotations

import json
from typing import Any

from .framing import Conn, head, send, send_json
from .validate import LEGACY_MODELS, V4_MODELS, Reject
from .wire import ChunkMaker, dumps, estimate_tokens, split_tokens, usage_dict

FIM_PATH = "/beta/completions"
FIM_MAX_TOKENS = 4096  # the FIM guide's output limit
FIM_TEXT = "    pass  # offline stand-in, not a model\n"


def check_fim(raw: bytes, legacy: bool) -> dict[str, Any]:
    """The JSON body of a FIM request, checked as the API checks it; raises Reject."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise Reject(400, "Failed to parse the request body as JSON") from None
    if not isinstance(body, dict):
        raise Reject(400, "Invalid Format: the body must be a JSON object")
    for name in ("model", "prompt"):
        if not isinstance(body.get(name), str):
            raise Reject(400, f"Invalid Format: missing field `{name}` (a string)")
    if body["model"] not in V4_MODELS + (LEGACY_MODELS if legacy else ()):
        raise Reject(400, "Model Not Exist")
    if "suffix" in body and body["suffix"] is not None and not isinstance(body["suffix"], str):
        raise Reject(400, "Invalid Format: suffix must be a string")
    budget = body.get("max_tokens")
    if budget is not None and (
        isinstance(budget, bool) or not isinstance(budget, int) or not 1 <= budget <= FIM_MAX_TOKENS
    ):
        raise Reject(400, f"Invalid max_tokens value, the valid range of max_tokens is [1, {FIM_MAX_TOKENS}]")
    return body


def _pieces(body: dict[str, Any]) -> tuple[list[str], str]:
    text = FIM_TEXT
    stops = body.get("stop")
    for s in [stops] if isinstance(stops, str) else list(stops or []):
        if isinstance(s, str) and s and s in text:
            text = text[: text.index(s)]
    pieces, finish = split_tokens(text), "stop"
    budget = body.get("max_tokens")
    if isinstance(budget, int) and len(pieces) > budget:
        pieces, finish = pieces[:budget], "length"
    return pieces, finish


def _choice(text: str, finish: str | None) -> dict[str, Any]:
    return {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}


async def answer_fim(conn: Conn, body: dict[str, Any]) -> bool:
    """Answer an accepted FIM request, streaming or whole."""
    pieces, finish = _pieces(body)
    prompt = estimate_tokens(body["prompt"] + (body.get("suffix") or ""))
    usage = usage_dict(prompt, 0, len(pieces), 0, False)
    maker = ChunkMaker(body["model"], False)

    def obj(choice: dict[str, Any], with_usage: bool = False) -> dict[str, Any]:
        out = {
            "id": maker.id,
            "object": "text_completion",
            "created": maker.created,
            "model": maker.model,
            "system_fingerprint": maker.fingerprint,
            "choices": [choice],
        }
        return {**out, "usage": usage} if with_usage else out

    if body.get("stream") is not True:
        return await send_json(conn, 200, obj(_choice("".join(pieces), finish), True))
    events = [obj(_choice(p, None)) for p in pieces] + [obj(_choice("", finish), True)]
    data = b"".join(b"data: " + dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    hdrs = [("Content-Type", "text/event-stream; charset=utf-8"), ("Content-Length", str(len(data)))]
    await send(conn, head(200, [*hdrs, ("X-DS-Magic-Dialect", "deepseek")]) + data)
    return True
