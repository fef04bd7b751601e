"""The audit log: one row per mutation, auth event and admin action, kept per tenant."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from meshfs_common.errors import ForbiddenError
from meshfs_common.models import AuditEntry, AuditPage
from meshfs_server.auth.principal import Principal
from meshfs_server.auth.store import AuthStore, SqlSession
from meshfs_server.domain.actor import Actor

#: C0 and C1 controls, DEL, and surrogates (which no UTF-8 text can hold).
_UNSTORABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Who:
    """Who did something, for an audit row."""

    user_id: str | None = None
    session_id: str | None = None
    device_name: str | None = None
    agent_name: str | None = None
    client_address: str | None = None

    @classmethod
    def of(cls, actor: Actor, client_address: str | None = None) -> Who:
        return cls(actor.user_id, actor.session_id, actor.device_name, actor.agent_name,
                   client_address)  # fmt: skip


@dataclass(frozen=True, slots=True)
class AuditedRequest:
    """A mutating request of an authenticated caller, as its audit row tells it."""

    actor: Actor
    action: str
    """``POST /files/{id}/versions/{id}/restore``: the route with ids elided."""
    target: str
    detail: dict[str, str]
    client_address: str | None = None


async def record_request(conn: SqlSession, request: AuditedRequest, status: int) -> None:
    """Append the audit row of a request whose answer had *status*."""
    await record(
        conn, request.actor.tenant_id, request.action,
        outcome="ok" if status < 400 else f"error:{status}",
        who=Who.of(request.actor, request.client_address), target=request.target,
        detail={"status": status, **request.detail},
    )  # fmt: skip


async def record(
    conn: SqlSession,
    tenant_id: str | None,
    action: str,
    *,
    outcome: str = "ok",
    who: Who | None = None,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append an audit row inside the caller's write transaction.

    Text a client chose (a path, a device name) is stored as :func:`escaped` text, so any
    request can be audited on both databases (Postgres text cannot hold NUL).
    """
    w = who or Who()
    await conn.execute(
        "INSERT INTO audit (tenant_id, at, action, outcome, user_id, session_id, device_name,"
        " agent_name, client_address, target, detail) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (tenant_id, time.time(), escaped(action), escaped(outcome), escaped(w.user_id),
         escaped(w.session_id), escaped(w.device_name), escaped(w.agent_name),
         escaped(w.client_address), escaped(target),
         json.dumps(detail, sort_keys=True) if detail else None),
    )  # fmt: skip


def escaped(text: str | None) -> str | None:
    """*text* with control characters and unpaired surrogates written as ``\\xNN`` /
    ``\\uNNNN`` escapes: storable on SQLite and Postgres, readable, one line."""
    if text is None or _UNSTORABLE.search(text) is None:
        return text
    return _UNSTORABLE.sub(_escape_one, text)


def _escape_one(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


async def recent(
    conn: SqlSession,
    tenant_id: str,
    *,
    limit: int,
    before: int | None = None,
    action: str | None = None,
    user_id: str | None = None,
    outcome: str | None = None,
    session_id: str | None = None,
) -> AuditPage:
    """A page of one tenant's audit log, newest first, optionally filtered.

    ``action`` matches exactly or, ending in ``*``, as a prefix (``auth.*``).
    """
    where = ["tenant_id = ?"]
    args: list[Any] = [tenant_id]
    if before is not None:
        where.append("audit_id < ?")
        args.append(before)
    if action:
        if action.endswith("*"):
            where.append("action LIKE ? ESCAPE '\\'")
            prefix = action[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args.append(prefix + "%")
        else:
            where.append("action = ?")
            args.append(action)
    if user_id:
        where.append("user_id = ?")
        args.append(user_id)
    if outcome:
        where.append("outcome = ?")
        args.append(outcome)
    if session_id:
        where.append("session_id = ?")
        args.append(session_id)
    rows = await conn.fetchall(
        "SELECT audit_id, at, action, outcome, user_id, session_id, device_name, agent_name,"
        f" client_address, target, detail FROM audit WHERE {' AND '.join(where)}"
        " ORDER BY audit_id DESC LIMIT ?",
        (*args, limit + 1),
    )
    entries = [
        AuditEntry(
            audit_id=r[0],
            at=datetime.fromtimestamp(r[1], UTC),
            action=r[2],
            outcome=r[3],
            user_id=r[4],
            session_id=r[5],
            device_name=r[6],
            agent_name=r[7],
            client_address=r[8],
            target=r[9],
            detail=json.loads(r[10]) if r[10] else None,
        )
        for r in rows[:limit]
    ]
    more = len(rows) > limit
    return AuditPage(
        entries=entries, has_more=more, next_before=entries[-1].audit_id if more else None
    )


async def recent_for(
    store: AuthStore, principal: Principal, *, limit: int, before: int | None,
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
    async with store.read() as db:
        return await recent(
            db, actor.tenant_id, limit=limit, before=before, action=action, user_id=user_id,
            outcome=outcome, session_id=session_id,
        )  # fmt: skip
