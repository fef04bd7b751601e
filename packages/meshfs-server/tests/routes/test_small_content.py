"""Small content kept in the metadata database: a small file is committed by one transaction
(one durable write), and everything a user does with files works on it as on any other."""

from __future__ import annotations

import os
from typing import Any

import httpx
from conftest import Harness

from meshfs_common.errors import MeshFSError
from meshfs_common.hashing import CHUNK_SIZE, hash_bytes
from meshfs_server.domain.placement import INLINE_MAX


async def kept_in_database(harness: Harness, name: str) -> bool:
    async with harness.services.store.read(harness.tenant_id) as tx:
        return await tx.chunk_data(name) is not None


async def in_content_store(harness: Harness, name: str) -> bool:
    try:
        async for _ in harness.services.content_store.open(harness.tenant_id, name):
            pass
    except MeshFSError:
        return False
    return True


async def put(client: httpx.AsyncClient, path: str, data: bytes) -> dict[str, Any]:
    r = await client.put("/files/content", params={"path": path}, content=data)
    assert r.status_code in (200, 201), r.text
    result: dict[str, Any] = r.json()
    return result


async def download(client: httpx.AsyncClient, **params: str) -> bytes:
    r = await client.get("/files/download", params=params)
    assert r.status_code == 200, r.text
    return r.content


async def test_a_small_file_lives_in_the_database_and_reads_back(harness: Harness) -> None:
    client = harness.client
    data = os.urandom(1024)
    await put(client, "/small.bin", data)
    name = hash_bytes(data).chunks[0]
    assert await kept_in_database(harness, name)
    assert not await in_content_store(harness, name)  # no second copy, no file fsyncs
    assert await download(client, path="/small.bin") == data
    r = await client.get(
        "/files/download", params={"path": "/small.bin"}, headers={"Range": "bytes=100-199"}
    )
    assert r.status_code == 206
    assert r.content == data[100:200]
    # The largest chunk kept there, and the smallest that is not.
    edge, over = os.urandom(INLINE_MAX), os.urandom(INLINE_MAX + 1)
    await put(client, "/edge.bin", edge)
    await put(client, "/over.bin", over)
    assert await kept_in_database(harness, hash_bytes(edge).chunks[0])
    assert await in_content_store(harness, hash_bytes(over).chunks[0])
    assert not await kept_in_database(harness, hash_bytes(over).chunks[0])
    assert await download(client, path="/edge.bin") == edge
    assert await download(client, path="/over.bin") == over


async def test_history_copies_and_partial_writes_of_small_content(harness: Harness) -> None:
    client = harness.client
    first, second = b"first version " * 10, b"second version " * 10
    v1 = (await put(client, "/notes.txt", first))["version"]["version_id"]
    await put(client, "/notes.txt", second)
    assert await download(client, path="/notes.txt", version_id=v1) == first
    r = await client.post("/files/copy", json={"path": "/notes.txt", "new_path": "/copy.txt"})
    assert r.status_code in (200, 201), r.text
    assert await download(client, path="/copy.txt") == second
    # A big file whose small tail chunk a partial write replaces: only that chunk is sent, and
    # it is kept in the database.
    big = os.urandom(CHUNK_SIZE + 100)
    base = (await put(client, "/big.bin", big))["version"]["version_id"]
    new = big[:CHUNK_SIZE] + b"changed tail" * 20
    digest = hash_bytes(new)
    init = await client.post("/files/upload/init", json={
        "path": "/big.bin", "base_version": base, "size": len(new),
        "content_hash": digest.content_hash, "replace": {"1": digest.chunks[1]},
    })  # fmt: skip
    assert init.status_code == 200, init.text
    assert init.json()["missing"] == [1]
    upload_id = init.json()["upload_id"]
    r = await client.put(
        "/files/upload/part", params={"upload_id": upload_id, "index": 1},
        content=new[CHUNK_SIZE:],
    )  # fmt: skip
    assert r.status_code == 200, r.text
    done = await client.post("/files/upload/commit", json={"upload_id": upload_id})
    assert done.status_code == 200, done.text
    assert await kept_in_database(harness, digest.chunks[1])
    assert await download(client, path="/big.bin") == new
    assert await download(client, path="/big.bin", version_id=base) == big


async def test_small_content_nobody_references_is_collected(harness: Harness) -> None:
    client = harness.client
    old, kept = b"old small content", b"kept small content"
    await put(client, "/a", old)
    await put(client, "/a", kept)
    services = harness.services
    assert (await services.collector.collect()).deleted_chunks == 0  # history keeps it
    async with services.store.write(harness.tenant_id) as tx:
        dropped = await tx.prunable_versions(keep=1, created_before=0.0, limit=10)
        assert await tx.delete_versions(dropped) == 1
    assert (await services.collector.collect()).deleted_chunks == 1
    assert not await kept_in_database(harness, hash_bytes(old).chunks[0])
    assert await kept_in_database(harness, hash_bytes(kept).chunks[0])
    assert await download(client, path="/a") == kept
    async with services.store.read(harness.tenant_id) as tx:
        assert (await tx.storage_usage()).committed == len(kept)
    # Written again after its collection, the content is stored again.
    await put(client, "/b", old)
    assert await download(client, path="/b") == old


async def test_identical_small_content_is_stored_once_across_files(harness: Harness) -> None:
    client = harness.client
    data = b"shared" * 50
    await put(client, "/one", data)
    await put(client, "/two", data)
    async with harness.services.store.read(harness.tenant_id) as tx:
        assert (await tx.storage_usage()).committed == len(data)
    await client.delete("/files", params={"path": "/one"})
    assert await download(client, path="/two") == data
