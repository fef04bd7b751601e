"""File content as the mount serves it: the spool of a file being written, else the cache.

:class:`FileContent` is the state of one open file inode, shared by all its handles: the spool
once anything was written (or the file was created or truncated here), and a lock that keeps
writes out while a commit reads the spool.

:class:`ContentStore` reads committed content through the chunk cache, fills spools with a
file's current content before a partial write, and commits a spool as one version.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import trio

from meshfs_common.models import CommitResult, Entry
from meshfs_fuse.chunk_cache import CHUNK_SIZE, ChunkCache
from meshfs_fuse.remote import Remote
from meshfs_fuse.spool import Spool, SpoolDirectory

__all__ = ["ContentStore", "FileContent"]


@dataclass(eq=False)
class FileContent:
    """The local state of one file inode while it is open (or being truncated)."""

    spool: Spool | None = None
    mtime_ns: int = 0
    lock: trio.Lock = field(default_factory=trio.Lock)

    @property
    def dirty(self) -> bool:
        return self.spool is not None and self.spool.dirty


class ContentStore:
    """Reads through the chunk cache; spools and commits writes."""

    def __init__(self, remote: Remote, chunks: ChunkCache, spools: SpoolDirectory) -> None:
        self.remote = remote
        self.chunks = chunks
        self.spools = spools
        self.commits = 0

    async def read(self, entry: Entry, offset: int, length: int) -> bytes:
        """Bytes of the version *entry* names."""
        if entry.size == 0 or offset >= entry.size:
            return b""
        version_id = entry.version_id or ""
        key = entry.content_hash or version_id

        async def fetch(start: int, count: int) -> bytes:
            return await self.remote.read_range(entry.node_id, version_id, start, count)

        return await self.chunks.read(key, entry.size, offset, length, fetch)

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
        return spool

    async def written(self, content: FileContent, path: str | None, node_id: str | None) -> None:
        """Journal that *content* holds acknowledged, uncommitted writes."""
        content.mtime_ns = time.time_ns()
        if content.spool is not None and path is not None:
            await content.spool.mark("dirty", path, node_id)

    async def commit(self, content: FileContent, path: str) -> CommitResult:
        """Upload the spool of *content* as one version of *path*; it is then clean."""
        spool = content.spool
        assert spool is not None
        result = await self.remote.upload(path, spool.data_path, spool.size)
        self.commits += 1
        await spool.mark("clean", path, result.entry.node_id)
        return result
