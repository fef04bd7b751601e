"""Partial writes, server-side copy, exchange and statfs through the library, against a real
meshfs-server process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meshfs_client import MeshFSClient
from meshfs_common.errors import (
    AlreadyExistsError,
    IsADirError,
    PreconditionFailedError,
)
from meshfs_common.hashing import CHUNK_SIZE, hash_bytes

pytestmark = pytest.mark.live


async def test_a_small_change_sends_one_chunk(client: MeshFSClient, tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK_SIZE)
    base = await client.upload("/big.bin", data)
    local = tmp_path / "big.bin"
    changed = bytearray(data)
    changed[CHUNK_SIZE + 10 : CHUNK_SIZE + 10 + 4096] = os.urandom(4096)
    local.write_bytes(changed)
    sent: list[int] = []
    result = await client.upload_ranges(
        "/big.bin", local, base_version=base.version.version_id,
        ranges=[(CHUNK_SIZE + 10, 4096)], progress=sent.append,
    )  # fmt: skip
    assert sum(sent) == CHUNK_SIZE  # one chunk, not the file
    assert result.version.replaces == base.version.version_id
    assert result.entry.content_hash == hash_bytes(bytes(changed)).content_hash
    assert await client.read_bytes("/big.bin") == changed


async def test_truncate_and_sparse_extension(client: MeshFSClient, tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 100)
    base = await client.upload("/t.bin", data)
    local = tmp_path / "t.bin"
    local.write_bytes(data[: CHUNK_SIZE + 5])
    sent: list[int] = []
    short = await client.upload_ranges(
        "/t.bin", local, base_version=base.version.version_id, ranges=[], progress=sent.append
    )
    assert sum(sent) == 5  # only the new last chunk
    assert await client.read_bytes("/t.bin") == data[: CHUNK_SIZE + 5]
    # Extended by truncate: the zeros are never sent.
    with local.open("r+b") as handle:
        handle.truncate(3 * CHUNK_SIZE)
    sent.clear()
    grown = await client.upload_ranges(
        "/t.bin", local, base_version=short.version.version_id, ranges=[], progress=sent.append
    )
    assert sum(sent) == CHUNK_SIZE  # chunk 1 grew from 5 bytes to a whole chunk
    assert grown.entry.size == 3 * CHUNK_SIZE
    assert await client.read_bytes("/t.bin") == local.read_bytes()


async def test_a_stale_base_commits_nothing(client: MeshFSClient, tmp_path: Path) -> None:
    first = await client.upload("/s.txt", b"first")
    await client.upload("/s.txt", b"second")
    local = tmp_path / "s.txt"
    local.write_bytes(b"third")
    with pytest.raises(PreconditionFailedError):
        await client.upload_ranges(
            "/s.txt", local, base_version=first.version.version_id, ranges=[(0, 5)]
        )
    assert await client.read_bytes("/s.txt") == b"second"
    chunks = await client.chunk_list("/s.txt")
    assert chunks.chunks == list(hash_bytes(b"second").chunks)


async def test_clone_exchange_statfs(client: MeshFSClient) -> None:
    source = await client.upload("/a.txt", b"alpha")
    copy = await client.clone("/a.txt", "/b.txt")
    assert copy.entry.node_id != source.entry.node_id
    assert await client.read_bytes("/b.txt") == b"alpha"
    with pytest.raises(AlreadyExistsError):
        await client.clone("/a.txt", "/b.txt")
    await client.mkdir("/d")
    with pytest.raises(IsADirError):
        await client.clone("/d", "/e")
    await client.upload("/b.txt", b"beta")
    swapped = await client.rename("/a.txt", "/b.txt", exchange=True)
    assert swapped.node_id == source.entry.node_id
    assert await client.read_bytes("/a.txt") == b"beta"
    stats = await client.statfs()
    assert (stats.files, stats.directories, stats.name_max) == (2, 2, 255)
    assert stats.total_bytes is not None
    assert stats.used_bytes is not None
