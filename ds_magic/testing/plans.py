"""Deciding an answer before its first byte: a validated body and its Script become a ``Plan``.

The plan holds the token pieces of the reasoning, the answer and the tool calls, the finish reason
and the usage (with the prefix-cache hit of ``PromptCache``); ``completion`` is its non-streaming body.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from .script import Script, parse_directives
from .validate import Reject, thinking_on
from .wire import (
    ChunkMaker,
    canonical,
    default_answer,
    default_reasoning,
    estimate_tokens,
    message_tokens,
    new_tool_call_id,
    split_tokens,
    usage_dict,
)


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str
    pieces: list[str]


@dataclass
class Plan:
    """Everything that will be sent for one successful request, decided before the first byte."""

    model: str
    thinking: bool
    include_usage: bool
    reasoning: list[str]
    answer: list[str]
    tool_calls: list[ToolCall]
    finish_reason: str
    usage: dict[str, Any]
    # A plain OpenAI-compatible server (OfflineServer(dialect="openai")): a role-only first chunk,
    # usage on a trailing chunk of its own, no X-DS-Magic-Dialect header.
    openai: bool = False
    # logprobs: true in the request: how many top_logprobs each token carries (None: not asked).
    logprobs: int | None = None

    @property
    def token_count(self) -> int:
        return int(self.usage["completion_tokens"])


class PromptCache:
    """The message sequences seen per model, for the cache-hit counts; guarded by the server's lock."""

    def __init__(self, lock: threading.Condition) -> None:
        self._lock = lock
        self._seen: deque[tuple[str, tuple[str, ...]]] = deque(maxlen=2000)

    def hit(self, model: str, keys: tuple[str, ...], counts: list[int]) -> int:
        """Tokens of the longest prefix of *keys* seen before, in whole units of 64 tokens."""
        best = 0
        with self._lock:
            earlier = list(self._seen)
        for m, seq in earlier:
            if m != model:
                continue
            n = 0
            for a, b in zip(seq, keys, strict=False):
                if a != b:
                    break
                n += 1
            best = max(best, n)
        return sum(counts[:best]) // 64 * 64

    def add(self, model: str, *sequences: tuple[str, ...]) -> None:
        with self._lock:
            self._seen.extend((model, seq) for seq in sequences)

    def clear(self) -> None:
        """Forget everything (the caller holds the lock)."""
        self._seen.clear()


def directives(messages: list[Any]) -> tuple[dict[str, Any], str]:
    """Directives of the last user message, and its text without them. A ``tool=`` directive calls
    its tool only in answer to that user message: after the tool results it answers in text, so a
    tool loop ends."""
    for msg in reversed(messages):
        if msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, list):
                content = "".join(
                    p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
                )
            try:
                overrides, question = parse_directives(content if isinstance(content, str) else "")
            except ValueError as exc:
                raise Reject(400, str(exc)) from None
            if messages[-1] is not msg and "tool_calls" in overrides:
                del overrides["tool_calls"], overrides["text"]
            return overrides, question
    return {}, ""


def make_plan(
    body: dict[str, Any], script: Script, question: str, beta: bool, cache: PromptCache, openai: bool = False
) -> Plan:
    model: str = body["model"]
    messages: list[dict[str, Any]] = body["messages"]
    thinking = thinking_on(model, body) and not openai  # a plain server has no reasoning_content
    opts = body.get("stream_options")
    include_usage = bool(isinstance(opts, dict) and opts.get("include_usage"))
    reasoning, answer = _texts(messages[-1], script, question, beta, thinking)
    fmt = body.get("response_format")
    if script.text is None and isinstance(fmt, dict) and fmt.get("type") == "json_object":
        answer = json_answer(question)

    finish = script.finish_reason
    if script.tool_calls and finish == "stop":
        finish = "tool_calls"
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    cuts = [answer.find(s) for s in stops if s and s in answer]
    if cuts:
        answer = answer[: min(cuts)]
        finish = "stop"

    r_pieces = split_tokens(reasoning)
    a_pieces = split_tokens(answer)
    calls = _tool_calls(script)
    tool_tokens = sum(len(c.pieces) + len(split_tokens(c.name)) for c in calls)

    budget = body.get("max_tokens")
    if isinstance(budget, int):
        if len(r_pieces) >= budget:
            r_pieces, a_pieces, calls, tool_tokens, finish = r_pieces[:budget], [], [], 0, "length"
        elif len(r_pieces) + len(a_pieces) > budget:
            a_pieces, calls, tool_tokens, finish = a_pieces[: budget - len(r_pieces)], [], 0, "length"
        elif len(r_pieces) + len(a_pieces) + tool_tokens > budget:
            calls, tool_tokens, finish = [], 0, "length"

    counts = [message_tokens(m) for m in messages]
    prompt = sum(counts)
    if body.get("tools"):
        prompt += estimate_tokens(json.dumps(body["tools"], ensure_ascii=False))
    keys = tuple(canonical(m) for m in messages)
    hit = min(cache.hit(model, keys, counts), prompt)
    sent_answer = "".join(a_pieces)
    cache.add(model, keys, (*keys, canonical({"role": "assistant", "content": sent_answer})))
    completion = len(r_pieces) + len(a_pieces) + tool_tokens
    usage = usage_dict(prompt, hit, completion, len(r_pieces), thinking)
    logprobs = int(body.get("top_logprobs") or 0) if body.get("logprobs") is True else None
    return Plan(model, thinking, include_usage, r_pieces, a_pieces, calls, finish, usage, openai, logprobs)


def json_answer(question: str) -> str:
    """JSON mode (deepseek-api.md §4.5) answers one valid JSON object: ``--json`` works on the demo path."""
    note = "an offline stand-in, not a model"
    return json.dumps({"offline": True, "note": note, "prompt": question[:200]}, ensure_ascii=False)


def token_logprobs(token: str, top: int) -> dict[str, Any]:
    """One token's ``logprobs.content`` entry (OpenAI's shape, which DeepSeek uses): a plausible
    log-probability, stable for the same token, and ``top`` alternatives, most likely first."""
    seed = sum(token.encode("utf-8")) % 97
    best = -round(0.01 + seed / 97 * 1.5, 4)
    alternatives = [{"token": token, "logprob": best, "bytes": list(token.encode("utf-8"))}]
    for i in range(1, top):
        alt = f"{token.strip() or '_'}{i}"
        alternatives.append(
            {"token": alt, "logprob": round(best - 0.7 * i, 4), "bytes": list(alt.encode("utf-8"))}
        )
    return {**alternatives[0], "top_logprobs": alternatives[:top]}


def _texts(
    last: dict[str, Any], script: Script, question: str, beta: bool, thinking: bool
) -> tuple[str, str]:
    """The reasoning and the answer, without what a prefix completion (*last*, on /beta) already holds."""
    reasoning = ""
    if thinking:
        reasoning = script.reasoning if script.reasoning is not None else default_reasoning(question)
    answer = script.text if script.text is not None else default_answer(question, script.answer_tokens)
    if beta and last.get("prefix") is True and last.get("role") == "assistant":
        prefix = last.get("content")
        if isinstance(prefix, str) and prefix and answer.startswith(prefix):
            answer = answer[len(prefix) :]
        rprefix = last.get("reasoning_content")
        if thinking and isinstance(rprefix, str) and rprefix and reasoning.startswith(rprefix):
            reasoning = reasoning[len(rprefix) :]
    return reasoning, answer


def _tool_calls(script: Script) -> list[ToolCall]:
    calls: list[ToolCall] = []
    for i, call in enumerate(script.tool_calls or []):
        name = str(call.get("name", "tool"))
        args = call.get("arguments", "{}")
        args_text = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        calls.append(ToolCall(new_tool_call_id(i), name, args_text, split_tokens(args_text)))
    return calls


def completion(plan: Plan) -> dict[str, Any]:
    """The ``chat.completion`` body of a non-streaming answer."""
    maker = ChunkMaker(plan.model, False)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(plan.answer)}
    if plan.thinking:
        message["reasoning_content"] = "".join(plan.reasoning)
    if plan.tool_calls:
        message["tool_calls"] = [
            {
                "index": i,
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for i, c in enumerate(plan.tool_calls)
        ]
    return {
        "id": maker.id,
        "object": "chat.completion",
        "created": maker.created,
        "model": plan.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None
                if plan.logprobs is None
                else {"content": [token_logprobs(t, plan.logprobs) for t in plan.answer]},
                "finish_reason": plan.finish_reason,
            }
        ],
        "usage": plan.usage,
        "system_fingerprint": maker.fingerprint,
    }
