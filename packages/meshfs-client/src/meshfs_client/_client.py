"""`MeshFSClient`: the async client, one method per endpoint of docs/http-api.md."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from types import TracebackType
from typing import TypedDict

import aiohttp

from meshfs_client._admin import AdminMethods
from meshfs_client._auth import FixedToken, NoToken, StoredSession, TokenSource, credentials_from
from meshfs_client._bulk import BulkMethods
from meshfs_client._credentials import Credentials, CredentialStore
from meshfs_client._history import HistoryMethods
from meshfs_client._posix import PosixMethods
from meshfs_client._retry import RetryListener, RetryPolicy
from meshfs_client._settings import DEFAULT_SERVER, Settings, Timeouts, normalise_server
from meshfs_client._transport import Transport
from meshfs_client._upload import DEFAULT_CONCURRENCY
from meshfs_client._xattrs import XattrMethods
from meshfs_common.errors import (
    AuthError,
    DeviceFlowError,
    MeshFSError,
    UnavailableError,
)
from meshfs_common.models import (
    DeviceActivateRequest,
    DeviceActivateResponse,
    DevicePollRequest,
    DeviceStartRequest,
    DeviceStartResponse,
    Health,
    LogoutRequest,
    RefreshRequest,
    TokenResponse,
    Whoami,
)

_USER_AGENT = "meshfs-client/0.1"


class _NotLoggedIn(NoToken):
    """No session: a 401 becomes an error that says how to log in."""

    def __init__(self, server: str) -> None:
        self._server = server

    async def renew(self, rejected: str | None) -> bool:
        raise AuthError(f"not logged in to {self._server}; run `meshfs login` or set MESHFS_TOKEN")


class ClientOptions(TypedDict, total=False):
    """The keyword arguments of :class:`MeshFSClient` that also suit a blocking client (all
    but ``session``: an aiohttp session belongs to the event loop it was made on)."""

    token: str | None
    settings: Settings | None
    store: CredentialStore | None
    timeouts: Timeouts | None
    retry: RetryPolicy | None
    upload_concurrency: int


class MeshFSClient(HistoryMethods, BulkMethods, PosixMethods, XattrMethods, AdminMethods):
    """Async MeshFS client. Use as ``async with MeshFSClient() as client: ...``.

    Where to connect and as whom, first match wins:

    * server: the *server* argument, ``MESHFS_SERVER``, the server of the last login, then
      ``http://127.0.0.1:8787``;
    * identity: the *token* argument, ``MESHFS_TOKEN`` (used as-is), then the login session
      stored for that server (refreshed transparently and saved back), else anonymous.

    Paths are MeshFS paths (``/a/b``), normalised with :mod:`meshfs_common.paths` before they
    are sent. Failures raise :mod:`meshfs_common.errors` exceptions.
    """

    def __init__(
        self,
        server: str | None = None,
        *,
        token: str | None = None,
        settings: Settings | None = None,
        store: CredentialStore | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        upload_concurrency: int = DEFAULT_CONCURRENCY,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._server_arg = normalise_server(server) if server else None
        self._token_arg = token
        self._settings = settings
        self._store = store
        self._timeouts = timeouts or Timeouts()
        self._retry = retry or RetryPolicy()
        self._upload_concurrency = max(1, upload_concurrency)
        self._session = session
        self._owns_session = session is None
        self._transport: Transport | None = None

    # --- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> MeshFSClient:
        settings = self._settings or Settings.from_environ()
        store = self._store or CredentialStore(settings.credentials_path)
        self._store = store
        server = self._server_arg or settings.server
        if server is None:
            server = await asyncio.to_thread(store.default_server) or DEFAULT_SERVER
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": _USER_AGENT})
        self._transport = Transport(
            server, self._session, NoToken(), retry=self._retry, timeouts=self._timeouts
        )
        token = self._token_arg or settings.token
        auth: TokenSource
        if token:
            auth = FixedToken(token)
        else:
            stored = await asyncio.to_thread(store.load, server)
            auth = self._session_auth(stored) if stored else _NotLoggedIn(server)
        self._transport.auth = auth
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session (when this client created it)."""
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None

    @property
    def server(self) -> str:
        """The server this client talks to."""
        return self._t.server

    @property
    def credentials(self) -> Credentials | None:
        """The stored login session in use, if any (``None`` with a fixed token)."""
        auth = self._t.auth
        return auth.credentials if isinstance(auth, StoredSession) else None

    @property
    def store(self) -> CredentialStore:
        """Where login sessions are kept."""
        if self._store is None:
            raise RuntimeError("use `async with MeshFSClient() as client:` first")
        return self._store

    @contextlib.contextmanager
    def on_retry(self, listener: RetryListener) -> Iterator[None]:
        """Call ``listener(error, seconds)`` before every wait between attempts of a request,
        while the ``with`` block runs: e.g. to show "rate limited, waiting 3s" (the error is
        a :class:`~meshfs_common.errors.RateLimitedError`) instead of a stalled transfer."""
        listeners = self._t.retry_listeners
        listeners.append(listener)
        try:
            yield
        finally:
            listeners.remove(listener)

    def _session_auth(self, credentials: Credentials) -> StoredSession:
        return StoredSession(self.store, credentials, self._refresh_call)

    # --- service and auth -------------------------------------------------------------------

    async def health(self) -> Health:
        """``GET /healthz``."""
        return await self._t.call("GET", "/healthz", Health, idempotent=True, authenticated=False)

    async def whoami(self) -> Whoami:
        """Who the current token speaks for."""
        return await self._t.call("GET", "/auth/whoami", Whoami, idempotent=True)

    async def start_device_login(self, client_name: str = "meshfs") -> DeviceStartResponse:
        """Begin an RFC 8628 device login; show the user ``verification_uri`` and
        ``user_code``."""
        # A repeated start only leaves an unused code behind, so retrying is harmless.
        return await self._t.call(
            "POST",
            "/auth/device/start",
            DeviceStartResponse,
            json=DeviceStartRequest(client_name=client_name),
            idempotent=True,
            authenticated=False,
        )

    async def poll_device_login(self, device_code: str) -> TokenResponse:
        """Poll once; raises :class:`~meshfs_common.errors.DeviceFlowError` while pending."""
        # Not idempotent: a device code is exchanged for tokens once.
        return await self._t.call(
            "POST",
            "/auth/device/poll",
            TokenResponse,
            json=DevicePollRequest(device_code=device_code),
            idempotent=False,
            authenticated=False,
        )

    async def wait_for_device_login(self, start: DeviceStartResponse) -> Credentials:
        """Poll until the user approves (honouring ``interval`` and ``slow_down``), then store
        and use the new session. Raises ``DeviceFlowError`` when denied or expired."""
        interval = max(1, start.interval or 5)
        deadline = time.monotonic() + max(1, start.expires_in)
        while True:
            await asyncio.sleep(interval)
            try:
                answer = await self.poll_device_login(start.device_code)
                break
            except DeviceFlowError as exc:
                if exc.code == "authorization_pending":
                    pass
                elif exc.code == "slow_down":
                    interval += 5  # RFC 8628 section 3.5
                else:
                    raise
            except UnavailableError:
                pass  # keep polling through a brief outage until the code expires
            if time.monotonic() >= deadline:
                raise DeviceFlowError("expired_token", "the login code expired before approval")
        return await self.adopt_tokens(answer)

    async def adopt_tokens(self, answer: TokenResponse) -> Credentials:
        """Store a token answer as this server's session (the default one) and use it."""
        credentials = credentials_from(self.server, answer)
        session = self._session_auth(credentials)
        self._t.auth = session
        try:
            me = await self.whoami()
            credentials = credentials_from(self.server, answer, username=me.username)
            session = self._session_auth(credentials)
            self._t.auth = session
        except MeshFSError:
            pass  # the username is cosmetic
        await asyncio.to_thread(self.store.save, credentials, make_default=True)
        return credentials

    async def activate_device(self, user_code: str, *, approve: bool = True) -> str:
        """Approve (or deny) another device's login code as the current user."""
        answer = await self._t.call(
            "POST",
            "/auth/device/activate",
            DeviceActivateResponse,
            json=DeviceActivateRequest(user_code=user_code, approve=approve),
            idempotent=True,
        )
        return answer.status

    async def _refresh_call(self, refresh_token: str) -> TokenResponse:
        # Never resent after a lost answer: the server would see a reused refresh token and
        # revoke the session. 429 and "could not connect" are still retried (nothing was sent).
        return await self._t.call(
            "POST",
            "/auth/refresh",
            TokenResponse,
            json=RefreshRequest(refresh_token=refresh_token),
            idempotent=False,
            authenticated=False,
        )

    async def refresh(self) -> Credentials:
        """Renew the stored session now (normally automatic)."""
        auth = self._t.auth
        if not isinstance(auth, StoredSession):
            raise AuthError("no stored login session to refresh")
        await auth.renew(None)
        return auth.credentials

    async def logout(self) -> bool:
        """End the stored session on the server and forget it locally.

        Returns True when the server confirmed the revocation; the local copy is removed
        either way.
        """
        auth = self._t.auth
        if not isinstance(auth, StoredSession):
            return False
        revoked = False
        try:
            await self._t.request(
                "POST",
                "/auth/logout",
                json=LogoutRequest(refresh_token=auth.credentials.refresh_token),
                idempotent=True,
            )
            revoked = True
        except AuthError:
            revoked = True  # already invalid on the server
        finally:
            await asyncio.to_thread(self.store.delete, self.server)
            self._t.auth = _NotLoggedIn(self.server)
        return revoked
