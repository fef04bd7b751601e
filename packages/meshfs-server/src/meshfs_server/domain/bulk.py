"""Bulk writes: many small files from one stream, committed in batches.

Members arrive one by one (the route decodes a tar archive). Each is checked on its own - its
name against the path rules and the actor's scope, its kind (regular files and directories),
its size (at most :data:`~meshfs_common.bulk.BULK_MAX_FILE`) - and a member that fails is
reported by name with its error while the rest go on. Good members gather into a batch of at
most :data:`BATCH_FILES` files or :data:`BATCH_BYTES` bytes, which then:

1. is charged to the tenant's :class:`BulkBudget` (per file and per byte, see
   :mod:`meshfs_server.policy.bulk_budget`); over the budget the write stops there, and the
   members of the batch are reported ``rate_limited``;
2. has its chunks held (one short transaction), so no collector can claim them, and stored
   outside any transaction (the absent ones; through a limited scope, all of them, as every
   write through a scope does); a chunk a collector claimed before the hold is waited out;
3. is committed in one transaction, which also marks the new chunks stored: per file the
   quota check and a new head version with its
   feed event (content equal to the head: no version), per directory ``mkdir -p``. A member
   whose path conflicts (a file where a directory is) or that does not fit the quota fails
   alone; nothing of it was written, since both checks come before any change.

With ``atomic`` the write is all or nothing: the first failing member fails the request with
its error (naming it), and every member is committed in one transaction at the end.

With ``if_absent`` nothing is overwritten: a file member whose path already exists (as
anything: a file, a directory, a link) fails alone with ``already_exists`` - or, with
``atomic``, fails the request - decided inside the commit's transaction, so a file created
meanwhile by another writer is never replaced. A directory member that already is a directory
is left as it is (there is nothing to overwrite).

With ``attributes`` each file member brings its permission bits and modification time (as
``tar -p`` extracts): every file written takes the member's mode - a new file is created with
it, an existing one is changed to it (the ``attributes`` event after its ``write`` event) - and
the member's mtime, to the nanosecond. A file whose content is already the member's gets no
new version, but its mode and mtime become the member's all the same (one ``attributes``
event; nothing when they already are; with ``if_absent`` such a file is left entirely as it
is). Without it a new file is 0644, an existing one keeps its mode, and the mtime is the
commit's time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from meshfs_common import paths
from meshfs_common.bulk import (
    BULK_MAX_FILE,
    BulkFailure,
    BulkStop,
    BulkWriteResult,
    BulkWritten,
)
from meshfs_common.errors import (
    AlreadyExistsError,
    BadRequestError,
    ConflictError,
    ForbiddenError,
    MeshFSError,
    NotFoundError,
    PayloadTooLargeError,
    QuotaExceededError,
    RateLimitedError,
    ReadOnlyError,
)
from meshfs_common.hashing import content_hash_of
from meshfs_common.ids import new_id
from meshfs_common.models import ChangeEvent
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.attributes import apply, check_mode, check_time, now_ns
from meshfs_server.domain.content import UPLOAD_TTL, ContentService, hash_off_loop
from meshfs_server.domain.namespace import commit_version
from meshfs_server.domain.placement import may_be_inline
from meshfs_server.domain.ports import NewEvent, NodeRow, ReadTx, WriteTx
from meshfs_server.domain.tree import ensure_dirs, lookup, not_a_directory

BATCH_FILES = 500
BATCH_BYTES = 16 * 1024 * 1024
STORE_CONCURRENCY = 16
#: Errors that belong to one member: it fails alone and the batch goes on.
MEMBER_ERRORS = (
    BadRequestError, ConflictError, ForbiddenError, NotFoundError, PayloadTooLargeError,
    QuotaExceededError,
)  # fmt: skip


class BulkBudget(Protocol):
    """What bulk transfers cost a tenant's rate limit."""

    async def charge(self, actor: Actor, *, files: int, nbytes: int) -> None:
        """Spend what *files* more files of *nbytes* bytes cost (:class:`RateLimitedError`
        when the tenant's budget cannot pay it)."""


class Unmetered:
    """No rate limit (servers without accounts, and the domain's tests)."""

    async def charge(self, actor: Actor, *, files: int, nbytes: int) -> None:
        return None


@dataclass(slots=True)
class Incoming:
    """One member of a bulk write as the route read it."""

    name: str
    kind: Literal["file", "dir", "other"]
    size: int
    data: bytes | None = None
    """The file's bytes (None for directories, and for files not read: too large)."""
    type_name: str = "file"
    mode: int | None = None
    """The permission bits to give the file (None: the defaults, see the module notes)."""
    mtime_ns: int | None = None
    """The file's modification time (None: the commit's time)."""


@dataclass(slots=True)
class _Item:
    name: str
    path: str
    kind: Literal["file", "dir"]
    data: bytes = b""
    chunk: str | None = None
    mode: int | None = None
    mtime_ns: int | None = None


@dataclass(slots=True)
class _Run:
    """The state of one bulk write."""

    actor: Actor
    root: str
    atomic: bool
    budget: BulkBudget
    if_absent: bool = False
    result: BulkWriteResult = field(default_factory=lambda: BulkWriteResult(written=[], failed=[]))
    hold_id: str = field(default_factory=new_id)
    held: bool = False
    unmarked: dict[str, int] = field(default_factory=dict)
    """Chunks stored and held, to be marked stored by the commit (name -> size)."""
    inline: dict[str, bytes] = field(default_factory=dict)
    """Small chunks held, to be kept in the database by the commit (see domain.placement)."""


def member_path(root: str, name: str) -> str:
    """The MeshFS path of archive member *name* written under *root*: ``.`` and empty names
    are dropped (``./a/`` is ``a``), anything else follows the path rules."""
    names = [part for part in name.split("/") if part not in ("", ".")]
    return paths.normalise(paths.join([*paths.split(root), *names]))


class BulkWrites:
    """Many small files from one stream (see the module notes)."""

    def __init__(self, content: ContentService) -> None:
        self.content = content

    async def write(
        self,
        actor: Actor,
        root: str,
        members: AsyncIterator[Incoming],
        *,
        atomic: bool = False,
        budget: BulkBudget | None = None,
        if_absent: bool = False,
    ) -> BulkWriteResult:
        """Write every member of *members* under directory *root* (see the module notes);
        with *if_absent* a file member whose path exists is refused, never overwritten."""
        if not actor.can_write:
            raise ReadOnlyError("this token or role is read-only")
        root = paths.normalise(root)
        prefix = actor.scope.prefix
        if not (actor.scope.contains(root) or paths.is_within(prefix, root)):
            # Nothing under root lies within the scope: refused as a whole.
            raise ForbiddenError(f"this token is limited to {prefix}")
        run = _Run(actor, root, atomic, budget or Unmetered(), if_absent)
        batch: list[_Item] = []
        size = 0
        everything: list[_Item] = []
        try:
            try:
                async for member in members:
                    item = await self._admit(run, member)
                    if item is None:
                        continue
                    batch.append(item)
                    size += len(item.data)
                    if len(batch) >= BATCH_FILES or size >= BATCH_BYTES:
                        await self._flush(run, batch, everything)
                        batch, size = [], 0
                if batch:
                    await self._flush(run, batch, everything)
                    batch = []
                if atomic and everything:
                    await self._commit(run, everything)
            except (RateLimitedError, BadRequestError, PayloadTooLargeError) as exc:
                # Over the budget, or the stream cannot be read on (malformed, over the body
                # cap, the client went away): stop here. What was
                # committed stays; the batch in hand did not land.
                if atomic or not (run.result.written or run.result.failed):
                    raise
                for item in batch:
                    run.result.failed.append(_failure(item.name, item.path, exc))
                run.result.stopped = BulkStop(
                    error=exc.code, message=exc.message,
                    retry_after=getattr(exc, "retry_after", None),
                )  # fmt: skip
        finally:
            if run.held:
                async with self.content.store.write(actor.tenant_id, durable=False) as tx:
                    await tx.release_holds(run.hold_id)
        return run.result

    async def _admit(self, run: _Run, member: Incoming) -> _Item | None:
        """Check one member; a failure is recorded (or raised, when atomic) and gives None."""
        path: str | None = None
        try:
            path = member_path(run.root, member.name)
            run.actor.check_write(path)
            if member.kind == "other":
                raise BadRequestError(
                    f"only regular files and directories can be written in bulk, not a"
                    f" {member.type_name}"
                )
            if member.kind == "dir":
                return _Item(member.name, path, "dir")
            if member.size > BULK_MAX_FILE or member.data is None:
                raise PayloadTooLargeError(
                    f"bulk writes take files of at most {BULK_MAX_FILE} bytes; upload this"
                    f" {member.size}-byte file on its own",
                    detail={"limit": BULK_MAX_FILE},
                )
            if path == paths.ROOT:
                raise BadRequestError("the root is a directory, not a file")
            if member.mode is not None:
                check_mode(member.mode)
            if member.mtime_ns is not None:
                check_time(member.mtime_ns, "mtime")
        except MEMBER_ERRORS as exc:
            if run.atomic:
                _name_in(exc, member.name)
                raise
            run.result.failed.append(_failure(member.name, path, exc))
            return None
        data = member.data
        chunk = await hash_off_loop(data) if data else None
        return _Item(member.name, path, "file", data, chunk, member.mode, member.mtime_ns)

    async def _flush(self, run: _Run, batch: list[_Item], everything: list[_Item]) -> None:
        files = [item for item in batch if item.kind == "file"]
        await run.budget.charge(run.actor, files=len(batch), nbytes=sum(len(i.data) for i in files))
        await self._store(run, files)
        if run.atomic:
            everything.extend(batch)
        else:
            await self._commit(run, batch)

    async def _store(self, run: _Run, files: Sequence[_Item]) -> None:
        """Hold the batch's chunks, then store those the tenant does not have (all of them
        through a limited scope), outside any transaction; they are marked stored by the
        commit that references them, which also stores the small ones (domain.placement)."""
        chunks = {item.chunk: item.data for item in files if item.chunk is not None}
        if not chunks:
            return
        tenant = run.actor.tenant_id
        async with self.content.store.write(tenant, durable=False) as tx:
            await tx.hold_chunks(run.hold_id, list(chunks), time.time() + UPLOAD_TTL)
            run.held = True
            present = await tx.present_chunks(list(chunks))
            # A chunk claimed by a collector before the hold is waited out (store_chunk).
            claimed = {n for n in chunks if n not in present
                       and await tx.chunk_state(n) == "collecting"}  # fmt: skip
        rewrite = not run.actor.scope.whole_tenant
        wanted = [name for name in chunks if (rewrite or name not in present)]
        limit = asyncio.Semaphore(STORE_CONCURRENCY)

        async def store(name: str) -> None:
            async with limit:
                if name in claimed:
                    await self.content.store_chunk(tenant, name, chunks[name], rewrite=rewrite)
                elif may_be_inline(len(chunks[name])):
                    run.inline[name] = chunks[name]
                else:
                    await self.content.content.put_bytes(tenant, name, chunks[name])
                    run.unmarked[name] = len(chunks[name])

        await asyncio.gather(*(store(name) for name in wanted))

    async def _commit(self, run: _Run, items: Sequence[_Item]) -> None:
        """One transaction: every item's version (or directory), each checked on its own."""
        actor = run.actor
        quota = self.content.quota
        events: list[ChangeEvent] = []
        landed: list[BulkWritten] = []
        failed: list[BulkFailure] = []
        folders: dict[tuple[str, ...], NodeRow] = {}  # directories found, for if_absent
        async with self.content.store.write(actor.tenant_id) as tx:
            for name, size in run.unmarked.items():
                await tx.mark_stored(name, size)
            for name, data in run.inline.items():
                await tx.mark_stored(name, len(data), data)
            for item in items:
                try:
                    if item.kind == "dir":
                        before = len(events)
                        node = await ensure_dirs(tx, paths.split(item.path), actor.writer, events)
                        landed.append(BulkWritten(
                            name=item.name, path=item.path, kind="dir", node_id=node.node_id,
                            created_version=len(events) > before,
                        ))  # fmt: skip
                        continue
                    chunks = (item.chunk,) if item.chunk else ()
                    if run.if_absent:
                        there = await _existing(tx, paths.split(item.path), folders)
                        if there is not None and _holds(there, len(item.data), chunks):
                            # Already this very content (a re-sent batch whose first answer was
                            # lost finds its own file): nothing to write, nothing overwritten.
                            landed.append(BulkWritten(
                                name=item.name, path=item.path, kind="file",
                                node_id=there.node_id, version_id=there.head_version_id,
                                size=there.size, content_hash=there.content_hash,
                            ))  # fmt: skip
                            continue
                        if there is not None:
                            raise AlreadyExistsError(
                                f"{item.path} already exists (if_absent: not overwritten)"
                            )
                    if quota is not None:
                        await quota.commit(tx, actor, chunks)
                    done = await commit_version(
                        tx, actor, item.path, size=len(item.data),
                        content_hash=content_hash_of(chunks), chunks=chunks, events=events,
                        mode=item.mode, mtime_ns=item.mtime_ns,
                    )  # fmt: skip
                    await _take_attributes(tx, actor, item, done.node, events)
                except MEMBER_ERRORS as exc:
                    if run.atomic:
                        _name_in(exc, item.name)
                        raise
                    failed.append(_failure(item.name, item.path, exc))
                    continue
                landed.append(BulkWritten(
                    name=item.name, path=item.path, kind="file", node_id=done.node.node_id,
                    version_id=done.version.version_id, size=done.version.size,
                    content_hash=done.version.content_hash, created_version=done.created,
                ))  # fmt: skip
            await tx.release_holds(run.hold_id)
        run.held = False
        run.unmarked.clear()
        run.inline.clear()
        run.result.written.extend(landed)
        run.result.failed.extend(failed)
        run.result.files += sum(1 for w in landed if w.kind == "file")
        run.result.bytes += sum(w.size for w in landed if w.kind == "file")
        if events:
            await self.content.feed.publish(actor.tenant_id, events)


async def _take_attributes(
    tx: WriteTx, actor: Actor, item: _Item, node: NodeRow, events: list[ChangeEvent]
) -> None:
    """Give a written file the member's mode and mtime where the commit did not (an existing
    file's mode; either, when its content was already the member's): one attributes event."""
    wanted: dict[str, int] = {}
    if item.mode is not None:
        wanted["mode"] = item.mode
    if item.mtime_ns is not None:
        wanted["mtime_ns"] = item.mtime_ns
    if not wanted:
        return
    new, old = apply(node, wanted, now_ns())
    if not new:
        return
    await tx.save_attributes(node)
    events.append(await tx.append_event(NewEvent(
        type="attributes", node_id=node.node_id, kind=node.kind, path=item.path,
        version_id=node.head_version_id, attributes=new, old_attributes=old,
        writer=actor.writer,
    )))  # fmt: skip


async def _existing(
    tx: ReadTx, names: tuple[str, ...], folders: dict[tuple[str, ...], NodeRow]
) -> NodeRow | None:
    """What :func:`~meshfs_server.domain.tree.lookup` finds at *names* (a file on the way is
    :class:`NotADirError`), with the directory above looked up once per batch: the files of a
    batch share a few directories, and a new file's path is otherwise walked name by name."""
    parent = folders.get(names[:-1])
    if parent is None:
        parent = await lookup(tx, names[:-1])
        if parent is None:
            return None
        if not parent.is_dir:
            raise not_a_directory(parent, paths.join(names[:-1]))
        folders[names[:-1]] = parent
    return await tx.child(parent.node_id, names[-1])


def _holds(node: NodeRow, size: int, chunks: Sequence[str]) -> bool:
    """Whether *node* is a file whose head is exactly this content."""
    return (
        node.kind == "file" and node.size == size and node.content_hash == content_hash_of(chunks)
    )


def _failure(name: str, path: str | None, exc: MeshFSError) -> BulkFailure:
    return BulkFailure(
        name=name, path=path, error=exc.code, message=exc.message,
        retry_after=getattr(exc, "retry_after", None),
    )  # fmt: skip


def _name_in(exc: MeshFSError, name: str) -> None:
    """Name the member in an error that fails a whole (atomic) write."""
    exc.message = f"{name}: {exc.message}"
    exc.detail = {**(exc.detail or {}), "name": name}
