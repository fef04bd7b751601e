"""The mirror carries symbolic links both ways as links (never following them), against a REAL
meshfs-server (see mirror_testkit.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from meshfs_client_testkit import Account
from mirror_testkit import running_mirrors, sync_once, wait_for

from meshfs_client import MeshFSClient
from meshfs_common.errors import NotADirError, NotFoundError

pytestmark = pytest.mark.live


async def _target(client: MeshFSClient, path: str) -> str | None:
    try:
        entry = await client.meta(path)
    except NotFoundError:
        return None
    return entry.target if entry.kind == "symlink" else None


def _link(path: Path) -> str | None:
    return os.readlink(path) if path.is_symlink() else None


async def test_links_travel_both_ways_as_links(
    account: Account, client: MeshFSClient, tmp_path: Path
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"not to be mirrored")
    a.mkdir()
    (a / "real.txt").write_bytes(b"real")
    async with running_mirrors(account, [a, b], tmp_path / "state"):
        # A local link becomes a server link with the same target; the other mirror gets a
        # link too. A link out of the folder is a link, never what it points to.
        (a / "to-real").symlink_to("real.txt")
        (a / "out").symlink_to(outside)

        async def arrived() -> bool:
            return (
                await _target(client, "/to-real") == "real.txt"
                and await _target(client, "/out") == str(outside)
                and _link(b / "to-real") == "real.txt"
                and _link(b / "out") == str(outside)
                and (b / "real.txt").exists()
            )

        await wait_for(arrived, what="local links -> server -> mirror b")
        with pytest.raises(NotADirError):  # the link is a link on the server, not a directory
            await client.meta("/out/secret.txt")
        assert (b / "to-real").read_bytes() == b"real"

        # A server link becomes a local link on both mirrors.
        await client.symlink("/up", "../somewhere/else")

        async def server_link_arrived() -> bool:
            return _link(a / "up") == _link(b / "up") == "../somewhere/else"

        await wait_for(server_link_arrived, what="server link -> mirrors")

        # Renames both ways.
        (a / "to-real").rename(a / "renamed-link")

        async def renamed() -> bool:
            return (
                await _target(client, "/renamed-link") == "real.txt"
                and not await client.exists("/to-real")
                and _link(b / "renamed-link") == "real.txt"
                and not (b / "to-real").is_symlink()
            )

        await wait_for(renamed, what="local link rename")
        await client.rename("/up", "/up2")

        async def remote_renamed() -> bool:
            return _link(a / "up2") == _link(b / "up2") == "../somewhere/else" and not any(
                (side / "up").is_symlink() for side in (a, b)
            )

        await wait_for(remote_renamed, what="server link rename")

        # A changed target (a link replaced by another) travels as well.
        (b / "renamed-link").unlink()
        (b / "renamed-link").symlink_to("elsewhere.txt")

        async def retargeted() -> bool:
            return (
                await _target(client, "/renamed-link") == "elsewhere.txt"
                and _link(a / "renamed-link") == "elsewhere.txt"
            )

        await wait_for(retargeted, what="link retarget")

        # Deletes both ways; the link's target is never touched.
        (a / "out").unlink()
        await client.delete("/up2")

        async def deleted() -> bool:
            return (
                not await client.exists("/out")
                and not any((side / "out").is_symlink() for side in (a, b))
                and not any((side / "up2").is_symlink() for side in (a, b))
            )

        await wait_for(deleted, what="link deletes")
    assert (outside / "secret.txt").read_bytes() == b"not to be mirrored"
    assert (a / "real.txt").read_bytes() == b"real"


async def test_once_mirror_takes_links_from_a_listing(
    account: Account, client: MeshFSClient, tmp_path: Path
) -> None:
    await client.upload("/dir/f.txt", b"f")
    await client.symlink("/dir/link", "f.txt")
    a = tmp_path / "a"
    await sync_once(account, a, tmp_path / "state")
    assert _link(a / "dir" / "link") == "f.txt"
    assert (a / "dir" / "link").read_bytes() == b"f"
