"""The read cache: content chunks on local disk, least recently used first out.

A file's content is read in chunks of :data:`CHUNK_SIZE` (the server's own chunk size, so one
ranged request touches one stored chunk). Chunks are keyed by the content hash of the version
they belong to - identical content in two files or two versions is cached once - and kept in
``<cache dir>/chunks`` up to a byte budget; the least recently used go first. The cache starts
empty at each mount (a chunk file is written whole before it is indexed, so a crash leaves
nothing half-written behind that could be read).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from meshfs_common.hashing import CHUNK_SIZE

__all__ = ["CHUNK_SIZE", "ChunkCache"]

Fetch = Callable[[int, int], Awaitable[bytes]]
"""Fetch ``length`` bytes at ``offset`` of the version being read (a ranged download)."""


class ChunkCache:
    """Content chunks on disk under *root*, at most *capacity* bytes."""

    def __init__(self, root: Path, capacity: int) -> None:
        self.root = root
        self.capacity = capacity
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True, mode=0o700)
        self._index: OrderedDict[str, int] = OrderedDict()
        self._bytes = 0
        self._inflight: dict[str, trio.Event] = {}
        self.hits = 0
        self.misses = 0

    @property
    def size(self) -> int:
        """Bytes cached now."""
        return self._bytes

    def holds(self, content_hash: str, index: int) -> bool:
        """Whether chunk *index* of the content is cached or being fetched."""
        key = f"{content_hash}:{index}"
        return key in self._index or key in self._inflight

    def _file(self, key: str) -> Path:
        return self.root / hashlib.sha256(key.encode()).hexdigest()

    async def read(
        self, content_hash: str, size: int, offset: int, length: int, fetch: Fetch
    ) -> bytes:
        """Bytes ``[offset, offset+length)`` of content *content_hash* (*size* bytes long),
        from the cache where possible, fetching missing chunks with *fetch*."""
        end = min(size, offset + length)
        if offset >= end:
            return b""
        parts: list[bytes] = []
        first, last = offset // CHUNK_SIZE, (end - 1) // CHUNK_SIZE
        for index in range(first, last + 1):
            start = index * CHUNK_SIZE
            low, high = max(0, offset - start), min(CHUNK_SIZE, end - start)
            # A cached chunk is read only where asked (the kernel reads 128 KiB-1 MiB).
            part = await self._load_range(f"{content_hash}:{index}", low, high)
            if part is None:
                part = (await self.chunk(content_hash, size, index, fetch))[low:high]
            parts.append(part)
        return b"".join(parts)

    async def _load_range(self, key: str, low: int, high: int) -> bytes | None:
        if key not in self._index:
            return None
        try:
            data = await trio.to_thread.run_sync(_read_range, self._file(key), low, high - low)
        except FileNotFoundError:
            self._drop(key)
            return None
        self._index.move_to_end(key)
        self.hits += 1
        return data

    async def chunk(self, content_hash: str, size: int, index: int, fetch: Fetch) -> bytes:
        """Chunk *index* of the content; concurrent readers of one chunk share one fetch."""
        key = f"{content_hash}:{index}"
        while True:
            if key in self._index:
                data = await self._load(key)
                if data is not None:
                    self.hits += 1
                    return data
            waiting = self._inflight.get(key)
            if waiting is None:
                break
            await waiting.wait()
        done = self._inflight[key] = trio.Event()
        try:
            self.misses += 1
            start = index * CHUNK_SIZE
            data = await fetch(start, min(CHUNK_SIZE, size - start))
            await self._store(key, data)
            return data
        finally:
            del self._inflight[key]
            done.set()

    async def _load(self, key: str) -> bytes | None:
        try:
            data = await trio.to_thread.run_sync(self._file(key).read_bytes)
        except FileNotFoundError:
            self._drop(key)
            return None
        self._index.move_to_end(key)
        return data

    def resize(self, capacity: int) -> None:
        """Bound the cache to *capacity* bytes from now on, evicting what no longer fits."""
        self.capacity = capacity
        self._evict()

    async def _store(self, key: str, data: bytes) -> None:
        if len(data) > self.capacity:
            return
        await trio.to_thread.run_sync(_write_whole, self._file(key), data)
        self._drop(key)
        self._index[key] = len(data)
        self._bytes += len(data)
        self._evict()

    def _evict(self) -> None:
        while self._bytes > self.capacity and self._index:
            oldest, _ = next(iter(self._index.items()))
            self._drop(oldest)
            self._file(oldest).unlink(missing_ok=True)

    def _drop(self, key: str) -> None:
        size = self._index.pop(key, None)
        if size is not None:
            self._bytes -= size


def _read_range(path: Path, offset: int, length: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


def _write_whole(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(".part")
    with open(temporary, "wb") as out:
        out.write(data)
    os.replace(temporary, path)
