"""Content flow: chunked uploads, one-shot writes, and reads of committed versions.

Order of work (never a transaction across object-store I/O): (1) a short transaction reserves
and holds the chunks, (2) the chunk bytes are stored, (3) a short transaction marks them stored
and/or commits the version. A crash between the steps leaves only unreferenced chunks, which
the collector deletes later; a version is visible only after its chunks are stored.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from meshfs_common import paths
from meshfs_common.errors import (
    BadRequestError,
    HashMismatchError,
    IsADirError,
    NotAFileError,
    NotFoundError,
    PayloadTooLargeError,
    PreconditionFailedError,
    RangeNotSatisfiableError,
    UnavailableError,
    UploadIncompleteError,
)
from meshfs_common.hashing import CHUNK_SIZE, chunk_hash, content_hash_of
from meshfs_common.ids import new_id
from meshfs_common.models import (
    ChangeEvent,
    CommitResult,
    UploadInitRequest,
    UploadInitResponse,
    UploadPartResponse,
)
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.attributes import FileAttributes, check_mode, check_time
from meshfs_server.domain.feed import ChangeFeed
from meshfs_server.domain.namespace import check_precondition, commit_version
from meshfs_server.domain.partial import Patched, chunk_count, expected_chunk_size, patch
from meshfs_server.domain.placement import may_be_inline
from meshfs_server.domain.ports import (
    ContentStore,
    MetadataStore,
    NodeRow,
    QuotaPolicy,
    ReadTx,
    UploadRow,
    VersionRow,
)
from meshfs_server.domain.tree import lookup, to_entry, to_version

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
UPLOAD_TTL = 24 * 3600.0
COLLECTION_WAIT = 10.0


def sent_hold(upload_id: str) -> str:
    """The hold under which an upload through a limited scope records the chunks it sent.

    Such an upload is told every chunk is missing and may commit only chunks it sent itself, so
    it never learns whether the tenant stores some content outside its scope."""
    return f"{upload_id}/sent"


@dataclass(slots=True)
class ByteRange:
    """A satisfiable ``[start, end)`` byte range of a version."""

    start: int
    end: int


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """Parse a single-range ``Range: bytes=`` header (RFC 9110); None means the whole body."""
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None  # unsupported forms are ignored, as RFC 9110 allows
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":
            length = int(last)
            if length <= 0:
                raise RangeNotSatisfiableError(f"empty suffix range for a {size}-byte file")
            return ByteRange(max(0, size - length), size)
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return None
    if start >= size or end <= start:
        raise RangeNotSatisfiableError(
            f"range {header} is outside the {size}-byte file", detail={"size": size}
        )
    return ByteRange(start, min(end, size))


class ContentService:
    """Uploads, one-shot writes and downloads."""

    def __init__(
        self,
        store: MetadataStore,
        content: ContentStore,
        feed: ChangeFeed,
        *,
        max_upload_size: int = 1 << 50,
        quota: QuotaPolicy | None = None,
    ) -> None:
        self.store = store
        self.content = content
        self.feed = feed
        self.max_upload_size = max_upload_size
        self.quota = quota
        """Checked inside the upload-init and commit transactions (None: unlimited)."""

    # --- chunked uploads ------------------------------------------------------------------------

    async def init_upload(
        self, actor: Actor, request: UploadInitRequest, *, if_match: str | None = None,
        if_none_match: bool = False,
    ) -> UploadInitResponse:  # fmt: skip
        """Start an upload; the answer lists the chunks the server does not yet hold."""
        answer, _chunks = await self.begin_upload(
            actor, request, if_match=if_match, if_none_match=if_none_match
        )
        return answer

    async def begin_upload(
        self, actor: Actor, request: UploadInitRequest, *, if_match: str | None = None,
        if_none_match: bool = False,
    ) -> tuple[UploadInitResponse, tuple[str, ...]]:  # fmt: skip
        """:meth:`init_upload`, also returning the upload's whole chunk list (which a partial
        write's request does not spell out)."""
        where = paths.normalise(request.path)
        actor.check_write(where)
        _check_request(request, self.max_upload_size)
        now = time.time()
        patched: Patched | None = None
        async with self.store.write(actor.tenant_id) as tx:
            existing = await lookup(tx, paths.split(where))
            if existing is not None and existing.is_dir:
                raise IsADirError(f"is a directory: {where}")
            if existing is not None and existing.kind != "file":
                raise NotAFileError(f"{where} is a {existing.kind}, not a regular file")
            check_precondition(existing, if_match, if_none_match)
            chunks = tuple(request.chunks)
            if request.base_version is not None:
                base = await _head_version(tx, existing, request.base_version, where)
                patched = patch(base, request.size, request.replace or {})
                chunks = patched.chunks
            if content_hash_of(chunks) != request.content_hash:
                raise BadRequestError("content_hash does not match the chunk list")
            upload = UploadRow(
                upload_id=new_id(), path=where, size=request.size,
                content_hash=request.content_hash, chunks=chunks, created_at=now,
                expires_at=now + UPLOAD_TTL, user_id=actor.user_id,
                base_version=request.base_version,
                reserved=None if patched is None else patched.new_bytes,
            )  # fmt: skip
            if self.quota is not None:
                await self.quota.reserve(tx, actor, upload)
            await tx.insert_upload(upload)
            known: set[str] = set()
            if patched is not None:
                # The base's chunks are the actor's own file's; the zero chunks hold nothing.
                known = set(patched.reused) | set(patched.zeros)
                if not actor.scope.whole_tenant:
                    await tx.hold_chunks(
                        sent_hold(upload.upload_id), sorted(known), upload.expires_at
                    )
            # Through a limited scope, content stored elsewhere in the tenant is not revealed:
            # every other chunk is asked for, and must be sent (see put_part).
            present = await tx.present_chunks(chunks) if actor.scope.whole_tenant else known
        if patched is not None:
            for name, length in patched.zeros.items():
                if name not in present or not actor.scope.whole_tenant:
                    await self.store_chunk(
                        actor.tenant_id, name, bytes(length), rewrite=not actor.scope.whole_tenant
                    )
            present = present | set(patched.zeros)
        missing = [i for i, c in enumerate(upload.chunks) if c not in present]
        answer = UploadInitResponse(
            upload_id=upload.upload_id,
            chunk_size=CHUNK_SIZE,
            missing=missing,
            expires_at=datetime.fromtimestamp(upload.expires_at, UTC),
        )
        return answer, upload.chunks

    async def _upload(self, actor: Actor, upload_id: str) -> UploadRow:
        async with self.store.read(actor.tenant_id) as tx:
            upload = await tx.get_upload(upload_id)
        if upload is None:
            raise NotFoundError(f"no such upload (expired or committed): {upload_id}")
        actor.check_write(upload.path)
        return upload

    async def put_part(
        self, actor: Actor, upload_id: str, index: int, body: AsyncIterator[bytes]
    ) -> UploadPartResponse:
        """Receive one chunk of an upload, verified against its name."""
        upload = await self._upload(actor, upload_id)
        if not 0 <= index < len(upload.chunks):
            raise BadRequestError(f"index must be between 0 and {len(upload.chunks) - 1}")
        expected = upload.chunks[index]
        data = await read_limited(body, CHUNK_SIZE)
        if len(data) != expected_chunk_size(upload.size, index):
            raise HashMismatchError(
                f"chunk {index} must be {expected_chunk_size(upload.size, index)} bytes,"
                f" got {len(data)}"
            )
        if await hash_off_loop(data) != expected:
            raise HashMismatchError(f"chunk {index} does not match its SHA-256 {expected}")
        if actor.scope.whole_tenant:
            await self.store_chunk(actor.tenant_id, expected, data)
            async with self.store.read(actor.tenant_id) as tx:
                present = await tx.present_chunks(upload.chunks)
        else:
            await self.store_chunk(actor.tenant_id, expected, data, rewrite=True)
            async with self.store.write(actor.tenant_id, durable=False) as wtx:
                await wtx.hold_chunks(sent_hold(upload_id), [expected], upload.expires_at)
                present = await wtx.held_chunks(sent_hold(upload_id))
        missing = [i for i, c in enumerate(upload.chunks) if c not in present]
        return UploadPartResponse(upload_id=upload_id, index=index, chunk=expected, missing=missing)

    async def store_chunk(
        self, tenant_id: str, name: str, data: bytes, *, rewrite: bool = False
    ) -> None:
        """Store a chunk the caller holds; waits out a collector that claimed it before the hold.

        The hold means no collector can claim the chunk from now on, so once it is seen not
        being collected, storing it and marking it stored is safe. With *rewrite* the bytes are
        stored even when the chunk already is (for a caller who may not learn whether it was:
        the same work either way, so the answer's timing does not tell).
        """
        deadline = time.monotonic() + COLLECTION_WAIT
        if self._inline(data):
            await self._store_in_database(tenant_id, name, data, rewrite, deadline)
            return
        while True:
            async with self.store.read(tenant_id) as tx:
                state = await tx.chunk_state(name)
            if state == "stored" and not rewrite:
                return
            if state != "collecting":
                break
            await self._wait_for_collector(deadline)
        await self.content.put_bytes(tenant_id, name, data)
        async with self.store.write(tenant_id, durable=False) as tx:
            await tx.mark_stored(name, len(data))

    async def _store_in_database(
        self, tenant_id: str, name: str, data: bytes, rewrite: bool, deadline: float
    ) -> None:
        """Keep a small chunk in its row: checked and stored in one transaction, made durable
        by the commit that references it (the WAL is sequential)."""
        while True:
            async with self.store.write(tenant_id, durable=False) as tx:
                state = await tx.chunk_state(name)
                if state != "collecting":
                    if state == "absent" or rewrite:
                        await tx.mark_stored(name, len(data), data)
                    return
            await self._wait_for_collector(deadline)

    @staticmethod
    def _inline(data: bytes) -> bool:
        """Whether *data*, a chunk, is kept in the metadata database."""
        return may_be_inline(len(data))

    async def commit_upload(
        self, actor: Actor, upload_id: str, *, if_match: str | None = None,
        if_none_match: bool = False,
    ) -> CommitResult:  # fmt: skip
        """Verify an upload is complete and make it the file's head version."""
        upload = await self._upload(actor, upload_id)
        events: list[ChangeEvent] = []
        async with self.store.write(actor.tenant_id) as tx:
            if await tx.get_upload(upload_id) is None:
                raise NotFoundError(f"no such upload (expired or committed): {upload_id}")
            sizes = await tx.chunk_sizes(upload.chunks)
            if not actor.scope.whole_tenant:  # only what this upload sent counts (see put_part)
                sent = await tx.held_chunks(sent_hold(upload_id))
                sizes = {c: z for c, z in sizes.items() if c in sent}
            missing = [i for i, c in enumerate(upload.chunks) if c not in sizes]
            if missing:
                raise UploadIncompleteError(
                    f"{len(missing)} chunk(s) still missing", detail={"missing": missing}
                )
            if sum(sizes[c] for c in upload.chunks) != upload.size:
                raise HashMismatchError("stored chunks do not add up to the declared size")
            reused: tuple[str, ...] = ()
            if upload.base_version is not None:
                current = await lookup(tx, paths.split(upload.path))
                reused = (await _head_version(tx, current, upload.base_version, upload.path)).chunks
            if self.quota is not None:
                await self.quota.commit(tx, actor, upload.chunks, reused=reused)
            done = await commit_version(
                tx, actor, upload.path, size=upload.size, content_hash=upload.content_hash,
                chunks=upload.chunks, events=events, if_match=if_match,
                if_none_match=if_none_match,
            )  # fmt: skip
            await tx.delete_upload(upload_id)
            await tx.release_holds(sent_hold(upload_id))
        await self._publish(actor, events)
        return self._result(done.node, done.version, upload.path, done.created)

    # --- one-shot writes ------------------------------------------------------------------------

    async def write(
        self,
        actor: Actor,
        path: str,
        body: AsyncIterator[bytes],
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
        mode: int | None = None,
        mtime_ns: int | None = None,
    ) -> CommitResult:
        """Write a whole file from a byte stream in one request (any size, constant memory).

        A new file gets *mode* (else 0o644); a new version sets the file's mtime to *mtime_ns*
        (else the commit's time). Content identical to the head changes nothing."""
        where = paths.normalise(path)
        actor.check_write(where)
        attrs = FileAttributes(
            mode=None if mode is None else check_mode(mode),
            mtime_ns=None if mtime_ns is None else check_time(mtime_ns, "mtime_ns"),
        )
        blocks = chunked(body, CHUNK_SIZE)
        first = await anext(blocks, b"")
        second = await anext(blocks, None)
        if second is None:
            return await self._write_small(actor, where, first, if_match, if_none_match, attrs)
        return await self._write_stream(
            actor, where, _prepend((first, second), blocks), if_match, if_none_match, attrs
        )

    async def _write_small(
        self,
        actor: Actor,
        where: str,
        data: bytes,
        if_match: str | None,
        if_none_match: bool,
        attrs: FileAttributes,
    ) -> CommitResult:
        """One chunk at most: store it, then one transaction re-checks it and commits.

        A chunk kept in the metadata database (see :mod:`.placement`) is stored by that
        transaction: one durable write for the whole file.

        No hold is needed: the commit transaction re-reads the chunk's state and the tenant's
        collection epoch. If a collector claimed or deleted content since the check (including
        an object this write had just stored, swept as an orphan), the commit is abandoned and
        retried, storing the chunk again; a chunk row created meanwhile is younger than the
        collector's grace period, so it cannot have been claimed.
        """
        name = await hash_off_loop(data) if data else None
        chunks = (name,) if name else ()
        # Through a limited scope the bytes are stored even if the tenant has them (the timing
        # of the answer must not tell whether it had).
        rewrite = not actor.scope.whole_tenant
        inline = self._inline(data)
        deadline = time.monotonic() + COLLECTION_WAIT
        events: list[ChangeEvent] = []
        while True:
            wrote = False
            epoch = 0
            if name is not None and not inline:
                async with self.store.read(actor.tenant_id) as rtx:
                    state = await rtx.chunk_state(name)
                    epoch = await rtx.collection_epoch()
                if state == "collecting":
                    await self._wait_for_collector(deadline)
                    continue
                if state == "absent" or rewrite:
                    await self.content.put_bytes(actor.tenant_id, name, data)
                    wrote = True
            try:
                async with self.store.write(actor.tenant_id) as tx:
                    if name is not None and inline:  # the content goes in with the commit
                        now = await tx.chunk_state(name)
                        if now == "collecting":
                            raise _Collected
                        if now == "absent" or rewrite:
                            await tx.mark_stored(name, len(data), data)
                    elif name is not None:
                        now = await tx.chunk_state(name)
                        swept = wrote and await tx.collection_epoch() != epoch
                        if now == "collecting" or (now == "absent" and not wrote) or swept:
                            raise _Collected
                        if now == "absent":
                            await tx.mark_stored(name, len(data))
                    if self.quota is not None:
                        await self.quota.commit(tx, actor, chunks)
                    done = await commit_version(
                        tx, actor, where, size=len(data), content_hash=content_hash_of(chunks),
                        chunks=chunks, events=events, if_match=if_match,
                        if_none_match=if_none_match, mode=attrs.mode, mtime_ns=attrs.mtime_ns,
                    )  # fmt: skip
            except _Collected:
                events.clear()
                await self._wait_for_collector(deadline)
                continue
            break
        await self._publish(actor, events)
        return self._result(done.node, done.version, where, done.created)

    @staticmethod
    async def _wait_for_collector(deadline: float) -> None:
        if time.monotonic() > deadline:
            raise UnavailableError("content is being garbage-collected; retry shortly")
        await asyncio.sleep(0.05)

    async def _write_stream(
        self,
        actor: Actor,
        where: str,
        blocks: AsyncIterator[bytes],
        if_match: str | None,
        if_none_match: bool,
        attrs: FileAttributes,
    ) -> CommitResult:
        """Several chunks: hold each before storing it, commit once at the end."""
        hold_id = new_id()
        names: list[str] = []
        total = 0
        events: list[ChangeEvent] = []
        try:
            async for block in blocks:
                total += len(block)
                if total > self.max_upload_size:
                    raise PayloadTooLargeError(f"files are limited to {self.max_upload_size} bytes")
                name = await hash_off_loop(block)
                names.append(name)
                async with self.store.write(actor.tenant_id, durable=False) as tx:
                    await tx.hold_chunks(hold_id, [name], time.time() + UPLOAD_TTL)
                await self.store_chunk(
                    actor.tenant_id, name, block, rewrite=not actor.scope.whole_tenant
                )
            chunks = tuple(names)
            async with self.store.write(actor.tenant_id) as tx:
                if self.quota is not None:
                    await self.quota.commit(tx, actor, chunks)
                done = await commit_version(
                    tx, actor, where, size=total, content_hash=content_hash_of(chunks),
                    chunks=chunks, events=events, if_match=if_match, if_none_match=if_none_match,
                    mode=attrs.mode, mtime_ns=attrs.mtime_ns,
                )  # fmt: skip
                await tx.release_holds(hold_id)
        except BaseException:
            if names:
                async with self.store.write(actor.tenant_id, durable=False) as tx:
                    await tx.release_holds(hold_id)
            raise
        await self._publish(actor, events)
        return self._result(done.node, done.version, where, done.created)

    # --- reads ----------------------------------------------------------------------------------

    async def read(
        self, tenant_id: str, version: VersionRow, byte_range: ByteRange | None = None
    ) -> AsyncGenerator[bytes, None]:
        """Stream a version's bytes (or a range of them) from the content store."""
        start, end = (0, version.size) if byte_range is None else (byte_range.start, byte_range.end)
        first = start // CHUNK_SIZE
        for index in range(first, chunk_count(version.size)):
            chunk_start = index * CHUNK_SIZE
            if chunk_start >= end:
                break
            lo = max(start - chunk_start, 0)
            hi = min(end - chunk_start, CHUNK_SIZE)
            name = version.chunks[index]
            if may_be_inline(expected_chunk_size(version.size, index)):
                async with self.store.read(tenant_id) as tx:
                    data = await tx.chunk_data(name)
                if data is not None:
                    yield data[lo:hi]
                    continue
            async for block in self.content.open(tenant_id, name, start=lo, end=hi):
                yield block

    async def open_read(
        self, tenant_id: str, version: VersionRow, byte_range: ByteRange | None = None
    ) -> AsyncIterator[bytes]:
        """:meth:`read`, with the content opened and its first block fetched before returning.

        A store that cannot serve the version (down, refusing access, content missing) fails
        here, while the caller can still answer with a clean error instead of a started body.
        """
        blocks = self.read(tenant_id, version, byte_range)
        try:
            first = await anext(blocks, b"")
        except BaseException:
            await blocks.aclose()
            raise
        return _first_then_rest(first, blocks)

    # --- helpers --------------------------------------------------------------------------------

    async def _publish(self, actor: Actor, events: list[ChangeEvent]) -> None:
        if events:
            await self.feed.publish(actor.tenant_id, events)

    @staticmethod
    def _result(node: NodeRow, version: VersionRow, path: str, created: bool) -> CommitResult:
        return CommitResult(
            entry=to_entry(node, path), version=to_version(version), created_version=created
        )


def _check_request(request: UploadInitRequest, max_size: int) -> None:
    """What an upload init can be refused for before any lookup (a 400 or 413)."""
    if request.size < 0:
        raise BadRequestError("size must be >= 0")
    if request.size > max_size:
        raise PayloadTooLargeError(f"files are limited to {max_size} bytes")
    if request.base_version is None:
        if request.replace:
            raise BadRequestError("replace needs base_version (the head version it changes)")
        if len(request.chunks) != chunk_count(request.size):
            raise BadRequestError(
                f"a {request.size}-byte file has {chunk_count(request.size)} chunks of "
                f"{CHUNK_SIZE} bytes, not {len(request.chunks)}"
            )
    elif request.chunks:
        raise BadRequestError(
            "a partial write (base_version) names only its changed chunks, in replace"
        )
    names = [*request.chunks, *(request.replace or {}).values()]
    if not all(_HEX64.match(c) for c in names):
        raise BadRequestError("chunk names must be 64 lowercase hex digits (SHA-256)")


async def _head_version(
    tx: ReadTx, node: NodeRow | None, base_version: str, path: str
) -> VersionRow:
    """The version a partial write is based on, which must be the head of the file at *path*."""
    if node is None:
        raise NotFoundError(f"no such file to write a part of: {path}")
    if node.is_dir:
        raise IsADirError(f"is a directory: {path}")
    if node.head_version_id != base_version:
        raise PreconditionFailedError(
            f"the head of {path} is {node.head_version_id}, not {base_version} (base_version)",
            detail={"current": node.head_version_id},
        )
    base = await tx.get_version(base_version)
    assert base is not None, "a file's head version exists"
    return base


OFF_LOOP_HASH = 256 * 1024


async def hash_off_loop(data: bytes) -> str:
    """The chunk name of *data*; large chunks are hashed in a thread (hashlib releases the GIL),
    so receiving other requests goes on meanwhile."""
    if len(data) < OFF_LOOP_HASH:
        return chunk_hash(data)
    return await asyncio.to_thread(chunk_hash, data)


class _Collected(Exception):
    """A chunk disappeared into garbage collection during a write; retry it."""


async def _prepend(head: tuple[bytes, ...], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for block in head:
        yield block
    async for block in rest:
        yield block


async def _first_then_rest(first: bytes, rest: AsyncGenerator[bytes, None]) -> AsyncIterator[bytes]:
    try:
        if first:
            yield first
        async for block in rest:
            yield block
    finally:
        await rest.aclose()


async def read_limited(body: AsyncIterator[bytes], limit: int) -> bytes:
    """Read a whole body of at most *limit* bytes."""
    parts: list[bytes] = []
    size = 0
    async for block in body:
        size += len(block)
        if size > limit:
            raise PayloadTooLargeError(f"a part is at most {limit} bytes")
        parts.append(block)
    return b"".join(parts)


async def chunked(body: AsyncIterator[bytes], size: int) -> AsyncIterator[bytes]:
    """Re-cut a byte stream into blocks of exactly *size* bytes (the last may be shorter)."""
    buffer = bytearray()
    async for block in body:
        buffer += block
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)
