"""The widgets the live views share: one Cancel button, styled and wired the same everywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as w

__all__ = ["cancel_button"]


def cancel_button(tooltip: str, on_cancel: Callable[[], None]) -> Any:
    """A Cancel button that calls ``on_cancel()`` when clicked (on the kernel's thread)."""
    button = w.Button(description="Cancel", icon="stop", button_style="warning", tooltip=tooltip)
    button.on_click(lambda _b: on_cancel())
    return button
