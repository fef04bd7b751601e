"""Garbage collection deletes unreferenced content and never content someone relies on."""

from __future__ import annotations

import os

import httpx
from conftest import Harness

from meshfs_common.errors import MeshFSError
from meshfs_common.hashing import hash_bytes
from meshfs_server.domain.placement import INLINE_MAX


async def stored(harness: Harness, name: str) -> bool:
    """Whether a chunk's bytes exist where the server keeps them: a small chunk's row in the
    metadata database, else the content port (local directory or S3)."""
    async with harness.services.store.read(harness.tenant_id) as tx:
        if await tx.chunk_data(name) is not None:
            return True
    try:
        async for _ in harness.services.content_store.open(harness.tenant_id, name):
            pass
    except MeshFSError:
        return False
    return True


async def test_abandoned_upload_content_is_collected(harness: Harness) -> None:
    client = harness.client
    data = os.urandom(1000)
    digest = hash_bytes(data)
    body = {"path": "/a", "size": digest.size, "content_hash": digest.content_hash,
            "chunks": list(digest.chunks)}  # fmt: skip
    init = (await client.post("/files/upload/init", json=body)).json()
    await client.put(
        "/files/upload/part", params={"upload_id": init["upload_id"], "index": 0}, content=data
    )
    assert await stored(harness, digest.chunks[0])
    # Held by the upload in progress: not collected.
    assert (await harness.services.collector.collect()).deleted_chunks == 0
    assert await stored(harness, digest.chunks[0])
    # The upload expires (simulated by forgetting it); then the chunk goes.
    async with harness.services.store.write(harness.tenant_id) as tx:
        await tx.delete_upload(init["upload_id"])
    assert (await harness.services.collector.collect()).deleted_chunks == 1
    assert not await stored(harness, digest.chunks[0])
    # Uploading the same content again works: nothing refers to the deleted chunk.
    init = (await client.post("/files/upload/init", json=body)).json()
    assert init["missing"] == [0]


async def test_referenced_content_is_never_collected(harness: Harness) -> None:
    client: httpx.AsyncClient = harness.client
    for body in (b"precious", b"newer"):
        await client.put("/files/content", params={"path": "/keep"}, content=body)
    await client.delete("/files", params={"path": "/keep"})
    assert (await harness.services.collector.collect()).deleted_chunks == 0
    # Both versions of the tombstoned file are history: their chunks stay.
    for body in (b"precious", b"newer"):
        assert await stored(harness, hash_bytes(body).chunks[0])


async def test_sweep_deletes_content_nothing_recorded(harness: Harness) -> None:
    """A crash between storing a chunk and recording it leaves an object no row knows."""
    services = harness.services
    await harness.client.put("/files/content", params={"path": "/first"}, content=b"1")
    orphan = b"stored, then the server died"
    name = hash_bytes(orphan).chunks[0]
    await services.content_store.put_bytes(harness.tenant_id, name, orphan)
    await harness.client.put("/files/content", params={"path": "/kept"}, content=b"kept")
    held = b"held by an upload in progress"
    digest = hash_bytes(held)
    body = {"path": "/h", "size": digest.size, "content_hash": digest.content_hash,
            "chunks": list(digest.chunks)}  # fmt: skip
    init = (await harness.client.post("/files/upload/init", json=body)).json()
    await services.content_store.put_bytes(harness.tenant_id, digest.chunks[0], held)

    assert (await services.collector.sweep()).deleted_chunks == 1
    assert not await stored(harness, name)
    assert await stored(harness, hash_bytes(b"kept").chunks[0])
    assert await stored(harness, digest.chunks[0])
    assert (
        await harness.client.get("/files/download", params={"path": "/kept"})
    ).content == b"kept"
    # The held chunk's upload still completes.
    await harness.client.put(
        "/files/upload/part", params={"upload_id": init["upload_id"], "index": 0}, content=held
    )
    done = await harness.client.post("/files/upload/commit", json={"upload_id": init["upload_id"]})
    assert done.status_code == 201


async def test_write_racing_a_sweep_stores_its_content_again(harness: Harness) -> None:
    """The sweep deletes an object a one-chunk write has just stored but not yet recorded;
    the write notices (collection epoch) and stores it again instead of committing a reference
    to nothing. (Its chunk is too large to be kept in the metadata database.)"""
    race = b"race" * (INLINE_MAX // 4 + 1)
    services = harness.services
    await harness.client.put("/files/content", params={"path": "/first"}, content=b"1")
    real_put = services.content_store.put_bytes
    swept: list[int] = []

    async def put_then_sweep(tenant_id: str, name: str, data: bytes) -> None:
        await real_put(tenant_id, name, data)
        if not swept:
            swept.append((await services.collector.sweep()).deleted_chunks)

    services.content_store.put_bytes = put_then_sweep  # type: ignore[method-assign]
    try:
        r = await harness.client.put("/files/content", params={"path": "/raced"}, content=race)
    finally:
        services.content_store.put_bytes = real_put  # type: ignore[method-assign]
    assert r.status_code == 201
    assert swept == [1]
    assert (await harness.client.get("/files/download", params={"path": "/raced"})).content == race
