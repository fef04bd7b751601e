"""Plans (free / pro / team): retention presets, rate limits and storage quotas.

Retention presets are those MeshFS always had: free keeps 20 versions for 7 days and purges
deleted files after 7 days; pro 200 versions, 30 days, 30 days; team 1000 versions, 180 days,
60 days. An owner may tighten the tenant's policy (fewer versions, fewer days) but never go
beyond the plan's preset - that would be raising the plan, which only a server administrator
can do (``meshfs-server admin set-plan``).

Rate limit and quota scale with the plan from the server settings: free gets
``MESHFS_RATE_LIMIT_PER_MINUTE`` and ``MESHFS_TENANT_STORAGE_QUOTA_BYTES``; pro twice the rate
and ten times the storage; team five times the rate and a hundred times the storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from meshfs_common.errors import BadRequestError, NotFoundError
from meshfs_common.models import PlanInfo, RetentionPolicy, StorageInfo
from meshfs_server.auth import accounts
from meshfs_server.auth.accounts import Plan
from meshfs_server.auth.principal import Principal
from meshfs_server.auth.store import AuthStore, SqlSession
from meshfs_server.domain.ports import MetadataStore, StorageUsage
from meshfs_server.settings import Settings


@dataclass(frozen=True, slots=True)
class PlanSpec:
    """What a plan grants."""

    max_versions: int
    max_days: int
    grace_days: int
    rate_factor: int
    quota_factor: int


PLAN_SPECS: dict[Plan, PlanSpec] = {
    "free": PlanSpec(max_versions=20, max_days=7, grace_days=7, rate_factor=1, quota_factor=1),
    "pro": PlanSpec(max_versions=200, max_days=30, grace_days=30, rate_factor=2, quota_factor=10),
    "team": PlanSpec(
        max_versions=1000, max_days=180, grace_days=60, rate_factor=5, quota_factor=100
    ),
}


def rate_per_minute(plan: Plan, settings: Settings) -> int:
    """The tenant's request budget per minute."""
    return settings.rate_limit_per_minute * PLAN_SPECS[plan].rate_factor


def quota_bytes(plan: Plan, settings: Settings) -> int:
    """The tenant's storage quota."""
    return settings.tenant_storage_quota_bytes * PLAN_SPECS[plan].quota_factor


async def plan_of(conn: SqlSession, tenant_id: str) -> Plan:
    """The tenant's plan (free for a tenant the identity tables do not know)."""
    row = await conn.fetchone("SELECT plan FROM tenants WHERE tenant_id = ?", (tenant_id,))
    return "free" if row is None else cast(Plan, row[0])


def preset(plan: Plan) -> RetentionPolicy:
    """The plan's retention preset."""
    spec = PLAN_SPECS[plan]
    return RetentionPolicy(
        max_versions=spec.max_versions, max_days=spec.max_days, grace_days=spec.grace_days
    )


async def effective_policy(conn: SqlSession, tenant_id: str) -> tuple[Plan, RetentionPolicy]:
    """The plan and the policy in force (owner overrides within the plan's preset)."""
    row = await conn.fetchone(
        "SELECT plan, retention_max_versions, retention_max_days, retention_grace_days"
        " FROM tenants WHERE tenant_id = ?",
        (tenant_id,),
    )
    if row is None:
        raise NotFoundError("unknown tenant")
    plan = cast(Plan, row[0])
    base = preset(plan)
    return plan, RetentionPolicy(
        max_versions=min(row[1] or base.max_versions, base.max_versions),
        max_days=min(row[2] or base.max_days, base.max_days),
        grace_days=min(row[3] or base.grace_days, base.grace_days),
    )


async def set_policy(conn: SqlSession, tenant_id: str, policy: RetentionPolicy) -> None:
    """Store an owner's policy; each value must be between 1 and the plan's preset."""
    plan, _ = await effective_policy(conn, tenant_id)
    base = preset(plan)
    for name in ("max_versions", "max_days", "grace_days"):
        value, limit = getattr(policy, name), getattr(base, name)
        if not 1 <= value <= limit:
            raise BadRequestError(
                f"{name} must be between 1 and {limit} on the {plan} plan (got {value})",
                detail={"field": name, "maximum": limit},
            )
    await conn.execute(
        "UPDATE tenants SET retention_max_versions = ?, retention_max_days = ?,"
        " retention_grace_days = ? WHERE tenant_id = ?",
        (policy.max_versions, policy.max_days, policy.grace_days, tenant_id),
    )


async def plan_info(
    auth: AuthStore, settings: Settings, principal: Principal, store: MetadataStore
) -> PlanInfo:
    """The tenant's plan, effective retention, rate limit and storage usage."""
    tenant_id = principal.actor.tenant_id
    async with auth.read() as db:
        plan, policy = await effective_policy(db, tenant_id)
        tenant = await accounts.get_tenant(db, tenant_id=tenant_id)
    async with store.read(tenant_id) as tx:
        usage = await tx.storage_usage()
    assert tenant is not None
    return PlanInfo(
        tenant_id=tenant_id, tenant_name=tenant.name, plan=plan, retention=policy,
        plan_retention=preset(plan),
        rate_limit_per_minute=rate_per_minute(plan, settings),
        storage=_storage(principal, quota_bytes(plan, settings), usage),
    )  # fmt: skip


def _storage(principal: Principal, quota: int, usage: StorageUsage) -> StorageInfo:
    """Tenant-wide usage is for callers who see the whole tenant."""
    if not principal.actor.scope.whole_tenant:
        return StorageInfo(quota=quota)
    return StorageInfo(quota=quota, used=usage.committed, reserved=usage.pending)
