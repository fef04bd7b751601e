"""The storage quota (policy/quota.py) on the in-memory ports: deduplicated usage, reservations
by uploads in progress, and a refusal that leaves nothing behind."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from meshfs_server_memory import MemoryDomain, body, new_actor

from meshfs_common.errors import NotFoundError, QuotaExceededError
from meshfs_common.hashing import hash_bytes
from meshfs_common.models import UploadInitRequest
from meshfs_server.domain.actor import Actor
from meshfs_server.policy.quota import Quota

LIMIT = 100


class FixedQuota(Quota):
    """The server's quota rules with every tenant's limit fixed (no plans to look up)."""

    def __init__(self, limit: int) -> None:
        self.fixed = limit

    async def limit(self, tenant_id: str) -> int:
        return self.fixed


@pytest.fixture
async def domain() -> AsyncIterator[MemoryDomain]:
    built = MemoryDomain.create(quota=FixedQuota(LIMIT))
    yield built
    await built.close()


@pytest.fixture
def actor() -> Actor:
    return new_actor()


def upload_request(path: str, data: bytes) -> UploadInitRequest:
    digest = hash_bytes(data)
    return UploadInitRequest(
        path=path, size=digest.size, content_hash=digest.content_hash, chunks=list(digest.chunks)
    )


async def test_a_write_over_quota_is_refused_and_leaves_nothing(
    domain: MemoryDomain, actor: Actor
) -> None:
    await domain.content.write(actor, "/a", body(b"a" * 60))
    with pytest.raises(QuotaExceededError):
        await domain.content.write(actor, "/b", body(b"b" * 60))
    with pytest.raises(NotFoundError):
        await domain.namespace.meta(actor, path="/b")
    assert [e.path for e in (await domain.feed.pull(actor.tenant_id, 0)).events] == ["/a"]


async def test_content_already_stored_costs_nothing(domain: MemoryDomain, actor: Actor) -> None:
    data = b"d" * 90
    await domain.content.write(actor, "/one", body(data))
    await domain.content.write(actor, "/two", body(data))  # 180 bytes of files, 90 stored
    entry = await domain.namespace.meta(actor, path="/two")
    assert entry.size == 90


async def test_uploads_in_progress_reserve_their_size(domain: MemoryDomain, actor: Actor) -> None:
    first = await domain.content.init_upload(actor, upload_request("/first", b"1" * 70))
    with pytest.raises(QuotaExceededError) as refused:
        await domain.content.init_upload(actor, upload_request("/second", b"2" * 70))
    assert refused.value.detail == {"quota": LIMIT, "used": 0, "reserved": 70, "requested": 70}
    # The same content again is one reservation, not two.
    await domain.content.init_upload(actor, upload_request("/again", b"1" * 70))
    await domain.content.put_part(actor, first.upload_id, 0, body(b"1" * 70))
    await domain.content.commit_upload(actor, first.upload_id)


async def test_tenants_have_quotas_of_their_own(domain: MemoryDomain, actor: Actor) -> None:
    await domain.content.write(actor, "/full", body(b"x" * LIMIT))
    other = new_actor()
    await domain.content.write(other, "/full", body(b"y" * LIMIT))
    assert (await domain.namespace.meta(other, path="/full")).size == LIMIT
