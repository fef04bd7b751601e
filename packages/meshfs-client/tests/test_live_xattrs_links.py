"""Extended attributes and hard links through the library, against a real server process."""

from __future__ import annotations

import pytest
from meshfs_client_testkit import Account

from meshfs_client import MeshFS, MeshFSClient
from meshfs_common.errors import (
    AlreadyExistsError,
    NotPermittedError,
    NotSupportedError,
    XattrNotFoundError,
    XattrSpaceFullError,
    XattrTooLargeError,
)

pytestmark = pytest.mark.live


async def test_set_get_list_remove(client: MeshFSClient) -> None:
    written = await client.upload("/x.txt", b"data")
    entry = await client.setxattr("/x.txt", "user.origin", b"\x00binary\xff")
    assert entry.version_id == written.version.version_id  # no new version
    await client.setxattr("/x.txt", "user.b", b"2")
    assert await client.listxattr("/x.txt") == ["user.b", "user.origin"]
    assert [x.size for x in (await client.xattrs("/x.txt")).xattrs] == [1, 8]
    assert await client.getxattr("/x.txt", "user.origin") == b"\x00binary\xff"
    assert await client.getxattr("/x.txt", "meshfs.node_id") == entry.node_id.encode()
    await client.removexattr("/x.txt", "user.b")
    assert await client.listxattr("/x.txt") == ["user.origin"]


async def test_errors_arrive_typed(client: MeshFSClient) -> None:
    await client.upload("/e.txt", b"data")
    with pytest.raises(XattrNotFoundError) as missing:
        await client.getxattr("/e.txt", "user.none")
    assert missing.value.errno == 61  # ENODATA
    await client.setxattr("/e.txt", "user.k", b"1", flag="create")
    with pytest.raises(AlreadyExistsError):
        await client.setxattr("/e.txt", "user.k", b"2", flag="create")
    with pytest.raises(XattrNotFoundError):
        await client.setxattr("/e.txt", "user.other", b"2", flag="replace")
    with pytest.raises(XattrTooLargeError) as big:
        await client.setxattr("/e.txt", "user.big", b"x" * 65537)
    assert big.value.errno == 7  # E2BIG
    with pytest.raises(NotPermittedError):
        await client.setxattr("/e.txt", "meshfs.node_id", b"forged")
    with pytest.raises(NotSupportedError):
        await client.setxattr("/e.txt", "system.posix_acl_access", b"")
    with pytest.raises(XattrNotFoundError):
        await client.removexattr("/e.txt", "user.none")
    for i in range(15):
        await client.setxattr("/e.txt", f"user.v{i}", b"v" * 65536)
    with pytest.raises(XattrSpaceFullError):
        await client.setxattr("/e.txt", "user.v15", b"v" * 65536)


def test_blocking_client_has_them_too(account: Account) -> None:
    with MeshFS(account.server.url, settings=account.settings) as fs:
        fs.upload("/b.txt", b"data")
        fs.setxattr("/b.txt", "user.k", b"v")
        assert fs.listxattr("/b.txt") == ["user.k"]
        assert fs.getxattr("/b.txt", "user.k") == b"v"
        fs.removexattr("/b.txt", "user.k")
        assert fs.listxattr("/b.txt") == []


async def test_hard_links_share_one_file(client: MeshFSClient) -> None:
    first = await client.upload("/one.txt", b"data")
    entry = await client.link("/one.txt", "/two.txt")
    assert entry.node_id == first.entry.node_id
    assert entry.nlink == 2
    await client.upload("/two.txt", b"new")
    assert await client.read_bytes("/one.txt") == b"new"
    await client.delete("/one.txt")
    assert (await client.meta("/two.txt")).nlink == 1
    with pytest.raises(AlreadyExistsError):
        await client.link("/two.txt", "/two.txt")
    await client.mkdir("/dir")
    with pytest.raises(NotPermittedError):
        await client.link("/dir", "/dir2")


def test_blocking_link(account: Account) -> None:
    with MeshFS(account.server.url, settings=account.settings) as fs:
        fs.upload("/l1.txt", b"data")
        assert fs.link("/l1.txt", "/l2.txt").nlink == 2
