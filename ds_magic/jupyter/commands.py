"""The ``%deepseek`` line subcommands: ``COMMANDS[name](settings, rest)``.

A line that does not start with one of these names is a one-line prompt (magics.py).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from typing import Any

from IPython.core.error import StdinNotImplementedError

from ..client import DEFAULT_BASE_URL
from ..conversation_file import MAX_IMPORT_BYTES, FileTooLargeError
from ..conversation_store import history_text
from ..dialect import check_dialect, known_dialect
from ..errors import DeepSeekError
from ..guard import mask_key
from .errors import DeepSeekCellError, cell_error
from .explain import explain_command, fix_command
from .kernel_hooks import resolve_mode
from .session import cancel_all, session
from .settings import Settings
from .stats_view import format_cache_stats, show_stats

__all__ = ["COMMANDS", "usage"]


def usage() -> str:
    """What bare ``%deepseek`` says: every subcommand (read from COMMANDS, so none is left out)."""
    return (
        f"Usage: %deepseek SUBCOMMAND, one of: {' | '.join(COMMANDS)}; or %deepseek [options] PROMPT, "
        "or %%deepseek [options] with the prompt in the cell — %%deepseek? lists the options"
    )


def _history(settings: Settings, rest: list[str]) -> None:
    name = "default"
    if rest[:1] in (["--chat"], ["-c"]) and len(rest) > 1:
        name = rest[1]
    elif rest:
        name = rest[0]
    try:
        conv = session.store.get(name, create=False)
    except KeyError:
        existing = ", ".join(session.store.names()) or "none"
        raise DeepSeekCellError(f"No conversation named {name!r}; existing: {existing}") from None
    print(history_text(conv) or f"(conversation {name!r} is empty)")


def _chats(settings: Settings, rest: list[str]) -> None:
    names = session.store.names()
    if not names:
        print("(no conversations yet)")
    for n in names:
        print(f"{n}: {len(session.store.get(n))} turns")


def _reset(settings: Settings, rest: list[str]) -> None:
    name = rest[0] if rest else "default"
    session.store.reset(name)
    print(f"Conversation {name!r} cleared.")


def _fork(settings: Settings, rest: list[str]) -> None:
    if len(rest) != 2:
        raise DeepSeekCellError("Usage: %deepseek fork SRC DST")
    try:
        session.store.fork(rest[0], rest[1])
    except (KeyError, ValueError) as exc:
        raise DeepSeekCellError(str(exc).strip("'\"")) from None
    print(f"Forked {rest[0]!r} into {rest[1]!r}.")


def _export(settings: Settings, rest: list[str]) -> None:
    if len(rest) != 1:
        raise DeepSeekCellError("Usage: %deepseek export FILE.json")
    session.store.export(rest[0])
    n = len(session.store.names())
    print(f"Exported {n} conversation(s) to {rest[0]} (no API key is ever written).")


def _import(settings: Settings, rest: list[str]) -> None:
    usage = "Usage: %deepseek import FILE.json [--max-mb N]"
    max_bytes = MAX_IMPORT_BYTES
    if len(rest) == 3 and rest[1] == "--max-mb":
        try:
            max_bytes = int(float(rest[2]) * 1024 * 1024)
        except ValueError:
            max_bytes = 0
        if max_bytes <= 0:
            raise DeepSeekCellError(usage)
    elif len(rest) != 1:
        raise DeepSeekCellError(usage)
    try:
        names = session.store.import_(rest[0], max_bytes=max_bytes)
    except FileTooLargeError as exc:
        raise DeepSeekCellError(
            f"Could not import {rest[0]}: {exc.what} (--max-mb N raises the cap)"
        ) from None
    except (OSError, ValueError) as exc:
        raise DeepSeekCellError(f"Could not import {rest[0]}: {exc}") from None
    print(f"Imported: {', '.join(names)}")


def _models(settings: Settings, rest: list[str]) -> list[str]:
    try:
        models = session.client(settings).models()
    except (DeepSeekError, ValueError) as exc:
        raise cell_error(exc) from None
    for m in models:
        print(m)
    return models


def _key(settings: Settings, rest: list[str]) -> None:
    try:
        key = getpass.getpass("DeepSeek API key (kept in memory only): ").strip()
    except StdinNotImplementedError:  # a frontend that cannot answer input requests (nbclient, papermill)
        raise DeepSeekCellError(
            "This frontend cannot ask for input — set DEEPSEEK_API_KEY before starting the kernel"
        ) from None
    if not key:
        raise DeepSeekCellError("No key entered; nothing changed.")
    session.set_api_key(key)
    print("API key set for this kernel (in memory only).")


def _cancel_all(settings: Settings, rest: list[str]) -> None:
    print(f"Cancelled {cancel_all()} request(s).")


def _config(settings: Settings, rest: list[str]) -> None:
    for name in sorted(settings.trait_names(config=True)):
        print(f"DeepSeekMagics.{name} = {getattr(settings, name)!r}")
    key = session.api_key or os.environ.get("DEEPSEEK_API_KEY", "")
    source = "%deepseek key" if session.api_key else ("DEEPSEEK_API_KEY" if key else "not set")
    print(f"API key: {mask_key(key)} ({source})")
    base = settings.base_url or os.environ.get("DEEPSEEK_BASE_URL") or DEFAULT_BASE_URL
    print(f"Base URL: {base}")
    found = check_dialect(settings.dialect) or known_dialect(base)
    print(f"Dialect now: {found or 'openai, unless the server says it is the offline server'}")
    print(f"Wait mode now: {resolve_mode(settings)}")


def _stats(settings: Settings, rest: list[str]) -> None:
    show_stats()  # stats_view.py: the totals rounded for people, and the plot as an image


def _cache(settings: Settings, rest: list[str]) -> Any:
    from ..cache import default_cache  # sqlite3 is imported only when a cache is used

    store = default_cache()
    action = rest[0] if rest else "stats"
    if action not in ("stats", "clear"):
        raise DeepSeekCellError("Usage: %deepseek cache stats | clear")
    try:
        if action == "clear":
            store.clear()
            print("Response cache cleared.")
            return None
        st = store.stats()
    except DeepSeekError as exc:  # a folder it cannot trust, a damaged file: one line with the fix
        raise cell_error(exc) from None
    print(format_cache_stats(st))
    return None  # printed above; returning the dict too showed it a second time as Out[] (issue 13)


def _chat(settings: Settings, rest: list[str]) -> Any:
    """``%deepseek chat [NAME]``: an interactive chat widget on conversation NAME (chat.py)."""
    from .chat import Chat  # anywidget and the chat's front end load on first use

    if len(rest) > 1:
        raise DeepSeekCellError("Usage: %deepseek chat [NAME] — one conversation name, no spaces")
    return Chat(chat=rest[0] if rest else "default")


COMMANDS: dict[str, Callable[[Settings, list[str]], Any]] = {
    "history": _history,
    "chats": _chats,
    "reset": _reset,
    "fork": _fork,
    "export": _export,
    "import": _import,
    "models": _models,
    "key": _key,
    "cancel-all": _cancel_all,
    "config": _config,
    "stats": _stats,
    "cache": _cache,
    "chat": _chat,
    "explain": explain_command,
    "fix": fix_command,
}
