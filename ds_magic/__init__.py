"""ds_magic: stream DeepSeek answers into Jupyter, with a Cancel that really stops the request.

The core (``Client``, ``Response``, ``Conversation``, the SSE decoder, errors) knows nothing about
Jupyter; ``%load_ext ds_magic`` loads the notebook layer on top. Names are imported lazily so that
``import ds_magic`` stays light (benchmarks/import_time.py).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "Client": "client",
    "DEFAULT_MODEL": "client",
    "Response": "response",
    "Timeout": "deadlines",
    "RetryPolicy": "retry",
    "Conversation": "conversation",
    "ConversationStore": "conversation_store",
    "SSEDecoder": "sse",
    "ServerSentEvent": "sse",
    "Usage": "types",
    "Timing": "types",
    "AnswerDelta": "types",
    "ReasoningDelta": "types",
    "ToolCallDelta": "types",
    "UsageEvent": "types",
    "StatusEvent": "types",
    "Finish": "types",
    "ToolCall": "types",
    "DeepSeekError": "errors",
    "MissingAPIKeyError": "errors",
    "APIStatusError": "errors",
    "BadRequestError": "errors",
    "AuthenticationError": "errors",
    "InsufficientBalanceError": "errors",
    "RateLimitError": "errors",
    "ServerError": "errors",
    "APITimeoutError": "errors",
    "APIConnectionError": "errors",
    "StreamInterruptedError": "errors",
    "StreamDecodeError": "errors",
    "StreamError": "errors",
    "SecretInPromptError": "errors",
    "RedirectError": "errors",
    "EventTooLargeError": "errors",
    "CacheError": "errors",
    "DialectError": "errors",
    "ToolError": "errors",
    "RedactRules": "redact",
    "batch": "batching",
    "BatchResult": "batch_result",
    "compare": "compare",
    "Comparison": "comparison",
    "StructuredOutputError": "errors",
    "split_text": "split",
    "ResponseCache": "cache",
    "records": "run_records",
    "clear_records": "run_records",
    "stats": "run_stats",
    "serve_metrics": "metrics",
    "tool": "tools",
    "as_tools": "tools",
    "Tool": "tools",
    "ToolLoop": "tool_loop",
    "ToolCallRecord": "tool_loop",
    "RunError": "errors",
    "RunResult": "run_result",
    "runs": "run_store",
    "run": "run_store",
    "OffPeak": "offpeak",
    "Estimate": "estimate",
    "Chat": "jupyter.chat",
}

__all__ = sorted([*_LAZY, "load_ipython_extension", "unload_ipython_extension", "__version__"])

if TYPE_CHECKING:  # for type checkers and IDEs; the real imports are lazy
    from .batch_result import BatchResult
    from .batching import batch
    from .cache import ResponseCache
    from .client import DEFAULT_MODEL, Client
    from .compare import compare
    from .comparison import Comparison
    from .conversation import Conversation
    from .conversation_store import ConversationStore
    from .deadlines import Timeout
    from .errors import (
        APIConnectionError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        CacheError,
        DeepSeekError,
        DialectError,
        EventTooLargeError,
        InsufficientBalanceError,
        MissingAPIKeyError,
        RateLimitError,
        RedirectError,
        RunError,
        SecretInPromptError,
        ServerError,
        StreamDecodeError,
        StreamError,
        StreamInterruptedError,
        StructuredOutputError,
        ToolError,
    )
    from .estimate import Estimate
    from .metrics import serve_metrics
    from .offpeak import OffPeak
    from .redact import RedactRules
    from .response import Response
    from .retry import RetryPolicy
    from .run_records import clear_records, records
    from .run_result import RunResult
    from .run_stats import stats
    from .run_store import run, runs
    from .split import split_text
    from .sse import ServerSentEvent, SSEDecoder
    from .tool_loop import ToolCallRecord, ToolLoop
    from .tools import Tool, as_tools, tool
    from .types import (
        AnswerDelta,
        Finish,
        ReasoningDelta,
        StatusEvent,
        Timing,
        ToolCall,
        ToolCallDelta,
        Usage,
        UsageEvent,
    )


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'ds_magic' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext ds_magic``: register ``%%deepseek`` and ``%deepseek``."""
    from .jupyter import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .jupyter import unload_ipython_extension as unload

    unload(ipython)
