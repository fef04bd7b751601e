"""The namespace's POSIX operations: chmod/chown/utimens, symbolic links, special nodes.

Each runs in one short metadata transaction that appends its event, then publishes it. The
rules are in :mod:`.attributes` (what may be set, the times the server keeps) and
:mod:`.special_nodes` (making links, FIFOs, sockets and devices).
"""

from __future__ import annotations

from meshfs_common import paths
from meshfs_common.models import AttributesRequest, ChangeEvent, Entry, SpecialKind
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.attributes import apply, check_target, now_ns, validated
from meshfs_server.domain.feed import ChangeFeed
from meshfs_server.domain.namespace import check_precondition
from meshfs_server.domain.ports import MetadataStore, NewEvent
from meshfs_server.domain.special_nodes import make_special
from meshfs_server.domain.tree import resolve, to_entry


async def set_attributes(
    store: MetadataStore,
    feed: ChangeFeed,
    actor: Actor,
    request: AttributesRequest,
    *,
    if_match: str | None = None,
) -> Entry:
    """chmod, chown and utimens of the node at ``request.path`` in one atomic change: an
    ``attributes`` event with the new and old values, no content version."""
    where = paths.normalise(request.path)
    actor.check_write(where)
    wanted = validated(request)
    events: list[ChangeEvent] = []
    async with store.write(actor.tenant_id) as tx:
        node = await resolve(tx, where)
        check_precondition(node, if_match, False)
        new, old = apply(node, wanted, now_ns())
        if new:
            await tx.save_attributes(node)
            events.append(
                await tx.append_event(
                    NewEvent(
                        type="attributes", node_id=node.node_id, kind=node.kind, path=where,
                        version_id=node.head_version_id, attributes=new, old_attributes=old,
                        writer=actor.writer,
                    )
                )
            )  # fmt: skip
    if events:
        await feed.publish(actor.tenant_id, events)
    return to_entry(node, where)


async def symlink(
    store: MetadataStore,
    feed: ChangeFeed,
    actor: Actor,
    path: str,
    target: str,
    *,
    uid: int | None = None,
    gid: int | None = None,
) -> Entry:
    """Make a symbolic link at *path* to *target* (verbatim, never followed)."""
    where = paths.normalise(path)
    actor.check_write(where)
    check_target(target)
    events: list[ChangeEvent] = []
    async with store.write(actor.tenant_id) as tx:
        node = await make_special(
            tx, actor, where, "symlink", events, uid=uid, gid=gid, target=target
        )
    await feed.publish(actor.tenant_id, events)
    return to_entry(node, where)


async def mknod(
    store: MetadataStore,
    feed: ChangeFeed,
    actor: Actor,
    path: str,
    kind: SpecialKind,
    *,
    mode: int | None = None,
    rdev: int = 0,
    uid: int | None = None,
    gid: int | None = None,
) -> Entry:
    """Make a FIFO, socket or device node at *path* (no content)."""
    where = paths.normalise(path)
    actor.check_write(where)
    events: list[ChangeEvent] = []
    async with store.write(actor.tenant_id) as tx:
        node = await make_special(
            tx, actor, where, kind, events, mode=mode, uid=uid, gid=gid, rdev=rdev
        )
    await feed.publish(actor.tenant_id, events)
    return to_entry(node, where)
