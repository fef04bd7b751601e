"""Content, the change feed and storage accounting on the in-memory ports."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from meshfs_server_memory import MemoryDomain, body, new_actor

from meshfs_common.errors import NotFoundError, UnavailableError
from meshfs_common.hashing import hash_bytes
from meshfs_common.models import UploadInitRequest
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.placement import INLINE_MAX


@pytest.fixture
async def domain() -> AsyncIterator[MemoryDomain]:
    built = MemoryDomain.create()
    yield built
    await built.close()


@pytest.fixture
def actor() -> Actor:
    return new_actor()


async def read(domain: MemoryDomain, actor: Actor, path: str) -> bytes:
    _, version = await domain.namespace.version_for_read(
        actor, path=path, node_id=None, version_id=None
    )
    return b"".join([b async for b in domain.content.read(actor.tenant_id, version)])


def upload_request(path: str, data: bytes) -> UploadInitRequest:
    digest = hash_bytes(data)
    return UploadInitRequest(
        path=path, size=digest.size, content_hash=digest.content_hash, chunks=list(digest.chunks)
    )


async def stored_chunks(domain: MemoryDomain) -> set[str]:
    """Every chunk whose bytes exist: in the content store, or kept in its metadata row."""
    kept = {
        name
        for tenant in domain.store._tenants.values()
        for name, chunk in tenant.chunks.items()
        if chunk.data is not None and not chunk.collecting
    }
    return kept | {c.chunk_hash async for c in domain.content_store.list_chunks()}


async def test_the_feed_is_gap_free_across_successes_and_refusals(
    domain: MemoryDomain, actor: Actor
) -> None:
    await domain.namespace.mkdir(actor, "/d")
    with pytest.raises(NotFoundError):
        await domain.namespace.mkdir(actor, "/nope/x", parents=False)
    with pytest.raises(NotFoundError):
        await domain.namespace.delete(actor, "/missing")
    await asyncio.gather(
        *(domain.content.write(actor, f"/d/f{i}", body(str(i).encode())) for i in range(8))
    )
    with pytest.raises(NotFoundError):
        await domain.namespace.rename(actor, "/nope", "/d/y")
    await domain.namespace.delete(actor, "/d", recursive=True)

    pulled = await domain.feed.pull(actor.tenant_id, 0)
    assert [e.seq for e in pulled.events] == list(range(1, 11))
    assert pulled.cursor == 10
    assert not pulled.reset
    assert [e.type for e in pulled.events][-1] == "delete"
    assert await domain.feed.head(actor.tenant_id) == 10


async def test_a_trimmed_feed_tells_a_late_reader_to_reset(
    domain: MemoryDomain, actor: Actor
) -> None:
    for i in range(3):
        await domain.content.write(actor, f"/f{i}", body(b"x"))
    assert await domain.feed.trim(actor.tenant_id, time.time() + 1) == 3
    late = await domain.feed.pull(actor.tenant_id, 0)
    assert late.reset
    assert late.cursor == 3
    await domain.content.write(actor, "/f3", body(b"y"))
    caught_up = await domain.feed.pull(actor.tenant_id, 3)
    assert [e.seq for e in caught_up.events] == [4]


async def test_identical_content_is_stored_and_counted_once(
    domain: MemoryDomain, actor: Actor
) -> None:
    data = b"the same bytes" * 100
    await domain.content.write(actor, "/a", body(data))
    await domain.content.write(actor, "/b", body(data))
    assert await stored_chunks(domain) == {hash_bytes(data).chunks[0]}
    async with domain.store.read(actor.tenant_id) as tx:
        usage = await tx.storage_usage()
    assert usage.committed == len(data)
    assert await read(domain, actor, "/b") == data


async def test_collection_keeps_content_a_version_still_uses(
    domain: MemoryDomain, actor: Actor
) -> None:
    await domain.content.write(actor, "/a", body(b"first"))
    await domain.content.write(actor, "/a", body(b"second"))
    await domain.content.write(actor, "/b", body(b"first"))
    await domain.namespace.delete(actor, "/b")
    await domain.collector.collect()
    # Every version (the deleted file's too) still reads: nothing was collected.
    assert len(await stored_chunks(domain)) == 2
    entry = await domain.namespace.meta(actor, path="/a")
    for version in (await domain.namespace.versions(actor, entry.node_id)).versions:
        _, row = await domain.namespace.version_for_read(
            actor, path=None, node_id=entry.node_id, version_id=version.version_id
        )
        assert b"".join([b async for b in domain.content.read(actor.tenant_id, row)])


async def test_collection_deletes_content_once_retention_dropped_its_versions(
    domain: MemoryDomain, actor: Actor
) -> None:
    await domain.content.write(actor, "/a", body(b"old content"))
    await domain.content.write(actor, "/a", body(b"new content"))
    async with domain.store.write(actor.tenant_id) as tx:
        old = await tx.prunable_versions(keep=1, created_before=0.0, limit=10)
        assert await tx.delete_versions(old) == 1
    report = await domain.collector.collect()
    assert report.deleted_chunks == 1
    assert await stored_chunks(domain) == {hash_bytes(b"new content").chunks[0]}
    assert await read(domain, actor, "/a") == b"new content"


async def test_content_of_an_upload_in_progress_is_never_collected(
    domain: MemoryDomain, actor: Actor
) -> None:
    data = b"uploaded in parts"
    started = await domain.content.init_upload(actor, upload_request("/up", data))
    await domain.content.put_part(actor, started.upload_id, 0, body(data))
    assert (await domain.collector.collect()).deleted_chunks == 0
    assert (await domain.collector.sweep()).deleted_chunks == 0
    await domain.content.commit_upload(actor, started.upload_id)
    assert await read(domain, actor, "/up") == data


async def test_missing_content_fails_the_read_instead_of_returning_nothing(
    domain: MemoryDomain, actor: Actor
) -> None:
    data = b"will vanish" * (INLINE_MAX // 10)  # kept in the content store
    await domain.content.write(actor, "/v", body(data))
    await domain.content_store.delete(actor.tenant_id, hash_bytes(data).chunks[0])
    with pytest.raises(UnavailableError):
        await read(domain, actor, "/v")


async def test_pending_uploads_count_toward_storage_until_committed(
    domain: MemoryDomain, actor: Actor
) -> None:
    data = b"reserved bytes"
    started = await domain.content.init_upload(actor, upload_request("/r", data))
    async with domain.store.read(actor.tenant_id) as tx:
        reserved = await tx.storage_usage()
    assert (reserved.committed, reserved.pending) == (0, len(data))
    await domain.content.put_part(actor, started.upload_id, 0, body(data))
    await domain.content.commit_upload(actor, started.upload_id)
    async with domain.store.read(actor.tenant_id) as tx:
        done = await tx.storage_usage()
    assert (done.committed, done.pending) == (len(data), 0)
