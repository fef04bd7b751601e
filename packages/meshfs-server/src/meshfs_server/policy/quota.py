"""Storage quota: how much a tenant may store, checked inside the metadata transactions.

The content flow sees it only as its :class:`~meshfs_server.domain.ports.QuotaPolicy`, so
concurrent uploads cannot together exceed it. At upload init the upload's declared size is
*reserved*: committed + other pending uploads + this one must fit. At commit, committed + this
size must fit (the version's new chunks are not yet referenced, so this is an upper bound of
the usage after the commit). One-shot writes are checked at commit. Over quota -> ``507
quota_exceeded``. Usage is deduplicated: a chunk referenced by any number of versions and
files counts once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from meshfs_common.errors import QuotaExceededError
from meshfs_server.auth.accounts import Plan
from meshfs_server.auth.store import AuthStore
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.ports import UploadRow, WriteTx
from meshfs_server.policy import plans
from meshfs_server.settings import Settings

PLAN_CACHE_SECONDS = 5.0


class Plans:
    """Tenant plans, cached for a few seconds (they change only by an administrator)."""

    def __init__(self, store: AuthStore) -> None:
        self.store = store
        self._cache: dict[str, tuple[Plan, float]] = {}

    async def plan(self, tenant_id: str) -> Plan:
        """The plan *tenant_id* is on (at most :data:`PLAN_CACHE_SECONDS` old)."""
        hit = self._cache.get(tenant_id)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        async with self.store.read() as conn:
            found = await plans.plan_of(conn, tenant_id)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[tenant_id] = (found, now + PLAN_CACHE_SECONDS)
        return found


class Quota:
    """The storage quota of each tenant's plan: the server's
    :class:`~meshfs_server.domain.ports.QuotaPolicy`."""

    def __init__(self, plans_: Plans, settings: Settings) -> None:
        self.plans = plans_
        self.settings = settings

    async def limit(self, tenant_id: str) -> int:
        """The tenant's quota in bytes."""
        return plans.quota_bytes(await self.plans.plan(tenant_id), self.settings)

    async def reserve(self, tx: WriteTx, actor: Actor, upload: UploadRow) -> None:
        """At upload init: committed + other reservations + this upload must fit."""
        quota = await self.limit(actor.tenant_id)
        usage = await tx.storage_usage(excluding_content=upload.content_hash)
        asked = upload.reservation  # a partial write reserves only its new chunks
        if usage.committed + usage.pending + asked > quota:
            if not actor.scope.whole_tenant:
                raise _exceeded_in_scope(quota, asked)
            raise QuotaExceededError(
                f"storage quota exceeded: {usage.committed} bytes stored and {usage.pending}"
                f" reserved by uploads in progress, {asked} more asked, quota {quota}",
                detail={"quota": quota, "used": usage.committed, "reserved": usage.pending,
                        "requested": asked},
            )  # fmt: skip

    async def commit(
        self, tx: WriteTx, actor: Actor, chunks: tuple[str, ...], *, reused: Sequence[str] = ()
    ) -> None:
        """At commit (inside the commit transaction): what is stored plus the bytes this version
        newly references must fit. Content already stored (deduplicated) costs nothing - except
        through a limited scope, which is charged every distinct chunk but the *reused* ones of
        its own file's head, so whether a write fits never tells it whether the tenant stores
        that content elsewhere."""
        quota = await self.limit(actor.tenant_id)
        committed = await tx.committed_bytes()
        if not chunks:
            size = 0
        elif actor.scope.whole_tenant:
            size = await tx.unreferenced_bytes(chunks)
        else:
            own = set(reused)
            size = sum(z for c, z in (await tx.chunk_sizes(chunks)).items() if c not in own)
        if committed + size > quota:
            if not actor.scope.whole_tenant:
                raise _exceeded_in_scope(quota, size)
            raise QuotaExceededError(
                f"storage quota exceeded: {committed} bytes stored, {size} more asked,"
                f" quota {quota}",
                detail={"quota": quota, "used": committed, "requested": size},
            )


def _exceeded_in_scope(quota: int, requested: int) -> QuotaExceededError:
    """Over quota, told to a token limited to a path: the tenant's usage is not its to know."""
    return QuotaExceededError(
        f"storage quota exceeded: the tenant's quota is {quota} bytes, {requested} more asked",
        detail={"quota": quota, "requested": requested},
    )
