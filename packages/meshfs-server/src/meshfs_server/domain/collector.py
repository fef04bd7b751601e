"""Garbage collection of content that no version references.

The decision is made inside one metadata transaction (:meth:`MetadataStore.claim_garbage`): only
chunks with no references, no holds, and untouched for a grace period are claimed, and a claimed
chunk counts as absent to every upload. Only then is the content deleted, and only after that is
the claim released. Any failure leaves the claim in place and the content either still there or
already gone - never a reference to deleted content (fails closed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from meshfs_server.domain.ports import ContentStore, MetadataStore


@dataclass(slots=True)
class CollectionReport:
    deleted_chunks: int


class Collector:
    """Deletes unreferenced content, and (with :meth:`sweep`) content nothing knows about."""

    def __init__(self, store: MetadataStore, content: ContentStore, *, grace: float = 3600.0):
        self.store = store
        self.content = content
        self.grace = grace

    async def sweep(self, *, batch: int = 500) -> CollectionReport:
        """Delete stored objects that no chunk row knows and nobody holds, older than the grace
        period: what a crash between storing content and recording it leaves behind. Lists the
        whole store, so it runs rarely (at start-up and every few hours)."""
        deleted = 0
        cutoff = time.time() - self.grace
        candidates: list[tuple[str, str]] = []
        async for chunk in self.content.list_chunks():
            if chunk.modified_at < cutoff:
                candidates.append((chunk.tenant_id, chunk.chunk_hash))
            if len(candidates) >= batch:
                deleted += await self._sweep(candidates)
                candidates = []
        if candidates:
            deleted += await self._sweep(candidates)
        return CollectionReport(deleted)

    async def _sweep(self, candidates: list[tuple[str, str]]) -> int:
        claim = await self.store.claim_orphans(candidates)
        for tenant_id, name in claim.chunks:
            await self.content.delete(tenant_id, name)
        if claim.chunks:
            await self.store.release_garbage(claim)
        return len(claim.chunks)

    async def collect(self, *, batch: int = 500) -> CollectionReport:
        """Delete unreferenced content until none is left; returns how many chunks went."""
        deleted = 0
        while True:
            claim = await self.store.claim_garbage(older_than=time.time() - self.grace, limit=batch)
            if not claim.chunks:
                return CollectionReport(deleted)
            for tenant_id, name in claim.chunks:
                await self.content.delete(tenant_id, name)
            await self.store.release_garbage(claim)
            deleted += len(claim.chunks)
