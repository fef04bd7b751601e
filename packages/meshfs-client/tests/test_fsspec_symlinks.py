"""fsspec's put follows the rule of `meshfs put -r` and `meshfs sync`: symbolic links inside a
local tree are not followed unless asked (a link to /etc/passwd must not be uploaded)."""

from __future__ import annotations

from pathlib import Path

import pytest
from meshfs_client_testkit import Account

from meshfs_client import MeshFS
from meshfs_client._credentials import CredentialStore
from meshfs_client.fsspec import MeshFSFileSystem

pytestmark = pytest.mark.live


def _fs(account: Account) -> MeshFSFileSystem:
    stored = CredentialStore(account.settings.credentials_path).load(account.server.url)
    assert stored is not None
    return MeshFSFileSystem(
        server=account.server.url, token=stored.access_token, skip_instance_cache=True
    )


def test_put_recursive_skips_symbolic_links_unless_asked(account: Account, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the tree")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "o.txt").write_text("o")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("a")
    (tree / "sub" / "b.txt").write_text("b")
    (tree / "passwd").symlink_to(secret)
    (tree / "linked").symlink_to(outside)
    fs = _fs(account)
    try:
        fs.put(str(tree), "/t", recursive=True)
        assert sorted(fs.find("/t", withdirs=True)) == ["/t", "/t/a.txt", "/t/sub", "/t/sub/b.txt"]
        fs.put(str(tree), "/f", recursive=True, follow_symlinks=True)
        assert fs.cat_file("/f/passwd") == b"outside the tree"  # fsspec's own expansion
    finally:
        if fs._client is not None:
            MeshFSFileSystem.close_session(fs.loop, fs._client)


def test_links_and_special_nodes_on_the_server_are_not_directories(account: Account) -> None:
    """A symbolic link or FIFO on the server is listed as fsspec's ``link``/``other``, never
    walked into as a directory, and its info carries the kind, mode and link target."""
    with MeshFS(account.server.url, settings=account.settings) as client:
        client.upload("/s/a.txt", b"a")
        client.symlink("/s/l", "a.txt")
        client.mknod("/s/p", "fifo", mode=0o600)
    fs = _fs(account)
    info = fs.info("/s/l")
    assert (info["type"], info["kind"], info["destination"]) == ("link", "symlink", "a.txt")
    assert (fs.info("/s/p")["type"], fs.info("/s/p")["mode"]) == ("other", 0o600)
    assert fs.info("/s/a.txt")["mode"] == 0o644
    assert sorted(fs.find("/s", withdirs=True)) == ["/s", "/s/a.txt", "/s/l", "/s/p"]
