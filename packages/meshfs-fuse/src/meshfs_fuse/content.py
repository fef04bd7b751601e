"""File content as the mount serves it: the spool of a file being written, else the cache.

:class:`FileContent` is the state of one open file inode, shared by all its handles: the spool
once anything was written (or the file was created or truncated here), and a lock that keeps
writes out while a commit reads the spool.

:class:`ContentStore` reads committed content through the chunk cache, fills spools with a
file's current content before a partial write, and commits a spool as one version.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from meshfs_common.errors import MeshFSError, PreconditionFailedError
from meshfs_common.models import CommitResult, Entry
from meshfs_fuse.chunk_cache import CHUNK_SIZE, ChunkCache
from meshfs_fuse.remote import Remote
from meshfs_fuse.spool import Spool, SpoolDirectory

__all__ = ["READ_AHEAD", "ContentStore", "FileContent"]

log = logging.getLogger(__name__)

READ_AHEAD = 4
"""Chunks fetched ahead of a sequential reader (16 MiB: at most this many ranged requests of
one reader are in flight)."""

SMALL_COMMIT = CHUNK_SIZE
"""Spools up to this size are read in one ``pread`` and committed in one request."""


@dataclass(eq=False)
class FileContent:
    """The local state of one file inode while it is open (or being truncated)."""

    spool: Spool | None = None
    mtime_ns: int = 0
    lock: trio.Lock = field(default_factory=trio.Lock)
    base: Entry | None = None
    """The version the spool started from (``None``: new or truncated to nothing); a commit
    then sends only the chunks of :attr:`changed`."""
    changed: list[tuple[int, int]] = field(default_factory=list)
    """Byte ranges ``(offset, length)`` written or cut away since :attr:`base`."""

    def changed_range(self, offset: int, length: int) -> None:
        """Note that ``length`` bytes at ``offset`` differ from :attr:`base` now."""
        if self.base is not None:
            self.changed.append((offset, length))

    def truncated(self, size: int) -> None:
        """Note a truncate to *size*: the base's bytes past it are gone."""
        if self.base is not None and size < self.base.size:
            self.changed.append((size, self.base.size - size))

    @property
    def dirty(self) -> bool:
        return self.spool is not None and self.spool.dirty


class ContentStore:
    """Reads through the chunk cache; spools and commits writes."""

    def __init__(
        self,
        remote: Remote,
        chunks: ChunkCache,
        spools: SpoolDirectory,
        *,
        read_ahead: int = READ_AHEAD,
    ) -> None:
        self.remote = remote
        self.chunks = chunks
        self.spools = spools
        self.read_ahead = read_ahead
        self.commits = 0
        self.partial_commits = 0
        """Commits that sent only the changed chunks of a file."""
        self._prefetcher: trio.Nursery | None = None
        self._read_ends: dict[str, int] = {}

    def prefetch_in(self, nursery: trio.Nursery) -> None:
        """Run read-ahead fetches in *nursery* (the daemon's; cancelled at shutdown)."""
        self._prefetcher = nursery

    def _fetcher(self, entry: Entry) -> Callable[[int, int], Awaitable[bytes]]:
        version_id = entry.version_id or ""

        async def fetch(start: int, count: int) -> bytes:
            return await self.remote.read_range(entry.node_id, version_id, start, count)

        return fetch

    async def read(self, entry: Entry, offset: int, length: int) -> bytes:
        """Bytes of the version *entry* names; sequential reads fetch the next chunks early."""
        if entry.size == 0 or offset >= entry.size:
            return b""
        key = entry.content_hash or entry.version_id or ""
        if self._sequential(key, offset, offset + length):
            self._read_ahead_of(entry, key, min(entry.size, offset + length))
        return await self.chunks.read(key, entry.size, offset, length, self._fetcher(entry))

    def _sequential(self, key: str, offset: int, end: int) -> bool:
        """Whether a read of ``[offset, end)`` continues a sequential reader of *key*.

        The kernel sends a reader's read-ahead as several requests at once, so they arrive
        slightly out of order: a read that starts within one chunk of the furthest end read so
        far still continues the stream (an exact match caught only about a fifth of them).
        """
        furthest = self._read_ends.pop(key, None)
        sequential = furthest is not None and abs(offset - furthest) <= CHUNK_SIZE
        # A read elsewhere starts a new stream there (a second pass from the start, a seek).
        self._read_ends[key] = max(furthest, end) if furthest is not None and sequential else end
        if len(self._read_ends) > 256:
            self._read_ends.pop(next(iter(self._read_ends)))
        return sequential

    def _read_ahead_of(self, entry: Entry, key: str, end: int) -> None:
        """Start fetching the chunks after the one holding byte ``end - 1`` (no waiting: the
        read that asked runs beside them)."""
        if self._prefetcher is None:
            return
        current = (end - 1) // CHUNK_SIZE
        last = (entry.size - 1) // CHUNK_SIZE
        for index in range(current + 1, min(last, current + self.read_ahead) + 1):
            if not self.chunks.holds(key, index):
                self._prefetcher.start_soon(self._prefetch, entry, key, index)

    async def _prefetch(self, entry: Entry, key: str, index: int) -> None:
        try:
            await self.chunks.chunk(key, entry.size, index, self._fetcher(entry))
        except (MeshFSError, OSError) as exc:
            log.debug("read-ahead of chunk %d of %s failed: %s", index, entry.path, exc)

    async def open_spool(self, content: FileContent, base: Entry | None, keep: int) -> Spool:
        """The spool of *content*, created with the first *keep* bytes of *base* if new."""
        if content.spool is not None:
            return content.spool
        spool = self.spools.new()
        try:
            if base is not None:
                end = min(keep, base.size)
                for offset in range(0, end, CHUNK_SIZE):
                    data = await self.read(base, offset, min(CHUNK_SIZE, end - offset))
                    await spool.pwrite(data, offset)
        except BaseException:
            spool.discard_now()
            raise
        content.spool = spool
        content.base = base if base is not None and base.version_id is not None else None
        content.changed = []
        content.truncated(min(keep, base.size) if base is not None else 0)
        return spool

    async def create_spool(self, content: FileContent, path: str | None) -> Spool:
        """A new, empty spool for a file created (or truncated to nothing) here, journaled as
        holding acknowledged content at *path* in the same trip to the disk."""
        if content.spool is not None:
            return content.spool
        spool = await trio.to_thread.run_sync(self.spools.new_dirty, path)
        content.spool = spool
        content.base, content.changed = None, []
        content.mtime_ns = time.time_ns()
        return spool

    async def written(self, content: FileContent, path: str | None, node_id: str | None) -> None:
        """Journal that *content* holds acknowledged, uncommitted writes."""
        content.mtime_ns = time.time_ns()
        if content.spool is not None and path is not None:
            await content.spool.mark("dirty", path, node_id)

    async def _commit_changes(
        self, content: FileContent, path: str, base_version: str
    ) -> CommitResult:
        """Send only the chunks the changed ranges touch; the whole file when the base is no
        longer the head (someone else committed since the spool was made)."""
        spool = content.spool
        assert spool is not None
        try:
            result = await self.remote.upload_ranges(
                path, spool.data_path, base_version, list(content.changed), spool.size
            )
        except PreconditionFailedError:
            log.info("%s changed on the server meanwhile; sending the whole file", path)
            return await self.remote.upload(path, spool.data_path, spool.size)
        self.partial_commits += 1
        return result

    async def commit(self, content: FileContent, path: str) -> CommitResult:
        """Upload the spool of *content* as one version of *path*; it is then clean."""
        spool = content.spool
        assert spool is not None
        base = content.base
        if spool.size <= SMALL_COMMIT:
            # One disk read here and one request there: no file to open and read on the
            # asyncio side (two thread hops less per close of a small file).
            result = await self.remote.upload_bytes(path, await spool.read_all())
        elif base is not None and base.version_id is not None and base.size > SMALL_COMMIT:
            result = await self._commit_changes(content, path, base.version_id)
        else:
            result = await self.remote.upload(path, spool.data_path, spool.size)
        self.commits += 1
        content.base, content.changed = result.entry, []
        await spool.mark("clean", path, result.entry.node_id)
        return result
