"""Snapshots: named points of the change feed for a subtree, their diff with now, and restore.

A snapshot records, in the transaction that takes it, every node live under its root (the root
included) with its parent, name and path, and for files the head version - the exact state, kept
from retention while the snapshot exists. Diffing compares that record with the live tree.

Restoring is one metadata transaction that writes ordinary history: files changed since get
their snapshot version as a new head (``restore`` events), nodes created since are deleted
(``delete`` events for the topmost ones), deleted ones come back (``restore`` for files,
``mkdir`` for directories), moved ones move back (``rename``). Nothing is lost: every version
stays, and the transaction first takes a snapshot of the current state named
``before-restore-<name>-<cursor>``, so restoring that one undoes the restore.
"""

from __future__ import annotations

import time

from meshfs_common import paths
from meshfs_common.errors import AlreadyExistsError, BadRequestError, ConflictError, NotFoundError
from meshfs_common.ids import is_id, new_id
from meshfs_common.models import (
    ChangeEvent,
    FileChange,
    Snapshot,
    SnapshotDiff,
    SnapshotList,
    SnapshotRestoreResult,
)
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.attributes import changed, head_attributes, set_mtime
from meshfs_server.domain.feed import ChangeFeed
from meshfs_server.domain.history import History
from meshfs_server.domain.links import settle
from meshfs_server.domain.ports import (
    MetadataStore,
    NewEvent,
    NodeRow,
    ReadTx,
    SnapshotItem,
    SnapshotRow,
    VersionRow,
    WriteTx,
)
from meshfs_server.domain.tree import ensure_dirs, is_reachable, lookup, path_of, resolve, ts

MAX_NAME = 200
UNDO_PREFIX = "before-restore-"
_PARKED = ".meshfs-restore-"


def check_name(name: str) -> str:
    """A snapshot name: 1-200 printable characters, not shaped like a snapshot id."""
    clean = name.strip()
    if not clean or len(clean) > MAX_NAME:
        raise BadRequestError(f"a snapshot name has 1 to {MAX_NAME} characters")
    if any(not c.isprintable() for c in clean):
        raise BadRequestError("a snapshot name has no control characters")
    if is_id(clean):
        raise BadRequestError("a snapshot name must not look like a snapshot id")
    return clean


def to_snapshot(row: SnapshotRow) -> Snapshot:
    return Snapshot(
        snapshot_id=row.snapshot_id, name=row.name, path=row.path, node_id=row.node_id,
        cursor=row.cursor, created_at=ts(row.created_at), created_by=row.created_by,
        files=row.files, directories=row.directories, bytes=row.bytes,
    )  # fmt: skip


async def live_tree(tx: ReadTx, where: str) -> dict[str, tuple[NodeRow, str]]:
    """Every live node at and below *where* by node id, with its path (empty when absent)."""
    root = await lookup(tx, paths.split(where))
    if root is None:
        return {}
    # Keyed by the row that holds each name: a hard-linked file may be there under several.
    tree = {root.row_id: (root, where)}
    below = await tx.live_descendants(root.node_id) if root.is_dir else []
    children: dict[str | None, list[NodeRow]] = {}
    for node in below:
        children.setdefault(node.parent_id, []).append(node)
    pending = [root]
    while pending:  # parents before children, without recursion (trees can be deep)
        parent = pending.pop()
        base = tree[parent.row_id][1]
        for node in children.get(parent.node_id, ()):
            tree[node.row_id] = (node, f"{'' if base == paths.ROOT else base}/{node.name}")
            pending.append(node)
    return tree


async def capture(
    tx: WriteTx, actor: Actor, where: str, name: str
) -> tuple[SnapshotRow, list[SnapshotItem]]:
    """Record the live state under *where* as snapshot *name* (nothing when *where* is absent)."""
    tree = await live_tree(tx, where)
    items = [
        SnapshotItem(
            node_id=node.row_id, parent_id=node.parent_id, name=node.name, kind=node.kind,
            path=path, version_id=node.head_version_id, size=node.size,
            content_hash=node.content_hash,
        )
        for node, path in tree.values()
    ]  # fmt: skip
    root = await lookup(tx, paths.split(where))
    files = [i for i in items if i.kind == "file"]
    row = SnapshotRow(
        snapshot_id=new_id(), name=name, path=where,
        node_id=root.node_id if root is not None else "", cursor=await tx.next_seq() - 1,
        created_at=time.time(), created_by=actor.writer, files=len(files),
        directories=len(items) - len(files), bytes=sum(i.size for i in files),
    )  # fmt: skip
    await tx.insert_snapshot(row, items)
    return row, items


class Snapshots:
    """Create, list, diff, restore and delete snapshots for authenticated actors."""

    def __init__(self, store: MetadataStore, feed: ChangeFeed, history: History) -> None:
        self.store = store
        self.feed = feed
        self.history = history

    async def create(self, actor: Actor, path: str, name: str) -> Snapshot:
        """Name the current state of the subtree at *path* (needs write access there)."""
        where = paths.normalise(path)
        actor.check_write(where)
        name = check_name(name)
        async with self.store.write(actor.tenant_id) as tx:
            if await tx.snapshot(name) is not None:
                raise AlreadyExistsError(f"a snapshot called {name!r} exists")
            await resolve(tx, where)
            row, _ = await capture(tx, actor, where, name)
        return to_snapshot(row)

    async def list_snapshots(self, actor: Actor, path: str | None = None) -> SnapshotList:
        """Snapshots of subtrees at or below *path* that the actor may read, newest first."""
        where = paths.normalise(path) if path is not None else actor.scope.prefix
        actor.check_read(where)
        async with self.store.read(actor.tenant_id) as tx:
            rows = await tx.snapshots()
        return SnapshotList(
            snapshots=[to_snapshot(r) for r in rows if paths.is_within(r.path, where)]
        )

    async def get(self, actor: Actor, ref: str) -> Snapshot:
        """One snapshot by id or name."""
        async with self.store.read(actor.tenant_id) as tx:
            row = await _find(tx, actor, ref)
        return to_snapshot(row)

    async def delete(self, actor: Actor, ref: str) -> Snapshot:
        """Forget a snapshot (its history stays; retention may now prune what it kept)."""
        async with self.store.write(actor.tenant_id) as tx:
            row = await _find(tx, actor, ref)
            actor.check_write(row.path)
            await tx.delete_snapshot(row.snapshot_id)
        return to_snapshot(row)

    async def diff(self, actor: Actor, ref: str) -> SnapshotDiff:
        """How the snapshot's subtree differs now (snapshot -> now)."""
        async with self.store.read(actor.tenant_id) as tx:
            row = await _find(tx, actor, ref)
            changes = await _state_diff(tx, actor, row)
            cursor = (await tx.feed_bounds()).last
        await self._annotate(actor, row, changes)
        return SnapshotDiff(snapshot=to_snapshot(row), cursor=cursor, changes=changes)

    async def restore(self, actor: Actor, ref: str) -> SnapshotRestoreResult:
        """Make the subtree equal the snapshot again, atomically (see the module notes)."""
        events: list[ChangeEvent] = []
        async with self.store.write(actor.tenant_id) as tx:
            row = await _find(tx, actor, ref)
            actor.check_write(row.path)
            undo = await _undo_snapshot(tx, actor, row)
            await _restore(tx, actor, row, await tx.snapshot_items(row.snapshot_id), events)
        if events:
            await self.feed.publish(actor.tenant_id, events)
        async with self.store.read(actor.tenant_id) as tx:
            changes = await _state_diff(tx, actor, undo)
            cursor = (await tx.feed_bounds()).last
        await self._annotate(actor, undo, changes)
        return SnapshotRestoreResult(
            snapshot=to_snapshot(row), undo=to_snapshot(undo), cursor=cursor, changes=changes
        )

    async def _annotate(self, actor: Actor, row: SnapshotRow, changes: list[FileChange]) -> None:
        """Who made each change and where in the feed (from the retained log), and line
        counts of text modifications."""
        if not changes:
            return
        try:
            since = await self.history.changes(
                actor, row.path, since_cursor=row.cursor, with_line_stats=False
            )
        except BadRequestError:
            since = None
        by_node = {c.node_id: c for c in since.changes} if since is not None else {}
        for change in changes:
            known = by_node.get(change.node_id)
            if known is not None:
                change.writers = known.writers
                change.first_seq, change.last_seq = known.first_seq, known.last_seq
        await self.history.add_line_stats(actor.tenant_id, changes)


async def _undo_snapshot(tx: WriteTx, actor: Actor, row: SnapshotRow) -> SnapshotRow:
    """The snapshot of the current state that undoes a restore of *row*: a new one named
    ``before-restore-<name>-<cursor>``, or the one of that name already taken at this very
    cursor for this path (nothing changed since, so it is the same state)."""
    cursor = await tx.next_seq() - 1
    base = f"{UNDO_PREFIX}{row.name}"[: MAX_NAME - 24] + f"-{cursor}"
    name, n = base, 1
    while (found := await tx.snapshot(name)) is not None:
        if found.path == row.path and found.cursor == cursor:
            return found
        n += 1
        name = f"{base}-{n}"
    undo, _ = await capture(tx, actor, row.path, name)
    return undo


async def _find(tx: ReadTx, actor: Actor, ref: str) -> SnapshotRow:
    row = await tx.snapshot(ref)
    if row is None:
        raise NotFoundError(f"no such snapshot: {ref}")
    actor.check_read(row.path)
    return row


async def _state_diff(tx: ReadTx, actor: Actor, row: SnapshotRow) -> list[FileChange]:
    """Snapshot -> now for the snapshot's subtree, one entry per node that differs."""
    items = {i.node_id: i for i in await tx.snapshot_items(row.snapshot_id)}
    now = await live_tree(tx, row.path)
    out: list[FileChange] = []
    for item in items.values():
        current = now.get(item.node_id)
        if current is not None:
            node, path = current
            moved = path != item.path
            content_changed = node.kind == "file" and not same_content(node, item)
            if not moved and not content_changed:
                continue
            out.append(FileChange(
                path=path, node_id=node.node_id, kind=node.kind,
                status="renamed" if moved else "modified", old_path=item.path if moved else None,
                old_version_id=item.version_id, version_id=node.head_version_id,
                size=node.size if node.kind == "file" else None, content_changed=content_changed,
            ))  # fmt: skip
            continue
        node_now = await tx.get_node(item.node_id)
        elsewhere = None
        if node_now is not None and node_now.is_live and await is_reachable(tx, node_now):
            elsewhere = await path_of(tx, node_now)
        if elsewhere is not None and actor.scope.contains(elsewhere):
            assert node_now is not None
            out.append(FileChange(
                path=elsewhere, node_id=node_now.node_id, kind=item.kind, status="renamed",
                old_path=item.path, old_version_id=item.version_id,
                version_id=node_now.head_version_id,
                size=node_now.size if item.kind == "file" else None,
                content_changed=item.kind == "file" and not same_content(node_now, item),
            ))  # fmt: skip
        else:
            out.append(FileChange(
                path=item.path, node_id=node_now.node_id if node_now else item.node_id,
                kind=item.kind, status="deleted",
                old_version_id=item.version_id,
            ))  # fmt: skip
    for node_id, (node, path) in now.items():
        if node_id not in items:
            out.append(FileChange(
                path=path, node_id=node.node_id, kind=node.kind, status="created",
                version_id=node.head_version_id,
                size=node.size if node.kind == "file" else None,
                content_changed=node.kind == "file",
            ))  # fmt: skip
    out.sort(key=lambda c: (c.path, c.node_id))
    return out


async def _restore(
    tx: WriteTx,
    actor: Actor,
    row: SnapshotRow,
    items: list[SnapshotItem],
    events: list[ChangeEvent],
) -> None:
    """Bring the subtree at ``row.path`` back to *items* inside *tx*, appending the events."""
    now = time.time()
    wanted = {i.node_id: i for i in items}
    current = await live_tree(tx, row.path)
    # Where every node to be moved is now, before anything moves (for rename events).
    was: dict[str, str] = {}
    for item in items:
        node = await tx.get_node(item.node_id)
        if node is None:
            raise NotFoundError(f"{item.path} of snapshot {row.name!r} no longer exists")
        if node.is_live and await is_reachable(tx, node):
            where = current[node.row_id][1] if node.row_id in current else None
            where = where or await path_of(tx, node)
            if where != item.path:
                actor.check_write(where)
            was[node.row_id] = where
    # 1. Park nodes that must move under a unique name where they are, freeing their slots.
    target_parent: dict[str, str | None] = {}
    for item in items:
        if item.path == row.path:
            names = paths.split(row.path)
            if not names:
                target_parent[item.node_id] = None  # the tenant root never moves
                continue
            parent = await ensure_dirs(tx, names[:-1], actor.writer, events)
            target_parent[item.node_id] = parent.node_id
        else:
            target_parent[item.node_id] = item.parent_id
    for item in items:
        parent_id = target_parent[item.node_id]
        node = await tx.get_node(item.node_id)
        assert node is not None
        if parent_id is None or node.row_id not in was:
            continue
        if (node.parent_id, node.name) != (parent_id, item.name):
            await tx.move_node(node.row_id, node.parent_id or "", _PARKED + node.row_id, now)
    # 2. Delete what the snapshot does not have (a delete event for each topmost one).
    extras = [(n, p) for nid, (n, p) in current.items() if nid not in wanted]
    if extras:
        await tx.tombstone([n.row_id for n, _ in extras], now)
        extra_ids = {n.node_id for n, _ in extras if n.is_dir}
        for node, path in sorted(extras, key=lambda e: e[1]):
            if node.parent_id in extra_ids:
                continue
            events.append(await tx.append_event(NewEvent(
                type="delete", node_id=node.node_id, kind=node.kind, path=path,
                version_id=node.head_version_id, writer=actor.writer,
            )))  # fmt: skip
    # 3. Put every snapshot node back in place with its snapshot content, parents first.
    files = {n.node_id for n, _ in extras if not n.is_dir}
    for item in sorted(items, key=lambda i: (len(paths.split(i.path)), i.path)):
        parent_id = target_parent[item.node_id]
        node = await tx.get_node(item.node_id)
        assert node is not None
        revived = node.row_id not in was
        if parent_id is not None:
            taken = await tx.child(parent_id, item.name)
            if taken is not None and taken.row_id != node.row_id:
                raise ConflictError(f"{item.path} is taken; the restore changed nothing")
            if revived:
                await tx.revive(node.row_id, parent_id, item.name, now)
                node.deleted_at = None
                if node.is_dir:
                    events.append(await tx.append_event(NewEvent(
                        type="mkdir", node_id=node.node_id, kind="dir", path=item.path,
                        writer=actor.writer,
                    )))  # fmt: skip
            elif (node.parent_id, node.name) != (parent_id, item.name):
                await tx.move_node(node.row_id, parent_id, item.name, now)
                events.append(await tx.append_event(NewEvent(
                    type="rename", node_id=node.node_id, kind=node.kind, path=item.path,
                    old_path=was[node.row_id], version_id=node.head_version_id,
                    size=node.size if not node.is_dir else None,
                    content_hash=node.content_hash, writer=actor.writer,
                )))  # fmt: skip
        if node.is_dir:
            continue
        if node.kind != "file":  # a symbolic link or special node: it has no content
            if revived:
                events.append(await tx.append_event(NewEvent(
                    type="create", node_id=node.node_id, kind=node.kind, path=item.path,
                    target=node.target, writer=actor.writer,
                )))  # fmt: skip
            files.add(node.node_id)  # it may be hard-linked too
            continue
        content_changed = not same_content(node, item)
        if content_changed:
            await _restore_content(tx, actor, node, item)
        if content_changed or revived:
            events.append(await tx.append_event(NewEvent(
                type="restore", node_id=node.node_id, kind="file", path=item.path,
                version_id=node.head_version_id, size=node.size,
                content_hash=node.content_hash, writer=actor.writer,
                attributes=head_attributes(node),
            )))  # fmt: skip
        files.add(node.node_id)
    # Names of hard-linked files went and came back: each file's own row holds a live name.
    await settle(tx, files, int(now * 1e9), touch=False)


async def _restore_content(tx: WriteTx, actor: Actor, node: NodeRow, item: SnapshotItem) -> None:
    old = await tx.get_version(item.version_id or "")
    if old is None:
        raise NotFoundError(f"version {item.version_id} of {item.path} no longer exists")
    at_ns = time.time_ns()
    version = VersionRow(
        version_id=new_id(), node_id=node.node_id, seq=await tx.next_seq(), size=old.size,
        content_hash=old.content_hash, chunks=old.chunks, created_at=at_ns / 1e9,
        writer=actor.writer, replaces=node.head_version_id, restored_from=old.version_id,
        mode=node.mode,
    )  # fmt: skip
    await tx.insert_version(version)
    await tx.set_head(node.node_id, version)
    node.head_version_id, node.size = version.version_id, version.size
    node.content_hash = version.content_hash
    # New content: the file's mtime and ctime move, as for any write (make, rsync rely on it).
    set_mtime(node, at_ns)
    await changed(tx, node, at_ns)


def same_content(node: NodeRow, item: SnapshotItem) -> bool:
    """True when a file's head has the content the snapshot recorded (version ids may
    differ: a restore writes the old content as a new version)."""
    return (node.content_hash, node.size) == (item.content_hash, item.size)
