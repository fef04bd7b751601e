"""Exchange: swap two existing paths atomically (``rename`` with ``exchange``, as Linux's
RENAME_EXCHANGE).

Both paths must exist (else ``404 not_found``); neither may lie inside the other - a directory
cannot be swapped with something in its own subtree (``409 invalid_move``). Any two kinds may
be swapped (a file with a directory too); each node keeps its id, history and subtree, only
the names change hands. Both parent directories' mtime and ctime move, as does each node's
ctime.

The feed gets two ``rename`` events in the one commit, first the node that was at ``path``
(now at ``new_path``), then the other, each naming the other's node in ``exchanged_with``. A
follower swaps the two names on the first and finds the second already done; a token limited
to a path prefix that sees only one of the two paths sees one creation there that replaces the
node it knew (see :mod:`meshfs_server.domain.scope`).
"""

from __future__ import annotations

from meshfs_common import paths
from meshfs_common.errors import InvalidMoveError
from meshfs_common.models import ChangeEvent, Entry
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.attributes import changed, entries_changed, now_ns
from meshfs_server.domain.feed import ChangeFeed
from meshfs_server.domain.namespace import check_precondition
from meshfs_server.domain.ports import MetadataStore, NewEvent, NodeRow, WriteTx
from meshfs_server.domain.tree import resolve, to_entry


async def exchange(
    store: MetadataStore,
    feed: ChangeFeed,
    actor: Actor,
    path: str,
    new_path: str,
    *,
    if_match: str | None = None,
) -> Entry:
    """Swap *path* and *new_path*; returns the entry of the node now at *new_path*.

    ``If-Match`` applies to the node at *path*.
    """
    src, dst = paths.normalise(path), paths.normalise(new_path)
    actor.check_write(src)
    actor.check_write(dst)
    if src == paths.ROOT or dst == paths.ROOT:
        raise InvalidMoveError("the root cannot be exchanged")
    events: list[ChangeEvent] = []
    async with store.write(actor.tenant_id) as tx:
        first = await resolve(tx, src)
        second = await resolve(tx, dst)
        check_precondition(first, if_match, False)
        if src == dst:
            return to_entry(first, dst)
        if paths.is_within(dst, src) or paths.is_within(src, dst):
            raise InvalidMoveError(f"cannot exchange {src} and {dst}: one lies inside the other")
        await _swap(tx, first, second)
        for node, old, new, other in ((first, src, dst, second), (second, dst, src, first)):
            events.append(
                await tx.append_event(
                    NewEvent(
                        type="rename", node_id=node.node_id, kind=node.kind, path=new,
                        old_path=old, version_id=node.head_version_id,
                        size=None if node.is_dir else node.size, content_hash=node.content_hash,
                        writer=actor.writer, exchanged_with=other.node_id,
                    )
                )
            )  # fmt: skip
    await feed.publish(actor.tenant_id, events)
    return to_entry(first, dst)


async def _swap(tx: WriteTx, first: NodeRow, second: NodeRow) -> None:
    """Give each node the other's (parent, name); both parents' times and both nodes' ctimes
    move."""
    at = now_ns()
    now = at / 1e9
    one = (first.parent_id or "", first.name)
    two = (second.parent_id or "", second.name)
    # Live names are unique per directory, so one node waits under a name no path can hold
    # (it contains a slash) while the other takes its place; all in one transaction.
    # Rows, not nodes: either may be one of several names of a hard-linked file.
    await tx.move_node(first.row_id, one[0], f"/{first.row_id}", now)
    await tx.move_node(second.row_id, *one, now)
    await tx.move_node(first.row_id, *two, now)
    (first.parent_id, first.name), (second.parent_id, second.name) = two, one
    for node in (first, second):
        await changed(tx, node, at)
    for parent_id in {one[0], two[0]}:
        parent = await tx.get_node(parent_id)
        if parent is not None:
            await entries_changed(tx, parent, at)
