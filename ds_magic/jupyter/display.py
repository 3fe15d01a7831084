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

_shown: weakref.WeakSet[Response] = weakref.WeakSet()
_lock = threading.Lock()


def mark_shown(resp: Response) -> None:
    """The live view showed ``resp``: its next display as a cell value prints nothing."""
    with _lock:
        _shown.add(resp)


def show_output(obj: Any, *, raw: bool = False, display_id: str | None = None) -> None:
    """IPython's ``display()`` (untyped upstream), in one typed place for the notebook layer."""
    display(obj, raw=raw, display_id=display_id)  # type: ignore[no-untyped-call]


def update_output(bundle: dict[str, str], display_id: str) -> None:
    """Replace the output shown under ``display_id`` by this raw mime bundle."""
    update_display(bundle, raw=True, display_id=display_id)  # type: ignore[no-untyped-call]


def _display(resp: Response) -> None:
    with _lock:
        if resp in _shown:
            _shown.discard(resp)
            return
    show_output({"text/plain": repr(resp)}, raw=True)


def register(ip: Any) -> None:
    """Show ``Response`` values through :func:`_display` in this shell."""
    ip.display_formatter.ipython_display_formatter.for_type(Response, _display)


def unregister(ip: Any) -> None:
    ip.display_formatter.ipython_display_formatter.pop(Response, None)
