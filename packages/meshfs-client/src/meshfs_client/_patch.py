"""Partial writes: commit a new version as "the base version with these chunks replaced and
this new size", sending only the chunks that changed.

The server knows the base's chunk list (``GET /files/chunks``), and a content hash is a
function of the chunk names alone, so only the chunks a write touched are read, hashed and
sent. A chunk whose length changes with the new size (the new end of a shortened file, the old
end of an extended one) counts as touched; chunks past the base's end that no range touches
are zeros, which the server supplies (:func:`~meshfs_common.hashing.zero_chunk_hash`).

The commit succeeds only while the base is still the file's head (``412 precondition_failed``
otherwise, and nothing is committed): the caller decides what a concurrent change means.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from meshfs_client._transport import Transport
from meshfs_client._upload import ChunkSource, Progress, Uploader, plan_parts
from meshfs_common.errors import BadRequestError, InternalError, PreconditionFailedError
from meshfs_common.hashing import (
    CHUNK_SIZE,
    ContentDigest,
    chunk_hash,
    content_hash_of,
    zero_chunk_hash,
)
from meshfs_common.models import (
    CommitResult,
    UploadCommitRequest,
    UploadInitRequest,
    UploadInitResponse,
    VersionChunks,
)


def chunk_count(size: int) -> int:
    """How many chunks content of *size* bytes has."""
    return (size + CHUNK_SIZE - 1) // CHUNK_SIZE


def chunk_length(size: int, index: int) -> int:
    """The length of chunk *index* of content of *size* bytes."""
    return min(CHUNK_SIZE, size - index * CHUNK_SIZE)


def touched_chunks(base: VersionChunks, size: int, ranges: Iterable[tuple[int, int]]) -> set[int]:
    """The chunk indexes of the new content that must be sent: those the byte *ranges*
    (``(offset, length)``) touch, and those of the base whose length changes at *size*."""
    count = chunk_count(size)
    touched: set[int] = set()
    for offset, length in ranges:
        if offset < 0 or length < 0:
            raise BadRequestError(f"a range is an offset and a length >= 0, not {offset}, {length}")
        if length:
            last = min(offset + length, size) - 1
            touched.update(range(offset // CHUNK_SIZE, last // CHUNK_SIZE + 1))
    for index in range(min(len(base.chunks), count)):
        if chunk_length(base.size, index) != chunk_length(size, index):
            touched.add(index)
    return {i for i in touched if i < count}


@dataclass(frozen=True, slots=True)
class Patch:
    """A partial write ready to announce: the new content's digest and what replaces what."""

    digest: ContentDigest
    replace: dict[int, str]


async def plan_patch(
    base: VersionChunks, source: ChunkSource, size: int, touched: set[int]
) -> Patch:
    """Hash the *touched* chunks of *source* and build the new chunk list on *base*'s."""
    if base.chunk_size != CHUNK_SIZE:
        raise InternalError(f"server uses {base.chunk_size}-byte chunks; this client {CHUNK_SIZE}")
    replace: dict[int, str] = {}
    for index in sorted(touched):
        data = await source.read(index * CHUNK_SIZE, chunk_length(size, index))
        replace[index] = await asyncio.to_thread(chunk_hash, data)
    chunks: list[str] = []
    for index in range(chunk_count(size)):
        if index in replace:
            chunks.append(replace[index])
        elif index < len(base.chunks):
            chunks.append(base.chunks[index])
        else:
            chunks.append(zero_chunk_hash(chunk_length(size, index)))
    digest = ContentDigest(size, content_hash_of(chunks), tuple(chunks))
    return Patch(digest, replace)


async def commit_patch(
    transport: Transport,
    path: str,
    base: VersionChunks,
    source: ChunkSource,
    patch: Patch,
    *,
    concurrency: int,
    progress: Progress | None,
) -> CommitResult:
    """Announce *patch* on *base*, send the chunks the server asks for, commit."""
    init = await transport.call(
        "POST",
        "/files/upload/init",
        UploadInitResponse,
        json=UploadInitRequest(
            path=path,
            size=patch.digest.size,
            content_hash=patch.digest.content_hash,
            base_version=base.version_id,
            replace=patch.replace,
        ),
        idempotent=True,  # a repeat starts another upload; the unused one expires
    )
    unexpected = sorted(set(init.missing) - set(patch.replace))
    if unexpected:
        raise InternalError(f"server asked for unchanged chunk(s) {unexpected} of {path}")
    uploader = Uploader(transport, concurrency, progress)
    await uploader._send_parts(init, source, plan_parts(patch.digest, init.missing))
    try:
        return await transport.call(
            "POST",
            "/files/upload/commit",
            CommitResult,
            json=UploadCommitRequest(upload_id=init.upload_id),
            idempotent=False,  # after a lost answer the upload is gone: a repeat cannot tell
        )
    except PreconditionFailedError as exc:
        raise PreconditionFailedError(
            f"{path} changed since version {base.version_id}; nothing was committed",
            detail=exc.detail,
        ) from exc
