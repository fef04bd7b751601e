"""`MeshFSClient`: the async client, one method per endpoint of docs/http-api.md."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TypedDict
from urllib.parse import quote

import aiohttp

from meshfs_client._auth import FixedToken, NoToken, StoredSession, TokenSource, credentials_from
from meshfs_client._credentials import Credentials, CredentialStore
from meshfs_client._download import DownloadInfo, DownloadStream, download_to_path
from meshfs_client._retry import RetryListener, RetryPolicy
from meshfs_client._settings import DEFAULT_SERVER, Settings, Timeouts, normalise_server
from meshfs_client._transport import Transport
from meshfs_client._upload import DEFAULT_CONCURRENCY, Progress, Uploader, UploadFailure
from meshfs_client._watch import ChangeFeed
from meshfs_common import paths
from meshfs_common.admin import AGENT_TOKEN_SECONDS
from meshfs_common.errors import (
    AlreadyExistsError,
    AuthError,
    BadRequestError,
    DeviceFlowError,
    IsADirError,
    MeshFSError,
    NotFoundError,
    UnavailableError,
)
from meshfs_common.hashing import CHUNK_SIZE, ContentDigest
from meshfs_common.models import (
    AgentToken,
    AgentTokenRequest,
    AuditPage,
    ChangeSummary,
    CommitResult,
    DeleteResult,
    DeviceActivateRequest,
    DeviceActivateResponse,
    DevicePollRequest,
    DeviceStartRequest,
    DeviceStartResponse,
    DirectDownload,
    Entry,
    FileDiff,
    Health,
    ListPage,
    LogoutRequest,
    MkdirRequest,
    PlanInfo,
    PullResponse,
    RefreshRequest,
    RenameRequest,
    RestoreRequest,
    SessionInfo,
    SessionList,
    Snapshot,
    SnapshotCreateRequest,
    SnapshotDiff,
    SnapshotList,
    SnapshotRestoreResult,
    TokenResponse,
    ToolCallRecord,
    Version,
    VersionPage,
    Whoami,
)

UploadSource = bytes | bytearray | memoryview | str | os.PathLike[str] | AsyncIterable[bytes]
"""What :meth:`MeshFSClient.upload` accepts: bytes, a local file path, or an async stream."""

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


class MeshFSClient:
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
    def _t(self) -> Transport:
        if self._transport is None:
            raise RuntimeError("use `async with MeshFSClient() as client:` first")
        return self._transport

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

    # --- namespace --------------------------------------------------------------------------

    async def mkdir(self, path: str, *, parents: bool = True, exist_ok: bool = True) -> Entry:
        """Create a directory (and its parents with ``parents``)."""
        # Idempotent by contract: 200 when the directory already exists.
        reply = await self._t.request(
            "POST",
            "/files/mkdir",
            json=MkdirRequest(path=paths.normalise(path), parents=parents),
            idempotent=True,
        )
        entry = reply.decode(Entry)
        if reply.status == 200 and not exist_ok:
            raise AlreadyExistsError(f"directory already exists: {entry.path}")
        return entry

    async def list_page(
        self,
        path: str = "/",
        *,
        limit: int = 1000,
        after: str | None = None,
        include_deleted: bool = False,
    ) -> ListPage:
        """One page of a directory listing, sorted by name (then node id).

        *after* is the previous page's ``next_after``, passed back unchanged.
        """
        return await self._t.call(
            "GET",
            "/files/list",
            ListPage,
            params={
                "path": paths.normalise(path),
                "limit": limit,
                "after": after,
                "include_deleted": include_deleted or None,
            },
            idempotent=True,
        )

    async def iterdir(
        self, path: str = "/", *, include_deleted: bool = False, page_size: int = 1000
    ) -> AsyncIterator[Entry]:
        """Every entry of a directory, fetching pages as needed."""
        after: str | None = None
        while True:
            page = await self.list_page(
                path, limit=page_size, after=after, include_deleted=include_deleted
            )
            for entry in page.entries:
                yield entry
            if not page.has_more or not page.entries:
                return
            after = page.next_after or page.entries[-1].name

    async def listdir(self, path: str = "/", *, include_deleted: bool = False) -> list[Entry]:
        """Every entry of a directory, as a list."""
        return [entry async for entry in self.iterdir(path, include_deleted=include_deleted)]

    async def walk(self, path: str = "/") -> AsyncIterator[Entry]:
        """Every entry below *path*, depth first, parents before children."""
        pending = [paths.normalise(path)]
        while pending:
            directory = pending.pop()
            children = [entry async for entry in self.iterdir(directory)]
            for entry in children:
                yield entry
            pending.extend(e.path for e in reversed(children) if e.kind == "dir")

    async def meta(self, path: str | None = None, *, node_id: str | None = None) -> Entry:
        """Metadata of a file or directory, by path or node id."""
        return await self._t.call(
            "GET", "/files/meta", Entry, params=_where(path, node_id), idempotent=True
        )

    stat = meta

    async def exists(self, path: str) -> bool:
        """True when *path* names a live file or directory."""
        try:
            await self.meta(path)
        except NotFoundError:
            return False
        return True

    async def rename(
        self, path: str, new_path: str, *, overwrite: bool = False, if_match: str | None = None
    ) -> Entry:
        """Move or rename; ``overwrite`` replaces an existing file or empty directory."""
        # Not idempotent: after a lost answer a resend would find the source gone.
        return await self._t.call(
            "POST",
            "/files/rename",
            Entry,
            json=RenameRequest(
                path=paths.normalise(path), new_path=paths.normalise(new_path), overwrite=overwrite
            ),
            headers={"If-Match": if_match} if if_match else None,
            idempotent=False,
        )

    async def delete(
        self, path: str, *, recursive: bool = False, if_match: str | None = None
    ) -> DeleteResult:
        """Delete (tombstone) a file, or a directory with ``recursive``."""
        return await self._t.call(
            "DELETE",
            "/files",
            DeleteResult,
            params={"path": paths.normalise(path), "recursive": recursive or None},
            headers={"If-Match": if_match} if if_match else None,
            idempotent=False,  # a resend after a lost answer would report not_found
        )

    # --- content ----------------------------------------------------------------------------

    async def upload(
        self,
        path: str,
        source: UploadSource,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
        progress: Progress | None = None,
    ) -> CommitResult:
        """Write *source* to *path* as a new version.

        *source* is content (``bytes``), a local file (``str`` or ``os.PathLike``), or an async
        iterable of ``bytes``. ``if_match`` (a version id) / ``if_none_match`` make the write
        conditional (412 ``precondition_failed`` otherwise). Memory use is constant.
        """
        remote = paths.normalise(path)
        uploader = self._uploader(progress)
        if isinstance(source, bytes | bytearray | memoryview):
            return await uploader.put_bytes(
                remote, bytes(source), if_match=if_match, if_none_match=if_none_match
            )
        if isinstance(source, str | os.PathLike):
            return await uploader.put_file(
                remote, Path(source), if_match=if_match, if_none_match=if_none_match
            )
        return await uploader.put_stream(
            remote, source, if_match=if_match, if_none_match=if_none_match
        )

    def download(
        self,
        path: str | None = None,
        *,
        node_id: str | None = None,
        version_id: str | None = None,
        offset: int = 0,
        length: int | None = None,
    ) -> DownloadStream:
        """Stream a file (the head, or ``version_id``), optionally a byte range.

        ``async with client.download("/a") as stream: async for block in stream: ...``
        """
        return DownloadStream(
            self._t, _where(path, node_id), version_id=version_id, offset=offset, length=length
        )

    async def read_bytes(
        self,
        path: str | None = None,
        *,
        node_id: str | None = None,
        version_id: str | None = None,
        offset: int = 0,
        length: int | None = None,
    ) -> bytes:
        """A file's content (or a range of it) in memory."""
        stream = self.download(
            path, node_id=node_id, version_id=version_id, offset=offset, length=length
        )
        async with stream:
            return b"".join([block async for block in stream])

    async def download_to(
        self,
        path: str | None,
        local: str | os.PathLike[str],
        *,
        node_id: str | None = None,
        version_id: str | None = None,
        progress: Progress | None = None,
    ) -> DownloadInfo:
        """Download into a local file: verified, atomic, resumable."""
        return await download_to_path(
            self._t,
            _where(path, node_id),
            Path(local),
            version_id=version_id,
            progress=progress,
        )

    async def copy(
        self,
        src: str,
        dst: str,
        *,
        version_id: str | None = None,
        if_none_match: bool = False,
    ) -> CommitResult:
        """Copy a file (its head, or ``version_id``) to *dst* as a new version there.

        The server has no copy endpoint. When it tells us the source's chunk names (servers
        with direct transfers) the copy is announced with those chunks and no byte travels;
        otherwise the content streams down once and is announced again, so the chunks the
        server already holds are still not sent back up.
        """
        entry = await self.meta(src)
        if entry.kind == "dir":
            raise IsADirError(f"{entry.path} is a directory; copy copies files")
        target = paths.normalise(dst)
        if entry.size > CHUNK_SIZE:
            chunks = await self._chunk_names(entry.path, version_id)
            if chunks is not None:
                try:
                    return await self._uploader().put_known(
                        target, chunks, if_match=None, if_none_match=if_none_match
                    )
                except UploadFailure:
                    pass  # a chunk is missing after all: stream the content instead

        async def blocks() -> AsyncIterator[bytes]:
            stream = self.download(entry.path, version_id=version_id)
            async with stream:
                async for block in stream:
                    yield block

        return await self.upload(target, blocks(), if_none_match=if_none_match)

    async def _chunk_names(self, path: str, version_id: str | None) -> ContentDigest | None:
        """The chunk list of a version, when the server exposes it (direct transfers)."""
        params: dict[str, str | int | bool | None] = {"path": path, "version_id": version_id}
        try:
            direct = await self._t.call(
                "GET", "/files/download/direct", DirectDownload, params=params, idempotent=True
            )
        except BadRequestError:
            return None  # direct transfers are off on this server
        if direct.chunk_size != CHUNK_SIZE:
            return None
        return ContentDigest(direct.size, direct.content_hash, tuple(direct.chunks))

    def _uploader(self, progress: Progress | None = None) -> Uploader:
        return Uploader(self._t, self._upload_concurrency, progress)

    # --- tenant administration --------------------------------------------------------------

    async def plan(self) -> PlanInfo:
        """``GET /plans/current``: the tenant's plan, retention, rate limit and storage use."""
        return await self._t.call("GET", "/plans/current", PlanInfo, idempotent=True)

    async def create_agent_token(
        self,
        name: str,
        *,
        path_prefix: str = "/",
        read_only: bool = False,
        expires_in: int = AGENT_TOKEN_SECONDS,
    ) -> AgentToken:
        """``POST /auth/agents``: a named bearer token for an agent, confined to *path_prefix*.

        The answer carries ``token`` (shown once; the server keeps only its hash),
        ``session_id`` (to revoke it), ``name``, ``path_prefix``, ``access`` and ``expires_at``.
        Agent tokens cannot create agent tokens.
        """
        return await self._t.call(
            "POST",
            "/auth/agents",
            AgentToken,
            json=AgentTokenRequest(
                name=name,
                path_prefix=paths.normalise(path_prefix),
                access="read" if read_only else "write",
                expires_in=expires_in,
            ),
            idempotent=False,  # a resend after a lost answer would mint a second token
        )

    async def sessions(
        self, *, everyone: bool = False, include_revoked: bool = False
    ) -> list[SessionInfo]:
        """``GET /auth/sessions``: your signed-in devices and agent tokens, newest first
        (owners: the whole tenant's with *everyone*). Each has ``session_id``, ``kind``
        (``device`` or ``agent``), ``name``, ``path_prefix``, ``access``, ``expires_at``..."""
        answer = await self._t.call(
            "GET",
            "/auth/sessions",
            SessionList,
            params={"all": everyone, "include_revoked": include_revoked},
            idempotent=True,
        )
        return answer.sessions

    async def revoke_session(self, session_id: str) -> None:
        """``DELETE /auth/sessions/{id}``: revoke a device session or an agent token."""
        await self._t.request("DELETE", f"/auth/sessions/{session_id}", idempotent=True)

    async def record_tool_call(
        self, tool: str, *, target: str | None = None, outcome: str = "ok"
    ) -> None:
        """Record an MCP tool call made with this client's token in the audit log
        (``mcp.tool.<tool>``, with the caller's identity)."""
        await self._t.request(
            "POST",
            "/audit/tool-calls",
            json=ToolCallRecord(tool=tool, target=target, outcome=outcome),
            idempotent=False,  # a resend after a lost answer would record the call twice
        )

    async def audit_page(
        self,
        *,
        limit: int = 100,
        before: int | None = None,
        action: str | None = None,
        user_id: str | None = None,
        outcome: str | None = None,
    ) -> AuditPage:
        """``GET /audit/recent``: one page of audit rows, newest first.

        Owners see the tenant's log; everyone else sees their own rows. The answer has
        ``entries``, ``has_more`` and ``next_before`` (pass it as *before* for the next page).
        """
        return await self._t.call(
            "GET",
            "/audit/recent",
            AuditPage,
            params={
                "limit": limit,
                "before": before,
                "action": action,
                "user_id": user_id,
                "outcome": outcome,
            },
            idempotent=True,
        )

    # --- versions ---------------------------------------------------------------------------

    async def node_id_of(self, path: str) -> str:
        """The node id of *path*, also for a deleted file (its newest tombstone)."""
        try:
            return (await self.meta(path)).node_id
        except NotFoundError:
            canonical = paths.normalise(path)
            name = paths.basename(canonical)
            candidates = [
                entry
                async for entry in self.iterdir(paths.parent(canonical), include_deleted=True)
                if entry.name == name
            ]
            if not candidates:
                raise
            newest = max(candidates, key=lambda e: e.deleted_at or e.modified_at)
            return newest.node_id

    async def versions_page(
        self,
        path: str | None = None,
        *,
        node_id: str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> VersionPage:
        """One page of a file's versions, newest first."""
        node = node_id or await self.node_id_of(_required(path))
        return await self._t.call(
            "GET",
            f"/files/{node}/versions",
            VersionPage,
            params={"limit": limit, "before": before},
            idempotent=True,
        )

    async def versions(
        self, path: str | None = None, *, node_id: str | None = None, page_size: int = 100
    ) -> AsyncIterator[Version]:
        """Every version of a file, newest first, fetching pages as needed."""
        node = node_id or await self.node_id_of(_required(path))
        before: str | None = None
        while True:
            page = await self.versions_page(node_id=node, limit=page_size, before=before)
            for version in page.versions:
                yield version
            if not page.has_more or not page.versions:
                return
            before = page.next_before or page.versions[-1].version_id

    async def restore(
        self,
        path: str | None,
        version_id: str,
        *,
        node_id: str | None = None,
        to_path: str | None = None,
    ) -> CommitResult:
        """Make an old version the head again (also undeletes; ``to_path`` relocates)."""
        node = node_id or await self.node_id_of(_required(path))
        # Safe to resend: restoring the version that is already the head writes identical
        # content, which the server treats as a no-op.
        return await self._t.call(
            "POST",
            f"/files/{node}/versions/{version_id}/restore",
            CommitResult,
            json=RestoreRequest(path=paths.normalise(to_path) if to_path else None),
            idempotent=True,
        )

    # --- diffs, changes and snapshots --------------------------------------------------------

    async def diff(
        self,
        path: str | None,
        v1: str | None = None,
        v2: str | None = None,
        *,
        node_id: str | None = None,
    ) -> FileDiff:
        """The difference between two versions of a file, as a unified text diff.

        ``diff(path)``: the head against the version before it; ``diff(path, v1)``: *v1*
        against the head; ``diff(path, v1, v2)``: *v1* against *v2*; ``diff(path, v2=v)``: the
        version before *v* against *v*. A first version is compared with no content. Binary
        content, or text over ``text_limit`` bytes, gets a summary instead (``unified`` None,
        ``no_text`` says why; compare ``old``/``new`` size, media type and hash). A deleted
        file is addressed by ``node_id``.
        """
        versions = {"v1": v1, "v2": v2}
        try:
            return await self._t.call(
                "GET",
                "/files/diff",
                FileDiff,
                params={**_where(path, node_id), **versions},
                idempotent=True,
            )
        except NotFoundError:
            if node_id is not None or path is None:
                raise
            # Not live at that path: the newest deleted file that was there.
            node = await self.node_id_of(path)
        return await self._t.call(
            "GET", "/files/diff", FileDiff, params={"node_id": node, **versions}, idempotent=True
        )

    async def changes(
        self,
        path: str = "/",
        *,
        since_cursor: int | None = None,
        since_time: float | None = None,
    ) -> ChangeSummary:
        """Everything that changed under *path* after a feed cursor or since a time (epoch
        seconds), one entry per file or directory: created, modified (with changed line
        counts for text), deleted, renamed (with the old path), and who changed it.

        Give exactly one of *since_cursor* and *since_time*. ``has_more`` means the range was
        too long for one answer: call again with ``since_cursor=summary.to_cursor``.
        """
        return await self._t.call(
            "GET",
            "/files/changes",
            ChangeSummary,
            params={
                "path": paths.normalise(path),
                "since_cursor": since_cursor,
                "since_time": None if since_time is None else repr(float(since_time)),
            },
            idempotent=True,
        )

    async def snapshot_create(self, path: str, name: str) -> Snapshot:
        """Name the current state of the subtree at *path* (``name`` unique in the tenant).

        The snapshot keeps every version it references from retention until deleted.
        """
        # Not resent after a lost answer: the name would then be taken (409) by our own call.
        return await self._t.call(
            "POST",
            "/snapshots",
            Snapshot,
            json=SnapshotCreateRequest(path=paths.normalise(path), name=name),
            idempotent=False,
        )

    async def snapshots(self, path: str | None = None) -> list[Snapshot]:
        """Snapshots of subtrees at or below *path* (default: all you may read), newest first."""
        page = await self._t.call(
            "GET",
            "/snapshots",
            SnapshotList,
            params={"path": paths.normalise(path) if path is not None else None},
            idempotent=True,
        )
        return list(page.snapshots)

    async def snapshot(self, name_or_id: str) -> Snapshot:
        """One snapshot, by name or id."""
        return await self._t.call(
            "GET", f"/snapshots/{_segment(name_or_id)}", Snapshot, idempotent=True
        )

    async def snapshot_diff(self, name_or_id: str) -> SnapshotDiff:
        """How the snapshot's subtree differs now, one entry per file (snapshot -> now)."""
        return await self._t.call(
            "GET", f"/snapshots/{_segment(name_or_id)}/diff", SnapshotDiff, idempotent=True
        )

    async def snapshot_restore(self, name_or_id: str) -> SnapshotRestoreResult:
        """Restore the subtree to the snapshot in one atomic commit.

        Files changed since get their snapshot content as a new version, files created since
        are deleted, deleted ones come back, moved ones move back; all history stays. The
        answer's ``undo`` snapshot was taken just before: restoring it undoes this.
        """
        # Safe to resend: restoring the same snapshot again changes nothing more.
        return await self._t.call(
            "POST",
            f"/snapshots/{_segment(name_or_id)}/restore",
            SnapshotRestoreResult,
            idempotent=True,
        )

    async def snapshot_delete(self, name_or_id: str) -> Snapshot:
        """Delete a snapshot (history stays; retention may then prune what only it kept)."""
        return await self._t.call(
            "DELETE", f"/snapshots/{_segment(name_or_id)}", Snapshot, idempotent=False
        )

    # --- change feed ------------------------------------------------------------------------

    async def pull(self, cursor: int = 0, *, limit: int = 1000) -> PullResponse:
        """One page of change events after *cursor*."""
        return await self._t.call(
            "GET",
            "/sync/pull",
            PullResponse,
            params={"cursor": cursor, "limit": limit},
            idempotent=True,
        )

    async def current_cursor(self) -> int:
        """The cursor of the newest event (start here to see only future changes)."""
        # A cursor ahead of the log is answered with `reset` and the current cursor.
        page = await self.pull(2**62, limit=1)
        return page.cursor

    def watch(
        self,
        cursor: int = 0,
        *,
        websocket: bool = True,
        poll_interval: float = 2.0,
        max_failures: int | None = None,
        on_state: Callable[[ChangeFeed], None] | None = None,
    ) -> ChangeFeed:
        """Live change events after *cursor*: ``async with client.watch(n) as feed:``.

        *on_state* is called with the feed whenever its ``state`` changes (``connecting``,
        ``live``, ``offline``; see :class:`ChangeFeed`).
        """
        return ChangeFeed(
            self._t,
            cursor,
            websocket=websocket,
            poll_interval=poll_interval,
            max_failures=max_failures,
            on_state=on_state,
        )


def _where(path: str | None, node_id: str | None) -> dict[str, str | int | bool | None]:
    if node_id:
        return {"node_id": node_id}
    return {"path": paths.normalise(_required(path))}


def _segment(text: str) -> str:
    """*text* as one URL path segment."""
    return quote(text, safe="")


def _required(path: str | None) -> str:
    if path is None:
        raise TypeError("give a path or a node_id")
    return path
