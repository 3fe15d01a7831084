"""The ipywidgets control the batch view uses: one Cancel button, styled and wired in one place.
(The cell's live view draws its own Cancel in stream_widget.js, with the same theme colours.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as w

__all__ = ["cancel_button"]


def cancel_button(tooltip: str, on_cancel: Callable[[], None]) -> Any:
    """A Cancel button that calls ``on_cancel()`` when clicked (on the kernel's thread)."""
    # The default style, not "warning": white on JupyterLab's orange is under 3:1, below WCAG AA;
    # the default button uses the theme's own text and layout colours, AA in light and dark.
    button = w.Button(description="Cancel", icon="stop", tooltip=tooltip)
    button.on_click(lambda _b: on_cancel())
    return button
