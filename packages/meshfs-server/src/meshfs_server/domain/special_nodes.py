"""Symbolic links and special nodes (FIFOs, sockets, character and block devices).

They have no content and no versions. A symbolic link's target is stored verbatim and never
followed by the server (:mod:`.tree` refuses a path through one); FIFOs and sockets are names a
mount presents to its kernel; devices carry ``rdev``. Making one needs its parent directory to
exist (no parents are made, as ``symlink(2)`` and ``mknod(2)`` do not) and the name to be free.
Each appears in the feed as a ``create`` event (a link's carries its ``target``).
"""

from __future__ import annotations

from meshfs_common import paths
from meshfs_common.errors import AlreadyExistsError, BadRequestError, NotFoundError
from meshfs_common.ids import new_id
from meshfs_common.models import ChangeEvent, NodeKind
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.attributes import check_rdev, entries_changed, new_node, now_ns
from meshfs_server.domain.ports import NewEvent, NodeRow, WriteTx
from meshfs_server.domain.tree import lookup, not_a_directory

DEVICES = ("chardev", "blockdev")


async def make_special(
    tx: WriteTx,
    actor: Actor,
    where: str,
    kind: NodeKind,
    events: list[ChangeEvent],
    *,
    mode: int | None = None,
    uid: int | None = None,
    gid: int | None = None,
    target: str | None = None,
    rdev: int = 0,
) -> NodeRow:
    """Make a node of *kind* (a symbolic link or special node) at canonical *where*."""
    names = paths.split(where)
    if not names:
        raise AlreadyExistsError("the root exists")
    if kind not in DEVICES and check_rdev(rdev) != 0:
        raise BadRequestError(f"rdev applies to character and block devices, not a {kind}")
    parent = await lookup(tx, names[:-1])
    if parent is None:
        raise NotFoundError(f"parent directory does not exist: {paths.parent(where)}")
    if not parent.is_dir:
        raise not_a_directory(parent, paths.parent(where))
    existing = await tx.child(parent.node_id, names[-1])
    if existing is not None:
        raise AlreadyExistsError(f"a {existing.kind} exists at {where}")
    at = now_ns()
    node = new_node(
        new_id(), parent, names[-1], kind, at, mode=mode, uid=uid, gid=gid, target=target,
        rdev=rdev,
    )  # fmt: skip
    await tx.insert_node(node)
    await entries_changed(tx, parent, at)
    events.append(
        await tx.append_event(
            NewEvent(
                type="create", node_id=node.node_id, kind=kind, path=where, target=target,
                writer=actor.writer,
            )
        )
    )  # fmt: skip
    return node
