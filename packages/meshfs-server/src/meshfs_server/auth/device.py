"""RFC 8628 device authorization: codes, their states, and the polling rules.

A device code moves pending -> approved | denied -> consumed. Polling answers (section 3.5):
``authorization_pending`` while pending; ``slow_down`` when a pending code is polled again
sooner than its interval (the interval then grows by 5 s, as the RFC requires);
``access_denied`` once denied; ``expired_token`` after ``expires_at``; an approved code is
exchanged for tokens exactly once (``invalid_grant`` afterwards, and for unknown codes).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from meshfs_common.errors import DeviceFlowError
from meshfs_server.auth.store import SqlSession
from meshfs_server.auth.tokens import DEVICE_PREFIX, new_secret, secret_hash

#: RFC 8628 6.1: no vowels (no words), no look-alikes (0/O, 1/I/L), upper case only.
USER_CODE_ALPHABET = "BCDFGHJKMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
DEVICE_CODE_TTL = 600
POLL_INTERVAL = 5
SLOW_DOWN_STEP = 5


@dataclass(frozen=True, slots=True)
class DeviceCode:
    """A device login in progress (what the approval page and the CLI look at)."""

    device_code_hash: str
    user_code: str
    client_name: str
    scope: str
    created_at: float
    expires_at: float
    interval: int
    last_polled_at: float | None
    status: str
    user_id: str | None
    tenant_id: str | None
    client_address: str | None


_COLUMNS = (
    "device_code_hash, user_code, client_name, scope, created_at, expires_at, interval,"
    " last_polled_at, status, user_id, tenant_id, client_address"
)


def new_user_code() -> str:
    """``XXXX-XXXX`` from :data:`USER_CODE_ALPHABET` (19^8, about 2^34 codes)."""
    raw = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
    return f"{raw[:4]}-{raw[4:]}"


def normalise_user_code(text: str) -> str:
    """Accept what a person types: any case, with or without the dash or spaces."""
    raw = "".join(c for c in text.upper() if c.isalnum())
    return f"{raw[:4]}-{raw[4:]}" if len(raw) == USER_CODE_LENGTH else raw


async def start(
    conn: SqlSession, client_name: str, scope: str, now: float,
    client_address: str | None,
) -> tuple[str, str]:  # fmt: skip
    """Create a pending code; returns (device_code, user_code)."""
    # Forget long-expired codes so the table stays small.
    await conn.execute("DELETE FROM device_codes WHERE expires_at < ?", (now - 86400,))
    while True:
        user_code = new_user_code()
        clash = await conn.fetchone(
            "SELECT 1 FROM device_codes WHERE user_code = ? AND expires_at > ?", (user_code, now)
        )
        if clash is None:
            break
    device_code = new_secret(DEVICE_PREFIX)
    await conn.execute(
        f"INSERT INTO device_codes ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (secret_hash(device_code), user_code, client_name, scope, now, now + DEVICE_CODE_TTL,
         POLL_INTERVAL, None, "pending", None, None, client_address),
    )  # fmt: skip
    return device_code, user_code


async def by_user_code(conn: SqlSession, user_code: str, now: float) -> DeviceCode | None:
    """The live (not expired, not consumed) code a person typed, or None."""
    row = await conn.fetchone(
        f"SELECT {_COLUMNS} FROM device_codes WHERE user_code = ? AND expires_at > ?"
        " AND status != 'consumed' ORDER BY created_at DESC LIMIT 1",
        (normalise_user_code(user_code), now),
    )
    return None if row is None else DeviceCode(*row)


async def pending_user_code(conn: SqlSession, device_code_hash: str, now: float) -> str | None:
    """The user code of a live pending code, by its device code's hash, or None."""
    row = await conn.fetchone(
        "SELECT user_code FROM device_codes WHERE device_code_hash = ? AND status = 'pending'"
        " AND expires_at > ?",
        (device_code_hash, now),
    )
    return None if row is None else str(row[0])


async def pending(conn: SqlSession, now: float) -> list[DeviceCode]:
    """Every live code still waiting for a decision, oldest first."""
    rows = await conn.fetchall(
        f"SELECT {_COLUMNS} FROM device_codes WHERE status = 'pending' AND expires_at > ?"
        " ORDER BY created_at",
        (now,),
    )
    return [DeviceCode(*row) for row in rows]


async def decide(
    conn: SqlSession, code: DeviceCode, *, approve: bool, user_id: str, tenant_id: str
) -> None:
    """Approve or deny a pending code (a decided code cannot be decided again)."""
    if code.status != "pending":
        raise DeviceFlowError("invalid_grant", f"this code was already {code.status}")
    decided = await conn.execute(
        "UPDATE device_codes SET status = ?, user_id = ?, tenant_id = ?"
        " WHERE device_code_hash = ? AND status = 'pending'",
        ("approved" if approve else "denied", user_id, tenant_id, code.device_code_hash),
    )
    if not decided:  # decided by someone else since it was read
        raise DeviceFlowError("invalid_grant", "this code was already decided")


async def poll(conn: SqlSession, device_code: str, now: float) -> DeviceCode | DeviceFlowError:
    """Apply the polling rules: an *approved* code (now consumed), or the error to answer.

    Errors are returned, not raised, so that the caller's transaction still commits the
    bookkeeping (``last_polled_at``, the grown interval).
    """
    row = await conn.fetchone(
        f"SELECT {_COLUMNS} FROM device_codes WHERE device_code_hash = ?",
        (secret_hash(device_code),),
    )
    if row is None:
        return DeviceFlowError("invalid_grant", "unknown device code; start a new login")
    code = DeviceCode(*row)
    if code.status == "consumed":
        return DeviceFlowError("invalid_grant", "this device code was already used")
    if now >= code.expires_at:
        return DeviceFlowError("expired_token", "the login code expired; start a new login")
    if code.status == "denied":
        return DeviceFlowError("access_denied", "the login was denied")
    if code.status == "pending":
        too_soon = code.last_polled_at is not None and now - code.last_polled_at < code.interval
        interval = code.interval + SLOW_DOWN_STEP if too_soon else code.interval
        await conn.execute(
            "UPDATE device_codes SET last_polled_at = ?, interval = ? WHERE device_code_hash = ?",
            (now, interval, code.device_code_hash),
        )
        if too_soon:
            return DeviceFlowError("slow_down", f"poll at most every {interval} seconds")
        return DeviceFlowError("authorization_pending", "waiting for the user to approve")
    # Guarded: of two polls racing for one approved code, exactly one consumes it.
    consumed = await conn.execute(
        "UPDATE device_codes SET status = 'consumed', last_polled_at = ?"
        " WHERE device_code_hash = ? AND status = 'approved'",
        (now, code.device_code_hash),
    )
    if not consumed:
        return DeviceFlowError("invalid_grant", "this device code was already used")
    return code
