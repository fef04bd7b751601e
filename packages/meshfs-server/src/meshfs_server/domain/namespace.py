"""The namespace: directories, files, their versions, and the rules that keep the tree sound.

Every mutation runs in one short metadata transaction that also appends its change events, then
publishes those events to live subscribers after the commit. Rules enforced here:

* ``mkdir`` makes parents when asked; an existing directory is success, a file is a conflict.
* ``rename`` is atomic; a directory cannot move into its own subtree; replacing an existing file
  needs ``overwrite`` and keeps that file's identity and history (the moved content becomes its
  new head version; the moved node becomes a tombstone) - unless the file has other names
  (hard links): then only the name changes hands and the others keep their content; a
  non-empty directory is never replaced.
* ``delete`` of a non-empty directory needs ``recursive``; deleted nodes become tombstones that
  keep their history and never block creating the same path again.
* ``If-Match`` preconditions compare with the head version (for a directory, its node id).
"""

from __future__ import annotations

from dataclasses import dataclass

from meshfs_common import paths
from meshfs_common.errors import (
    AlreadyExistsError,
    BadRequestError,
    DirectoryNotEmptyError,
    InvalidMoveError,
    IsADirError,
    NotADirError,
    NotAFileError,
    NotFoundError,
    PreconditionFailedError,
)
from meshfs_common.ids import new_id
from meshfs_common.models import (
    ChangeEvent,
    CommitResult,
    DeleteResult,
    Entry,
    ListPage,
    VersionPage,
)
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.attributes import (
    changed,
    entries_changed,
    head_attributes,
    new_node,
    now_ns,
    set_mtime,
)
from meshfs_server.domain.feed import ChangeFeed
from meshfs_server.domain.links import make_link, remove_names
from meshfs_server.domain.paging import decode_after, encode_after
from meshfs_server.domain.ports import MetadataStore, NewEvent, NodeRow, ReadTx, VersionRow, WriteTx
from meshfs_server.domain.tree import (
    ensure_dirs,
    is_reachable,
    lookup,
    make_dir,
    not_a_directory,
    path_of,
    resolve,
    resolve_dir,
    to_entry,
    to_version,
)

MAX_PAGE = 1000


def check_precondition(node: NodeRow | None, if_match: str | None, if_none_match: bool) -> None:
    """Apply ``If-Match`` / ``If-None-Match: *`` to the node currently at a path."""
    if if_none_match and node is not None:
        raise PreconditionFailedError("the path already exists (If-None-Match: *)")
    if if_match is None:
        return
    if node is None:
        raise PreconditionFailedError("the path does not exist (If-Match)")
    current = node.head_version_id if node.kind == "file" else node.node_id
    if if_match not in ("*", current):
        raise PreconditionFailedError(
            f"the head is {current}, not {if_match} (If-Match)", detail={"current": current}
        )


def page_limit(limit: int | None) -> int:
    if limit is None:
        return MAX_PAGE
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequestError(f"limit must be between 1 and {MAX_PAGE}")
    return limit


#: Rows one retention transaction prunes at most (transactions stay short).
RETENTION_BATCH = 500


@dataclass(slots=True)
class Committed:
    """What :func:`commit_version` did."""

    node: NodeRow
    version: VersionRow
    created: bool


async def commit_version(
    tx: WriteTx,
    actor: Actor,
    path: str,
    *,
    size: int,
    content_hash: str,
    chunks: tuple[str, ...],
    events: list[ChangeEvent],
    if_match: str | None = None,
    if_none_match: bool = False,
    mode: int | None = None,
    mtime_ns: int | None = None,
) -> Committed:
    """Make content the head of the file at *path* (creating it and its parents as needed).

    Content identical to the head creates no version and no event. A new file gets *mode*
    (else 0o644); the version records the file's mode. The file's mtime becomes *mtime_ns*
    when given, else the commit's time.
    """
    names = paths.split(path)
    if not names:
        raise IsADirError("the root is a directory")
    parent = await ensure_dirs(tx, names[:-1], actor.writer, events)
    existing = await tx.child(parent.node_id, names[-1])
    if existing is not None and existing.is_dir:
        raise IsADirError(f"is a directory: {path}")
    if existing is not None and existing.kind != "file":
        raise NotAFileError(
            f"{path} is a {existing.kind}, not a regular file; delete it first to write a file"
        )
    check_precondition(existing, if_match, if_none_match)
    if existing is not None and existing.content_hash == content_hash and existing.size == size:
        head = await tx.get_version(existing.head_version_id or "")
        assert head is not None
        return Committed(existing, head, created=False)
    at = now_ns()
    if existing is None:
        node = new_node(new_id(), parent, names[-1], "file", at, mode=mode)
        await tx.insert_node(node)
        await entries_changed(tx, parent, at)
    else:
        node = existing
    version = VersionRow(
        version_id=new_id(),
        node_id=node.node_id,
        seq=await tx.next_seq(),
        size=size,
        content_hash=content_hash,
        chunks=chunks,
        created_at=at / 1e9,
        writer=actor.writer,
        replaces=node.head_version_id,
        mode=node.mode,
    )
    await _install_version(tx, node, version, at, mtime_ns=mtime_ns)
    events.append(
        await tx.append_event(
            NewEvent(
                type="write", node_id=node.node_id, kind="file", path=path,
                version_id=version.version_id, size=size, content_hash=content_hash,
                writer=actor.writer, attributes=head_attributes(node),
            )
        )
    )  # fmt: skip
    return Committed(node, version, created=True)


async def _install_version(
    tx: WriteTx, node: NodeRow, version: VersionRow, at_ns: int, *, mtime_ns: int | None = None
) -> None:
    """Make *version* the head of *node*: its mtime becomes *mtime_ns* (else *at_ns*), its
    ctime *at_ns*."""
    await tx.insert_version(version)
    await tx.set_head(node.node_id, version)
    node.head_version_id = version.version_id
    node.size = version.size
    node.content_hash = version.content_hash
    set_mtime(node, at_ns if mtime_ns is None else mtime_ns)
    await changed(tx, node, at_ns)


async def _moved_between(
    tx: WriteTx, source: NodeRow | None, destination: NodeRow, at_ns: int
) -> None:
    """A name left *source* and arrived in *destination*: both directories' times move."""
    if source is not None and source.node_id != destination.node_id:
        await entries_changed(tx, source, at_ns)
    await entries_changed(tx, destination, at_ns)


class Namespace:
    """Directory and file operations for authenticated actors."""

    def __init__(self, store: MetadataStore, feed: ChangeFeed) -> None:
        self.store = store
        self.feed = feed

    async def _publish(self, actor: Actor, events: list[ChangeEvent]) -> None:
        if events:
            await self.feed.publish(actor.tenant_id, events)

    # --- reads ----------------------------------------------------------------------------------

    async def meta(
        self, actor: Actor, *, path: str | None = None, node_id: str | None = None
    ) -> Entry:
        """Entry by path, or by node id (a tombstone too, with its last path)."""
        async with self.store.read(actor.tenant_id) as tx:
            node, where = await self._locate(tx, path=path, node_id=node_id)
            if node_id is not None and node.is_live and not await is_reachable(tx, node):
                raise NotFoundError(f"no such node: {node_id}")
        actor.check_read(where)
        return to_entry(node, where)

    async def list_directory(
        self,
        actor: Actor,
        path: str,
        *,
        after: str | None = None,
        limit: int | None = None,
        include_deleted: bool = False,
    ) -> ListPage:
        """One page of a directory, sorted by name (then node id: tombstones may share a name).

        *after* is a page's ``next_after`` (or, from older clients, a name).
        """
        where = paths.normalise(path)
        actor.check_read(where)
        size = page_limit(limit)
        start = decode_after(after)
        async with self.store.read(actor.tenant_id) as tx:
            directory = await resolve_dir(tx, where)
            rows = await tx.children(
                directory.node_id, after=start, limit=size + 1, include_deleted=include_deleted
            )
        more = len(rows) > size
        rows = rows[:size]
        base = "" if where == paths.ROOT else where
        entries = [to_entry(r, f"{base}/{r.name}") for r in rows]
        return ListPage(
            path=where,
            entries=entries,
            has_more=more,
            next_after=encode_after(rows[-1].name, rows[-1].row_id) if more and rows else None,
        )

    async def versions(
        self, actor: Actor, node_id: str, *, before: str | None = None, limit: int | None = None
    ) -> VersionPage:
        """Versions of a file, newest first."""
        size = page_limit(limit)
        async with self.store.read(actor.tenant_id) as tx:
            node = await self._node(tx, node_id)
            where = await path_of(tx, node)
            actor.check_read(where)
            if node.is_dir:
                raise IsADirError(f"{where} is a directory; only files have versions")
            if node.kind != "file":
                raise NotAFileError(f"{where} is a {node.kind}; only files have versions")
            before_seq = None
            if before is not None:
                anchor = await tx.get_version(before)
                if anchor is None or anchor.node_id != node_id:
                    raise NotFoundError(f"no such version of {node_id}: {before}")
                before_seq = anchor.seq
            rows = await tx.versions(node_id, before_seq=before_seq, limit=size + 1)
        more = len(rows) > size
        rows = rows[:size]
        return VersionPage(
            node_id=node_id,
            versions=[to_version(r) for r in rows],
            has_more=more,
            next_before=rows[-1].version_id if more and rows else None,
        )

    async def version_for_read(
        self, actor: Actor, *, path: str | None, node_id: str | None, version_id: str | None
    ) -> tuple[NodeRow, VersionRow]:
        """The node and version a download addresses (the head unless *version_id*)."""
        async with self.store.read(actor.tenant_id) as tx:
            node, where = await self._locate(tx, path=path, node_id=node_id)
            head_by_id = node_id is not None and version_id is None
            if head_by_id and not (node.is_live and await is_reachable(tx, node)):
                raise NotFoundError(f"node {node_id} is deleted; name a version_id")
            actor.check_read(where)
            if node.is_dir:
                raise IsADirError(f"is a directory: {where}")
            if node.kind != "file":
                raise NotAFileError(f"{where} is a {node.kind}; it has no content to read")
            wanted = version_id or node.head_version_id
            version = await tx.get_version(wanted or "")
            if version is None or version.node_id != node.node_id:
                raise NotFoundError(f"no such version: {version_id}")
        return node, version

    async def _locate(
        self, tx: ReadTx, *, path: str | None, node_id: str | None
    ) -> tuple[NodeRow, str]:
        """The node a request addresses by node id (tombstones too, with their last path) or
        by path (live only), and its path."""
        if node_id is not None:
            node = await self._node(tx, node_id)
            return node, await path_of(tx, node)
        if path is not None:
            where = paths.normalise(path)
            return await resolve(tx, where), where
        raise BadRequestError("give a path or a node_id")

    async def _node(self, tx: ReadTx, node_id: str) -> NodeRow:
        node = await tx.get_node(node_id)
        if node is None:
            raise NotFoundError(f"no such node: {node_id}")
        return node

    # --- mutations ------------------------------------------------------------------------------

    async def mkdir(
        self,
        actor: Actor,
        path: str,
        *,
        parents: bool = True,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
    ) -> tuple[Entry, bool]:
        """Create a directory (with *mode*, *uid*, *gid* when given; parents made on the way
        get the defaults); returns the entry and whether it was created."""
        where = paths.normalise(path)
        actor.check_write(where)
        names = paths.split(where)
        events: list[ChangeEvent] = []
        async with self.store.write(actor.tenant_id) as tx:
            existing = await lookup(tx, names)
            if existing is not None:
                if not existing.is_dir:
                    raise AlreadyExistsError(f"a file exists at {where}")
                return to_entry(existing, where), False
            if parents:
                parent = await ensure_dirs(tx, names[:-1], actor.writer, events)
            else:
                found = await lookup(tx, names[:-1])
                if found is None:
                    raise NotFoundError(f"parent directory does not exist: {paths.parent(where)}")
                if not found.is_dir:
                    raise not_a_directory(found, paths.parent(where))
                parent = found
            node = await make_dir(
                tx, parent, names[-1], where, actor.writer, events, mode=mode, uid=uid, gid=gid
            )
        await self._publish(actor, events)
        return to_entry(node, where), True

    async def rename(
        self,
        actor: Actor,
        path: str,
        new_path: str,
        *,
        overwrite: bool = False,
        if_match: str | None = None,
    ) -> Entry:
        """Move *path* to *new_path* atomically (see the module rules)."""
        src, dst = paths.normalise(path), paths.normalise(new_path)
        actor.check_write(src)
        actor.check_write(dst)
        if src == paths.ROOT or dst == paths.ROOT:
            raise InvalidMoveError("the root cannot be moved or replaced")
        events: list[ChangeEvent] = []
        async with self.store.write(actor.tenant_id) as tx:
            node = await resolve(tx, src)
            check_precondition(node, if_match, False)
            if src == dst:
                return to_entry(node, dst)
            if paths.is_within(dst, src):
                if node.is_dir:
                    raise InvalidMoveError(f"cannot move {src} into itself ({dst})")
                raise NotADirError(f"not a directory: {src}")
            parent = await lookup(tx, paths.split(paths.parent(dst)))
            if parent is None:
                raise NotFoundError(f"parent directory does not exist: {paths.parent(dst)}")
            if not parent.is_dir:
                raise not_a_directory(parent, paths.parent(dst))
            name = paths.basename(dst)
            target = await tx.child(parent.node_id, name)
            at = now_ns()
            now = at / 1e9
            source_dir = await tx.get_node(node.parent_id or "")
            if target is not None:
                if not overwrite:
                    raise AlreadyExistsError(f"{dst} exists; pass overwrite to replace it")
                if target.node_id == node.node_id:
                    return to_entry(target, dst)  # two names of one file: rename(2) does nothing
                if node.is_dir and not target.is_dir:
                    raise NotADirError(f"cannot replace {target.kind} {dst} with a directory")
                if not node.is_dir and target.is_dir:
                    raise IsADirError(f"cannot replace directory {dst} with a {node.kind}")
                if target.is_dir:
                    if await tx.has_live_children(target.node_id):
                        raise DirectoryNotEmptyError(f"directory not empty: {dst}")
                    await tx.tombstone([target.node_id], now)
                elif target.nlink > 1:
                    # The target has other names: they keep their node and its content, as
                    # rename(2) moves a name and never changes another name's data. Only
                    # this name changes hands.
                    left = (await remove_names(tx, [target], at))[target.node_id]
                    events.append(
                        await tx.append_event(
                            NewEvent(
                                type="delete", node_id=target.node_id, kind=target.kind, path=dst,
                                version_id=target.head_version_id, writer=actor.writer,
                                nlink=left,
                            )
                        )
                    )  # fmt: skip
                elif node.kind == "file" and target.kind == "file":
                    moved = await self._replace_file(tx, actor, node, target, src, dst, events)
                    await _moved_between(tx, source_dir, parent, at)
                    await self._publish(actor, events)
                    return to_entry(moved, dst)
                else:  # a link or special node replaced, or replacing: the name changes hands
                    await tx.tombstone([target.node_id], now)
            await tx.move_node(node.row_id, parent.node_id, name, now)
            node.parent_id, node.name = parent.node_id, name
            await changed(tx, node, at)
            await _moved_between(tx, source_dir, parent, at)
            events.append(
                await tx.append_event(
                    NewEvent(
                        type="rename", node_id=node.node_id, kind=node.kind, path=dst,
                        old_path=src, version_id=node.head_version_id,
                        size=node.size if node.kind == "file" else None,
                        content_hash=node.content_hash, target=node.target, writer=actor.writer,
                    )
                )
            )  # fmt: skip
        await self._publish(actor, events)
        return to_entry(node, dst)

    async def _replace_file(
        self,
        tx: WriteTx,
        actor: Actor,
        node: NodeRow,
        target: NodeRow,
        src: str,
        dst: str,
        events: list[ChangeEvent],
    ) -> NodeRow:
        """Rename a file over another: the target keeps its id and history and gains the moved
        content as its head; the moved node becomes a tombstone (its history stays reachable)."""
        at = now_ns()
        head = await tx.get_version(node.head_version_id or "")
        assert head is not None, "a live file always has a head version"
        # What stands at dst is the moved file as rename(2) leaves it: its mode, owner and
        # times come along (the target keeps only its identity and history).
        target.mode, target.uid, target.gid = node.mode, node.uid, node.gid
        target.atime_ns = node.atime_ns
        if target.content_hash != head.content_hash or target.size != head.size:
            version = VersionRow(
                version_id=new_id(), node_id=target.node_id, seq=await tx.next_seq(),
                size=head.size, content_hash=head.content_hash, chunks=head.chunks,
                created_at=at / 1e9, writer=actor.writer, replaces=target.head_version_id,
                restored_from=head.version_id, mode=node.mode,
            )  # fmt: skip
            await _install_version(tx, target, version, at, mtime_ns=node.mtime_ns)
        else:
            set_mtime(target, node.mtime_ns)
            await changed(tx, target, at)
        left = (await remove_names(tx, [node], at))[node.node_id]
        if left:  # the moved file keeps its other names: src went, dst took the content
            for event in (
                NewEvent(
                    type="delete", node_id=node.node_id, kind="file", path=src,
                    version_id=node.head_version_id, writer=actor.writer, nlink=left,
                ),
                NewEvent(
                    type="write", node_id=target.node_id, kind="file", path=dst,
                    version_id=target.head_version_id, size=target.size,
                    content_hash=target.content_hash, writer=actor.writer,
                    attributes=head_attributes(target),
                ),
            ):  # fmt: skip
                events.append(await tx.append_event(event))
            return target
        events.append(
            await tx.append_event(
                NewEvent(
                    type="rename", node_id=target.node_id, kind="file", path=dst, old_path=src,
                    version_id=target.head_version_id, size=target.size,
                    content_hash=target.content_hash, replaced_node_id=node.node_id,
                    writer=actor.writer,
                )
            )
        )  # fmt: skip
        return target

    async def delete(
        self, actor: Actor, path: str, *, recursive: bool = False, if_match: str | None = None
    ) -> DeleteResult:
        """Tombstone a file, or a directory (recursively when it has children)."""
        where = paths.normalise(path)
        actor.check_write(where)
        if where == paths.ROOT:
            raise InvalidMoveError("the root cannot be deleted")
        events: list[ChangeEvent] = []
        async with self.store.write(actor.tenant_id) as tx:
            node = await resolve(tx, where)
            check_precondition(node, if_match, False)
            below: list[NodeRow] = []
            if node.is_dir:
                below = await tx.live_descendants(node.node_id)
                if below and not recursive:
                    raise DirectoryNotEmptyError(f"directory not empty: {where} (use recursive)")
            at = now_ns()
            now = at / 1e9
            left = await remove_names(tx, [node, *below], at)
            node.deleted_at = now
            node.nlink = left.get(node.node_id, 0)
            parent = await tx.get_node(node.parent_id or "")
            if parent is not None:
                await entries_changed(tx, parent, at)
            events.append(
                await tx.append_event(
                    NewEvent(
                        type="delete", node_id=node.node_id, kind=node.kind, path=where,
                        version_id=node.head_version_id, writer=actor.writer,
                        nlink=node.nlink or None,
                    )
                )
            )  # fmt: skip
        await self._publish(actor, events)
        return DeleteResult(entry=to_entry(node, where), deleted_nodes=1 + len(below))

    async def link(self, actor: Actor, path: str, new_path: str) -> Entry:
        """Give the file at *path* the extra name *new_path* (a hard link; see
        :mod:`meshfs_server.domain.links`)."""
        src, dst = paths.normalise(path), paths.normalise(new_path)
        actor.check_write(src)
        actor.check_write(dst)
        events: list[ChangeEvent] = []
        async with self.store.write(actor.tenant_id) as tx:
            linked = await make_link(tx, actor, src, dst, now_ns(), events)
        await self._publish(actor, events)
        return to_entry(linked, dst)

    async def restore(
        self, actor: Actor, node_id: str, version_id: str, *, path: str | None = None
    ) -> CommitResult:
        """Make an old version the head again; a deleted file comes back (at *path* if given,
        else where it was, recreating missing parent directories)."""
        events: list[ChangeEvent] = []
        async with self.store.write(actor.tenant_id) as tx:
            node = await self._node(tx, node_id)
            if node.is_dir:
                raise IsADirError("only files have versions to restore")
            if node.kind != "file":
                raise NotAFileError(f"a {node.kind} has no versions to restore")
            old = await tx.get_version(version_id)
            if old is None or old.node_id != node_id:
                raise NotFoundError(f"no such version of {node_id}: {version_id}")
            live = node.is_live and await is_reachable(tx, node)
            where = await path_of(tx, node)
            # The file (a tombstone too) must be one the actor may read, wherever it goes.
            actor.check_read(where)
            target_path = paths.normalise(path) if path is not None else where
            actor.check_write(target_path)
            if live and target_path != where:
                raise BadRequestError("a live file is restored in place; use rename to move it")
            at = now_ns()
            now = at / 1e9
            if not live:
                names = paths.split(target_path)
                parent = await ensure_dirs(tx, names[:-1], actor.writer, events)
                if await tx.child(parent.node_id, names[-1]) is not None:
                    raise AlreadyExistsError(
                        f"{target_path} exists; restore to another path with 'path'"
                    )
                await tx.revive(node.node_id, parent.node_id, names[-1], now)
                node.deleted_at = None
                node.parent_id, node.name = parent.node_id, names[-1]
                await entries_changed(tx, parent, at)
                await changed(tx, node, at)
            created = node.content_hash != old.content_hash or node.size != old.size
            if created:
                version = VersionRow(
                    version_id=new_id(), node_id=node_id, seq=await tx.next_seq(),
                    size=old.size, content_hash=old.content_hash, chunks=old.chunks,
                    created_at=now, writer=actor.writer, replaces=node.head_version_id,
                    restored_from=old.version_id, mode=node.mode,
                )  # fmt: skip
                await _install_version(tx, node, version, at)
            else:
                head = await tx.get_version(node.head_version_id or "")
                assert head is not None
                version = head
            if created or not live:
                events.append(
                    await tx.append_event(
                        NewEvent(
                            type="restore", node_id=node_id, kind="file", path=target_path,
                            version_id=version.version_id, size=version.size,
                            content_hash=version.content_hash, writer=actor.writer,
                            attributes=head_attributes(node),
                        )
                    )
                )  # fmt: skip
        await self._publish(actor, events)
        return CommitResult(
            entry=to_entry(node, target_path), version=to_version(version), created_version=created
        )

    async def prune_versions(self, tenant_id: str, *, keep: int, created_before: float) -> int:
        """Delete versions beyond the newest *keep* of each file that are older than
        *created_before* - never a head. Short transactions, one batch each; returns how many."""
        pruned = 0
        while True:
            async with self.store.write(tenant_id) as tx:
                ids = await tx.prunable_versions(
                    keep=keep, created_before=created_before, limit=RETENTION_BATCH
                )
                pruned += await tx.delete_versions(ids)
            if len(ids) < RETENTION_BATCH:
                return pruned

    async def purge_tombstones(self, tenant_id: str, deleted_before: float) -> int:
        """Forget deleted nodes (and their versions) deleted before *deleted_before*; returns
        how many. Short transactions, one batch each."""
        purged = 0
        while True:
            async with self.store.write(tenant_id) as tx:
                batch = await tx.purge_tombstones(deleted_before, RETENTION_BATCH)
            purged += batch
            if batch < RETENTION_BATCH:
                return purged
