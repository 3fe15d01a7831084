"""The response cache does not trust its folder: another user's folder or file, one others can
write, or a symlink is refused with one line that says how to fix it, and nothing is read from or
written to it; a damaged file is one line too (issue 14).

"Not owned by the user": as root, the planted folder or file is chown'ed to another uid (65534,
"nobody"; chown needs no account to exist). Without root, a test that needs another user's file
is skipped, and the folder case uses "/", which belongs to root: the closest honest stand-in.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
from offline_helpers import KEY

from ds_magic import CacheError, Client, DeepSeekError, ResponseCache, RetryPolicy
from ds_magic.cache import CachedAnswer, default_cache_path
from ds_magic.testing import Script

OTHER_UID = 65534
ROOT = os.geteuid() == 0


def mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def refused(cache: ResponseCache, *words: str) -> CacheError:
    with pytest.raises(CacheError) as info:
        cache.stats()
    err = info.value
    assert isinstance(err, DeepSeekError) and "\n" not in str(err)
    for w in words:
        assert w in str(err), str(err)
    return err


def test_a_planted_world_writable_folder_is_refused(tmp_path, monkeypatch):
    # Another user pre-created $XDG_CACHE_HOME/ds_magic, open to all.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = tmp_path / "ds_magic"
    folder.mkdir()
    os.chmod(folder, 0o777)
    if ROOT:
        os.chown(folder, OTHER_UID, OTHER_UID)
    err = refused(ResponseCache(default_cache_path()), str(folder), "it is not used")
    assert "another user" in str(err) if ROOT else "written by other users" in str(err)
    assert list(folder.iterdir()) == []  # nothing was created in it
    os.chown(folder, os.geteuid(), os.getegid())
    err = refused(ResponseCache(default_cache_path()), "written by other users (mode 0777)", "chmod 700")


def test_a_folder_of_another_user_is_refused(tmp_path):
    if ROOT:
        folder = tmp_path / "theirs"
        folder.mkdir(mode=0o755)
        os.chown(folder, OTHER_UID, OTHER_UID)
    else:
        folder = Path("/")  # root's: the closest stand-in for another user's folder without root
    refused(ResponseCache(folder / "responses.sqlite3"), "belongs to another user")


def test_a_planted_0666_file_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "responses.sqlite3"
    path.write_bytes(b"")
    os.chmod(path, 0o666)
    refused(ResponseCache(path), "written by other users (mode 0666)", "chmod 600")
    if not ROOT:
        pytest.skip("a file of another user needs root to plant")
    os.chown(path, OTHER_UID, OTHER_UID)
    os.chmod(path, 0o644)
    refused(ResponseCache(path), "belongs to another user")
    assert mode(path) == 0o644 and path.read_bytes() == b""


def test_a_planted_symlink_is_refused_and_its_target_untouched(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "victim.txt"
    target.write_text("do not touch")
    os.chmod(target, 0o644)
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    link = folder / "responses.sqlite3"
    link.symlink_to(target)
    refused(ResponseCache(link), "symbolic link", "remove the link")
    assert mode(target) == 0o644 and target.read_text() == "do not touch"
    # A symlinked cache folder is refused the same way.
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "linked").symlink_to(real)
    refused(ResponseCache(tmp_path / "linked" / "responses.sqlite3"), "symbolic link")
    assert list(real.iterdir()) == []


def test_a_planted_wal_companion_is_refused(tmp_path):
    target = tmp_path / "victim"
    target.write_text("x")
    (tmp_path / "responses.sqlite3-wal").symlink_to(target)
    refused(ResponseCache(tmp_path / "responses.sqlite3"), "-wal", "symbolic link")


def test_created_private_without_a_race(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    old = os.umask(0)  # even with no umask the modes are ours, not the default 0777/0666
    try:
        with ResponseCache(default_cache_path()) as cache:
            cache.put("k", CachedAnswer(text="x", model="m"))
    finally:
        os.umask(old)
    assert mode(tmp_path / "xdg" / "ds_magic") == 0o700
    assert mode(default_cache_path()) == 0o600


def test_a_damaged_file_is_one_line(tmp_path):
    path = tmp_path / "responses.sqlite3"
    path.write_bytes(b"this is not a database" * 200)
    os.chmod(path, 0o600)
    err = refused(ResponseCache(path), "damaged", "delete it")
    assert str(path) in str(err) and err.path == str(path)


def test_a_request_with_a_refused_cache_is_sent_without_it(srv, tmp_path, caplog):
    folder = tmp_path / "open"
    folder.mkdir()
    os.chmod(folder, 0o777)
    cache = ResponseCache(folder / "responses.sqlite3")
    client = Client(api_key=KEY, base_url=srv.url, cache=cache, retry=RetryPolicy(max_retries=0))
    srv.enqueue(Script(text="fresh", reasoning=""), Script(text="fresh again", reasoning=""))
    with caplog.at_level(logging.WARNING, logger="ds_magic"):
        assert client.chat("q").text == "fresh"
        again = client.chat("q")
        assert again.text == "fresh again" and not again.cached
    assert list(folder.iterdir()) == []  # nothing read, nothing written
    warned = [r.getMessage() for r in caplog.records]
    assert any("written by other users" in m and "without the cache" in m for m in warned), warned


def test_a_hand_edited_entry_with_odd_tool_calls_still_replays(srv, tmp_path):
    import sqlite3

    cache = ResponseCache(tmp_path / "responses.sqlite3")
    client = Client(api_key=KEY, base_url=srv.url, cache=cache, retry=RetryPolicy(max_retries=0))
    srv.enqueue(Script(text="stored", reasoning=""))
    assert client.chat("q").text == "stored"
    cache.close()
    with sqlite3.connect(cache.path) as db:  # the user's own file, edited by hand
        value = (
            '{"text":"stored","tool_calls":["x",{"index":"7","id":5,"function":{"name":[1],"arguments":2}}]}'
        )
        db.execute("UPDATE responses SET value = ?", (value,))
    again = client.chat("q")
    assert again.join(15) and again.status == "ok" and again.cached and again.text == "stored"
    assert [c.name for c in again.tool_calls] == ["[1]"]
