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
