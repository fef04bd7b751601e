"""Partial writes on the in-memory ports: only new chunks are asked for and charged to the
quota, the zero chunks of an extension are stored by the server, and a token limited to a path
writes a part of its own file without learning what the tenant stores elsewhere."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from meshfs_server_memory import MemoryDomain, body, new_actor

from meshfs_common.errors import QuotaExceededError
from meshfs_common.hashing import CHUNK_SIZE, hash_bytes, zero_chunk_hash
from meshfs_common.models import UploadInitRequest
from meshfs_server.domain.actor import Actor
from meshfs_server.policy.quota import Quota

FILE = 3 * CHUNK_SIZE
LIMIT = FILE + CHUNK_SIZE + CHUNK_SIZE // 2


class FixedQuota(Quota):
    """The server's quota rules with every tenant's limit fixed."""

    def __init__(self, limit: int) -> None:
        self.fixed = limit

    async def limit(self, tenant_id: str) -> int:
        return self.fixed


@pytest.fixture
async def domain() -> AsyncIterator[MemoryDomain]:
    built = MemoryDomain.create(quota=FixedQuota(LIMIT))
    yield built
    await built.close()


def partial(path: str, base: str, new: bytes, changed: list[int]) -> UploadInitRequest:
    digest = hash_bytes(new)
    return UploadInitRequest(
        path=path, size=len(new), content_hash=digest.content_hash, base_version=base,
        replace={i: digest.chunks[i] for i in changed},
    )  # fmt: skip


def upload(path: str, data: bytes) -> UploadInitRequest:
    digest = hash_bytes(data)
    return UploadInitRequest(
        path=path, size=digest.size, content_hash=digest.content_hash, chunks=list(digest.chunks)
    )


async def write_part(
    domain: MemoryDomain, actor: Actor, request: UploadInitRequest, new: bytes
) -> list[int]:
    answer = await domain.content.init_upload(actor, request)
    for index in answer.missing:
        chunk = new[index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE]
        await domain.content.put_part(actor, answer.upload_id, index, body(chunk))
    await domain.content.commit_upload(actor, answer.upload_id)
    return answer.missing


async def read(domain: MemoryDomain, actor: Actor, path: str) -> bytes:
    _node, version = await domain.namespace.version_for_read(
        actor, path=path, node_id=None, version_id=None
    )
    return b"".join([b async for b in domain.content.read(actor.tenant_id, version)])


@pytest.mark.parametrize("scope", ["/", "/p"])
async def test_only_new_chunks_are_charged(domain: MemoryDomain, scope: str) -> None:
    actor = new_actor(path_prefix=scope)
    data = os.urandom(FILE)
    base = await domain.content.write(actor, "/p/f", body(data))
    # A whole new file of the same size does not fit next to it ...
    with pytest.raises(QuotaExceededError):
        await domain.content.write(actor, "/p/g", body(os.urandom(FILE)))
    # ... but a new version changing one chunk does (the old version stays stored).
    new = data[:CHUNK_SIZE] + os.urandom(CHUNK_SIZE // 4) + data[CHUNK_SIZE + CHUNK_SIZE // 4 :]
    request = partial("/p/f", base.version.version_id, new, [1])
    assert await write_part(domain, actor, request, new) == [1]
    assert await read(domain, actor, "/p/f") == new
    assert base.version.version_id != (await domain.namespace.meta(actor, path="/p/f")).version_id


async def test_an_upload_in_progress_reserves_only_its_new_chunks(domain: MemoryDomain) -> None:
    actor = new_actor()
    data = os.urandom(FILE)
    base = (await domain.content.write(actor, "/f", body(data))).version.version_id
    new = data[:-10] + b"0123456789"
    await domain.content.init_upload(actor, partial("/f", base, new, [2]))
    # Reserved: one chunk, so half a chunk more still fits, and nothing beyond that.
    await domain.content.init_upload(actor, upload("/half", os.urandom(CHUNK_SIZE // 2)))
    with pytest.raises(QuotaExceededError):
        await domain.content.init_upload(actor, upload("/more", b"x"))


@pytest.mark.parametrize("scope", ["/", "/p"])
async def test_zero_chunks_are_stored_by_the_server(domain: MemoryDomain, scope: str) -> None:
    actor = new_actor(path_prefix=scope)
    base = (await domain.content.write(actor, "/p/s", body(b""))).version.version_id
    new = bytes(CHUNK_SIZE + 3)
    assert await write_part(domain, actor, partial("/p/s", base, new, []), new) == []
    assert await read(domain, actor, "/p/s") == new
    async with domain.store.read(actor.tenant_id) as tx:
        assert await tx.present_chunks([zero_chunk_hash(), zero_chunk_hash(3)]) == {
            zero_chunk_hash(),
            zero_chunk_hash(3),
        }


async def test_a_limited_scope_is_asked_for_what_it_did_not_have(domain: MemoryDomain) -> None:
    owner = new_actor()
    agent = Actor(tenant_id=owner.tenant_id, user_id=owner.user_id, path_prefix="/p")
    secret = os.urandom(1000)
    await domain.content.write(owner, "/private/s", body(secret))
    data = os.urandom(CHUNK_SIZE + 10)
    base = (await domain.content.write(agent, "/p/f", body(data))).version.version_id
    new = data[:CHUNK_SIZE] + secret  # the tail becomes content stored outside the prefix
    request = partial("/p/f", base, new, [1])
    answer = await domain.content.init_upload(agent, request)
    assert answer.missing == [1]  # not revealed as stored; chunk 0 is the agent's own
    whole = await domain.content.init_upload(owner, request)
    assert whole.missing == []  # the owner sees the whole tenant
