"""The server as the mount sees it: client calls through the bridge, each with a deadline.

Every method runs one :class:`~meshfs_client.MeshFSClient` call on the asyncio loop (through
:class:`~meshfs_fuse.bridge.AsyncioBridge`) inside a trio deadline; a call that runs out of
time is cancelled on the asyncio side too and raises :class:`TimeoutError` (``ETIMEDOUT``).
A rejected login (expired, revoked) raises the client's ``AuthError`` (``EACCES``) and is
logged once, with what to do, not at every request.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import trio

from meshfs_client import ChangeFeed, FeedItem, MeshFSClient
from meshfs_common.errors import AuthError, ForbiddenError
from meshfs_common.models import CommitResult, Entry, FsStats, SpecialKind, Version
from meshfs_fuse.bridge import AsyncioBridge

__all__ = ["Deadlines", "Remote"]

log = logging.getLogger(__name__)

T = TypeVar("T")

XattrFlag = Literal["create", "replace"]
"""``XATTR_CREATE`` / ``XATTR_REPLACE`` as the server names them."""


@dataclass(frozen=True, slots=True)
class Deadlines:
    """How long the mount waits for the server (seconds)."""

    metadata: float = 30.0
    transfer_base: float = 60.0
    transfer_bytes_per_second: float = 1024 * 1024


class Remote:
    """The MeshFS server, called from trio."""

    def __init__(
        self, bridge: AsyncioBridge, client: MeshFSClient, deadlines: Deadlines | None = None
    ) -> None:
        self._bridge = bridge
        self._client = client
        self.deadlines = deadlines or Deadlines()
        self._auth_logged = False
        self.feed_state = "offline"
        """``online`` once the change feed has connected, ``offline`` while it cannot."""

    async def _call(self, factory: Callable[[], Coroutine[Any, Any, T]], seconds: float) -> T:
        try:
            with trio.fail_after(seconds):
                return await self._bridge.call(factory)
        except trio.TooSlowError:
            raise TimeoutError(f"the server did not answer within {seconds:g}s") from None
        except (AuthError, ForbiddenError) as exc:
            if isinstance(exc, AuthError) and not self._auth_logged:
                self._auth_logged = True
                log.error(
                    "the server refused this mount's login (%s); sign in again with "
                    "`meshfs login`, then remount",
                    exc,
                )
            raise

    def _transfer(self, size: int) -> float:
        d = self.deadlines
        return d.transfer_base + size / d.transfer_bytes_per_second

    async def meta(self, path: str | None = None, *, node_id: str | None = None) -> Entry:
        return await self._call(
            lambda: self._client.meta(path, node_id=node_id), self.deadlines.metadata
        )

    async def listdir(self, path: str) -> list[Entry]:
        return await self._call(lambda: self._client.listdir(path), self.deadlines.metadata)

    async def mkdir(self, path: str, *, mode: int, uid: int, gid: int) -> Entry:
        """Create one directory; ``AlreadyExistsError`` if the name is taken."""
        return await self._call(
            lambda: self._client.mkdir(
                path, parents=False, exist_ok=False, mode=mode, uid=uid, gid=gid
            ),
            self.deadlines.metadata,
        )

    async def set_attributes(self, path: str, **changes: int) -> Entry:
        """Set any of ``mode``, ``uid``, ``gid``, ``mtime_ns``, ``atime_ns`` of *path*."""
        return await self._call(
            lambda: self._client.set_attributes(
                path,
                mode=changes.get("mode"),
                uid=changes.get("uid"),
                gid=changes.get("gid"),
                mtime_ns=changes.get("mtime_ns"),
                atime_ns=changes.get("atime_ns"),
            ),
            self.deadlines.metadata,
        )

    async def symlink(self, path: str, target: str, *, uid: int, gid: int) -> Entry:
        return await self._call(
            lambda: self._client.symlink(path, target, uid=uid, gid=gid),
            self.deadlines.metadata,
        )

    async def mknod(
        self, path: str, kind: SpecialKind, *, mode: int, rdev: int, uid: int, gid: int
    ) -> Entry:
        """Make a FIFO, socket or device node (metadata only)."""
        return await self._call(
            lambda: self._client.mknod(path, kind, mode=mode, rdev=rdev, uid=uid, gid=gid),
            self.deadlines.metadata,
        )

    async def link(self, path: str, new_path: str) -> Entry:
        """Give the file at *path* the extra name *new_path* (a hard link)."""
        return await self._call(lambda: self._client.link(path, new_path), self.deadlines.metadata)

    async def exchange(self, path: str, new_path: str) -> Entry:
        """Swap two existing names atomically (``RENAME_EXCHANGE``)."""
        return await self._call(
            lambda: self._client.rename(path, new_path, exchange=True), self.deadlines.metadata
        )

    async def listxattr(self, path: str) -> list[str]:
        return await self._call(lambda: self._client.listxattr(path), self.deadlines.metadata)

    async def getxattr(self, path: str, name: str) -> bytes:
        return await self._call(lambda: self._client.getxattr(path, name), self.deadlines.metadata)

    async def setxattr(self, path: str, name: str, value: bytes, flag: XattrFlag | None) -> Entry:
        return await self._call(
            lambda: self._client.setxattr(path, name, value, flag=flag), self.deadlines.metadata
        )

    async def removexattr(self, path: str, name: str) -> Entry:
        return await self._call(
            lambda: self._client.removexattr(path, name), self.deadlines.metadata
        )

    async def statfs(self) -> FsStats:
        """The tenant's quota, usage and node counts."""
        return await self._call(self._client.statfs, self.deadlines.metadata)

    async def delete(self, path: str) -> None:
        """Delete a file or an empty directory (never recursively)."""
        await self._call(lambda: self._client.delete(path), self.deadlines.metadata)

    async def rename(self, path: str, new_path: str, *, overwrite: bool) -> Entry:
        return await self._call(
            lambda: self._client.rename(path, new_path, overwrite=overwrite),
            self.deadlines.metadata,
        )

    async def upload(self, path: str, local: Path, size: int) -> CommitResult:
        """Commit the content of the local file *local* as the new version of *path*."""
        return await self._call(lambda: self._client.upload(path, local), self._transfer(size))

    async def upload_ranges(
        self, path: str, local: Path, base_version: str, ranges: list[tuple[int, int]], size: int
    ) -> CommitResult:
        """Commit *local* as a new version of *path* that differs from *base_version* only in
        *ranges* and its *size*: only the chunks they touch are sent
        (``PreconditionFailedError`` if *base_version* is no longer the head)."""
        return await self._call(
            lambda: self._client.upload_ranges(
                path, local, base_version=base_version, ranges=ranges, size=size
            ),
            self._transfer(size),
        )

    async def upload_bytes(self, path: str, data: bytes) -> CommitResult:
        """Commit *data* (held in memory) as the new version of *path*: for content up to one
        chunk this is a single request, with no file to open on the asyncio side."""
        return await self._call(lambda: self._client.upload(path, data), self._transfer(len(data)))

    async def read_range(self, node_id: str, version_id: str, offset: int, length: int) -> bytes:
        """Bytes of one version (by node id, so an unlinked file stays readable)."""
        return await self._call(
            lambda: self._client.read_bytes(
                node_id=node_id, version_id=version_id, offset=offset, length=length
            ),
            self._transfer(length),
        )

    async def versions(self, node_id: str) -> list[Version]:
        """Every version of the file *node_id* (newest first)."""

        async def collect() -> list[Version]:
            return [version async for version in self._client.versions(node_id=node_id)]

        return await self._call(collect, self.deadlines.metadata)

    async def call_whoami(self) -> None:
        """Check that the server accepts this mount's login."""
        await self._call(self._client.whoami, self.deadlines.metadata)

    async def storage(self) -> tuple[int | None, int | None]:
        """The tenant's storage quota and use in bytes (``None`` where not known or shown)."""
        plan: object = await self._call(self._client.plan, self.deadlines.metadata)
        storage = plan.get("storage") if isinstance(plan, dict) else getattr(plan, "storage", None)
        if isinstance(storage, dict):
            return storage.get("quota"), storage.get("used")
        return getattr(storage, "quota", None), getattr(storage, "used", None)

    async def current_cursor(self) -> int:
        return await self._call(self._client.current_cursor, self.deadlines.metadata)

    async def feed(self, cursor: int) -> AsyncIterator[FeedItem]:
        """Every change after *cursor*, for as long as it is iterated (reconnecting itself)."""
        items = _feed_items(self._client, cursor, self._feed_changed)

        async def step() -> FeedItem:
            return await items.__anext__()

        try:
            while True:
                try:
                    # No deadline: the feed waits for changes; it reconnects by itself.
                    yield await self._bridge.call(step)
                except StopAsyncIteration:
                    return
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self._bridge.call(items.aclose)

    def _feed_changed(self, feed: ChangeFeed) -> None:
        self.feed_state = "offline" if feed.state == "offline" else "online"
        if feed.state == "offline":
            log.warning("change feed offline (%s); retrying", feed.error)
        else:
            log.info("change feed %s", feed.state)


async def _feed_items(
    client: MeshFSClient, cursor: int, on_state: Callable[[ChangeFeed], None]
) -> AsyncGenerator[FeedItem, None]:
    # Where WebSockets fail, pull often: the kernel's caches wait on these events.
    async with client.watch(cursor, poll_interval=0.5, on_state=on_state) as feed:
        async for item in feed:
            yield item
