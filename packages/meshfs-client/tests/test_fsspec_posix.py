"""fsspec's POSIX methods on ``meshfs://`` (the names LocalFileSystem uses): info carries mode,
owner, link count and islink; chmod, touch, symlink, link and islink work against a REAL
server."""

from __future__ import annotations

import time

import pytest
from meshfs_client_testkit import Account
from test_fsspec_symlinks import _fs

from meshfs_client.fsspec import MeshFSFileSystem

pytestmark = pytest.mark.live


def test_chmod_touch_and_links_through_fsspec(account: Account) -> None:
    fs = _fs(account)
    try:
        fs.pipe_file("/p/a.txt", b"content")
        version = fs.info("/p/a.txt")["version_id"]
        fs.chmod("/p/a.txt", 0o755)
        assert fs.info("/p/a.txt")["mode"] == 0o755

        before = time.time()
        fs.touch("/p/a.txt", truncate=False)
        touched = fs.info("/p/a.txt")
        assert touched["mtime"] >= before - 1
        assert touched["version_id"] == version  # times only: no new version
        assert fs.cat_file("/p/a.txt") == b"content"
        fs.touch("/p/empty.txt")
        assert fs.cat_file("/p/empty.txt") == b""

        fs.symlink("a.txt", "/p/l")
        assert fs.islink("/p/l")
        assert not fs.islink("/p/a.txt")
        assert not fs.islink("/p/missing")
        assert fs.info("/p/l")["destination"] == "a.txt"

        fs.link("/p/a.txt", "/p/b.txt")
        info = fs.info("/p/b.txt")
        assert info["nlink"] == 2
        assert info["islink"] is False
        assert fs.cat_file("/p/b.txt") == b"content"
        assert {"uid", "gid", "nlink", "islink", "mode"} <= set(fs.ls("/p", detail=True)[0])
        with pytest.raises(FileExistsError):
            fs.symlink("x", "/p/a.txt")
        with pytest.raises(FileNotFoundError):
            fs.chmod("/p/missing", 0o600)
    finally:
        if fs._client is not None:
            MeshFSFileSystem.close_session(fs.loop, fs._client)
