"""How a ``Response`` shows as a cell's value: registered with IPython here, not built into the core.

A live view (stream_view.py) already showed the answer and left a static copy in its output, so the
same ``Response`` returned as ``Out[]`` must not print it a second time: the view marks it here,
and the formatter skips it once. Shown again later (``_`` in another cell), it is plain text only.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from IPython.display import display, update_display

from ..response import Response

__all__ = ["mark_shown", "register", "unregister", "show_output", "update_output"]

# Responses, and batches (batch_view.py), that a live view has already shown.
_shown: weakref.WeakSet[Any] = weakref.WeakSet()
_lock = threading.Lock()


def mark_shown(obj: Any) -> None:
    """A live view showed ``obj``: its next display as a cell value prints nothing."""
    with _lock:
        _shown.add(obj)


def show_output(obj: Any, *, raw: bool = False, display_id: str | None = None) -> None:
    """IPython's ``display()`` (untyped upstream), in one typed place for the notebook layer."""
    display(obj, raw=raw, display_id=display_id)  # type: ignore[no-untyped-call]


def update_output(bundle: dict[str, str], display_id: str) -> None:
    """Replace the output shown under ``display_id`` by this raw mime bundle."""
    update_display(bundle, raw=True, display_id=display_id)  # type: ignore[no-untyped-call]


def _display(obj: Any) -> None:
    with _lock:
        if obj in _shown:
            _shown.discard(obj)
            return
    show_output({"text/plain": repr(obj)}, raw=True)


def register(ip: Any, cls: type = Response) -> None:
    """Show ``cls`` values (a ``Response``; a ``BatchResult`` too) through :func:`_display` in this shell."""
    ip.display_formatter.ipython_display_formatter.for_type(cls, _display)


def unregister(ip: Any, cls: type = Response) -> None:
    ip.display_formatter.ipython_display_formatter.pop(cls, None)
