"""Approving a device login on the approval page: sign in with a password, then decide.

The page (:mod:`meshfs_server.http.device_page`) only renders; the rules are here. Between the
two steps the person holds a short-lived ticket signed with the server's key (audience
:data:`TICKET_AUDIENCE`, useless as an access token). Failed sign-ins and unknown codes spend
the address's and the account's guess budget (see :mod:`.ratelimit`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio

from meshfs_common.errors import AuthError, BadRequestError, ForbiddenError
from meshfs_server.auth import accounts, device
from meshfs_server.auth.service import Identity
from meshfs_server.policy.audit import Who

TICKET_AUDIENCE = "meshfs-device-approval"
TICKET_TTL = 300


@dataclass(frozen=True, slots=True)
class ApprovalAsk:
    """A signed-in person and the login that waits for their decision."""

    user: accounts.User
    code: device.DeviceCode
    tenants: list[accounts.Membership]
    """Where they may let the device in."""
    ticket: str
    """Proves the sign-in to :func:`decide` (for :data:`TICKET_TTL` seconds)."""


@dataclass(frozen=True, slots=True)
class SignInRefused:
    """Why the sign-in form is shown again: the HTTP status and a sentence for the person."""

    status: int
    problem: str


async def sign_in(
    identity: Identity, username: str, password: str, user_code: str, address: str | None
) -> ApprovalAsk | SignInRefused:
    """Check the password and the code (:class:`RateLimitedError` past the guess budget)."""
    await identity.check_guesses(f"ip:{address}")
    await identity.check_guesses(f"account:{username}")
    async with identity.db.read() as db:
        stored, user = await accounts.password_hash_of(db, username)
    ok = await anyio.to_thread.run_sync(accounts.verify_password, stored, password)
    if not ok or user is None or user.disabled:
        await identity.count_guess(f"ip:{address}")
        await identity.count_guess(f"account:{username}")
        await identity.audit_event(None, "auth.signin", "denied", Who(client_address=address),
                                   detail={"username": username}, target=username)  # fmt: skip
        return SignInRefused(401, "Wrong username or password.")
    code = await identity.pending_device(user_code)
    if code is None or code.status != "pending":
        await identity.count_guess(f"ip:{address}")
        return SignInRefused(
            404,
            "No pending login has this code; check it on the device "
            "(codes expire after 10 minutes).",
        )
    async with identity.db.read() as db:
        tenants = await accounts.memberships(db, user_id=user.user_id)
    if not tenants:
        raise ForbiddenError("your account is not a member of any tenant; ask an administrator")
    await identity.signer.refresh_keys()
    ticket = identity.signer.issue_ticket(
        {"sub": user.user_id, "user_code": code.user_code}, audience=TICKET_AUDIENCE,
        ttl=TICKET_TTL,
    )  # fmt: skip
    return ApprovalAsk(user=user, code=code, tenants=tenants, ticket=ticket)


async def decide(
    identity: Identity, ticket: str, decision: str, tenant_id: str, address: str | None
) -> device.DeviceCode:
    """Record the decision of the person the *ticket* names, in one of their tenants."""
    try:
        claims: dict[str, Any] = await identity.signer.verify_ticket(
            ticket, audience=TICKET_AUDIENCE
        )
    except AuthError:
        raise AuthError("your sign-in on this page expired; start over") from None
    if decision not in ("approve", "deny"):
        raise BadRequestError("choose Approve or Deny")
    user_id = str(claims["sub"])
    async with identity.db.read() as db:
        role = await accounts.role_of(db, tenant_id, user_id)
        user = await accounts.get_user(db, user_id=user_id)
    if role is None or user is None or user.disabled:
        raise ForbiddenError("you are not a member of that tenant")
    return await identity.device_decide(
        str(claims["user_code"]), approve=decision == "approve", user_id=user_id,
        tenant_id=tenant_id, who=Who(user_id, client_address=address), via="page",
    )  # fmt: skip
