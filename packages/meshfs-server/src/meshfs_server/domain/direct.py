"""Direct transfers: clients move chunk bytes straight to and from the object store.

The server hands out presigned URLs and keeps only the metadata, so large transfers do not pass
through the Python process. It still verifies everything it commits:

1. ``init`` is a normal upload init - the upload holds every chunk it names, so no collector
   can claim them - whose answer also carries a presigned PUT for each missing chunk. The PUT
   is signed together with ``x-amz-checksum-sha256``, so the client must send the chunk's
   SHA-256 and the store refuses bytes that do not match it.
2. ``commit``: for every chunk the metadata does not yet list as stored, the server asks the
   store (outside any transaction) whether it holds exactly that chunk - size and SHA-256 -
   marks the verified ones stored in one short transaction, then commits as usual. Anything
   missing or wrong makes the commit fail with ``upload_incomplete`` and nothing changes.

Tokens limited to a path prefix get no presigned PUTs: their parts go through the server, which
records what each upload sent (see ``content.sent_hold``), so they never learn what the tenant
stores outside their prefix.

Nothing a client put is referenced before it was verified. Objects put for an upload that is
never committed have no metadata row; see the adapter notes on orphaned objects.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

from meshfs_common.hashing import CHUNK_SIZE
from meshfs_common.models import (
    CommitResult,
    DirectDownload,
    UploadInitRequest,
    UploadInitResponse,
)
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.content import ContentService
from meshfs_server.domain.partial import expected_chunk_size
from meshfs_server.domain.placement import may_be_inline
from meshfs_server.domain.ports import ContentStore, VersionRow

VERIFY_CONCURRENCY = 16


@runtime_checkable
class PresigningStore(ContentStore, Protocol):
    """A content store that can hand out presigned URLs (S3)."""

    presign_ttl: int  # seconds a presigned URL stays valid

    async def presign_put(self, tenant_id: str, chunk_hash: str) -> tuple[str, dict[str, str]]:
        """A URL to PUT a chunk's bytes to, and the headers the PUT must carry."""

    async def presign_get(self, tenant_id: str, chunk_hash: str) -> str:
        """A URL to GET a chunk from (Range honoured)."""

    async def verify(self, tenant_id: str, chunk_hash: str, size: int) -> bool:
        """True when the store holds exactly this chunk: *size* bytes with this SHA-256."""


class DirectTransfers:
    """Presigned uploads and downloads on top of :class:`ContentService`."""

    def __init__(self, content: ContentService, store: PresigningStore) -> None:
        self.content = content
        self.store = store

    async def init_upload(
        self, actor: Actor, request: UploadInitRequest, *, if_match: str | None = None,
        if_none_match: bool = False,
    ) -> UploadInitResponse:  # fmt: skip
        """An upload init whose answer carries a presigned PUT for each missing chunk."""
        answer, chunks = await self.content.begin_upload(
            actor, request, if_match=if_match, if_none_match=if_none_match
        )
        if not actor.scope.whole_tenant:
            # A chunk put straight into the store cannot be told apart from one the tenant
            # stored before, so uploads through a limited scope send their parts through the
            # server (see content.sent_hold).
            return answer
        urls: dict[int, str] = {}
        headers: dict[int, dict[str, str]] = {}
        for index in answer.missing:  # the upload holds these chunks from now on
            urls[index], headers[index] = await self.store.presign_put(
                actor.tenant_id, chunks[index]
            )
        answer.part_urls = urls
        answer.part_headers = headers
        return answer

    async def commit_upload(
        self, actor: Actor, upload_id: str, *, if_match: str | None = None,
        if_none_match: bool = False,
    ) -> CommitResult:  # fmt: skip
        """Verify the chunks clients put into the store directly, then commit as usual."""
        if not actor.scope.whole_tenant:  # it was given no presigned URLs
            return await self.content.commit_upload(
                actor, upload_id, if_match=if_match, if_none_match=if_none_match
            )
        async with self.content.store.read(actor.tenant_id) as tx:
            upload = await tx.get_upload(upload_id)
            unseen: dict[str, int] = {}
            if upload is not None:
                present = await tx.present_chunks(upload.chunks)
                for index, name in enumerate(upload.chunks):
                    # A chunk still being collected is left for the commit to report missing.
                    if name in present or name in unseen:
                        continue
                    if await tx.chunk_state(name) == "absent":
                        unseen[name] = expected_chunk_size(upload.size, index)
        if upload is not None and unseen:
            actor.check_write(upload.path)
            limit = asyncio.Semaphore(VERIFY_CONCURRENCY)

            async def check(name: str, size: int) -> bool:
                async with limit:  # no transaction is open here
                    return await self.store.verify(actor.tenant_id, name, size)

            found = await asyncio.gather(*(check(n, z) for n, z in unseen.items()))
            verified = [item for item, ok in zip(unseen.items(), found, strict=True) if ok]
            if verified:
                async with self.content.store.write(actor.tenant_id, durable=False) as tx:
                    for name, size in verified:
                        await tx.mark_stored(name, size)
        return await self.content.commit_upload(
            actor, upload_id, if_match=if_match, if_none_match=if_none_match
        )

    async def download(self, tenant_id: str, version: VersionRow) -> DirectDownload:
        """Presigned GET URLs for each chunk of *version*, in order.

        A small chunk kept in the metadata database (see :mod:`.placement`) is copied into the
        bucket first (once), so that its URL serves it too."""
        for index, name in enumerate(version.chunks):
            if may_be_inline(expected_chunk_size(version.size, index)):
                await self._copy_to_bucket(tenant_id, name)
        urls = [await self.store.presign_get(tenant_id, name) for name in version.chunks]
        return DirectDownload(
            version_id=version.version_id,
            node_id=version.node_id,
            size=version.size,
            content_hash=version.content_hash,
            chunk_size=CHUNK_SIZE,
            chunks=list(version.chunks),
            urls=urls,
            expires_in=self.store.presign_ttl,
        )

    async def _copy_to_bucket(self, tenant_id: str, name: str) -> None:
        async with self.content.store.read(tenant_id) as tx:
            data = await tx.chunk_data(name)
        if data is not None and not await self.store.verify(tenant_id, name, len(data)):
            # The row stays the copy reads use; the object goes with it when collected.
            await self.content.content.put_bytes(tenant_id, name, data)
