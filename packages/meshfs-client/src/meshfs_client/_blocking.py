"""`MeshFS`: a blocking facade over :class:`MeshFSClient` for scripts and notebooks.

The async client runs on a private event loop in a daemon thread; each method submits one
coroutine there and waits for it. Because the loop is private, this works from plain scripts
and from inside an already running loop (Jupyter) alike. No logic lives here.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from types import TracebackType
from typing import Any, TypeVar

from meshfs_client._client import MeshFSClient, UploadSource
from meshfs_client._credentials import Credentials
from meshfs_client._download import DownloadInfo
from meshfs_client._upload import Progress
from meshfs_client._watch import FeedItem
from meshfs_common.models import (
    ChangeSummary,
    CommitResult,
    DeleteResult,
    DeviceStartResponse,
    Entry,
    FileDiff,
    Health,
    ListPage,
    PullResponse,
    Snapshot,
    SnapshotDiff,
    SnapshotRestoreResult,
    Version,
    VersionPage,
    Whoami,
)

T = TypeVar("T")


class _LoopThread:
    """An event loop running forever in its own thread, until closed."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="meshfs-client-loop", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("MeshFS (blocking) cannot be called from its own event loop")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def iterate(self, source: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self.run(_anext(source))
                except StopAsyncIteration:
                    return
        finally:
            closer = getattr(source, "aclose", None)
            if closer is not None and not self._loop.is_closed():
                self.run(closer())

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


async def _anext(source: AsyncIterator[T]) -> T:
    return await source.__anext__()


class MeshFS:
    """Blocking MeshFS client; takes the same arguments as :class:`MeshFSClient`.

    ``with MeshFS() as fs: fs.upload("/notes.txt", b"hi")``. Close it (or use ``with``) to
    stop its background thread.
    """

    def __init__(self, server: str | None = None, **options: Any) -> None:
        self._loop = _LoopThread()
        self._client = MeshFSClient(server, **options)
        try:
            self._loop.run(self._client.__aenter__())
        except BaseException:
            self._loop.close()
            raise

    def __enter__(self) -> MeshFS:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the client and stop the background loop."""
        try:
            self._loop.run(self._client.close())
        finally:
            self._loop.close()

    @property
    def client(self) -> MeshFSClient:
        """The underlying async client (use it only through the loop thread)."""
        return self._client

    @property
    def server(self) -> str:
        """The server this client talks to."""
        return self._client.server

    # Every method below is the async method of the same name, run to completion.

    def health(self) -> Health:
        return self._loop.run(self._client.health())

    def whoami(self) -> Whoami:
        return self._loop.run(self._client.whoami())

    def start_device_login(self, client_name: str = "meshfs") -> DeviceStartResponse:
        return self._loop.run(self._client.start_device_login(client_name))

    def wait_for_device_login(self, start: DeviceStartResponse) -> Credentials:
        return self._loop.run(self._client.wait_for_device_login(start))

    def refresh(self) -> Credentials:
        return self._loop.run(self._client.refresh())

    def logout(self) -> bool:
        return self._loop.run(self._client.logout())

    def mkdir(self, path: str, *, parents: bool = True, exist_ok: bool = True) -> Entry:
        return self._loop.run(self._client.mkdir(path, parents=parents, exist_ok=exist_ok))

    def list_page(
        self,
        path: str = "/",
        *,
        limit: int = 1000,
        after: str | None = None,
        include_deleted: bool = False,
    ) -> ListPage:
        return self._loop.run(
            self._client.list_page(path, limit=limit, after=after, include_deleted=include_deleted)
        )

    def iterdir(self, path: str = "/", *, include_deleted: bool = False) -> Iterator[Entry]:
        return self._loop.iterate(self._client.iterdir(path, include_deleted=include_deleted))

    def listdir(self, path: str = "/", *, include_deleted: bool = False) -> list[Entry]:
        return self._loop.run(self._client.listdir(path, include_deleted=include_deleted))

    def walk(self, path: str = "/") -> Iterator[Entry]:
        return self._loop.iterate(self._client.walk(path))

    def meta(self, path: str | None = None, *, node_id: str | None = None) -> Entry:
        return self._loop.run(self._client.meta(path, node_id=node_id))

    stat = meta

    def exists(self, path: str) -> bool:
        return self._loop.run(self._client.exists(path))

    def rename(
        self, path: str, new_path: str, *, overwrite: bool = False, if_match: str | None = None
    ) -> Entry:
        return self._loop.run(
            self._client.rename(path, new_path, overwrite=overwrite, if_match=if_match)
        )

    def delete(
        self, path: str, *, recursive: bool = False, if_match: str | None = None
    ) -> DeleteResult:
        return self._loop.run(self._client.delete(path, recursive=recursive, if_match=if_match))

    def upload(
        self,
        path: str,
        source: UploadSource,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
        progress: Progress | None = None,
    ) -> CommitResult:
        return self._loop.run(
            self._client.upload(
                path, source, if_match=if_match, if_none_match=if_none_match, progress=progress
            )
        )

    def copy(
        self,
        src: str,
        dst: str,
        *,
        version_id: str | None = None,
        if_none_match: bool = False,
    ) -> CommitResult:
        """See :meth:`MeshFSClient.copy`."""
        return self._loop.run(
            self._client.copy(src, dst, version_id=version_id, if_none_match=if_none_match)
        )

    def plan(self) -> dict[str, Any]:
        """See :meth:`MeshFSClient.plan`."""
        return self._loop.run(self._client.plan())

    def audit_page(self, **filters: Any) -> dict[str, Any]:
        """See :meth:`MeshFSClient.audit_page`."""
        return self._loop.run(self._client.audit_page(**filters))

    def create_agent_token(
        self,
        name: str,
        *,
        path_prefix: str = "/",
        read_only: bool = False,
        expires_in: int = 30 * 86400,
    ) -> dict[str, Any]:
        """See :meth:`MeshFSClient.create_agent_token`."""
        return self._loop.run(
            self._client.create_agent_token(
                name, path_prefix=path_prefix, read_only=read_only, expires_in=expires_in
            )
        )

    def sessions(
        self, *, everyone: bool = False, include_revoked: bool = False
    ) -> list[dict[str, Any]]:
        """See :meth:`MeshFSClient.sessions`."""
        return self._loop.run(
            self._client.sessions(everyone=everyone, include_revoked=include_revoked)
        )

    def revoke_session(self, session_id: str) -> None:
        """See :meth:`MeshFSClient.revoke_session`."""
        self._loop.run(self._client.revoke_session(session_id))

    def read_bytes(
        self,
        path: str | None = None,
        *,
        node_id: str | None = None,
        version_id: str | None = None,
        offset: int = 0,
        length: int | None = None,
    ) -> bytes:
        return self._loop.run(
            self._client.read_bytes(
                path, node_id=node_id, version_id=version_id, offset=offset, length=length
            )
        )

    def iter_bytes(
        self,
        path: str | None = None,
        *,
        node_id: str | None = None,
        version_id: str | None = None,
        offset: int = 0,
        length: int | None = None,
    ) -> Iterator[bytes]:
        """The content as blocks, streamed (constant memory)."""
        return self._loop.iterate(
            _stream_blocks(self._client, path, node_id, version_id, offset, length)
        )

    def download_to(
        self,
        path: str | None,
        local: str | os.PathLike[str],
        *,
        node_id: str | None = None,
        version_id: str | None = None,
        progress: Progress | None = None,
    ) -> DownloadInfo:
        return self._loop.run(
            self._client.download_to(
                path, local, node_id=node_id, version_id=version_id, progress=progress
            )
        )

    def versions_page(
        self,
        path: str | None = None,
        *,
        node_id: str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> VersionPage:
        return self._loop.run(
            self._client.versions_page(path, node_id=node_id, limit=limit, before=before)
        )

    def versions(self, path: str | None = None, *, node_id: str | None = None) -> list[Version]:
        return self._loop.run(_collect(self._client.versions(path, node_id=node_id)))

    def restore(
        self,
        path: str | None,
        version_id: str,
        *,
        node_id: str | None = None,
        to_path: str | None = None,
    ) -> CommitResult:
        return self._loop.run(
            self._client.restore(path, version_id, node_id=node_id, to_path=to_path)
        )

    def diff(
        self,
        path: str | None,
        v1: str | None = None,
        v2: str | None = None,
        *,
        node_id: str | None = None,
    ) -> FileDiff:
        """See :meth:`MeshFSClient.diff`."""
        return self._loop.run(self._client.diff(path, v1, v2, node_id=node_id))

    def changes(
        self,
        path: str = "/",
        *,
        since_cursor: int | None = None,
        since_time: float | None = None,
    ) -> ChangeSummary:
        """See :meth:`MeshFSClient.changes`."""
        return self._loop.run(
            self._client.changes(path, since_cursor=since_cursor, since_time=since_time)
        )

    def snapshot_create(self, path: str, name: str) -> Snapshot:
        """See :meth:`MeshFSClient.snapshot_create`."""
        return self._loop.run(self._client.snapshot_create(path, name))

    def snapshots(self, path: str | None = None) -> list[Snapshot]:
        """See :meth:`MeshFSClient.snapshots`."""
        return self._loop.run(self._client.snapshots(path))

    def snapshot(self, name_or_id: str) -> Snapshot:
        """See :meth:`MeshFSClient.snapshot`."""
        return self._loop.run(self._client.snapshot(name_or_id))

    def snapshot_diff(self, name_or_id: str) -> SnapshotDiff:
        """See :meth:`MeshFSClient.snapshot_diff`."""
        return self._loop.run(self._client.snapshot_diff(name_or_id))

    def snapshot_restore(self, name_or_id: str) -> SnapshotRestoreResult:
        """See :meth:`MeshFSClient.snapshot_restore`."""
        return self._loop.run(self._client.snapshot_restore(name_or_id))

    def snapshot_delete(self, name_or_id: str) -> Snapshot:
        """See :meth:`MeshFSClient.snapshot_delete`."""
        return self._loop.run(self._client.snapshot_delete(name_or_id))

    def pull(self, cursor: int = 0, *, limit: int = 1000) -> PullResponse:
        return self._loop.run(self._client.pull(cursor, limit=limit))

    def current_cursor(self) -> int:
        return self._loop.run(self._client.current_cursor())

    def watch(self, cursor: int = 0, *, websocket: bool = True) -> Iterator[FeedItem]:
        """Change events as they happen; close the iterator (or break) to stop."""
        return self._loop.iterate(_feed_items(self._client, cursor, websocket))


async def _collect(source: AsyncIterator[T]) -> list[T]:
    return [item async for item in source]


async def _stream_blocks(
    client: MeshFSClient,
    path: str | None,
    node_id: str | None,
    version_id: str | None,
    offset: int,
    length: int | None,
) -> AsyncIterator[bytes]:
    stream = client.download(
        path, node_id=node_id, version_id=version_id, offset=offset, length=length
    )
    async with stream:
        async for block in stream:
            yield block


async def _feed_items(
    client: MeshFSClient, cursor: int, websocket: bool
) -> AsyncIterator[FeedItem]:
    async with client.watch(cursor, websocket=websocket) as feed:
        async for item in feed:
            yield item
