"""JWT access tokens and opaque secrets (refresh tokens, device codes, agent tokens).

Access tokens are JWTs signed with the key ring's current key, ``kid`` in the header. They
carry ``iss`` (the server's base URL), ``aud`` (``meshfs``), ``sub`` (user id), ``tid`` (tenant
id), ``sid`` (session id), ``scope``, ``iat``, ``exp`` and ``jti``. Verification pins the
algorithm (a token whose header names any other algorithm, ``none`` included, is refused),
looks the key up by ``kid`` and checks ``iss``, ``aud`` and ``exp`` (no leeway beyond
:data:`LEEWAY` seconds of clock skew). Whether the session is still alive is checked by the
caller against the database on every request.

Opaque secrets are 32 random bytes, URL-safe base64, with a prefix naming their kind; only
their SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwt import JWTClaimsRegistry

from meshfs_common.errors import AuthError
from meshfs_common.ids import is_id, new_id
from meshfs_server.auth.keys import FixedKeys, KeyRing, KeySource

AUDIENCE = "meshfs"
LEEWAY = 30
VERIFIED_CACHE_SIZE = 4096
KEY_RELOAD_INTERVAL = 5.0

REFRESH_PREFIX = "mfr_"
AGENT_PREFIX = "mfa_"
DEVICE_PREFIX = "mfd_"


def new_secret(prefix: str) -> str:
    """A fresh unguessable token with a kind prefix."""
    return prefix + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    """The stored form of an opaque secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """The verified claims of an access token."""

    user_id: str
    tenant_id: str
    session_id: str
    scope: str
    expires_at: int


class RejectedTokenError(AuthError):
    """A token this server signed (or a session it knows) that is no longer good: expired,
    revoked, of a disabled account. It names the tenant, user and session, so the failure is
    audited where that tenant's owners see it (a forged token names nothing trustworthy)."""

    def __init__(
        self, message: str, *, tenant_id: str, user_id: str | None, session_id: str | None
    ) -> None:
        super().__init__(message)
        self.tenant_id = tenant_id
        self.user_id = user_id
        self.session_id = session_id


def _rejected(message: str, claims: dict[str, Any]) -> AuthError:
    """The error for a token whose signature is good but whose claims are not (expired, another
    audience): it names the tenant when the claims do."""
    tenant, user, session = (claims.get(k) for k in ("tid", "sub", "sid"))
    if not isinstance(tenant, str) or not is_id(tenant):
        return AuthError(message)
    return RejectedTokenError(
        message, tenant_id=tenant,
        user_id=user if isinstance(user, str) else None,
        session_id=session if isinstance(session, str) else None,
    )  # fmt: skip


class TokenSigner:
    """Issues and verifies access tokens with a :class:`KeyRing`."""

    def __init__(
        self, ring: KeyRing, *, issuer: str, ttl: int, source: KeySource | None = None
    ) -> None:
        self.ring = ring
        self.issuer = issuer
        self.ttl = ttl
        self.source: KeySource = source or FixedKeys(ring)
        self._reloads = source is not None and not isinstance(source, FixedKeys)
        self._last_reload = time.monotonic()
        # Tokens whose signature and claims were verified, by their exact text. A client sends
        # the same token for up to an hour; an Ed25519 check costs more than the rest of a
        # small request. Expiry is checked again on every hit; a key reload empties it.
        self._verified: OrderedDict[str, AccessClaims] = OrderedDict()

    @classmethod
    async def open(cls, source: KeySource, *, issuer: str, ttl: int) -> TokenSigner:
        """Load the ring from *source* (a first key is generated and saved if there is none)."""
        return cls(await source.load(), issuer=issuer, ttl=ttl, source=source)

    async def refresh_keys(self, *, force: bool = False) -> None:
        """Re-read the ring, at most every :data:`KEY_RELOAD_INTERVAL` seconds unless *force*
        (picks up ``meshfs-server keys rotate``, from any process, without a restart).

        Call it before a transaction that will :meth:`issue` a token, not inside one.
        """
        if not self._reloads:
            return
        now = time.monotonic()
        if not force and now - self._last_reload < KEY_RELOAD_INTERVAL:
            return
        self._last_reload = now
        ring = await self.source.load()
        if ring.keys.keys() != self.ring.keys.keys() or ring.current_kid != self.ring.current_kid:
            self.ring = ring
            self._verified.clear()

    def issue(self, *, user_id: str, tenant_id: str, session_id: str, scope: str) -> str:
        """Sign a new access token valid for ``ttl`` seconds (with the ring as last loaded)."""
        now = int(time.time())
        header = {"alg": self.ring.algorithm, "kid": self.ring.current_kid, "typ": "JWT"}
        claims = {
            "iss": self.issuer, "aud": AUDIENCE, "sub": user_id, "tid": tenant_id,
            "sid": session_id, "scope": scope, "iat": now, "exp": now + self.ttl,
            "jti": new_id(),
        }  # fmt: skip
        return jwt.encode(header, claims, self.ring.current, algorithms=[self.ring.algorithm])

    def issue_ticket(self, claims: dict[str, Any], *, audience: str, ttl: int) -> str:
        """A short-lived signed statement for *audience* (e.g. the approval page's sign-in)."""
        now = int(time.time())
        header = {"alg": self.ring.algorithm, "kid": self.ring.current_kid, "typ": "JWT"}
        body = {**claims, "iss": self.issuer, "aud": audience, "iat": now, "exp": now + ttl}
        return jwt.encode(header, body, self.ring.current, algorithms=[self.ring.algorithm])

    async def verify_ticket(self, token: str, *, audience: str) -> dict[str, Any]:
        """The claims of a ticket made by :meth:`issue_ticket` (by any server process)."""
        try:
            decoded = self._decode(token)
        except AuthError as first:
            if "unknown signing key" not in first.message:
                raise
            await self.refresh_keys()
            decoded = self._decode(token)
        registry = JWTClaimsRegistry(
            leeway=LEEWAY,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
        )
        try:
            registry.validate(decoded.claims)
        except JoseError as exc:
            raise AuthError(f"ticket rejected: {exc.error}") from None
        return dict(decoded.claims)

    def _decode(self, token: str) -> Any:
        try:
            decoded = jwt.decode(token, self.ring.key_set(), algorithms=[self.ring.algorithm])
        except ValueError as exc:  # joserfc's "no key for this kid" is a ValueError
            raise AuthError("access token: unknown signing key") from exc
        except JoseError as exc:
            raise AuthError(f"access token rejected: {exc.error}") from None
        if decoded.header.get("alg") != self.ring.algorithm:
            raise AuthError("access token rejected: unexpected algorithm")
        return decoded

    async def verify(self, token: str) -> AccessClaims:
        """Verify signature, algorithm, issuer, audience and expiry; AuthError otherwise."""
        known = self._verified.get(token)
        if known is not None:
            if known.expires_at + LEEWAY > time.time():
                self._verified.move_to_end(token)
                return known
            del self._verified[token]
        try:
            claims = self._verify(token)
        except AuthError as first:
            # A key rotated by another process: reload once (rate-limited) and try again.
            if "unknown signing key" not in first.message:
                raise
            await self.refresh_keys()
            claims = self._verify(token)
        self._verified[token] = claims
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return claims

    def _verify(self, token: str) -> AccessClaims:
        decoded = self._decode(token)
        registry = JWTClaimsRegistry(
            leeway=LEEWAY,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": AUDIENCE},
            exp={"essential": True},
            sub={"essential": True},
            tid={"essential": True},
            sid={"essential": True},
        )
        try:
            registry.validate(decoded.claims)
        except JoseError as exc:
            detail = f"{exc.error} {exc.description or ''}".strip()
            raise _rejected(f"access token rejected: {detail}", decoded.claims) from None
        claims = decoded.claims
        try:
            return AccessClaims(
                user_id=str(claims["sub"]), tenant_id=str(claims["tid"]),
                session_id=str(claims["sid"]), scope=str(claims.get("scope", "")),
                expires_at=int(claims["exp"]),
            )  # fmt: skip
        except (TypeError, ValueError) as exc:
            raise AuthError("access token rejected: malformed claims") from exc
