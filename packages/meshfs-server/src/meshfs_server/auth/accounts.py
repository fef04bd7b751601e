"""Tenants, users, memberships and passwords (SQL on an open transaction, see :mod:`.store`).

These functions run inside a transaction the caller owns (``db.write()`` / ``db.read()``), so
that several of them - e.g. create a user, a tenant and a membership - commit together.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Literal, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from meshfs_common.errors import AlreadyExistsError, BadRequestError, NotFoundError
from meshfs_common.ids import new_id
from meshfs_server.auth.store import SqlSession

Role = Literal["owner", "writer", "reader"]
ROLES: tuple[Role, ...] = ("owner", "writer", "reader")
Plan = Literal["free", "pro", "team"]
PLANS: tuple[Plan, ...] = ("free", "pro", "team")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")

# argon2id with the library's RFC 9106 "low memory" profile (64 MiB, 3 passes).
_hasher = PasswordHasher()
# Verifying against this keeps the timing of "no such user" close to "wrong password".
_DUMMY_HASH = _hasher.hash("meshfs-not-a-password")


@dataclass(frozen=True, slots=True)
class User:
    """A local account."""

    user_id: str
    username: str
    disabled: bool
    has_password: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class Tenant:
    """A tenant and its plan."""

    tenant_id: str
    name: str
    plan: Plan
    created_at: float


@dataclass(frozen=True, slots=True)
class Membership:
    """A user's role in a tenant."""

    tenant_id: str
    tenant_name: str
    user_id: str
    username: str
    role: Role


def check_name(kind: str, name: str) -> str:
    """Usernames and tenant names: 1-64 of letters, digits, ``. _ @ -``."""
    if not _NAME.match(name):
        raise BadRequestError(
            f"{kind} name {name!r} must be 1-64 letters, digits, '.', '_', '@' or '-'"
        )
    return name


def check_role(role: str) -> Role:
    """Validate a role name."""
    if role not in ROLES:
        raise BadRequestError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    return role


def hash_password(password: str) -> str:
    """An argon2id PHC string for *password*."""
    if len(password) < 8:
        raise BadRequestError("passwords must be at least 8 characters")
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True when *password* matches *stored*; constant work when there is no stored hash."""
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# --- users --------------------------------------------------------------------------------------


def _user(row: tuple[object, ...]) -> User:
    uid, name, pw, disabled, created = row
    return User(str(uid), str(name), bool(disabled), pw is not None, float(cast(float, created)))


async def get_user(conn: SqlSession, *, username: str | None = None,
             user_id: str | None = None) -> User | None:  # fmt: skip
    """A user by name or id."""
    column, value = ("username", username) if username is not None else ("user_id", user_id)
    row = await conn.fetchone(
        f"SELECT user_id, username, password_hash, disabled, created_at FROM users"
        f" WHERE {column} = ?",
        (value,),
    )
    return None if row is None else _user(row)


async def password_hash_of(conn: SqlSession, username: str) -> tuple[str | None, User | None]:
    """The stored hash and the user (both None for an unknown user)."""
    row = await conn.fetchone(
        "SELECT user_id, username, password_hash, disabled, created_at FROM users"
        " WHERE username = ?",
        (username,),
    )
    if row is None:
        return None, None
    return (None if row[2] is None else str(row[2])), _user(row)


async def create_user(conn: SqlSession, username: str, password: str | None = None) -> User:
    """Add a user; an existing name is a conflict."""
    check_name("user", username)
    if await get_user(conn, username=username) is not None:
        raise AlreadyExistsError(f"user {username} already exists")
    now = time.time()
    pw = hash_password(password) if password is not None else None
    uid = new_id()
    await conn.execute(
        "INSERT INTO users (user_id, username, password_hash, disabled, created_at)"
        " VALUES (?, ?, ?, 0, ?)",
        (uid, username, pw, now),
    )
    return User(uid, username, False, pw is not None, now)


async def set_password(conn: SqlSession, username: str, password: str) -> None:
    """Replace a user's password."""
    changed = await conn.execute(
        "UPDATE users SET password_hash = ? WHERE username = ?", (hash_password(password), username)
    )
    if not changed:
        raise NotFoundError(f"no such user: {username}")


async def set_disabled(conn: SqlSession, username: str, disabled: bool) -> User:
    """Disable (or re-enable) a user; a disabled user's sessions stop working at once."""
    changed = await conn.execute(
        "UPDATE users SET disabled = ? WHERE username = ?", (int(disabled), username)
    )
    if not changed:
        raise NotFoundError(f"no such user: {username}")
    user = await get_user(conn, username=username)
    assert user is not None
    return user


async def list_users(conn: SqlSession) -> list[User]:
    """Every user by name."""
    rows = await conn.fetchall(
        "SELECT user_id, username, password_hash, disabled, created_at FROM users ORDER BY username"
    )
    return [_user(r) for r in rows]


# --- tenants and memberships --------------------------------------------------------------------


def _tenant(row: tuple[object, ...]) -> Tenant:
    tid, name, plan, created = row
    return Tenant(str(tid), str(name), cast(Plan, plan), float(cast(float, created)))


async def get_tenant(conn: SqlSession, *, name: str | None = None,
               tenant_id: str | None = None) -> Tenant | None:  # fmt: skip
    """A tenant by name or id."""
    column, value = ("name", name) if name is not None else ("tenant_id", tenant_id)
    row = await conn.fetchone(
        f"SELECT tenant_id, name, plan, created_at FROM tenants WHERE {column} = ?", (value,)
    )
    return None if row is None else _tenant(row)


async def create_tenant(conn: SqlSession, name: str, plan: str = "free") -> Tenant:
    """Add a tenant; an existing name is a conflict."""
    check_name("tenant", name)
    if plan not in PLANS:
        raise BadRequestError(f"plan must be one of {', '.join(PLANS)}")
    if await get_tenant(conn, name=name) is not None:
        raise AlreadyExistsError(f"tenant {name} already exists")
    now = time.time()
    tid = new_id()
    await conn.execute(
        "INSERT INTO tenants (tenant_id, name, plan, created_at) VALUES (?, ?, ?, ?)",
        (tid, name, plan, now),
    )
    return Tenant(tid, name, plan, now)


async def set_plan(conn: SqlSession, name: str, plan: str) -> None:
    """Change a tenant's plan (server administrators only)."""
    if plan not in PLANS:
        raise BadRequestError(f"plan must be one of {', '.join(PLANS)}")
    if not await conn.execute("UPDATE tenants SET plan = ? WHERE name = ?", (plan, name)):
        raise NotFoundError(f"no such tenant: {name}")


async def list_tenants(conn: SqlSession) -> list[Tenant]:
    """Every tenant by name."""
    rows = await conn.fetchall(
        "SELECT tenant_id, name, plan, created_at FROM tenants ORDER BY name"
    )
    return [_tenant(r) for r in rows]


async def set_member(conn: SqlSession, tenant_id: str, user_id: str, role: str) -> None:
    """Add a user to a tenant or change their role there."""
    check_role(role)
    await conn.execute(
        "INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role",
        (tenant_id, user_id, role, time.time()),
    )


async def remove_member(conn: SqlSession, tenant_id: str, user_id: str) -> bool:
    """Remove a membership (the user's sessions in that tenant stop working)."""
    return bool(
        await conn.execute(
            "DELETE FROM memberships WHERE tenant_id = ? AND user_id = ?", (tenant_id, user_id)
        )
    )


async def role_of(conn: SqlSession, tenant_id: str, user_id: str) -> Role | None:
    """The user's role in the tenant, or None."""
    row = await conn.fetchone(
        "SELECT role FROM memberships WHERE tenant_id = ? AND user_id = ?", (tenant_id, user_id)
    )
    return None if row is None else cast(Role, row[0])


async def memberships(conn: SqlSession, *, user_id: str | None = None,
                tenant_id: str | None = None) -> list[Membership]:  # fmt: skip
    """Memberships of a user, or of a tenant."""
    column, value = ("m.user_id", user_id) if user_id is not None else ("m.tenant_id", tenant_id)
    rows = await conn.fetchall(
        "SELECT m.tenant_id, t.name, m.user_id, u.username, m.role FROM memberships m"
        " JOIN tenants t ON t.tenant_id = m.tenant_id JOIN users u ON u.user_id = m.user_id"
        f" WHERE {column} = ? ORDER BY t.name, u.username",
        (value,),
    )
    return [Membership(str(a), str(b), str(c), str(d), cast(Role, e)) for a, b, c, d, e in rows]


async def ensure_account(
    conn: SqlSession, username: str, tenant_name: str | None = None, role: str = "owner"
) -> tuple[User, Tenant, Role]:
    """The user, their tenant and role, creating what is missing.

    A new user without a named tenant gets a new tenant named after them, as its owner (never
    someone else's tenant that happens to have that name: that is refused). An existing user
    with no tenant named uses their only (or first) membership.
    """
    user = await get_user(conn, username=username) or await create_user(conn, username)
    if tenant_name is None:
        existing = await memberships(conn, user_id=user.user_id)
        if existing:
            first = existing[0]
            tenant = await get_tenant(conn, tenant_id=first.tenant_id)
            assert tenant is not None
            return user, tenant, first.role
        if await get_tenant(conn, name=username) is not None:
            raise AlreadyExistsError(
                f"a tenant named {username} already exists and {username} is not a member;"
                " name the tenant to add them to with --tenant NAME"
            )
        tenant_name = username
    tenant = await get_tenant(conn, name=tenant_name) or await create_tenant(conn, tenant_name)
    current = await role_of(conn, tenant.tenant_id, user.user_id)
    if current is None:
        await set_member(conn, tenant.tenant_id, user.user_id, role)
        current = check_role(role)
    return user, tenant, current
