"""``statfs`` for a tenant: its storage quota, what it uses, and how many nodes it has.

Callers who see the whole tenant get the quota (``total_bytes``), the deduplicated bytes stored
(``used_bytes``, as the quota counts them) and what is left once uploads in progress have their
reservations (``free_bytes``), with the tenant's live node counts. A token limited to a path
prefix never learns the tenant's usage (as ``GET /plans/current`` does not tell it): it gets
the quota, and counts of the nodes within its prefix only, which it could list anyway.
"""

from __future__ import annotations

from meshfs_common import paths
from meshfs_common.hashing import CHUNK_SIZE
from meshfs_common.models import FsStats
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.ports import MetadataStore, QuotaPolicy
from meshfs_server.domain.tree import lookup

NAME_MAX = 255
"""The longest name, in bytes (as POSIX file systems report it)."""


async def statfs(store: MetadataStore, quota: QuotaPolicy | None, actor: Actor) -> FsStats:
    """What ``statfs`` reports to *actor* (see the module notes)."""
    total = None if quota is None else await quota.limit(actor.tenant_id)
    async with store.read(actor.tenant_id) as tx:
        if actor.scope.whole_tenant:
            counts = await tx.live_counts()
            usage = await tx.storage_usage()
            used: int | None = usage.committed
            free = None if total is None else max(0, total - usage.committed - usage.pending)
        else:
            top = await lookup(tx, paths.split(actor.scope.prefix))
            below = [] if top is None or not top.is_dir else await tx.live_descendants(top.node_id)
            counts = {}
            for node in [top, *below] if top is not None else []:
                counts[node.kind] = counts.get(node.kind, 0) + 1
            used = free = None
    directories = counts.get("dir", 0)
    if actor.scope.whole_tenant:
        directories = max(directories, 1)  # the root exists before the first write
    return FsStats(
        total_bytes=total, used_bytes=used, free_bytes=free, directories=directories,
        files=sum(n for kind, n in counts.items() if kind != "dir"), name_max=NAME_MAX,
        chunk_size=CHUNK_SIZE,
    )  # fmt: skip
