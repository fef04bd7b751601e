"""What a signed-in user manages: sessions, agent tokens, audit, plan and retention.

Rules: everybody sees and revokes their own sessions and agent tokens; owners see and revoke
every session of their tenant and read its whole audit log (others read their own rows). An
agent token sees only itself: its own session and the audit rows of what it did.
Owners and writers create agent tokens (an agent token cannot mint another, and a writer's
token can never write more than its creator). Only owners change retention or run it; nobody
changes the plan through the API.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import msgspec

from meshfs_common import paths
from meshfs_common.errors import BadRequestError, ForbiddenError, NotFoundError
from meshfs_server.auth import accounts
from meshfs_server.auth.tokens import AGENT_PREFIX, new_secret, secret_hash
from meshfs_server.domain.collector import Collector
from meshfs_server.domain.ports import MetadataStore, StorageUsage
from meshfs_server.policy import audit, plans
from meshfs_server.policy.audit import AuditPage, Who

if TYPE_CHECKING:
    from meshfs_server.auth.service import Identity, Principal

MAX_AGENT_SECONDS = 366 * 86400
DEFAULT_AGENT_SECONDS = 30 * 86400
DAY = 86400.0


class SessionInfo(msgspec.Struct, kw_only=True):
    """A signed-in device or an agent token."""

    session_id: str
    kind: Literal["device", "agent"]
    name: str
    user_id: str
    username: str
    created_at: datetime
    last_used_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    path_prefix: str = "/"
    access: Literal["read", "write"] = "write"
    current: bool = False


class SessionList(msgspec.Struct, kw_only=True):
    sessions: list[SessionInfo]


class AgentTokenRequest(msgspec.Struct, kw_only=True):
    """A named, expiring bearer token for an agent, confined to ``path_prefix``."""

    name: str
    path_prefix: str = "/"
    access: Literal["read", "write"] = "read"
    expires_in: int = DEFAULT_AGENT_SECONDS


class AgentToken(msgspec.Struct, kw_only=True):
    """The token is shown once; the server keeps only its hash."""

    token: str
    session_id: str
    name: str
    path_prefix: str
    access: Literal["read", "write"]
    expires_at: datetime


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _require_device(principal: Principal, what: str) -> None:
    if principal.kind != "device":
        raise ForbiddenError(f"agent tokens cannot {what}")


async def list_sessions(
    identity: Identity, principal: Principal, *, everyone: bool, include_revoked: bool
) -> SessionList:
    """The caller's sessions (or, for an owner asking ``everyone``, the tenant's)."""
    actor = principal.actor
    if everyone and not principal.is_owner:
        raise ForbiddenError("only owners list everyone's sessions")
    where = "s.tenant_id = ?"
    args: list[object] = [actor.tenant_id]
    if not everyone:
        where += " AND s.user_id = ?"
        args.append(actor.user_id)
    if principal.kind == "agent":
        where += " AND s.session_id = ?"
        args.append(actor.session_id)
    if not include_revoked:
        where += " AND s.revoked_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > ?)"
        args.append(time.time())
    async with identity.db.read() as db:
        rows = await db.fetchall(
            "SELECT s.session_id, s.kind, s.name, s.user_id, u.username, s.created_at,"
            " s.last_used_at, s.expires_at, s.revoked_at, s.path_prefix, s.can_write"
            f" FROM sessions s JOIN users u ON u.user_id = s.user_id WHERE {where}"
            " ORDER BY s.created_at DESC LIMIT 1000",
            args,
        )
    return SessionList(
        sessions=[
            SessionInfo(
                session_id=r[0],
                kind=r[1],
                name=r[2],
                user_id=r[3],
                username=r[4],
                created_at=datetime.fromtimestamp(r[5], UTC),
                last_used_at=_dt(r[6]),
                expires_at=_dt(r[7]),
                revoked_at=_dt(r[8]),
                path_prefix=r[9],
                access="write" if r[10] else "read",
                current=r[0] == actor.session_id,
            )
            for r in rows
        ]
    )


async def revoke_session(
    identity: Identity, principal: Principal, session_id: str, address: str | None
) -> None:
    """Revoke one of the caller's sessions (owners: any session of the tenant)."""
    actor = principal.actor
    async with identity.db.write() as db:
        row = await db.fetchone(
            "SELECT user_id FROM sessions WHERE session_id = ? AND tenant_id = ?",
            (session_id, actor.tenant_id),
        )
        # Another tenant's session and a session the caller may not touch look the same; an
        # agent token sees only itself (its creator's other sessions look absent too).
        hidden = principal.kind == "agent" and session_id != actor.session_id
        if row is None or hidden or (row[0] != actor.user_id and not principal.is_owner):
            raise NotFoundError(f"no such session: {session_id}")
        await identity.revoke_in(db, session_id, f"revoked by {actor.user_id}")
        await audit.record(
            db,
            actor.tenant_id,
            "auth.revoke_session",
            who=Who.of(actor, address),
            target=session_id,
        )


async def create_agent(
    identity: Identity, principal: Principal, request: AgentTokenRequest, address: str | None
) -> AgentToken:
    """Mint an agent token confined to a path prefix, read-only or read-write."""
    actor = principal.actor
    _require_device(principal, "create agent tokens")
    if principal.role not in ("owner", "writer"):
        raise ForbiddenError("only owners and writers create agent tokens")
    name = request.name.strip()
    if not 1 <= len(name) <= 100:
        raise BadRequestError("name must be 1-100 characters")
    if not 60 <= request.expires_in <= MAX_AGENT_SECONDS:
        raise BadRequestError(f"expires_in must be between 60 and {MAX_AGENT_SECONDS} seconds")
    prefix = paths.normalise(request.path_prefix)
    if not paths.is_within(prefix, actor.path_prefix):
        raise ForbiddenError(f"this session is limited to {actor.path_prefix}")
    writable = request.access == "write"
    if writable and not actor.can_write:
        raise ForbiddenError("a read-only caller cannot create a read-write token")
    token = new_secret(AGENT_PREFIX)
    expires = time.time() + request.expires_in
    async with identity.db.write() as db:
        sid = await identity.new_session_in(
            db, user_id=actor.user_id, tenant_id=actor.tenant_id, name=name,
            scope="files:read" if not writable else "files", kind="agent", expires_at=expires,
            token_hash=secret_hash(token), path_prefix=prefix, can_write=writable,
        )  # fmt: skip
        await audit.record(
            db,
            actor.tenant_id,
            "auth.agent_create",
            who=Who.of(actor, address),
            target=sid,
            detail={"name": name, "path_prefix": prefix, "access": request.access},
        )
    return AgentToken(
        token=token, session_id=sid, name=name, path_prefix=prefix, access=request.access,
        expires_at=datetime.fromtimestamp(expires, UTC),
    )  # fmt: skip


async def recent_audit(
    identity: Identity, principal: Principal, *, limit: int, before: int | None,
    action: str | None, user_id: str | None, outcome: str | None,
) -> AuditPage:  # fmt: skip
    """The tenant's audit log (owners), the caller's own rows (everyone else), or for an agent
    token the rows of its own session."""
    actor = principal.actor
    if not principal.is_owner:
        if user_id not in (None, actor.user_id):
            raise ForbiddenError("only owners read other users' audit rows")
        user_id = actor.user_id
    session_id = actor.session_id if principal.kind == "agent" else None
    async with identity.db.read() as db:
        return await audit.recent(
            db, actor.tenant_id, limit=limit, before=before, action=action, user_id=user_id,
            outcome=outcome, session_id=session_id,
        )  # fmt: skip


async def plan_info(
    identity: Identity, principal: Principal, store: MetadataStore
) -> plans.PlanInfo:
    """The tenant's plan, effective retention, rate limit and storage usage."""
    tenant_id = principal.actor.tenant_id
    async with identity.db.read() as db:
        plan, policy = await plans.effective_policy(db, tenant_id)
        tenant = await accounts.get_tenant(db, tenant_id=tenant_id)
    async with store.read(tenant_id) as tx:
        usage = await tx.storage_usage()
    assert tenant is not None
    return plans.PlanInfo(
        tenant_id=tenant_id, tenant_name=tenant.name, plan=plan, retention=policy,
        plan_retention=plans.preset(plan),
        rate_limit_per_minute=plans.rate_per_minute(plan, identity.settings),
        storage=_storage(principal, plans.quota_bytes(plan, identity.settings), usage),
    )  # fmt: skip


def _storage(principal: Principal, quota: int, usage: StorageUsage) -> plans.StorageInfo:
    """Tenant-wide usage is for callers who see the whole tenant."""
    if not principal.actor.scope.whole_tenant:
        return plans.StorageInfo(quota=quota)
    return plans.StorageInfo(quota=quota, used=usage.committed, reserved=usage.pending)


def _require_owner(principal: Principal, what: str) -> None:
    if not principal.is_owner:
        raise ForbiddenError(f"only owners {what}")


async def get_policy(identity: Identity, principal: Principal) -> plans.RetentionPolicy:
    """The retention policy in force."""
    async with identity.db.read() as db:
        return (await plans.effective_policy(db, principal.actor.tenant_id))[1]


async def put_policy(
    identity: Identity, principal: Principal, policy: plans.RetentionPolicy, address: str | None
) -> plans.RetentionPolicy:
    """Change the retention policy (owners; within the plan's preset)."""
    _require_owner(principal, "change retention")
    async with identity.db.write() as db:
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
    identity: Identity, principal: Principal, store: MetadataStore, collector: Collector,
    address: str | None,
) -> plans.RetentionReport:  # fmt: skip
    """Prune old versions (never a head), purge old tombstones, trim the change log to the same
    window as version history (a device away longer reconciles from a listing: its cursor gets
    a reset answer), then collect garbage."""
    _require_owner(principal, "run retention")
    tenant_id = principal.actor.tenant_id
    async with identity.db.read() as db:
        policy = (await plans.effective_policy(db, tenant_id))[1]
    now = time.time()
    pruned = purged = 0
    while True:  # short transactions, one batch each
        async with store.write(tenant_id) as tx:
            ids = await tx.prunable_versions(
                keep=policy.max_versions, created_before=now - policy.max_days * DAY, limit=500
            )
            pruned += await tx.delete_versions(ids)
        if len(ids) < 500:
            break
    while True:
        async with store.write(tenant_id) as tx:
            batch = await tx.purge_tombstones(now - policy.grace_days * DAY, 500)
        purged += batch
        if batch < 500:
            break
    async with store.write(tenant_id) as tx:
        trimmed = await tx.prune_events(now - policy.max_days * DAY)
    collected = (await collector.collect()).deleted_chunks
    report = plans.RetentionReport(
        pruned_versions=pruned, purged_nodes=purged, deleted_chunks=collected,
        pruned_events=trimmed,
    )  # fmt: skip
    async with identity.db.write() as db:
        await audit.record(
            db,
            tenant_id,
            "retention.apply",
            who=Who.of(principal.actor, address),
            target=tenant_id,
            detail=msgspec.structs.asdict(report),
        )
    return report
