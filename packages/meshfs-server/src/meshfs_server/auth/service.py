"""The identity service: who a request speaks for, device logins, sessions and tokens.

Every authenticated request resolves its bearer token to a :class:`Principal` with one
indexed read: the session row, its user and the user's membership in the session's tenant -
or, on the embedded database, from a :class:`~meshfs_server.auth.principal_cache.PrincipalCache`
that any committed change to them invalidates in every process. A revoked session, a disabled
user or a removed membership therefore stops working on the very next request; a role change
applies at once too.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import cast

from meshfs_common import paths
from meshfs_common.errors import (
    AuthError,
    DeviceFlowError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
)
from meshfs_common.ids import new_id
from meshfs_common.models import DeviceStartResponse, TokenResponse, Whoami
from meshfs_server.auth import accounts, device, session_rows
from meshfs_server.auth.accounts import Role
from meshfs_server.auth.keys import FileKeys, FixedKeys, KeySource, TableKeys, from_secret
from meshfs_server.auth.principal import Principal, SessionKind
from meshfs_server.auth.principal_cache import PrincipalCache
from meshfs_server.auth.ratelimit import Limits
from meshfs_server.auth.schema import identity_migrations
from meshfs_server.auth.store import AuthStore, SqlSession
from meshfs_server.auth.tokens import (
    AGENT_PREFIX,
    REFRESH_PREFIX,
    AccessClaims,
    RejectedTokenError,
    TokenSigner,
    new_secret,
    secret_hash,
)
from meshfs_server.display import clean_label, printable
from meshfs_server.domain.actor import Actor
from meshfs_server.policy import audit
from meshfs_server.policy.audit import AuditedRequest, Who
from meshfs_server.policy.audit_batch import AuditBatches
from meshfs_server.policy.quota import Plans, Quota
from meshfs_server.settings import Settings

log = logging.getLogger("meshfs_server.identity")
DEFAULT_SCOPE = "files"
DEV_USER = "dev"
DEV_TENANT = "dev"


async def approve_for_account(
    db: SqlSession, user_code: str, username: str, tenant: str | None, role: str,
    *, approve: bool, now: float, via: str,
) -> str:  # fmt: skip
    """Decide a pending code as *username* (creating user, tenant, membership if missing).

    Used by ``meshfs-server approve`` and by tests; returns a one-line summary.
    """
    code = await device.by_user_code(db, user_code, now)
    if code is None:
        raise NotFoundError(f"no pending login with code {user_code} (expired or mistyped)")
    user, found, _ = await accounts.ensure_account(db, username, tenant, accounts.check_role(role))
    await device.decide(db, code, approve=approve, user_id=user.user_id, tenant_id=found.tenant_id)
    await audit.record(
        db,
        found.tenant_id,
        "auth.device_approve" if approve else "auth.device_deny",
        who=Who(user.user_id),
        target=code.user_code,
        detail={"user_code": code.user_code, "via": via, "client_name": code.client_name},
    )
    verb = "approved" if approve else "denied"
    client = printable(code.client_name)
    return f"{verb} {client} ({code.user_code}) for {user.username} in {found.name}"


async def _names(db: SqlSession, user_id: str, tenant_id: str) -> str:
    """``user alice in tenant acme`` for a log line."""
    user = await accounts.get_user(db, user_id=user_id)
    tenant = await accounts.get_tenant(db, tenant_id=tenant_id)
    who = user.username if user else user_id
    return f"user {who} in tenant {tenant.name if tenant else tenant_id}"


def key_source(db: AuthStore, settings: Settings) -> KeySource:
    """Where the signing keys live: ``MESHFS_JWT_SECRET`` when set; else the database on
    Postgres (shared by every server process); else the key file in the data directory."""
    if settings.jwt_secret:
        return FixedKeys(from_secret(settings.jwt_secret))
    if db.dialect == "postgres":
        return TableKeys(db)
    return FileKeys(settings.keys_path)


class Identity:
    """Users, tenants, sessions and tokens on the server's database (SQLite or Postgres)."""

    def __init__(self, db: AuthStore, settings: Settings, signer: TokenSigner) -> None:
        self.db = db
        self.settings = settings
        self.signer = signer
        self.clock: Callable[[], float] = time.time
        """Wall clock for device-code timing (tests replace it)."""
        self.limits = Limits.default(settings.rate_limit_per_minute, db)
        self.plans = Plans(db)
        """Tenant plans, cached briefly (rate limits and quota read them)."""
        self.quota = Quota(self.plans, settings)
        """The storage quota, the content flow's :class:`QuotaPolicy`."""
        self.principals = PrincipalCache(db.access_revision)
        """Tokens resolved lately (only where the store tracks an access revision)."""
        self._audit_batches = AuditBatches(db)

    @classmethod
    async def open(cls, db: AuthStore, settings: Settings) -> Identity:
        """Create the tables if needed and load (or generate) the signing keys."""
        await db.migrate({"identity": identity_migrations(db.dialect)})
        signer = await TokenSigner.open(
            key_source(db, settings), issuer=settings.base_url, ttl=settings.token_ttl_seconds
        )
        return cls(db, settings, signer)

    async def close(self) -> None:
        """Nothing to release: the database belongs to the caller."""

    # --- audit ----------------------------------------------------------------------------------

    async def audit_request(self, request: AuditedRequest, status: int) -> None:
        """Audit a mutating request whose answer had *status* (the safety middleware calls it).

        Not fsynced by itself: the mutation was committed durably already (and its change
        event, with the writer, is in the feed); this row reaches the disk with the next
        durable commit. That saves the second fsync of every write; requests answered
        together share one transaction (:mod:`~meshfs_server.policy.audit_batch`)."""
        await self._audit_batches.record(request, status)

    async def audit_event(
        self, tenant_id: str | None, action: str, outcome: str, who: Who,
        detail: dict[str, object] | None = None, target: str | None = None,
    ) -> None:  # fmt: skip
        """Record an audit row in its own transaction."""
        async with self.db.write() as db:
            await audit.record(db, tenant_id, action, outcome=outcome, who=who, detail=detail,
                               target=target)  # fmt: skip

    async def check_guesses(self, key: str) -> None:
        """Refuse while *key* (an address or account) has used up its failed attempts."""
        await self.limits.guesses.check_empty(key, what="attempts")

    async def count_guess(self, key: str) -> None:
        """Spend one failed attempt of *key* (never raises)."""
        with contextlib.suppress(RateLimitedError):
            await self.limits.guesses.spend(key, what="attempts")

    # --- authentication -------------------------------------------------------------------------

    async def resolve(self, token: str) -> Principal:
        """Check an access token or agent token and the session behind it."""
        known, revision = self.principals.lookup(token)
        if known is not None:
            return known
        if token.startswith(AGENT_PREFIX):
            async with self.db.read() as conn:
                agent_session = await session_rows.agent_session_id(conn, secret_hash(token))
            if agent_session is None:
                raise AuthError("unknown agent token")
            found, until = await self._session_principal(agent_session, None)
        else:
            claims = await self.signer.verify(token)
            found, until = await self._session_principal(claims.session_id, claims)
        self.principals.remember(token, found, revision, until)
        return found

    async def _session_principal(
        self, session_id: str, claims: AccessClaims | None
    ) -> tuple[Principal, float | None]:
        """The principal of a session, and until when (epoch seconds) it may be trusted."""
        async with self.db.read() as conn:
            session = await session_rows.access_of(conn, session_id)
        if session is None:
            raise AuthError("unknown session")
        user_id, tenant_id, role = session.user_id, session.tenant_id, session.role

        def rejected(message: str) -> RejectedTokenError:
            return RejectedTokenError(
                message, tenant_id=tenant_id, user_id=user_id, session_id=session_id
            )

        if claims is not None and (claims.user_id, claims.tenant_id) != (user_id, tenant_id):
            raise rejected("access token does not match its session")
        if session.revoked_at is not None:
            raise rejected("this session was signed out or revoked; sign in again")
        if session.expires_at is not None and session.expires_at <= time.time():
            raise rejected("this token has expired")
        if session.disabled:
            raise rejected("this account is disabled")
        if role is None:
            raise rejected("this account is no longer a member of the tenant")
        is_agent = session.kind == "agent"
        name = session.name
        actor = Actor(
            tenant_id=tenant_id, user_id=user_id, session_id=session_id,
            device_name=None if is_agent else name, agent_name=name if is_agent else None,
            can_write=session.can_write and role != "reader", path_prefix=session.path_prefix,
        )  # fmt: skip
        ends = [float(t) for t in (session.expires_at, claims and claims.expires_at)
                if isinstance(t, (int, float))]  # fmt: skip
        principal = Principal(
            actor=actor, role=cast(Role, role), kind=session.kind, scope=session.scope
        )
        return principal, min(ends) if ends else None

    async def audit_auth_failure(
        self, exc: AuthError, address: str | None, *, target: str, request: str,
        ids: dict[str, str],
    ) -> None:  # fmt: skip
        """Audit a token that failed. One that names a tenant trustworthily (signed by us, or a
        known session) is audited in that tenant, so its owners see expired or revoked tokens
        still in use."""
        who = Who(client_address=address)
        tenant_id = None
        if isinstance(exc, RejectedTokenError):
            tenant_id = exc.tenant_id
            who = Who(exc.user_id, exc.session_id, client_address=address)
        async with self.db.write() as db:
            await audit.record(
                db, tenant_id, "auth.failed", outcome="denied", who=who, target=target,
                detail={"reason": exc.message, "request": request, **ids},
            )  # fmt: skip

    # --- sessions and tokens --------------------------------------------------------------------

    async def new_session_in(
        self, db: SqlSession, *, user_id: str, tenant_id: str, name: str, scope: str,
        kind: SessionKind = "device", expires_at: float | None = None,
        token_hash: str | None = None, path_prefix: str = paths.ROOT, can_write: bool = True,
    ) -> str:  # fmt: skip
        session_id = new_id()
        await session_rows.insert(
            db, session_id=session_id, kind=kind, user_id=user_id, tenant_id=tenant_id,
            name=name, scope=scope, expires_at=expires_at, token_hash=token_hash,
            path_prefix=path_prefix, can_write=can_write,
        )  # fmt: skip
        return session_id

    async def _token_answer(
        self, db: SqlSession, *, session_id: str, user_id: str, tenant_id: str, scope: str
    ) -> TokenResponse:
        refresh = new_secret(REFRESH_PREFIX)
        now = time.time()
        await session_rows.insert_refresh(
            db, secret_hash(refresh), session_id, now,
            now + self.settings.refresh_token_ttl_seconds,
        )  # fmt: skip
        access = self.signer.issue(
            user_id=user_id, tenant_id=tenant_id, session_id=session_id, scope=scope
        )
        return TokenResponse(
            access_token=access, expires_in=self.signer.ttl, user_id=user_id,
            tenant_id=tenant_id, session_id=session_id, refresh_token=refresh, scope=scope,
        )  # fmt: skip

    async def refresh(self, refresh_token: str, address: str | None = None) -> TokenResponse:
        """Rotate a refresh token; a reused one revokes its whole family (theft detection)."""
        failure: DeviceFlowError | None = None
        answer: TokenResponse | None = None
        await self.signer.refresh_keys()
        async with self.db.write() as db:
            grant = await session_rows.find_by_refresh(db, secret_hash(refresh_token))
            if grant is None:
                failure = DeviceFlowError("invalid_grant", "unknown refresh token; sign in again")
            else:
                sid, uid, tid = grant.session_id, grant.user_id, grant.tenant_id
                used, revoked, off = grant.used_at, grant.revoked_at, grant.disabled
                who = Who(uid, sid, grant.name, None, address)
                # Spend the token with a guarded update: of two requests presenting it at
                # once (on any server process) exactly one wins; the other is a reuse.
                now = time.time()
                valid = revoked is None and not off and grant.expires_at > now
                spent = (
                    used is None
                    and valid
                    and await session_rows.mark_used(db, secret_hash(refresh_token), now)
                )
                if used is not None or (valid and not spent):
                    await self.revoke_in(db, sid, "refresh token reused")
                    await audit.record(
                        db, tid, "auth.refresh_reuse", outcome="revoked", who=who, target=sid
                    )
                    failure = DeviceFlowError(
                        "invalid_grant",
                        "this refresh token was already used; the session has been revoked",
                    )
                elif revoked is not None or off:
                    failure = DeviceFlowError("invalid_grant", "the session is no longer valid")
                elif not valid:
                    failure = DeviceFlowError("invalid_grant", "the refresh token has expired")
                else:
                    await session_rows.touch(db, sid)
                    answer = await self._token_answer(
                        db, session_id=sid, user_id=uid, tenant_id=tid, scope=grant.scope
                    )
                    await audit.record(db, tid, "auth.refresh", who=who, target=sid)
        if failure is not None:
            raise failure
        assert answer is not None
        return answer

    @staticmethod
    async def revoke_in(db: SqlSession, session_id: str, reason: str) -> bool:
        """Revoke a session and spend its refresh tokens; False when it was revoked already."""
        changed = await session_rows.mark_revoked(db, session_id, reason)
        # Outstanding refresh tokens of the family are spent with it.
        await session_rows.spend_family(db, session_id)
        return changed

    async def logout(self, principal: Principal, address: str | None = None) -> None:
        """Revoke the caller's session."""
        async with self.db.write() as db:
            await self.revoke_in(db, cast(str, principal.actor.session_id), "signed out")
            await audit.record(
                db,
                principal.actor.tenant_id,
                "auth.logout",
                who=Who.of(principal.actor, address),
                target=principal.actor.session_id,
            )

    async def logout_refresh(self, refresh_token: str, address: str | None = None) -> None:
        """Revoke the session a (still valid) refresh token belongs to."""
        async with self.db.write() as db:
            owner = await session_rows.owner_of_unused_refresh(db, secret_hash(refresh_token))
            if owner is not None:
                await self.revoke_in(db, owner.session_id, "signed out")
                await audit.record(
                    db,
                    owner.tenant_id,
                    "auth.logout",
                    who=Who(owner.user_id, owner.session_id, None, None, address),
                    target=owner.session_id,
                )
        if owner is None:
            raise AuthError("unknown or used refresh token")

    async def whoami(self, principal: Principal) -> Whoami:
        """Who the caller is."""
        actor = principal.actor
        async with self.db.read() as db:
            user = await accounts.get_user(db, user_id=actor.user_id)
            tenant = await accounts.get_tenant(db, tenant_id=actor.tenant_id)
            name, expires = await session_rows.name_and_expiry(db, actor.session_id)
        if user is None or tenant is None:
            raise AuthError("unknown user or tenant")
        return Whoami(
            user_id=user.user_id, username=user.username, tenant_id=tenant.tenant_id,
            tenant_name=tenant.name, scope=principal.scope, session_id=actor.session_id,
            kind=principal.kind, session_name=name, path_prefix=actor.path_prefix,
            access="write" if actor.can_write else "read",
            expires_at=None if expires is None else datetime.fromtimestamp(expires, UTC),
        )  # fmt: skip

    # --- device flow ----------------------------------------------------------------------------

    async def device_start(
        self, client_name: str, scope: str | None, address: str | None = None
    ) -> DeviceStartResponse:
        """Begin a device login (RFC 8628 3.2)."""
        now = self.clock()
        # Shown on the approval page, by `meshfs-server approve` and in logs: no control
        # characters, bounded length.
        name = clean_label(client_name, default="meshfs")
        async with self.db.write() as db:
            device_code, user_code = await device.start(
                db, name, scope or DEFAULT_SCOPE, now, address
            )
            await audit.record(
                db,
                None,
                "auth.device_start",
                who=Who(client_address=address),
                target=user_code,
                detail={"client_name": name, "user_code": user_code},
            )
        base = self.settings.base_url
        return DeviceStartResponse(
            device_code=device_code, user_code=user_code, verification_uri=f"{base}/device",
            verification_uri_complete=f"{base}/device?user_code={user_code}",
            expires_in=device.DEVICE_CODE_TTL, interval=device.POLL_INTERVAL,
        )  # fmt: skip

    async def device_poll(self, device_code: str, address: str | None = None) -> TokenResponse:
        """Exchange an approved device code for tokens, or answer as RFC 8628 says."""
        now = self.clock()
        answer: TokenResponse | None = None
        await self.signer.refresh_keys()
        async with self.db.write() as db:
            if self.settings.dev_auto_approve:
                await self._auto_approve(db, device_code, now)
            outcome = await device.poll(db, device_code, now)
            if isinstance(outcome, device.DeviceCode):
                assert outcome.user_id is not None
                assert outcome.tenant_id is not None
                sid = await self.new_session_in(
                    db, user_id=outcome.user_id, tenant_id=outcome.tenant_id,
                    name=outcome.client_name, scope=outcome.scope,
                )  # fmt: skip
                answer = await self._token_answer(
                    db, session_id=sid, user_id=outcome.user_id, tenant_id=outcome.tenant_id,
                    scope=outcome.scope,
                )  # fmt: skip
                await audit.record(
                    db,
                    outcome.tenant_id,
                    "auth.login",
                    who=Who(outcome.user_id, sid, outcome.client_name, None, address),
                    target=sid,
                )
                signed_in = await _names(db, outcome.user_id, outcome.tenant_id)
        if isinstance(outcome, DeviceFlowError):
            raise outcome
        log.info(
            'signed in: %s as device "%s" from %s (session %s)',
            signed_in, printable(outcome.client_name), printable(address or "-"), sid,
        )  # fmt: skip
        assert answer is not None
        return answer

    async def _auto_approve(self, db: SqlSession, device_code: str, now: float) -> None:
        user_code = await device.pending_user_code(db, secret_hash(device_code), now)
        if user_code is None:
            return
        code = await device.by_user_code(db, user_code, now)
        if code is None:
            return
        user, tenant, _ = await accounts.ensure_account(db, DEV_USER, DEV_TENANT)
        await device.decide(
            db, code, approve=True, user_id=user.user_id, tenant_id=tenant.tenant_id
        )
        await audit.record(
            db,
            tenant.tenant_id,
            "auth.device_approve",
            who=Who(user.user_id),
            target=code.user_code,
            detail={"user_code": code.user_code, "by": "dev-auto-approve"},
        )
        log.warning(
            'dev auto-approve: approved "%s" (%s) as user %s in tenant %s without asking anyone',
            printable(code.client_name), code.user_code, DEV_USER, DEV_TENANT,
        )  # fmt: skip

    async def pending_device(self, user_code: str) -> device.DeviceCode | None:
        """The live code a person typed (for the approval page)."""
        async with self.db.read() as db:
            return await device.by_user_code(db, user_code, self.clock())

    async def device_decide(
        self, user_code: str, *, approve: bool, user_id: str, tenant_id: str,
        who: Who, via: str,
    ) -> device.DeviceCode:  # fmt: skip
        """Approve or deny a pending code for *user_id* in *tenant_id*."""
        async with self.db.write() as db:
            code = await device.by_user_code(db, user_code, self.clock())
            if code is None:
                raise NotFoundError("no pending login with this code (expired or mistyped)")
            await device.decide(db, code, approve=approve, user_id=user_id, tenant_id=tenant_id)
            await audit.record(
                db,
                tenant_id,
                "auth.device_approve" if approve else "auth.device_deny",
                who=who,
                target=code.user_code,
                detail={"user_code": code.user_code, "client_name": code.client_name, "via": via},
            )
            decided_for = await _names(db, user_id, tenant_id)
        log.info(
            'device login %s %s: "%s" for %s (via %s)',
            code.user_code, "approved" if approve else "denied", printable(code.client_name),
            decided_for, via,
        )  # fmt: skip
        return replace(code, status="approved" if approve else "denied")

    async def device_activate(
        self, principal: Principal, user_code: str, approve: bool, address: str | None = None
    ) -> str:
        """A signed-in user approves (or denies) a code for their own tenant."""
        if principal.kind != "device":
            raise ForbiddenError("agent tokens cannot approve logins")
        keys = (f"ip:{address}", f"user:{principal.actor.user_id}")
        for key in keys:
            await self.check_guesses(key)
        try:
            code = await self.device_decide(
                user_code, approve=approve, user_id=principal.actor.user_id,
                tenant_id=principal.actor.tenant_id, who=Who.of(principal.actor, address),
                via="api",
            )  # fmt: skip
        except NotFoundError:
            for key in keys:
                await self.count_guess(key)
            raise
        return code.status
