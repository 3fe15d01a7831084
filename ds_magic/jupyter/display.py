"""How a ``Response`` shows as a cell's value: registered with IPython here, not built into the core.

A live view (stream_view.py) already showed the answer and left a static copy in its output, so the
same ``Response`` returned as ``Out[]`` must not print it a second time: the view marks it here,
and the formatter skips it once. Shown again later (``_`` in another cell), it is plain text only.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from ..response import Response

__all__ = ["mark_shown", "register", "unregister"]

_shown: weakref.WeakSet[Response] = weakref.WeakSet()
_lock = threading.Lock()


def mark_shown(resp: Response) -> None:
    """The live view showed ``resp``: its next display as a cell value prints nothing."""
    with _lock:
        _shown.add(resp)


def _display(resp: Response) -> None:
    with _lock:
        if resp in _shown:
            _shown.discard(resp)
            return
    from IPython.display import display

    display({"text/plain": repr(resp)}, raw=True)  # type: ignore[no-untyped-call]


def register(ip: Any) -> None:
    """Show ``Response`` values through :func:`_display` in this shell."""
    ip.display_formatter.ipython_display_formatter.for_type(Response, _display)


def unregister(ip: Any) -> None:
    ip.display_formatter.ipython_display_formatter.pop(Response, None)
