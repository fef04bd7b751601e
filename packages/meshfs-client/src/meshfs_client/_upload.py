"""Uploads in constant memory: hash, ask the server what it lacks, send only that, commit.

Content up to one chunk (4 MiB) goes in one ``PUT /files/content``. Larger content is hashed
with :mod:`meshfs_common.hashing`, announced with ``upload/init``, and only the chunks the
server reports ``missing`` travel, several at once (bounded), each read from the source just
before it is sent. At most ``concurrency`` chunks are in memory at a time.

Why the retries below are safe:

* ``upload/init`` for the same content resumes the same upload; repeating it is harmless.
* ``upload/part`` stores an immutable, content-addressed chunk under its own name; sending the
  same bytes twice stores them once.
* ``upload/commit`` without a precondition: if a first attempt committed and only the answer
  was lost, the repeat commits identical content to the head, which the server defines as a
  no-op (``created_version: false``), so no duplicate version appears. With ``If-Match`` or
  ``If-None-Match: *`` the repeat would fail its own precondition against our first commit,
  so conditional commits are only retried when the server certainly did nothing (429, or the
  connection never opened).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from meshfs_client._transport import Transport
from meshfs_common.errors import (
    HashMismatchError,
    InternalError,
    PreconditionFailedError,
    UploadIncompleteError,
)
from meshfs_common.hashing import (
    CHUNK_SIZE,
    ContentDigest,
    ContentHasher,
    chunk_hash,
    hash_bytes,
    hash_file,
)
from meshfs_common.models import (
    CommitResult,
    UploadCommitRequest,
    UploadInitRequest,
    UploadInitResponse,
    UploadPartResponse,
)

Progress = Callable[[int], None]
"""Called with the number of bytes just completed."""

SMALL_UPLOAD_LIMIT = CHUNK_SIZE
"""Content up to this size is written with one request."""

DEFAULT_CONCURRENCY = 4
_SPOOL_BUFFER = 1024 * 1024
_INCOMPLETE_ROUNDS = 2


class SourceChangedError(PreconditionFailedError):
    """The local content changed between hashing and sending; nothing was committed."""


class UploadFailure(Exception):
    """Content announced as already stored turned out to be missing (nothing was committed)."""


class ChunkSource(Protocol):
    """Random access to the bytes being uploaded."""

    @property
    def size(self) -> int:
        """Total size in bytes."""
        ...

    async def read(self, offset: int, length: int) -> bytes:
        """Bytes ``[offset, offset + length)``."""
        ...


class BytesSource:
    """Content already in memory."""

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._data = memoryview(data).cast("B")

    @property
    def size(self) -> int:
        return len(self._data)

    async def read(self, offset: int, length: int) -> bytes:
        return bytes(self._data[offset : offset + length])


class FileSource:
    """An open file read with ``pread`` (thread-safe; no shared file position)."""

    def __init__(self, handle: IO[bytes], size: int) -> None:
        self._fd = handle.fileno()
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    async def read(self, offset: int, length: int) -> bytes:
        return await asyncio.to_thread(_pread_exact, self._fd, offset, length)


def _pread_exact(fd: int, offset: int, length: int) -> bytes:
    parts: list[bytes] = []
    while length:
        block = os.pread(fd, length, offset)
        if not block:
            break
        parts.append(block)
        offset += len(block)
        length -= len(block)
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class Part:
    """One chunk to send: its index, where it lies in the content, and its name."""

    index: int
    offset: int
    length: int
    chunk: str


def plan_parts(
    digest: ContentDigest, missing: list[int], chunk_size: int = CHUNK_SIZE
) -> list[Part]:
    """The parts to send for the chunk indexes the server reported missing."""
    count = len(digest.chunks)
    parts: list[Part] = []
    for index in sorted(set(missing)):
        if not 0 <= index < count:
            raise InternalError(f"server asked for chunk {index} of a {count}-chunk upload")
        offset = index * chunk_size
        parts.append(
            Part(index, offset, min(chunk_size, digest.size - offset), digest.chunks[index])
        )
    return parts


def precondition_headers(if_match: str | None, if_none_match: bool) -> dict[str, str]:
    """``If-Match`` / ``If-None-Match: *`` headers for a conditional write."""
    headers: dict[str, str] = {}
    if if_match is not None:
        headers["If-Match"] = if_match
    if if_none_match:
        headers["If-None-Match"] = "*"
    return headers


@dataclass(slots=True)
class Uploader:
    """Writes one piece of content to one path."""

    transport: Transport
    concurrency: int = DEFAULT_CONCURRENCY
    progress: Progress | None = None

    def _advance(self, nbytes: int) -> None:
        if self.progress is not None and nbytes:
            self.progress(nbytes)

    async def put_small(
        self,
        path: str,
        data: bytes,
        *,
        if_match: str | None,
        if_none_match: bool,
        mtime_ns: int | None = None,
    ) -> CommitResult:
        """One-shot ``PUT /files/content`` (with *mtime_ns*, the new version's mtime)."""
        headers = precondition_headers(if_match, if_none_match)
        params: dict[str, str | int] = {"path": path}
        if mtime_ns is not None:
            params["mtime_ns"] = mtime_ns
        result = await self.transport.call(
            "PUT",
            "/files/content",
            CommitResult,
            params=params,
            data=data,
            headers=headers,
            idempotent=not headers,  # same reasoning as a commit (module docstring)
        )
        self._advance(len(data))
        return result

    async def put_chunked(
        self,
        path: str,
        source: ChunkSource,
        digest: ContentDigest,
        *,
        if_match: str | None,
        if_none_match: bool,
    ) -> CommitResult:
        """init -> missing parts in parallel -> commit."""
        headers = precondition_headers(if_match, if_none_match)
        reported = 0
        for round_ in range(_INCOMPLETE_ROUNDS):
            init = await self._init(path, digest, if_match)
            if init.chunk_size != CHUNK_SIZE:
                raise InternalError(
                    f"server uses {init.chunk_size}-byte chunks; this client {CHUNK_SIZE}"
                )
            parts = plan_parts(digest, init.missing)
            if round_ == 0:
                # Chunks the server already holds count as done at once.
                reported = digest.size - sum(p.length for p in parts)
                self._advance(reported)
            await self._send_parts(init, source, parts)
            try:
                return await self.transport.call(
                    "POST",
                    "/files/upload/commit",
                    CommitResult,
                    json=UploadCommitRequest(upload_id=init.upload_id),
                    headers=headers,
                    idempotent=not headers,
                )
            except UploadIncompleteError:
                # A chunk vanished between init and commit (expired upload, collected chunk):
                # announce the content again; only what is missing now travels.
                if round_ + 1 == _INCOMPLETE_ROUNDS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _init(
        self, path: str, digest: ContentDigest, if_match: str | None
    ) -> UploadInitResponse:
        """Announce content; the answer names the chunks the server still needs. Safe to
        repeat (an unused upload just expires)."""
        return await self.transport.call(
            "POST",
            "/files/upload/init",
            UploadInitResponse,
            json=UploadInitRequest(
                path=path,
                size=digest.size,
                content_hash=digest.content_hash,
                chunks=list(digest.chunks),
            ),
            headers=precondition_headers(if_match, False),
            idempotent=True,
        )

    async def put_known(
        self,
        path: str,
        digest: ContentDigest,
        *,
        if_match: str | None,
        if_none_match: bool,
    ) -> CommitResult:
        """Commit content the server already holds (a copy): init, then commit, no parts.

        Raises :class:`UploadFailure` when the server lacks a chunk after all.
        """
        init = await self._init(path, digest, if_match)
        if init.missing:
            raise UploadFailure(f"the server lacks {len(init.missing)} chunk(s) of {path}")
        headers = precondition_headers(if_match, if_none_match)
        result = await self.transport.call(
            "POST",
            "/files/upload/commit",
            CommitResult,
            json=UploadCommitRequest(upload_id=init.upload_id),
            headers=headers,
            idempotent=not headers,
        )
        self._advance(digest.size)
        return result

    async def _send_parts(
        self, init: UploadInitResponse, source: ChunkSource, parts: list[Part]
    ) -> None:
        pending = iter(parts)

        async def worker() -> None:
            for part in pending:  # a shared iterator: each part is taken by one worker
                await self._send_part(init, source, part)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.concurrency, len(parts))):
                    group.create_task(worker())
        except BaseExceptionGroup as failed:
            # Callers expect the MeshFS error a single request would raise, not a group.
            raise first_error(failed) from None

    async def _send_part(self, init: UploadInitResponse, source: ChunkSource, part: Part) -> None:
        data = await source.read(part.offset, part.length)
        changed = SourceChangedError(f"content changed while uploading (chunk {part.index})")
        if len(data) != part.length:
            raise changed
        direct = (init.part_urls or {}).get(part.index)
        if direct is not None:
            if await asyncio.to_thread(chunk_hash, data) != part.chunk:
                raise changed
            # Direct transfer: the bytes go straight to the object store, which checks the
            # chunk's SHA-256 sent in the given headers.
            headers = (init.part_headers or {}).get(part.index, {})
            await self.transport.put_external(direct, data, headers)
            self._advance(part.length)
            return
        upload_id = init.upload_id
        try:
            # The server checks the part against its name (hashing it here as well would be a
            # second pass over every byte): a mismatch means the source changed since hashing.
            await self.transport.call(
                "PUT",
                "/files/upload/part",
                UploadPartResponse,
                params={"upload_id": upload_id, "index": part.index},
                data=data,
                idempotent=True,
            )
        except HashMismatchError:
            raise changed from None
        self._advance(part.length)

    async def put_file(
        self,
        path: str,
        local: Path,
        *,
        if_match: str | None,
        if_none_match: bool,
        mtime_ns: int | None = None,
    ) -> CommitResult:
        """Upload a local file."""
        handle = await asyncio.to_thread(open, local, "rb")
        with handle:
            size = os.fstat(handle.fileno()).st_size
            if size <= SMALL_UPLOAD_LIMIT:
                data = await asyncio.to_thread(handle.read, SMALL_UPLOAD_LIMIT + 1)
                if len(data) <= SMALL_UPLOAD_LIMIT:
                    return await self.put_small(
                        path, data, if_match=if_match, if_none_match=if_none_match,
                        mtime_ns=mtime_ns,
                    )  # fmt: skip
            digest = await asyncio.to_thread(hash_file, local)
            return await self.put_chunked(
                path,
                FileSource(handle, digest.size),
                digest,
                if_match=if_match,
                if_none_match=if_none_match,
            )

    async def put_bytes(
        self,
        path: str,
        data: bytes,
        *,
        if_match: str | None,
        if_none_match: bool,
        mtime_ns: int | None = None,
    ) -> CommitResult:
        """Upload content held in memory."""
        if len(data) <= SMALL_UPLOAD_LIMIT:
            return await self.put_small(
                path, data, if_match=if_match, if_none_match=if_none_match, mtime_ns=mtime_ns
            )
        digest = await asyncio.to_thread(hash_bytes, data)
        return await self.put_chunked(
            path, BytesSource(data), digest, if_match=if_match, if_none_match=if_none_match
        )

    async def put_stream(
        self,
        path: str,
        stream: AsyncIterable[bytes],
        *,
        if_match: str | None,
        if_none_match: bool,
        mtime_ns: int | None = None,
    ) -> CommitResult:
        """Upload an async byte stream of unknown length.

        The stream is spooled to an anonymous temporary file while it is hashed (the hash must
        be known before ``init``), so memory stays constant and every part can be resent.
        """
        with tempfile.TemporaryFile(prefix="meshfs-upload-") as spool:
            digest = await spool_stream(stream, spool)
            if digest.size <= SMALL_UPLOAD_LIMIT:
                data = await asyncio.to_thread(_read_all, spool)
                return await self.put_small(
                    path, data, if_match=if_match, if_none_match=if_none_match,
                    mtime_ns=mtime_ns,
                )  # fmt: skip
            return await self.put_chunked(
                path,
                FileSource(spool, digest.size),
                digest,
                if_match=if_match,
                if_none_match=if_none_match,
            )


def _read_all(handle: IO[bytes]) -> bytes:
    handle.seek(0)
    return handle.read()


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first leaf exception of a (possibly nested) exception group."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


async def spool_stream(stream: AsyncIterable[bytes], spool: IO[bytes]) -> ContentDigest:
    """Copy *stream* into *spool* while hashing it; returns the digest."""
    hasher = ContentHasher()
    buffer = bytearray()
    async for piece in stream:
        hasher.update(piece)
        buffer += piece
        if len(buffer) >= _SPOOL_BUFFER:
            await asyncio.to_thread(spool.write, bytes(buffer))
            buffer.clear()
    if buffer:
        await asyncio.to_thread(spool.write, bytes(buffer))
    await asyncio.to_thread(spool.flush)
    return hasher.finish()
