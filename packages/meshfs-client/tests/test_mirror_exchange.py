"""`meshfs sync` follows a rename with exchange on the server (two ``rename`` events naming
each other in ``exchanged_with``) as a swap on disk, against a REAL meshfs-server."""

from __future__ import annotations

from pathlib import Path

import pytest
from meshfs_client_testkit import Account
from mirror_testkit import local_tree, remote_tree, running_mirrors, wait_for

from meshfs_client import MeshFSClient

pytestmark = pytest.mark.live


async def test_a_remote_exchange_swaps_the_local_files_and_directories(
    account: Account, client: MeshFSClient, tmp_path: Path
) -> None:
    await client.upload("/x/in-x.txt", b"x's file")
    await client.upload("/y/in-y.txt", b"y's file")
    await client.upload("/y/deeper/z.txt", b"deep in y")
    await client.upload("/one.txt", b"first")
    await client.upload("/two.txt", b"second")
    a = tmp_path / "a"
    async with running_mirrors(account, [a], tmp_path / "state"):

        async def converged() -> bool:
            return local_tree(a) == await remote_tree(client)

        await wait_for(converged, what="the first pass")
        inodes = {
            name: (a / name).stat().st_ino for name in ("x/in-x.txt", "y/in-y.txt", "one.txt")
        }

        await client.rename("/x", "/y", exchange=True)
        await client.rename("/one.txt", "/two.txt", exchange=True)
        await wait_for(converged, what="the exchanges on disk")
        assert local_tree(a) == {
            "/x": None,
            "/x/in-y.txt": b"y's file",
            "/x/deeper": None,
            "/x/deeper/z.txt": b"deep in y",
            "/y": None,
            "/y/in-x.txt": b"x's file",
            "/one.txt": b"second",
            "/two.txt": b"first",
        }
        # Swapped on disk, not downloaded again: each file is the same file under its new name.
        assert (a / "y" / "in-x.txt").stat().st_ino == inodes["x/in-x.txt"]
        assert (a / "x" / "in-y.txt").stat().st_ino == inodes["y/in-y.txt"]
        assert (a / "two.txt").stat().st_ino == inodes["one.txt"]

        # The merge base swapped with them: a later edit on either side still syncs.
        (a / "y" / "in-x.txt").write_bytes(b"edited after the exchange")
        await wait_for(converged, what="an edit after the exchange")
        assert await client.read_bytes("/y/in-x.txt") == b"edited after the exchange"
