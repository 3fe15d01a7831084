"""How a cell waits, and the hooks ds_magic puts into the kernel (kernel-and-widgets.md §9.2, §6).

``await`` (default on ipykernel ≥ 7.4) rewrites the cell into a top-level ``await`` through an input
transformer, so the kernel handles the Cancel click while the answer streams; ``block`` polls in
100 ms slices (older kernels: ■ still cancels); ``background`` returns at once (Cancel, ``%deepseek
cancel-all`` and ■ through the idle SIGINT hook still stop it).
"""

from __future__ import annotations

import importlib.metadata
import re
import signal
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .session import cancel_all
from .settings import Settings

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = [
    "RUNNER_NAME",
    "ipykernel_version",
    "in_kernel",
    "resolve_mode",
    "block_hint",
    "install",
    "uninstall",
]

RUNNER_NAME = "__ds_magic_run__"
_CELL_RE = re.compile(r"^%%deepseek(\s|$)")


def ipykernel_version() -> tuple[int, ...] | None:
    try:
        version = importlib.metadata.version("ipykernel")
    except importlib.metadata.PackageNotFoundError:
        return None
    nums = re.findall(r"\d+", version)[:2]
    return tuple(int(n) for n in nums)


def in_kernel(shell: InteractiveShell | None) -> bool:
    return getattr(shell, "kernel", None) is not None


def resolve_mode(settings: Settings, *, background: bool = False) -> str:
    """The wait mode a cell runs in now: ``await``, ``block`` or ``background`` (``--bg``)."""
    if background:
        return "background"
    wait_mode = str(settings.wait_mode)
    kernel = in_kernel(settings.shell)
    if wait_mode == "auto":
        version = ipykernel_version()
        if kernel and version is not None and version >= (7, 4):
            return "await"
        return "block"
    if wait_mode == "await" and not kernel:
        return "block"
    return wait_mode


def block_hint() -> str:
    """What the live view says in block mode: where a Cancel click cannot reach the kernel, ■ can."""
    version = ipykernel_version() or (0,)
    if version < (7, 0) or version >= (7, 4):
        return "press ■ (interrupt) to stop"
    return ""


@dataclass
class _Installed:
    transform: Callable[[list[str]], list[str]]
    prev_sigint: Any = None
    sigint_installed: bool = False


_installed: _Installed | None = None


def _idle_sigint(signum: int, frame: Any) -> None:
    # ■ while no cell runs: the kernel ignores SIGINT then, so background streams would go on
    # billing (kernel-and-widgets.md §6). Cancel from a thread: never take locks in a handler.
    threading.Thread(target=cancel_all, name="ds-cancel-all", daemon=True).start()


def install(ip: InteractiveShell, settings: Settings, run_cell: Callable[[str, str], Awaitable[Any]]) -> None:
    """Add the cell runner, the ``%%deepseek`` → ``await`` rewrite and the idle SIGINT handler.

    ``run_cell(line, cell)`` is the magic's await path (``DeepSeekMagics.run_async``).
    """
    global _installed
    if _installed is not None:
        return

    def transform(lines: list[str]) -> list[str]:
        """Rewrite a ``%%deepseek`` cell into a top-level await, when the await mode applies."""
        if not lines or not _CELL_RE.match(lines[0]):
            return lines
        first = lines[0].rstrip("\n")
        if first.rstrip().endswith("?") or resolve_mode(settings) != "await":
            return lines
        line = first[len("%%deepseek") :].strip()
        cell = "".join(lines[1:])
        return [f"await {RUNNER_NAME}({line!r}, {cell!r})\n"]

    hooks = _installed = _Installed(transform)
    ip.user_ns[RUNNER_NAME] = run_cell
    ip.user_ns_hidden[RUNNER_NAME] = run_cell
    ip.input_transformers_cleanup.append(transform)
    kernel = getattr(ip, "kernel", None)
    if kernel is not None and hasattr(kernel, "pre_handler_hook"):
        # ipykernel creates saved_sigint_handler in its first pre_handler_hook, so at start-up
        # (extensions load before any message) it does not exist yet.
        hooks.prev_sigint = getattr(kernel, "saved_sigint_handler", None)
        kernel.saved_sigint_handler = _idle_sigint
        hooks.sigint_installed = True
        # Loaded at kernel start-up (not inside a message handler) the idle handler is installed
        # right now; inside a cell, ipykernel's post_handler_hook installs saved_sigint_handler.
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            try:
                signal.signal(signal.SIGINT, _idle_sigint)
            except ValueError:  # not the main thread
                pass


def uninstall(ip: InteractiveShell) -> None:
    """Undo :func:`install`."""
    global _installed
    hooks, _installed = _installed, None
    if hooks is None:
        return
    if hooks.transform in ip.input_transformers_cleanup:
        ip.input_transformers_cleanup.remove(hooks.transform)
    ip.user_ns.pop(RUNNER_NAME, None)
    ip.user_ns_hidden.pop(RUNNER_NAME, None)
    kernel = getattr(ip, "kernel", None)
    if hooks.sigint_installed and kernel is not None:
        kernel.saved_sigint_handler = hooks.prev_sigint if hooks.prev_sigint is not None else signal.SIG_IGN
