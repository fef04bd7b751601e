"""The local content store keeps every chunk byte for byte, whatever its size, on a disk
(written with O_DIRECT: padded to whole blocks, then cut to size) and on tmpfs (which refuses
O_DIRECT, so the store writes through the page cache)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from meshfs_common.hashing import CHUNK_SIZE, chunk_hash
from meshfs_common.ids import new_id
from meshfs_server.adapters.local_content import LocalContentStore

SIZES = (1, 4095, 4096, 4097, 70_001, CHUNK_SIZE - 1, CHUNK_SIZE)
SHM = Path("/dev/shm")


async def _round_trip(root: Path) -> None:
    store = await LocalContentStore.create(root)
    tenant = new_id()
    try:
        stored = {}
        for size in SIZES:
            data = os.urandom(size)
            name = chunk_hash(data)
            stored[name] = data
        # Several at once, as concurrent uploads write them (one aligned buffer per thread).
        await asyncio.gather(*(store.put_bytes(tenant, n, d) for n, d in stored.items()))
        for name, data in stored.items():
            assert b"".join([b async for b in store.open(tenant, name)]) == data
            assert (
                b"".join([b async for b in store.open(tenant, name, start=1, end=4097)])
                == (data[1:4097])
            )
        assert not list((root / "tmp").iterdir())  # no partial file left behind
    finally:
        await store.close()


def test_chunks_of_every_size_are_stored_exactly_on_disk(tmp_path: Path) -> None:
    asyncio.run(_round_trip(tmp_path / "content"))


@pytest.mark.skipif(not SHM.is_dir(), reason="no tmpfs at /dev/shm")
def test_chunks_are_stored_exactly_where_o_direct_is_refused(tmp_path: Path) -> None:
    root = SHM / f"meshfs-test-{new_id()}"
    try:
        asyncio.run(_round_trip(root))
    finally:
        for path in sorted(root.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        root.rmdir()
