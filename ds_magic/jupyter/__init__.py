"""The notebook layer of ds_magic: magics, wait modes and kernel hooks, the live view, the chat
widget and the batch progress view. It uses the core (``ds_magic``) only through public names.

``%load_ext ds_magic`` (or the autoload config in jupyter-config/) calls
:func:`load_ipython_extension` here. Importing this package loads nothing of IPython: a module that
needs only the safe renderer (``ds_magic.jupyter.render``) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = ["load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ip: InteractiveShell) -> None:
    from .extension import load  # IPython, traitlets and ipywidgets are imported here, not before

    load(ip)


def unload_ipython_extension(ip: InteractiveShell) -> None:
    from .extension import unload

    unload(ip)
