"""Where the bearer token comes from, and how it is renewed.

Three sources: none (before login), a fixed token (``MESHFS_TOKEN``, used as-is), and a stored
login session that renews itself through ``/auth/refresh`` shortly before it expires or when the
server answers 401.

Renewal is single-flight: concurrent requests that all see an expired token share one refresh.
It is also safe across processes: refresh tokens rotate on every use and the server treats a
reused one as theft (it revokes the session), so the refresh happens under the credential
store's file lock, and a process that finds a newer token on disk adopts it instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec

from meshfs_client._credentials import Credentials, CredentialStore
from meshfs_common.errors import AuthError, DeviceFlowError, MeshFSError
from meshfs_common.models import TokenResponse

REFRESH_MARGIN_SECONDS = 60.0
"""Renew an access token this long before it expires."""

Refresher = Callable[[str], Awaitable[TokenResponse]]


class TokenSource(Protocol):
    """Supplies the bearer token for requests."""

    async def token(self) -> str | None:
        """The access token to send now (renewed first if it is about to expire)."""
        ...

    async def renew(self, rejected: str | None) -> bool:
        """Get a new token after *rejected* got a 401; True when retrying makes sense."""
        ...


class NoToken:
    """No authentication (device login, health checks)."""

    async def token(self) -> str | None:
        return None

    async def renew(self, rejected: str | None) -> bool:
        return False


class FixedToken:
    """A bearer token used as given (``MESHFS_TOKEN``); a 401 is final."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self) -> str | None:
        return self._token

    async def renew(self, rejected: str | None) -> bool:
        return False


def credentials_from(
    server: str, answer: TokenResponse, *, username: str | None = None
) -> Credentials:
    """The session to store after a token answer (login or refresh)."""
    return Credentials(
        server=server,
        access_token=answer.access_token,
        refresh_token=answer.refresh_token,
        expires_at=time.time() + answer.expires_in if answer.expires_in else 0.0,
        user_id=answer.user_id,
        tenant_id=answer.tenant_id,
        session_id=answer.session_id,
        username=username,
    )


class StoredSession:
    """A login session kept in a :class:`CredentialStore` and refreshed transparently."""

    def __init__(
        self,
        store: CredentialStore,
        credentials: Credentials,
        refresher: Refresher,
        *,
        margin: float = REFRESH_MARGIN_SECONDS,
    ) -> None:
        self._store = store
        self._credentials = credentials
        self._refresher = refresher
        self._margin = margin
        self._lock = asyncio.Lock()
        self.refresh_count = 0
        """How many refreshes this object performed (for diagnostics and tests)."""

    @property
    def credentials(self) -> Credentials:
        """The session as currently known."""
        return self._credentials

    async def token(self) -> str | None:
        if self._credentials.expires_within(self._margin):
            try:
                await self.renew(self._credentials.access_token)
            except MeshFSError as exc:
                if isinstance(exc, AuthError):
                    raise
                # The token is still valid for up to `margin` seconds; a failed early refresh
                # (server briefly unreachable) should not fail the request that triggered it.
        return self._credentials.access_token

    async def renew(self, rejected: str | None) -> bool:
        async with self._lock:
            if rejected is not None and rejected != self._credentials.access_token:
                return True  # another task renewed it while this one waited
            if not self._credentials.refresh_token:
                raise AuthError("the session has no refresh token; run `meshfs login` again")
            lock = self._store.locked()
            await asyncio.to_thread(lock.__enter__)
            try:
                await self._renew_locked()
            finally:
                lock.__exit__(None, None, None)
            return True

    async def _renew_locked(self) -> None:
        server = self._credentials.server
        on_disk = await asyncio.to_thread(self._store.load, server)
        current = self._credentials
        if on_disk is not None and on_disk.refresh_token != current.refresh_token:
            # Another process rotated the session; our refresh token is now spent.
            current = on_disk
            if not current.expires_within(self._margin):
                self._credentials = current
                return
        if not current.refresh_token:
            raise AuthError("the session has no refresh token; run `meshfs login` again")
        try:
            answer = await self._refresher(current.refresh_token)
        except (DeviceFlowError, AuthError) as exc:
            raise AuthError(
                f"the login session has ended ({exc.message}); run `meshfs login` again"
            ) from exc
        renewed = credentials_from(server, answer, username=current.username)
        if renewed.refresh_token is None:
            # A server that does not rotate keeps the old refresh token valid.
            renewed = msgspec.structs.replace(renewed, refresh_token=current.refresh_token)
        await asyncio.to_thread(self._store.save, renewed)
        self._credentials = renewed
        self.refresh_count += 1
