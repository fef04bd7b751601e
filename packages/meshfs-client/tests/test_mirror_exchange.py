"""`meshfs sync` follows a rename with exchange on the server (two ``rename`` events naming
each other in ``exchanged_with``) as a swap on disk, and mirrors hard links as copies, against
a REAL meshfs-server."""

from __future__ import annotations

import os
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


async def test_hard_links_are_mirrored_as_copies(
    account: Account, client: MeshFSClient, tmp_path: Path
) -> None:
    await client.upload("/h/one.txt", b"shared content")
    a = tmp_path / "a"
    async with running_mirrors(account, [a], tmp_path / "state"):

        async def converged() -> bool:
            return local_tree(a) == await remote_tree(client)

        await wait_for(converged, what="the first pass")
        await client.link("/h/one.txt", "/h/two.txt")  # one file, two names on the server
        await wait_for(lambda: _async((a / "h" / "two.txt").exists()), what="the second name")
        assert (a / "h" / "two.txt").read_bytes() == b"shared content"
        assert (a / "h" / "two.txt").stat().st_ino != (a / "h" / "one.txt").stat().st_ino

        (a / "h" / "local-1.txt").write_bytes(b"local pair")
        os.link(a / "h" / "local-1.txt", a / "h" / "local-2.txt")
        await wait_for(converged, what="both local names on the server")
        first = await client.meta("/h/local-1.txt")
        second = await client.meta("/h/local-2.txt")
        assert first.node_id != second.node_id  # two files with the same content
        assert await client.read_bytes("/h/local-2.txt") == b"local pair"


async def _async(value: bool) -> bool:
    return value
