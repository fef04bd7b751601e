"""Bulk transfers of :class:`~meshfs_client.MeshFSClient`: many small files per request.

Files of at most :data:`~meshfs_common.bulk.BULK_MAX_FILE` bytes travel as tar archives,
:data:`BATCH_FILES` files (or :data:`BATCH_BYTES` bytes) per request, :data:`IN_FLIGHT`
requests at a time; larger files go through the chunked upload or a download of their own.
The server charges a bulk request per file and per byte against the rate limit; when it stops
a batch there (``stopped`` in its answer) the rest is sent again after the wait it names.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from meshfs_client._posix import PosixMethods
from meshfs_client._transport import Reply
from meshfs_client._upload import Progress
from meshfs_common import paths
from meshfs_common.bulk import (
    BULK_MAX_FILE,
    PAX_CONTENT_HASH,
    PAX_ERROR,
    PAX_MESSAGE,
    PAX_NODE_ID,
    PAX_VERSION_ID,
    BulkFailure,
    BulkReadRequest,
    BulkWriteResult,
    BulkWritten,
)
from meshfs_common.errors import (
    AlreadyExistsError,
    HashMismatchError,
    MeshFSError,
    PreconditionFailedError,
    RateLimitedError,
    error_from_envelope,
)
from meshfs_common.hashing import hash_bytes
from meshfs_common.models import Entry
from meshfs_common.tarstream import END, TarReader, file_member, member_header

BulkSource = bytes | str | os.PathLike[str]
"""What :meth:`BulkMethods.write_many` writes: content, or a local file's path."""

BATCH_FILES = 1000
BATCH_BYTES = 16 * 1024 * 1024
IN_FLIGHT = 2
"""Bulk writes at once (one is being committed while the next is read and sent)."""
READS_IN_FLIGHT = 4
"""Bulk reads at once (the server answers them side by side)."""
LARGE_CONCURRENCY = 4
TAR = "application/x-tar"
PARTIAL_SUFFIX = ".meshfs-bulk"


@dataclass(frozen=True, slots=True)
class BulkMember:
    """A file for :meth:`BulkMethods.write_many` with the attributes it is to have: *mode*
    (permission bits, 0..0o7777) and *mtime_ns* (its modification time, exact to the
    nanosecond). The server gives them to the file it writes, new or existing, as ``tar -p``
    extracts. A member that gives only one of them gets the default of the other: mode 0644,
    or the time it is sent. A plain ``(path, source)`` pair keeps the server's defaults (a new
    file 0644, an existing one its mode; the time of the write)."""

    path: str
    source: BulkSource
    mode: int | None = None
    mtime_ns: int | None = None

    @property
    def has_attributes(self) -> bool:
        return self.mode is not None or self.mtime_ns is not None


@dataclass(frozen=True, slots=True)
class BulkFile:
    """One file of a bulk read: its content at one version, or why it could not be read."""

    path: str
    data: bytes | None = None
    node_id: str | None = None
    version_id: str | None = None
    content_hash: str | None = None
    error: MeshFSError | None = None


@dataclass(slots=True)
class _Pacing:
    """Shared by the batches of one ``write_many``: whether the rate limit stopped one."""

    limited: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(slots=True)
class _Out:
    name: str  # the member name: the remote path without its leading '/'
    path: str
    source: BulkSource | None  # None: a directory
    size: int = 0
    mode: int | None = None
    mtime_ns: int | None = None
    attributes: bool = False  # sent in a request that sets attributes (see BulkMember)


class BulkMethods(PosixMethods):
    """``write_many``, ``read_many``, ``download_many``."""

    async def write_many(
        self,
        files: Iterable[tuple[str, BulkSource] | BulkMember],
        *,
        directories: Iterable[str] = (),
        atomic: bool = False,
        if_absent: bool = False,
        progress: Progress | None = None,
    ) -> BulkWriteResult:
        """Write many files: ``(remote path, content or local path)`` pairs or
        :class:`BulkMember` (which also gives a file's mode and mtime), and *directories* to
        create (with their parents).

        Small files go in bulk requests, larger ones through the chunked upload. Each file
        becomes its own version (content equal to the head: none). A file that cannot be
        written is listed in ``failed`` with its error while the rest land; with *atomic*
        (small files only, one request) nothing lands unless everything does, and the first
        failure is raised. With *if_absent* nothing is overwritten: a file whose remote path
        already exists (as anything) is not written and is listed in ``failed`` with error
        ``already_exists`` (decided by the server in the transaction that writes it, so a file
        created meanwhile is never replaced; with *atomic*, raised). *progress* is called with
        the bytes of each batch that lands. Members carrying attributes go in requests of their
        own (``attributes=true``); a large one is uploaded, then given them.
        """
        items = [_Out(p.lstrip("/") or "/", p, None) for p in map(paths.normalise, directories)]
        large: list[BulkMember] = []
        members = [
            BulkMember(paths.normalise(f.path), f.source, f.mode, f.mtime_ns)
            if isinstance(f, BulkMember) else BulkMember(paths.normalise(f[0]), f[1])
            for f in files
        ]  # fmt: skip
        if atomic and len({m.has_attributes for m in members}) > 1:
            raise ValueError("an atomic bulk write gives attributes to all its files or to none")
        sizes = await asyncio.to_thread(_sizes_of, [member.source for member in members])
        for member, size in zip(members, sizes, strict=True):
            where = member.path
            if size > BULK_MAX_FILE:
                if atomic:
                    raise ValueError(
                        f"{where} is over {BULK_MAX_FILE} bytes: atomic bulk writes take small"
                        " files only"
                    )
                large.append(member)
            else:
                items.append(_Out(
                    where.lstrip("/"), where, member.source, size, member.mode, member.mtime_ns,
                    member.has_attributes,
                ))  # fmt: skip
        result = BulkWriteResult(written=[], failed=[])
        if atomic:
            batches = [items]
        else:  # a request sets attributes for all its files or for none
            batches = _batches([i for i in items if not i.attributes])
            batches += _batches([i for i in items if i.attributes])
        limit = asyncio.Semaphore(IN_FLIGHT)
        pacing = _Pacing()

        async def send(batch: list[_Out]) -> None:
            async with limit:
                await self._write_batch(
                    batch,
                    result,
                    atomic=atomic,
                    if_absent=if_absent,
                    progress=progress,
                    pacing=pacing,
                )

        async def upload(member: BulkMember) -> None:
            remote, source = member.path, member.source
            async with big:
                try:
                    done = await self.upload(
                        remote, source, if_none_match=if_absent, progress=progress,
                        mtime_ns=member.mtime_ns,
                    )  # fmt: skip
                except PreconditionFailedError:
                    # If-None-Match refused it: the path exists, as a bulk write reports it.
                    exists = AlreadyExistsError(f"{remote} already exists (not overwritten)")
                    result.failed.append(_failed(remote.lstrip("/"), remote, exists))
                    return
                except MeshFSError as exc:
                    result.failed.append(_failed(remote.lstrip("/"), remote, exc))
                    return
                if member.has_attributes:
                    try:
                        await self.set_attributes(
                            remote, mode=member.mode, mtime_ns=member.mtime_ns,
                            if_match=done.version.version_id,
                        )  # fmt: skip
                    except MeshFSError as exc:
                        # The content landed, its attributes did not (the file changed
                        # meanwhile, or a mode out of range): reported with that error.
                        result.failed.append(_failed(remote.lstrip("/"), remote, exc))
                        return
            result.written.append(BulkWritten(
                name=remote.lstrip("/"), path=done.entry.path, kind="file",
                node_id=done.entry.node_id, version_id=done.version.version_id,
                size=done.version.size, content_hash=done.version.content_hash,
                created_version=done.created_version,
            ))  # fmt: skip
            result.files += 1
            result.bytes += done.version.size

        big = asyncio.Semaphore(LARGE_CONCURRENCY)
        try:
            async with asyncio.TaskGroup() as group:
                for batch in batches:
                    if batch:
                        group.create_task(send(batch))
                for member in large:
                    group.create_task(upload(member))
        except BaseExceptionGroup as failed:
            raise _first(failed) from None
        return result

    async def _write_batch(
        self, batch: list[_Out], result: BulkWriteResult, *, atomic: bool, if_absent: bool,
        progress: Progress | None, pacing: _Pacing,
    ) -> None:  # fmt: skip
        pending = batch
        attributes = any(item.attributes for item in batch)
        while pending:
            body, unreadable = await asyncio.to_thread(_archive_of, pending)
            result.failed.extend(unreadable)
            # Once the rate limit has stopped a batch, batches go one at a time: side by side
            # each would spend part of the tokens that come back and be refused again.
            async with pacing.lock if pacing.limited else contextlib.nullcontext():
                reply = await self._t.call(
                    "POST", "/files/bulk", BulkWriteResult,
                    params={"path": "/", "atomic": atomic or None,
                            "if_absent": if_absent or None, "attributes": attributes or None},
                    data=body,
                    headers={"Content-Type": TAR}, idempotent=True,
                )  # fmt: skip
            stopped = reply.stopped
            retried = {f.name for f in reply.failed if stopped and f.error == stopped.error}
            result.written.extend(reply.written)
            result.failed.extend(f for f in reply.failed if f.name not in retried)
            result.files += reply.files
            result.bytes += reply.bytes
            if progress is not None and reply.bytes:
                progress(reply.bytes)
            if stopped is None:
                return
            if stopped.error != "rate_limited":
                raise error_from_envelope(
                    400, {"error": stopped.error, "error_description": stopped.message}
                )
            done = {w.name for w in reply.written} | {f.name for f in reply.failed} - retried
            done |= {f.name for f in unreadable}
            pending = [item for item in pending if item.name not in done]
            # The server's rate limit: wait as it says (telling who listens), then send the rest.
            pacing.limited = True
            wait = stopped.retry_after or 1.0
            self._t.tell_waiting(RateLimitedError(stopped.message, retry_after=wait), wait)
            await asyncio.sleep(wait)

    async def read_many(self, files: Iterable[str]) -> AsyncIterator[BulkFile]:
        """The content of many small files, :data:`BATCH_FILES` per request, in the order
        given; a file that cannot be read comes with its ``error`` (the rest are still read).

        Each request's answer is held in memory, so this is for small files (use
        :meth:`download` for large ones); contents are checked against their hashes.
        """
        wanted = [paths.normalise(p) for p in files]
        for start in range(0, len(wanted), BATCH_FILES):
            batch = wanted[start : start + BATCH_FILES]
            reply = await self._t.request(
                "POST", "/files/bulk/read", params={"meta": True},
                json=BulkReadRequest(paths=batch), idempotent=True,
            )  # fmt: skip
            async for found in _files_of(reply):
                yield found

    async def download_many(
        self, files: Iterable[tuple[Entry, str | os.PathLike[str]]], *,
        progress: Progress | None = None,
    ) -> list[BulkFile]:  # fmt: skip
        """Download many files (``(remote entry, local path)`` pairs; parent directories are
        created): small ones in bulk, larger ones one by one. Each local file is replaced
        whole (written aside, then renamed); the answer lists every file, without its data,
        and those that failed with their ``error``."""
        small: dict[str, list[Path]] = {}
        large: list[tuple[Entry, Path]] = []
        for entry, local in files:
            if entry.size > BULK_MAX_FILE:
                large.append((entry, Path(local)))
            else:
                small.setdefault(entry.path, []).append(Path(local))
        out: list[BulkFile] = []
        names = list(small)
        limit = asyncio.Semaphore(READS_IN_FLIGHT)

        async def fetch(batch: list[str]) -> None:
            async with limit:
                got = [found async for found in self.read_many(batch)]
            placed = await asyncio.to_thread(_place, got, small)
            out.extend(placed)
            if progress is not None:
                progress(sum(len(f.data or b"") for f in got))

        async def one(entry: Entry, local: Path) -> None:
            async with big:
                try:
                    await asyncio.to_thread(local.parent.mkdir, parents=True, exist_ok=True)
                    info = await self.download_to(entry.path, local, progress=progress)
                except MeshFSError as exc:
                    out.append(BulkFile(entry.path, error=exc))
                    return
            found = BulkFile(entry.path, node_id=entry.node_id, version_id=info.version_id,
                             content_hash=info.content_hash)  # fmt: skip
            out.append(found)

        big = asyncio.Semaphore(LARGE_CONCURRENCY)
        try:
            async with asyncio.TaskGroup() as group:
                for start in range(0, len(names), BATCH_FILES):
                    group.create_task(fetch(names[start : start + BATCH_FILES]))
                for entry, local in large:
                    group.create_task(one(entry, local))
        except BaseExceptionGroup as failed:
            raise _first(failed) from None
        return out


def _sizes_of(sources: Sequence[BulkSource]) -> list[int]:
    """The size of each source (local files stat'ed here, in one thread hand-off for all)."""
    sizes: list[int] = []
    for source in sources:
        if isinstance(source, bytes):
            sizes.append(len(source))
            continue
        try:
            sizes.append(os.stat(source).st_size)
        except OSError:
            sizes.append(0)  # reported by name when it is read
    return sizes


def _batches(items: Sequence[_Out]) -> list[list[_Out]]:
    batches: list[list[_Out]] = [[]]
    size = 0
    for item in items:
        if len(batches[-1]) >= BATCH_FILES or size + item.size > BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(item)
        size += item.size
    return batches


def _archive_of(items: Sequence[_Out]) -> tuple[bytes, list[BulkFailure]]:
    """The tar of *items* (local files read here), and the files that could not be read."""
    parts: list[bytes] = []
    unreadable: list[BulkFailure] = []
    for item in items:
        if item.source is None:
            parts.append(member_header(item.name, kind="dir"))
            continue
        if isinstance(item.source, bytes):
            data = item.source
        else:
            try:
                data = _read_small(item.source, item.size)
            except OSError as exc:
                unreadable.append(BulkFailure(
                    name=item.name, path=item.path, error="bad_request",
                    message=f"cannot read {os.fspath(item.source)}: {exc.strerror or exc}",
                ))  # fmt: skip
                continue
        if item.attributes:
            mtime_ns = time.time_ns() if item.mtime_ns is None else item.mtime_ns
            parts.append(file_member(item.name, data, mode=item.mode, mtime_ns=mtime_ns))
        else:
            parts.append(file_member(item.name, data))
    parts.append(END)
    return b"".join(parts), unreadable


def _read_small(source: str | os.PathLike[str], size: int) -> bytes:
    """A small file's content: up to :data:`BULK_MAX_FILE` + 1 bytes (one more than bulk
    writes take, so a file that grew since it was sized is refused by name), read with as few
    calls as its size allows."""
    fd = os.open(source, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        data = os.read(fd, min(size, BULK_MAX_FILE) + 1)
        if len(data) == size:  # fewer bytes than asked for: the end of a regular file
            return data
        # Shorter or longer than it was sized (changed meanwhile): read on to the end.
        parts = [data]
        total = len(data)
        while total <= BULK_MAX_FILE and (more := os.read(fd, BULK_MAX_FILE + 1 - total)):
            parts.append(more)
            total += len(more)
        return b"".join(parts)
    finally:
        os.close(fd)


async def _one_block(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def _files_of(reply: Reply) -> AsyncIterator[BulkFile]:
    """The members of a bulk read's answer (``meta=true``), their content checked."""
    reader = TarReader(_one_block(reply.body))
    async for member in reader:
        path = "/" + member.name.lstrip("/")
        if PAX_ERROR in member.pax:
            error = error_from_envelope(
                400, {"error": member.pax[PAX_ERROR],
                      "error_description": member.pax.get(PAX_MESSAGE, "")},
            )  # fmt: skip
            yield BulkFile(path, error=error)
            continue
        if member.kind != "file":
            continue
        data = await reader.read_data()
        expected = member.pax.get(PAX_CONTENT_HASH)
        if expected is not None and hash_bytes(data).content_hash != expected:
            yield BulkFile(path, error=HashMismatchError(f"{path}: content does not match"))
            continue
        yield BulkFile(
            path, data, node_id=member.pax.get(PAX_NODE_ID),
            version_id=member.pax.get(PAX_VERSION_ID), content_hash=expected,
        )  # fmt: skip


def _place(got: list[BulkFile], targets: dict[str, list[Path]]) -> list[BulkFile]:
    """Write each file read to its local paths (aside, then renamed); the data is dropped."""
    out: list[BulkFile] = []
    made: set[Path] = set()  # directories known to exist (one mkdir each, not one per file)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
    for found in got:
        if found.error is None and found.data is not None:
            for local in targets.get(found.path, ()):
                if local.parent not in made:
                    local.parent.mkdir(parents=True, exist_ok=True)
                    made.add(local.parent)
                aside = os.path.join(local.parent, f".{local.name}{PARTIAL_SUFFIX}")
                fd = os.open(aside, flags, 0o666)
                try:
                    view = memoryview(found.data)
                    while view:
                        view = view[os.write(fd, view) :]
                finally:
                    os.close(fd)
                os.replace(aside, local)
        out.append(BulkFile(found.path, None, found.node_id, found.version_id,
                            found.content_hash, found.error))  # fmt: skip
    return out


def _failed(name: str, path: str, exc: MeshFSError) -> BulkFailure:
    return BulkFailure(name=name, path=path, error=exc.code, message=exc.message)


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first error of a task group's failure, unwrapped (the caller sees what failed)."""
    found: BaseException = group
    while isinstance(found, BaseExceptionGroup):
        found = found.exceptions[0]
    return found
