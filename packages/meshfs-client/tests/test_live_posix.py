"""POSIX attributes, symbolic links and special nodes through the library, against a real
meshfs-server process."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from meshfs_client_testkit import Account

from meshfs_client import MeshFS, MeshFSClient
from meshfs_common.errors import (
    AlreadyExistsError,
    BadRequestError,
    NameTooLongError,
    NotADirError,
    NotAFileError,
    PreconditionFailedError,
)

pytestmark = pytest.mark.live


async def test_chmod_chown_utime_keep_the_content(client: MeshFSClient) -> None:
    written = await client.upload("/run.sh", b"#!/bin/sh\n")
    assert written.entry.mode == 0o644
    entry = await client.chmod("/run.sh", 0o755)
    assert entry.mode == 0o755
    assert entry.version_id == written.version.version_id  # no new version
    entry = await client.chown("/run.sh", 1000, 100)
    assert (entry.uid, entry.gid) == (1000, 100)
    entry = await client.utime("/run.sh", mtime_ns=1_234_567_890_123_456_789, atime_ns=5)
    assert (entry.mtime_ns, entry.atime_ns) == (1_234_567_890_123_456_789, 5)
    assert entry.ctime_ns > written.entry.ctime_ns
    assert await client.meta("/run.sh") == entry
    with pytest.raises(PreconditionFailedError):
        await client.set_attributes("/run.sh", mode=0o700, if_match="stale")
    with pytest.raises(BadRequestError):
        await client.chmod("/run.sh", 0o170000)
    directory = await client.mkdir("/private", mode=0o700)
    assert directory.mode == 0o700


async def test_an_upload_sets_the_mtime_it_is_given(client: MeshFSClient, tmp_path: Path) -> None:
    mtime = 1_234_567_890_123_456_789
    made = await client.upload("/given.txt", b"one", mtime_ns=mtime)
    assert made.entry.mtime_ns == mtime
    local = tmp_path / "two.txt"
    local.write_bytes(b"two")
    again = await client.upload("/given.txt", local, mtime_ns=mtime + 1)
    assert (await client.meta("/given.txt")).mtime_ns == again.entry.mtime_ns == mtime + 1
    # Without one, a write sets the commit's time.
    plain = await client.upload("/given.txt", b"three")
    assert plain.entry.mtime_ns > mtime + 1


async def test_symlinks_and_special_nodes(client: MeshFSClient) -> None:
    await client.mkdir("/d")
    link = await client.symlink("/d/latest", "../releases//v2")
    assert (link.kind, link.target) == ("symlink", "../releases//v2")
    assert await client.readlink("/d/latest") == "../releases//v2"
    with pytest.raises(AlreadyExistsError):
        await client.symlink("/d/latest", "x")
    with pytest.raises(NameTooLongError) as long:
        await client.symlink("/d/long", "x" * 4097)
    assert long.value.errno == errno.ENAMETOOLONG
    with pytest.raises(NotADirError) as through:
        await client.upload("/d/latest/f", b"x")
    assert through.value.errno == errno.ENOTDIR
    with pytest.raises(NotAFileError):
        await client.read_bytes("/d/latest")
    fifo = await client.mknod("/d/pipe", "fifo", mode=0o600)
    dev = await client.mknod("/d/null", "chardev", rdev=0x0103)
    assert (fifo.kind, fifo.mode, dev.rdev) == ("fifo", 0o600, 0x0103)
    with pytest.raises(BadRequestError):
        await client.readlink("/d/pipe")
    kinds = {e.name: e.kind for e in await client.listdir("/d")}
    assert kinds == {"latest": "symlink", "null": "chardev", "pipe": "fifo"}


def test_blocking_client_has_them_too(account: Account) -> None:
    with MeshFS(account.server.url, settings=account.settings) as fs:
        fs.upload("/b.txt", b"data")
        assert fs.chmod("/b.txt", 0o600).mode == 0o600
        assert fs.utime("/b.txt", mtime_ns=10).mtime_ns == 10
        assert fs.set_attributes("/b.txt", uid=5).uid == 5
        assert fs.chown("/b.txt", gid=6).gid == 6
        fs.symlink("/l", "b.txt")
        assert fs.readlink("/l") == "b.txt"
        assert fs.mknod("/s", "socket").kind == "socket"
