"""The MeshFS content hash: a SHA-256 block list.

Content is split into blocks of :data:`CHUNK_SIZE` bytes (4 MiB; the last block may be shorter;
empty content has no blocks). Each block is a *chunk*, named by the lowercase hex SHA-256 of its
bytes. The *content hash* of a whole file is the lowercase hex SHA-256 of the concatenated binary
chunk digests. For empty content that is SHA-256 of the empty string.

Why this shape: one pass over the data yields both the chunk names (so an upload can skip the
chunks a server already holds and resume after an interruption) and the file hash (so a download
can be verified), and chunk hashes can be computed in parallel. The same scheme is used by
Dropbox's ``content_hash``; a file's hash does not depend on how it was transferred.

Reference::

    >>> digest = hash_bytes(b"hello")
    >>> digest.content_hash == hashlib.sha256(hashlib.sha256(b"hello").digest()).hexdigest()
    True
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

CHUNK_SIZE = 4 * 1024 * 1024
EMPTY_CONTENT_HASH = hashlib.sha256(b"").hexdigest()


def chunk_hash(data: bytes | bytearray | memoryview) -> str:
    """Name of one chunk: the hex SHA-256 of its bytes."""
    return hashlib.sha256(data).hexdigest()


@functools.lru_cache(maxsize=8)
def zero_chunk_hash(size: int = CHUNK_SIZE) -> str:
    """Name of a chunk of *size* zero bytes: what a file extended without writing (a sparse
    tail) holds, which a partial write never uploads."""
    return chunk_hash(bytes(size))


def content_hash_of(chunks: Iterable[str]) -> str:
    """Content hash of a file from its chunk names, in order."""
    outer = hashlib.sha256()
    for name in chunks:
        outer.update(bytes.fromhex(name))
    return outer.hexdigest()


@dataclass(frozen=True, slots=True)
class ContentDigest:
    """Size, content hash and chunk names of one piece of content."""

    size: int
    content_hash: str
    chunks: tuple[str, ...]


@dataclass(slots=True)
class ContentHasher:
    """Incremental hasher: feed bytes in any pieces, get the same digest as :func:`hash_bytes`."""

    chunk_size: int = CHUNK_SIZE
    _current: hashlib._Hash = field(default_factory=hashlib.sha256)
    _filled: int = 0
    _size: int = 0
    _chunks: list[str] = field(default_factory=list)

    def update(self, data: bytes | bytearray | memoryview) -> list[str]:
        """Add *data*; return the names of the chunks it completed."""
        view = memoryview(data)
        done: list[str] = []
        while view:
            take = min(len(view), self.chunk_size - self._filled)
            self._current.update(view[:take])
            self._filled += take
            self._size += take
            view = view[take:]
            if self._filled == self.chunk_size:
                done.append(self._finish_chunk())
        return done

    def _finish_chunk(self) -> str:
        name = self._current.hexdigest()
        self._chunks.append(name)
        self._current = hashlib.sha256()
        self._filled = 0
        return name

    def finish(self) -> ContentDigest:
        """Close the last partial chunk and return the digest."""
        if self._filled:
            self._finish_chunk()
        return ContentDigest(self._size, content_hash_of(self._chunks), tuple(self._chunks))


def hash_bytes(data: bytes | bytearray | memoryview, chunk_size: int = CHUNK_SIZE) -> ContentDigest:
    """Digest of content held in memory."""
    hasher = ContentHasher(chunk_size)
    hasher.update(data)
    return hasher.finish()


def iter_chunks(stream: BinaryIO, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Read *stream* in whole chunks (the last one may be short)."""
    while True:
        block = stream.read(chunk_size)
        if not block:
            return
        while len(block) < chunk_size:
            more = stream.read(chunk_size - len(block))
            if not more:
                break
            block += more
        yield block


def hash_file(path: str | Path, chunk_size: int = CHUNK_SIZE) -> ContentDigest:
    """Digest of a file on disk, read in constant memory."""
    hasher = ContentHasher(chunk_size)
    with open(path, "rb") as stream:
        for block in iter_chunks(stream, chunk_size):
            hasher.update(block)
    return hasher.finish()
