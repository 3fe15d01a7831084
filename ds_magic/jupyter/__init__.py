"""The notebook layer of ds_magic: magics, wait modes and kernel hooks, the live view, the chat
widget and the batch progress view. It uses the core (``ds_magic``) only through public names.

``%load_ext ds_magic`` (or the autoload config in jupyter-config/) calls
:func:`load_ipython_extension` here.
"""

from __future__ import annotations

from .magics import load_ipython_extension, unload_ipython_extension

__all__ = ["load_ipython_extension", "unload_ipython_extension"]
