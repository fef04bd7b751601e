"""Sessions and refresh tokens (SQL on an open transaction, see :mod:`.store`).

These functions run inside a transaction the caller owns (``db.write()`` / ``db.read()``), so
that several of them - e.g. spend a refresh token, touch its session and issue the next one -
commit together. The rules about them (expiry, revocation, reuse) live in
:mod:`meshfs_server.auth.service` and :mod:`meshfs_server.auth.sessions`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from meshfs_server.auth.principal import SessionKind
from meshfs_server.auth.store import SqlSession


@dataclass(frozen=True, slots=True)
class SessionAccess:
    """What a request needs to know of its session: the session, its user's ``disabled``
    flag and the user's role in the session's tenant (None when no longer a member)."""

    kind: SessionKind
    user_id: str
    tenant_id: str
    name: str
    scope: str
    revoked_at: float | None
    expires_at: float | None
    path_prefix: str
    can_write: bool
    disabled: bool
    role: str | None


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    """A refresh token with the session it renews and that session's user's ``disabled``."""

    session_id: str
    used_at: float | None
    expires_at: float
    user_id: str
    tenant_id: str
    scope: str
    revoked_at: float | None
    name: str
    disabled: bool


@dataclass(frozen=True, slots=True)
class SessionOwner:
    """Whose session a refresh token belongs to."""

    session_id: str
    tenant_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A session as the session list shows it, with its user's name."""

    session_id: str
    kind: SessionKind
    name: str
    user_id: str
    username: str
    created_at: float
    last_used_at: float | None
    expires_at: float | None
    revoked_at: float | None
    path_prefix: str
    can_write: bool


# --- sessions -----------------------------------------------------------------------------------


async def insert(
    db: SqlSession, *, session_id: str, kind: SessionKind, user_id: str, tenant_id: str,
    name: str, scope: str, expires_at: float | None, token_hash: str | None, path_prefix: str,
    can_write: bool,
) -> None:  # fmt: skip
    """Add a session, created and last used now."""
    await db.execute(
        "INSERT INTO sessions (session_id, kind, user_id, tenant_id, name, scope, created_at,"
        " last_used_at, expires_at, token_hash, path_prefix, can_write)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (session_id, kind, user_id, tenant_id, name, scope, time.time(), time.time(),
         expires_at, token_hash, path_prefix, int(can_write)),
    )  # fmt: skip


async def agent_session_id(db: SqlSession, token_hash: str) -> str | None:
    """The id of the agent session whose token hashes to *token_hash*, or None."""
    row = await db.fetchone(
        "SELECT session_id FROM sessions WHERE token_hash = ? AND kind = 'agent'",
        (token_hash,),
    )
    return None if row is None else str(row[0])


async def access_of(db: SqlSession, session_id: str) -> SessionAccess | None:
    """The session, its user and their membership in one indexed read (None: no session)."""
    row = await db.fetchone(
        "SELECT s.kind, s.user_id, s.tenant_id, s.name, s.scope, s.revoked_at,"
        " s.expires_at, s.path_prefix, s.can_write, u.disabled, m.role"
        " FROM sessions s JOIN users u ON u.user_id = s.user_id"
        " LEFT JOIN memberships m ON m.tenant_id = s.tenant_id AND m.user_id = s.user_id"
        " WHERE s.session_id = ?",
        (session_id,),
    )
    if row is None:
        return None
    kind, user_id, tenant_id, name, scope, revoked, expires, prefix, can_write, off, role = row
    return SessionAccess(
        kind=kind, user_id=user_id, tenant_id=tenant_id, name=name, scope=scope,
        revoked_at=revoked, expires_at=expires, path_prefix=prefix, can_write=bool(can_write),
        disabled=bool(off), role=role,
    )  # fmt: skip


async def name_and_expiry(
    db: SqlSession, session_id: str | None
) -> tuple[str | None, float | None]:
    """The session's name and expiry (``(None, None)`` for an unknown session)."""
    row = await db.fetchone(
        "SELECT name, expires_at FROM sessions WHERE session_id = ?", (session_id,)
    )
    return (None, None) if row is None else (row[0], row[1])


async def user_of(db: SqlSession, session_id: str, tenant_id: str) -> str | None:
    """The user a session of *tenant_id* belongs to, or None (no such session there)."""
    row = await db.fetchone(
        "SELECT user_id FROM sessions WHERE session_id = ? AND tenant_id = ?",
        (session_id, tenant_id),
    )
    return None if row is None else str(row[0])


async def touch(db: SqlSession, session_id: str) -> None:
    """Mark the session used now."""
    await db.execute(
        "UPDATE sessions SET last_used_at = ? WHERE session_id = ?",
        (time.time(), session_id),
    )


async def mark_revoked(db: SqlSession, session_id: str, reason: str) -> bool:
    """Revoke a session now, giving *reason*; False when it was revoked already."""
    changed = await db.execute(
        "UPDATE sessions SET revoked_at = ?, revoked_reason = ?"
        " WHERE session_id = ? AND revoked_at IS NULL",
        (time.time(), reason, session_id),
    )
    return bool(changed)


async def listing(
    db: SqlSession, tenant_id: str, *, user_id: str | None, session_id: str | None,
    live_at: float | None,
) -> list[SessionRecord]:  # fmt: skip
    """The tenant's sessions, newest first (at most 1000): only *user_id*'s when given, only
    *session_id* when given, only those neither revoked nor expired at *live_at* when given."""
    where = "s.tenant_id = ?"
    args: list[object] = [tenant_id]
    if user_id is not None:
        where += " AND s.user_id = ?"
        args.append(user_id)
    if session_id is not None:
        where += " AND s.session_id = ?"
        args.append(session_id)
    if live_at is not None:
        where += " AND s.revoked_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > ?)"
        args.append(live_at)
    rows = await db.fetchall(
        "SELECT s.session_id, s.kind, s.name, s.user_id, u.username, s.created_at,"
        " s.last_used_at, s.expires_at, s.revoked_at, s.path_prefix, s.can_write"
        f" FROM sessions s JOIN users u ON u.user_id = s.user_id WHERE {where}"
        " ORDER BY s.created_at DESC LIMIT 1000",
        args,
    )
    return [
        SessionRecord(
            session_id=r[0],
            kind=r[1],
            name=r[2],
            user_id=r[3],
            username=r[4],
            created_at=r[5],
            last_used_at=r[6],
            expires_at=r[7],
            revoked_at=r[8],
            path_prefix=r[9],
            can_write=bool(r[10]),
        )
        for r in rows
    ]


# --- refresh tokens -----------------------------------------------------------------------------


async def insert_refresh(
    db: SqlSession, token_hash: str, session_id: str, now: float, expires_at: float
) -> None:
    """Add a refresh token for *session_id* (its family is the session)."""
    await db.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id, family, created_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (token_hash, session_id, session_id, now, expires_at),
    )


async def find_by_refresh(db: SqlSession, token_hash: str) -> RefreshGrant | None:
    """The refresh token hashing to *token_hash*, with its session and user, or None."""
    row = await db.fetchone(
        "SELECT r.session_id, r.used_at, r.expires_at, s.user_id, s.tenant_id, s.scope,"
        " s.revoked_at, s.name, u.disabled FROM refresh_tokens r"
        " JOIN sessions s ON s.session_id = r.session_id"
        " JOIN users u ON u.user_id = s.user_id WHERE r.token_hash = ?",
        (token_hash,),
    )
    if row is None:
        return None
    sid, used, expires, uid, tid, scope, revoked, name, off = row
    return RefreshGrant(
        session_id=sid, used_at=used, expires_at=expires, user_id=uid, tenant_id=tid,
        scope=scope, revoked_at=revoked, name=name, disabled=bool(off),
    )  # fmt: skip


async def owner_of_unused_refresh(db: SqlSession, token_hash: str) -> SessionOwner | None:
    """The session an unused refresh token belongs to, or None (unknown or used)."""
    row = await db.fetchone(
        "SELECT r.session_id, s.tenant_id, s.user_id FROM refresh_tokens r"
        " JOIN sessions s ON s.session_id = r.session_id"
        " WHERE r.token_hash = ? AND r.used_at IS NULL",
        (token_hash,),
    )
    return None if row is None else SessionOwner(row[0], row[1], row[2])


async def mark_used(db: SqlSession, token_hash: str, now: float) -> bool:
    """Spend an unused refresh token; False when it was used already.

    A guarded update: of two transactions spending one token at once, exactly one gets True.
    """
    return bool(
        await db.execute(
            "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL",
            (now, token_hash),
        )
    )


async def spend_family(db: SqlSession, family: str) -> None:
    """Spend every outstanding refresh token of *family* now (used ones keep their time)."""
    await db.execute(
        "UPDATE refresh_tokens SET used_at = COALESCE(used_at, ?) WHERE family = ?",
        (time.time(), family),
    )
