"""What a signed-in user manages of their access: sessions and agent tokens.

Rules: everybody sees and revokes their own sessions and agent tokens; owners see and revoke
every session of their tenant. An agent token sees only itself: its own session.
Owners and writers create agent tokens (an agent token cannot mint another, and a writer's
token can never write more than its creator).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from meshfs_common import paths
from meshfs_common.errors import BadRequestError, ForbiddenError, NotFoundError
from meshfs_common.models import AgentToken, AgentTokenRequest, SessionInfo, SessionList
from meshfs_server.auth import session_rows
from meshfs_server.auth.principal import Principal
from meshfs_server.auth.service import Identity
from meshfs_server.auth.tokens import AGENT_PREFIX, new_secret, secret_hash
from meshfs_server.policy import audit
from meshfs_server.policy.audit import Who

MAX_AGENT_SECONDS = 366 * 86400
DEFAULT_AGENT_SECONDS = 30 * 86400


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
    async with identity.db.read() as db:
        records = await session_rows.listing(
            db,
            actor.tenant_id,
            # Everyone's (an owner asking), else the caller's own; an agent token sees itself.
            user_id=None if everyone else actor.user_id,
            session_id=actor.session_id if principal.kind == "agent" else None,
            live_at=None if include_revoked else time.time(),
        )
    return SessionList(
        sessions=[
            SessionInfo(
                session_id=r.session_id,
                kind=r.kind,
                name=r.name,
                user_id=r.user_id,
                username=r.username,
                created_at=datetime.fromtimestamp(r.created_at, UTC),
                last_used_at=_dt(r.last_used_at),
                expires_at=_dt(r.expires_at),
                revoked_at=_dt(r.revoked_at),
                path_prefix=r.path_prefix,
                access="write" if r.can_write else "read",
                current=r.session_id == actor.session_id,
            )
            for r in records
        ]
    )


async def revoke_session(
    identity: Identity, principal: Principal, session_id: str, address: str | None
) -> None:
    """Revoke one of the caller's sessions (owners: any session of the tenant)."""
    actor = principal.actor
    async with identity.db.write() as db:
        owner = await session_rows.user_of(db, session_id, actor.tenant_id)
        # Another tenant's session and a session the caller may not touch look the same; an
        # agent token sees only itself (its creator's other sessions look absent too).
        hidden = principal.kind == "agent" and session_id != actor.session_id
        if owner is None or hidden or (owner != actor.user_id and not principal.is_owner):
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
