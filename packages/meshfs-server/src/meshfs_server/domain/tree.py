"""Path resolution and entry rendering on top of a metadata transaction.

Resolution never follows a symbolic link: a path that passes *through* one (a link where a
directory is needed) is refused as not a directory, whatever the link points at. Every route
resolves paths here, so the rule holds everywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime

from meshfs_common import paths
from meshfs_common.errors import NotADirError, NotFoundError
from meshfs_common.ids import new_id
from meshfs_common.models import ChangeEvent, Entry, Version, Writer
from meshfs_server.domain.attributes import entries_changed, new_node, now_ns
from meshfs_server.domain.ports import NewEvent, NodeRow, ReadTx, VersionRow, WriteTx


def ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def to_entry(node: NodeRow, path: str) -> Entry:
    return Entry(
        node_id=node.node_id,
        path=path,
        name=paths.basename(path),
        kind=node.kind,
        size=node.size,
        version_id=node.head_version_id,
        content_hash=node.content_hash,
        created_at=ts(node.created_at),
        modified_at=ts(node.modified_at),
        deleted_at=None if node.deleted_at is None else ts(node.deleted_at),
        mode=node.mode,
        uid=node.uid,
        gid=node.gid,
        mtime_ns=node.mtime_ns,
        atime_ns=node.atime_ns,
        ctime_ns=node.ctime_ns,
        target=node.target,
        rdev=node.rdev,
        # A row made in this request was not counted by the store: a new directory has no
        # subdirectories yet, a new file one name.
        nlink=node.nlink or (2 if node.is_dir else 1),
    )


def to_version(row: VersionRow) -> Version:
    return Version(
        version_id=row.version_id,
        node_id=row.node_id,
        size=row.size,
        content_hash=row.content_hash,
        created_at=ts(row.created_at),
        writer=row.writer,
        replaces=row.replaces,
        restored_from=row.restored_from,
        mode=row.mode,
    )


def not_a_directory(node: NodeRow, path: str) -> NotADirError:
    """The error for *node* at *path* standing where a directory is needed."""
    if node.kind == "symlink":
        return NotADirError(
            f"not a directory: {path} is a symbolic link (the server never follows links)",
            detail={"path": path, "kind": node.kind},
        )
    return NotADirError(f"not a directory: {path}")


async def lookup(tx: ReadTx, names: tuple[str, ...]) -> NodeRow | None:
    """The live node at *names*, or None; a file in the middle of the path is an error."""
    depth, node = await tx.walk(names)
    if depth == len(names):
        return node
    if not node.is_dir:
        raise not_a_directory(node, paths.join(names[:depth]))
    return None


async def resolve(tx: ReadTx, path: str) -> NodeRow:
    """The live node at canonical *path*, or :class:`NotFoundError`."""
    node = await lookup(tx, paths.split(path))
    if node is None:
        raise NotFoundError(f"no such file or directory: {path}")
    return node


async def resolve_dir(tx: ReadTx, path: str) -> NodeRow:
    node = await resolve(tx, path)
    if not node.is_dir:
        raise not_a_directory(node, path)
    return node


async def path_of(tx: ReadTx, node: NodeRow) -> str:
    """The path of *node* through its parent links (for a tombstone: where it last was)."""
    names: list[str] = []
    current: NodeRow | None = node
    seen = 0
    while current is not None and current.parent_id is not None:
        names.append(current.name)
        current = await tx.get_node(current.parent_id)
        seen += 1
        if seen > 4096:  # a cycle would be a corrupted tree; fail loudly rather than spin
            raise RuntimeError(f"parent cycle at node {node.node_id}")
    return paths.join(list(reversed(names)))


async def is_reachable(tx: ReadTx, node: NodeRow) -> bool:
    """True when *node* and all its ancestors are live."""
    current: NodeRow | None = node
    while current is not None:
        if not current.is_live:
            return False
        if current.parent_id is None:
            return True
        current = await tx.get_node(current.parent_id)
    return False


async def ensure_dirs(
    tx: WriteTx, names: tuple[str, ...], writer: Writer, events: list[ChangeEvent]
) -> NodeRow:
    """``mkdir -p`` inside a write transaction; returns the deepest directory."""
    node = await tx.root()
    for i, name in enumerate(names):
        found = await tx.child(node.node_id, name)
        if found is None:
            found = await make_dir(tx, node, name, paths.join(names[: i + 1]), writer, events)
        elif not found.is_dir:
            raise not_a_directory(found, paths.join(names[: i + 1]))
        node = found
    return node


async def make_dir(
    tx: WriteTx,
    parent: NodeRow,
    name: str,
    path: str,
    writer: Writer,
    events: list[ChangeEvent],
    *,
    mode: int | None = None,
    uid: int | None = None,
    gid: int | None = None,
) -> NodeRow:
    """Make the directory *name* in *parent* (at *path*), moving the parent's times."""
    at = now_ns()
    node = new_node(new_id(), parent, name, "dir", at, mode=mode, uid=uid, gid=gid)
    await tx.insert_node(node)
    await entries_changed(tx, parent, at)
    events.append(
        await tx.append_event(
            NewEvent(type="mkdir", node_id=node.node_id, kind="dir", path=path, writer=writer)
        )
    )
    return node
