"""A private file in a private folder: the response cache's file, which holds answers that may be
private, on a machine that other users may share (a shared ``XDG_CACHE_HOME``, /tmp).

:func:`ensure_private` creates the folder 0700 and the file 0600 without a race (``O_CREAT |
O_EXCL | O_NOFOLLOW``) and refuses, with one line that says how to fix it (:class:`CacheError`), a
folder or file that belongs to another user, that others can write, or that is a symbolic link:
someone who can plant those can read every cached answer, or feed us answers (issue 14). A planted
symlink is never followed, so its target is never opened nor chmod'ed.

Only the last folder and the file are checked: the folders above them are where the user chose to
put the cache. Once the folder is the user's own and nobody else can write it, nobody else can
swap the file inside it either, so what is checked here is still true when SQLite opens it.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from .errors import CacheError

__all__ = ["ensure_private", "ELSEWHERE"]

_create_lock = threading.Lock()
# SQLite's companions of a database file: planted ones would be followed like the file itself.
_COMPANIONS = ("-wal", "-shm", "-journal")
#: The way out the core suggests when a cache folder or file cannot be trusted (the notebook has its own).
ELSEWHERE = "use a cache folder of your own (XDG_CACHE_HOME, or ResponseCache(path=...))"


def ensure_private(path: Path) -> None:
    """Make sure ``path`` and its folder are the user's own and private; create them if missing.

    An existing file of ours that others can only read (an older ds_magic made it 0644) is
    tightened to 0600 by path, which is safe in a folder nobody else can write. The file is never
    opened here if it exists: closing any descriptor of a file drops every POSIX lock this process
    holds on it, including those of SQLite connections in other threads, and two writers then
    corrupt the database (sqlite.org/howtocorrupt.html §2.2). The lock keeps another thread from
    connecting between our create and our close.
    """
    folder = path.parent
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            pass
    except OSError as exc:
        raise CacheError(
            f"Could not create the response cache folder {folder} ({exc.strerror or exc})",
            ELSEWHERE,
            str(folder),
        ) from None
    _check(folder, folder=True)
    with _create_lock:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            mode = _check(path, folder=False)
            if mode & 0o077:
                os.chmod(path, 0o600)
        except OSError as exc:
            raise CacheError(
                f"Could not create the response cache file {path} ({exc.strerror or exc})",
                ELSEWHERE,
                str(path),
            ) from None
        else:
            os.close(fd)
    for suffix in _COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if os.path.lexists(companion):
            _check(companion, folder=False)


def _check(p: Path, *, folder: bool) -> int:
    """Refuse ``p`` unless it is the user's own real folder/file that nobody else can write;
    return its mode bits."""
    kind = "folder" if folder else "file"
    fix = f"chmod {'700' if folder else '600'} {p} if it is yours alone, or {ELSEWHERE}"
    try:
        st = os.lstat(p)
    except OSError as exc:
        raise CacheError(
            f"The response cache {kind} {p} cannot be read ({exc.strerror or exc})", fix, str(p)
        ) from None
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        problem, fix = "is a symbolic link", f"remove the link (a new cache is made), or {ELSEWHERE}"
    elif not (stat.S_ISDIR(st.st_mode) if folder else stat.S_ISREG(st.st_mode)):
        problem, fix = f"is not a {'folder' if folder else 'regular file'}", ELSEWHERE
    elif st.st_uid != os.geteuid():
        problem, fix = f"belongs to another user (uid {st.st_uid})", f"remove it, or {ELSEWHERE}"
    elif mode & 0o022:
        problem = f"can be written by other users (mode {mode:04o})"
    else:
        return mode
    raise CacheError(f"The response cache {kind} {p} {problem}; it is not used", fix, str(p))
