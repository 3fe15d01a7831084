"""The magic's settings as the rest of the notebook layer reads them, and the one mapping of those
settings (plus per-cell or per-chat overrides) to ``Client.chat`` keyword parameters.

``DeepSeekMagics`` (magics.py) holds the settings as traitlets (``%config DeepSeekMagics.model = ...``);
``Settings`` is what the cell code, the line commands and ``Chat`` need of it, so none of them imports
the magic class. ``%%deepseek``, ``--dry-run`` and ``Chat`` all build their request parameters with
:func:`chat_params`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ..client import DEFAULT_MODEL

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = ["Settings", "chat_params", "body_params", "CHAT_OPTIONS"]

#: ``Client.chat`` options that steer the call and are not part of the request body.
CHAT_OPTIONS = ("cache", "allow_secrets")


class Settings(Protocol):
    """The ``DeepSeekMagics`` traits (read-only here); see magics.py for what each one means."""

    @property
    def shell(self) -> InteractiveShell | None: ...
    @property
    def model(self) -> str: ...
    @property
    def base_url(self) -> str: ...
    @property
    def dialect(self) -> str: ...
    @property
    def system(self) -> str: ...
    @property
    def temperature(self) -> float | None: ...
    @property
    def max_tokens(self) -> int | None: ...
    @property
    def max_history_tokens(self) -> int | None: ...
    @property
    def wait_mode(self) -> str: ...
    @property
    def throttle_ms(self) -> int: ...
    @property
    def show_reasoning(self) -> bool: ...
    @property
    def thinking(self) -> bool | None: ...
    @property
    def reasoning_effort(self) -> str | None: ...
    @property
    def interpolate(self) -> bool: ...
    @property
    def context_max_chars(self) -> int: ...
    @property
    def timeout(self) -> float | None: ...
    @property
    def cache(self) -> bool: ...
    @property
    def resume(self) -> int: ...
    @property
    def redact(self) -> list[str]: ...
    @property
    def batch_concurrency(self) -> int: ...
    @property
    def tools(self) -> list[str]: ...
    @property
    def tool_approval(self) -> str: ...
    @property
    def tool_max_steps(self) -> int: ...
    def trait_names(self, **metadata: Any) -> list[str]: ...


def chat_params(settings: Settings | None, **overrides: Any) -> dict[str, Any]:
    """``Client.chat`` keyword parameters: ``model`` and the sampling settings of the magic, each
    replaced by an override that is not None; other overrides (``stop``, ``response_format``,
    ``allow_secrets``, ``top_p``...) pass through. Parameters left None are not sent.
    Without settings (the extension not loaded) only ``model`` has a default: ``DEFAULT_MODEL``.
    """
    params: dict[str, Any] = {"model": DEFAULT_MODEL}
    if settings is not None:
        params.update(
            model=settings.model or DEFAULT_MODEL,
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
            thinking=settings.thinking,
            reasoning_effort=settings.reasoning_effort or None,
            cache=settings.cache or None,
        )
    params.update({k: v for k, v in overrides.items() if v is not None})
    return {k: v for k, v in params.items() if v is not None}


def body_params(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters of :func:`chat_params` that shape the request body (no model, no call options)."""
    return {k: v for k, v in params.items() if k != "model" and k not in CHAT_OPTIONS}
