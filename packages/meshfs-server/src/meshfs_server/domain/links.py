"""Hard links: several names for one file, and removing names without losing the file.

A node N that is not a directory (a "file" below: regular, symbolic link, FIFO, socket or
device) may have extra names, each a row of its own that the store reads as N (see
``adapters/link_sql.py``). Content, versions, attributes and extended attributes belong to N, so
a write through any name makes a version every name shows, and there is one history. Rules:

* Every kind but a directory is linked: a regular file, a symbolic link, a FIFO, a socket or a
  device node (as link(2) allows); a directory is ``not_permitted`` (EPERM). The new name must
  not exist (``already_exists``, EEXIST) and its parent must be a directory.
* Removing a name (delete, rename over it, a snapshot restore) keeps the file while it has
  others; the feed's ``delete`` says how many are left (``nlink``). N's own row always holds a
  live name: when that name goes while others remain, N's row takes over one of them and that
  name's row becomes the tombstone of the removed name. The last name tombstones N, as a delete
  always has (its history stays; a restore brings it back).
* Linking and unlinking move the file's ctime; the parent directory's mtime and ctime move as
  for any new or removed entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from meshfs_common import paths
from meshfs_common.errors import AlreadyExistsError, NotFoundError, NotPermittedError
from meshfs_common.ids import new_id
from meshfs_common.models import ChangeEvent
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.attributes import changed, entries_changed
from meshfs_server.domain.ports import NewEvent, NodeRow, WriteTx
from meshfs_server.domain.tree import lookup, not_a_directory, resolve


async def make_link(
    tx: WriteTx, actor: Actor, src: str, dst: str, at_ns: int, events: list[ChangeEvent]
) -> NodeRow:
    """Give the node at *src* (any kind but a directory) the extra name *dst*; returns the
    node as seen at *dst*."""
    node = await resolve(tx, src)
    if node.is_dir:
        raise NotPermittedError(f"{src} is a directory; directories cannot be hard-linked")
    if dst == paths.ROOT:
        raise AlreadyExistsError("/ exists")
    parent = await lookup(tx, paths.split(paths.parent(dst)))
    if parent is None:
        raise NotFoundError(f"parent directory does not exist: {paths.parent(dst)}")
    if not parent.is_dir:
        raise not_a_directory(parent, paths.parent(dst))
    name = paths.basename(dst)
    if await tx.child(parent.node_id, name) is not None:
        raise AlreadyExistsError(f"{dst} exists")
    edge_id = new_id()
    await tx.insert_link(edge_id, node.node_id, parent.node_id, name, at_ns / 1e9)
    await changed(tx, node, at_ns)
    await entries_changed(tx, parent, at_ns)
    events.append(
        await tx.append_event(
            NewEvent(
                type="link", node_id=node.node_id, kind=node.kind, path=dst,
                version_id=node.head_version_id,
                size=node.size if node.kind == "file" else None,
                content_hash=node.content_hash, target=node.target, writer=actor.writer,
            )
        )
    )  # fmt: skip
    return replace(node, parent_id=parent.node_id, name=name, edge_id=edge_id, nlink=node.nlink + 1)


async def remove_names(tx: WriteTx, rows: Sequence[NodeRow], at_ns: int) -> dict[str, int]:
    """Remove the names *rows* (nodes as read, hard links among them) in one go; returns, for
    each non-directory node that had one of them, how many names it has left (0: it is now a
    tombstone)."""
    await tx.tombstone([r.row_id for r in rows], at_ns / 1e9)
    return await settle(tx, {r.node_id for r in rows if not r.is_dir}, at_ns)


async def settle(
    tx: WriteTx, node_ids: Iterable[str], at_ns: int, *, touch: bool = True
) -> dict[str, int]:
    """After names of the files *node_ids* were removed or brought back: a file whose own row
    is a tombstone while other names live moves its row onto one of them (that name's row stays
    behind as the tombstone, where a snapshot restore finds it). Returns each file's number of
    live names. A file that still has some gets a new ctime (with *touch*; else only when its
    row moved)."""
    left: dict[str, int] = {}
    for node_id in sorted(node_ids):
        own = await tx.get_node(node_id)
        if own is None:
            continue
        links = await tx.live_links(node_id)
        if not own.is_live and links:
            heir = links.pop(0)
            assert heir.edge_id is not None
            await tx.tombstone([heir.edge_id], at_ns / 1e9)
            await tx.move_node(heir.edge_id, own.parent_id or "", own.name, own.modified_at)
            await tx.revive(node_id, heir.parent_id or "", heir.name, own.modified_at)
            own.deleted_at = None
            moved = True
        else:
            moved = False
        left[node_id] = len(links) + (1 if own.is_live else 0)
        if left[node_id] and (touch or moved):
            await changed(tx, own, at_ns)
    return left
