"""``%load_ext ds_magic`` / ``%unload_ext ds_magic``: register and remove everything, once per kernel.

Loaded: the magics (and their ``%config`` settings), the ``Response`` display, the kernel hooks
(kernel_hooks.py) and, inside a kernel, the batch progress view (batch_view.py).
"""

from __future__ import annotations

from typing import Any

from IPython.core.interactiveshell import InteractiveShell

from . import display, kernel_hooks
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
    kernel_hooks.install(ip, magics, magics.run_async)


def unload(ip: InteractiveShell) -> None:
    magics = session.settings
    if magics is None:
        return
    session.close()  # cancels what still runs
    kernel_hooks.uninstall(ip)
    for kind in ("line", "cell"):
        ip.magics_manager.magics[kind].pop("deepseek", None)
    ip.magics_manager.registry.pop("DeepSeekMagics", None)
    configurables: list[Any] = ip.configurables
    if magics in configurables:
        configurables.remove(magics)
    display.unregister(ip)
