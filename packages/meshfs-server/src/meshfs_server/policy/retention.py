"""Retention: how long a tenant keeps old versions, deleted files and its change log.

Only owners change the policy (within their plan's preset) or run it. Running it prunes
through the namespace and the change feed, never around them.
"""

from __future__ import annotations

import time

import msgspec

from meshfs_common.errors import ForbiddenError
from meshfs_common.models import RetentionPolicy, RetentionReport
from meshfs_server.auth.principal import Principal
from meshfs_server.auth.store import AuthStore
from meshfs_server.domain.collector import Collector
from meshfs_server.domain.feed import ChangeFeed
from meshfs_server.domain.namespace import Namespace
from meshfs_server.policy import audit, plans
from meshfs_server.policy.audit import Who

DAY = 86400.0


def _require_owner(principal: Principal, what: str) -> None:
    if not principal.is_owner:
        raise ForbiddenError(f"only owners {what}")


async def get_policy(auth: AuthStore, principal: Principal) -> RetentionPolicy:
    """The retention policy in force."""
    async with auth.read() as db:
        return (await plans.effective_policy(db, principal.actor.tenant_id))[1]


async def put_policy(
    auth: AuthStore, principal: Principal, policy: RetentionPolicy, address: str | None
) -> RetentionPolicy:
    """Change the retention policy (owners; within the plan's preset)."""
    _require_owner(principal, "change retention")
    async with auth.write() as db:
        await plans.set_policy(db, principal.actor.tenant_id, policy)
        await audit.record(
            db,
            principal.actor.tenant_id,
            "retention.policy",
            who=Who.of(principal.actor, address),
            target=principal.actor.tenant_id,
            detail=msgspec.structs.asdict(policy),
        )
        return (await plans.effective_policy(db, principal.actor.tenant_id))[1]


async def apply_retention(
    auth: AuthStore, principal: Principal, namespace: Namespace, feed: ChangeFeed,
    collector: Collector, address: str | None,
) -> RetentionReport:  # fmt: skip
    """Prune old versions (never a head), purge old tombstones, trim the change log to the same
    window as version history (a device away longer reconciles from a listing: its cursor gets
    a reset answer), then collect garbage."""
    _require_owner(principal, "run retention")
    tenant_id = principal.actor.tenant_id
    async with auth.read() as db:
        policy = (await plans.effective_policy(db, tenant_id))[1]
    now = time.time()
    window = now - policy.max_days * DAY
    pruned = await namespace.prune_versions(
        tenant_id, keep=policy.max_versions, created_before=window
    )
    purged = await namespace.purge_tombstones(tenant_id, now - policy.grace_days * DAY)
    trimmed = await feed.trim(tenant_id, window)
    collected = (await collector.collect()).deleted_chunks
    report = RetentionReport(
        pruned_versions=pruned, purged_nodes=purged, deleted_chunks=collected,
        pruned_events=trimmed,
    )  # fmt: skip
    async with auth.write() as db:
        await audit.record(
            db,
            tenant_id,
            "retention.apply",
            who=Who.of(principal.actor, address),
            target=tenant_id,
            detail=msgspec.structs.asdict(report),
        )
    return report
