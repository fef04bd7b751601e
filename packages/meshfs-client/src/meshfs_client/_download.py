"""Downloads: streamed, resumable with ``Range``, verified against the content hash.

A :class:`DownloadStream` pins the version it started with (from ``X-MeshFS-Version-Id`` /
``ETag``), so when a connection drops mid-body it asks again for exactly the remaining bytes
*of that version*; versions are immutable, so the pieces always fit together.

:func:`download_to_path` writes into a partial file next to the target, named after the
version (``.<name>.<version>.meshfs-part``; past the page cache where the system allows it, see
:mod:`._disk_writer`), hashes while writing, compares with
``X-MeshFS-Content-Hash`` and renames into place only when they agree. An interrupted download
of the same version resumes from the partial file.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import aiohttp

from meshfs_client._disk_writer import AppendWriter
from meshfs_client._retry import backoff_delay
from meshfs_client._transport import Params, Transport, network_error
from meshfs_client._upload import first_error
from meshfs_common.errors import HashMismatchError, InternalError, MeshFSError
from meshfs_common.hashing import ContentHasher

Progress = Callable[[int], None]
_READ_BLOCK = 256 * 1024
_WRITE_BATCH = 4 * 1024 * 1024
PARTIAL_SUFFIX = ".meshfs-part"


@dataclass(frozen=True, slots=True)
class DownloadInfo:
    """What the server said about the content being downloaded."""

    node_id: str | None
    version_id: str | None
    content_hash: str | None
    size: int | None
    """Total size of the version (not of the requested range), when known."""
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


def info_from_headers(headers: Mapping[str, str]) -> DownloadInfo:
    """Parse the download headers (``X-MeshFS-*``, ``ETag``, ``Content-Range``/``-Length``)."""
    version = headers.get("X-MeshFS-Version-Id")
    if not version and headers.get("ETag"):
        version = headers["ETag"].removeprefix("W/").strip('"') or None
    size: int | None = None
    content_range = headers.get("Content-Range", "")
    if "/" in content_range:
        total = content_range.rsplit("/", 1)[1].strip()
        size = int(total) if total.isdigit() else None
    elif headers.get("Content-Length", "").isdigit():
        size = int(headers["Content-Length"])
    return DownloadInfo(
        node_id=headers.get("X-MeshFS-Node-Id"),
        version_id=version,
        content_hash=headers.get("X-MeshFS-Content-Hash"),
        size=size,
        headers=dict(headers),
    )


def range_header(offset: int, length: int | None) -> str | None:
    """The ``Range`` value for bytes ``[offset, offset + length)`` (``None``: the whole body)."""
    if offset == 0 and length is None:
        return None
    if length is None:
        return f"bytes={offset}-"
    return f"bytes={offset}-{offset + length - 1}"


class DownloadStream:
    """The bytes of one version of a file, as an async iterator that survives dropped
    connections.

    Use as ``async with client.download(path) as stream: async for block in stream: ...``.
    ``info`` is available once the context is entered.
    """

    def __init__(
        self,
        transport: Transport,
        where: Params,
        *,
        version_id: str | None = None,
        offset: int = 0,
        length: int | None = None,
    ) -> None:
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        self._transport = transport
        self._where = dict(where)
        self._version = version_id
        self._position = offset
        self._end = None if length is None else offset + length
        self._stack = contextlib.AsyncExitStack()
        self._response: aiohttp.ClientResponse | None = None
        self._info: DownloadInfo | None = None

    @property
    def info(self) -> DownloadInfo:
        """Version, hash and size of the content (after the stream is opened)."""
        if self._info is None:
            raise RuntimeError("the download stream is not open yet")
        return self._info

    async def __aenter__(self) -> DownloadStream:
        if self._end == self._position:
            # Empty range: only the metadata is wanted.
            async with self._transport.open("HEAD", "/files/download", params=self._params()) as r:
                self._info = info_from_headers(r.headers)
            return self
        await self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    def _params(self) -> dict[str, str | int | bool | None]:
        params: dict[str, str | int | bool | None] = dict(self._where)
        if self._version:
            params["version_id"] = self._version
        return params

    async def _open(self) -> None:
        await self._stack.aclose()
        self._stack = contextlib.AsyncExitStack()
        length = None if self._end is None else self._end - self._position
        wanted = range_header(self._position, length)
        headers = {"Range": wanted} if wanted else {}
        response = await self._stack.enter_async_context(
            self._transport.open("GET", "/files/download", params=self._params(), headers=headers)
        )
        info = info_from_headers(response.headers)
        if self._info is None:
            self._info = info
            self._version = self._version or info.version_id
        elif info.version_id and self._info.version_id and info.version_id != self._info.version_id:
            raise InternalError("the server switched versions while resuming a download")
        if wanted and response.status == 200 and self._position:
            # The server ignored Range: skip what was already delivered.
            await _discard(response, self._position)
        self._response = response

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._blocks()

    async def _blocks(self) -> AsyncIterator[bytes]:
        failures = 0
        policy = self._transport.retry
        while self._end is None or self._position < self._end:
            if self._response is None:
                raise RuntimeError("the download stream is not open")
            try:
                want = (
                    _READ_BLOCK
                    if self._end is None
                    else min(_READ_BLOCK, self._end - self._position)
                )
                block = await self._response.content.read(want)
            except (aiohttp.ClientError, TimeoutError) as exc:
                error: MeshFSError = network_error(exc, "download")
            else:
                if block:
                    failures = 0
                    self._position += len(block)
                    yield block
                    continue
                total = self.info.size
                if self._end is None and (total is None or self._position >= total):
                    return
                error = network_error(ConnectionResetError("body ended early"), "download")
            failures += 1
            if failures >= policy.attempts:
                raise error
            await asyncio.sleep(backoff_delay(failures, policy, random.random()))
            await self._open()


async def _discard(response: aiohttp.ClientResponse, count: int) -> None:
    while count:
        block = await response.content.read(min(count, _READ_BLOCK))
        if not block:
            return
        count -= len(block)


async def download_to_path(
    transport: Transport,
    where: Params,
    local: Path,
    *,
    version_id: str | None = None,
    progress: Progress | None = None,
) -> DownloadInfo:
    """Download a version into *local* atomically, resuming a partial download if present."""
    async with transport.open(
        "HEAD", "/files/download", params=_with_version(where, version_id)
    ) as r:
        head = info_from_headers(r.headers)
    version = version_id or head.version_id
    if not await asyncio.to_thread(local.parent.is_dir):
        # Said here, before the partial file's name could end up in the error instead.
        raise FileNotFoundError(errno.ENOENT, "no such local directory", str(local.parent))
    partial = local.with_name(f".{local.name}.{version or 'current'}{PARTIAL_SUFFIX}")
    for attempt in (1, 2):
        start = await asyncio.to_thread(_prepare_partial, partial, head.size)
        hasher = ContentHasher()
        if start:
            await asyncio.to_thread(_hash_existing, partial, hasher)
            if progress is not None:
                progress(start)
        info = head
        out = await asyncio.to_thread(AppendWriter, partial, start)
        with out:
            if head.size is None or start < head.size:
                info = await _fetch_into(
                    DownloadStream(transport, where, version_id=version, offset=start),
                    out,
                    hasher,
                    progress,
                )
            await asyncio.to_thread(out.finish)
        expected = info.content_hash or head.content_hash
        digest = hasher.finish()
        if expected is None or digest.content_hash == expected:
            await asyncio.to_thread(os.replace, partial, local)
            return info
        await asyncio.to_thread(_unlink, partial)
        if start == 0 or attempt == 2:
            raise HashMismatchError(
                f"downloaded content does not match its hash ({digest.content_hash[:12]}... "
                f"!= {expected[:12]}...)"
            )
        # The partial file from an earlier attempt was bad; start over once.
    raise AssertionError("unreachable")  # pragma: no cover


async def _fetch_into(
    stream: DownloadStream, out: AppendWriter, hasher: ContentHasher, progress: Progress | None
) -> DownloadInfo:
    # Receiving goes on while the previous batch is written and hashed in a thread (a direct
    # write waits for the disk: done in turn with receiving, each would wait for the other).
    # One batch in the writer's hands and one waiting for it at most: memory stays bounded.
    batches: asyncio.Queue[list[bytes] | None] = asyncio.Queue(maxsize=1)
    try:
        async with stream, asyncio.TaskGroup() as group:
            group.create_task(_write_batches(batches, out, hasher, progress))
            # Blocks are handed to the writing thread as they came (no joining copy).
            batch: list[bytes] = []
            batched = 0
            async for block in stream:
                batch.append(block)
                batched += len(block)
                if batched >= _WRITE_BATCH:
                    await batches.put(batch)
                    batch, batched = [], 0
            if batch:
                await batches.put(batch)
            await batches.put(None)
    except BaseExceptionGroup as failed:  # the writer failed (a full disk): raise its error
        raise first_error(failed) from None
    return stream.info


async def _write_batches(
    batches: asyncio.Queue[list[bytes] | None],
    out: AppendWriter,
    hasher: ContentHasher,
    progress: Progress | None,
) -> None:
    """Write and hash the batches from *batches* in order until ``None`` arrives."""
    while (batch := await batches.get()) is not None:
        await asyncio.to_thread(_write_and_hash, out, hasher, batch)
        if progress is not None:
            progress(sum(len(block) for block in batch))


def _with_version(where: Params, version_id: str | None) -> dict[str, str | int | bool | None]:
    params: dict[str, str | int | bool | None] = dict(where)
    if version_id:
        params["version_id"] = version_id
    return params


def _prepare_partial(partial: Path, size: int | None) -> int:
    try:
        have = partial.stat().st_size
    except FileNotFoundError:
        return 0
    if size is None or have > size:
        partial.unlink()
        return 0
    return have


def _hash_existing(partial: Path, hasher: ContentHasher) -> None:
    with open(partial, "rb") as src:
        while block := src.read(_WRITE_BATCH):
            hasher.update(block)


def _write_and_hash(out: AppendWriter, hasher: ContentHasher, blocks: list[bytes]) -> None:
    for block in blocks:
        out.write(block)
        hasher.update(block)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
