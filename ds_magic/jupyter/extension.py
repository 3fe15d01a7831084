"""``%load_ext ds_magic`` / ``%unload_ext ds_magic``: register and remove everything, once per kernel.

Loaded: the magics (and their ``%config`` settings), the ``Response`` display, the notebook wording
of what the core logs (errors.py), the kernel hooks (kernel_hooks.py) and, inside a kernel, the batch
progress view (batch_view.py), registered with the core's ``batch`` so that ``batch(progress=True)``
shows it (the core never imports a widget library).
"""

from __future__ import annotations

import logging
from typing import Any

from IPython.core.interactiveshell import InteractiveShell

from ..batch_progress import Progress
from ..batch_result import BatchResult
from ..batching import register_progress_view
from . import compare_view, display, kernel_hooks, last_error, tool_cell
from .batch_view import BatchProgressView
from .errors import LOG_WORDING
from .magics import DeepSeekMagics
from .session import session

__all__ = ["load", "unload"]


def load(ip: InteractiveShell) -> None:
    if session.settings is not None:
        return
    magics = DeepSeekMagics(shell=ip)
    ip.register_magics(magics)
    configurables: list[Any] = ip.configurables  # typed as shells upstream; holds any Configurable
    if magics not in configurables:
        configurables.append(magics)
    session.settings = magics
    display.register(ip)
    compare_view.register(ip)
    logging.getLogger("ds_magic").addFilter(LOG_WORDING)  # what the core logs, in notebook terms
    kernel_hooks.install(ip, magics, magics.run_async)
    last_error.install(ip)  # %deepseek explain / fix read the last failed cell
    if kernel_hooks.in_kernel(ip):
        register_progress_view(_show_progress)
        display.register(ip, BatchResult)  # a batch whose view is shown is not printed again


def _show_progress(result: BatchResult) -> Progress:
    """A batch started in this kernel: show its progress view; the batch calls ``update``."""
    view = BatchProgressView(result)
    view.show()
    return view.update


def unload(ip: InteractiveShell) -> None:
    magics = session.settings
    if magics is None:
        return
    session.close()  # cancels what still runs
    kernel_hooks.uninstall(ip)
    last_error.uninstall(ip)
    tool_cell.KERNEL_ALLOWED.clear()  # "Always allow" lasts as long as the extension
    register_progress_view(None)
    display.unregister(ip, BatchResult)
    for kind in ("line", "cell"):
        ip.magics_manager.magics[kind].pop("deepseek", None)
    ip.magics_manager.registry.pop("DeepSeekMagics", None)
    configurables: list[Any] = ip.configurables
    if magics in configurables:
        configurables.remove(magics)
    display.unregister(ip)
    compare_view.unregister(ip)
    logging.getLogger("ds_magic").removeFilter(LOG_WORDING)
