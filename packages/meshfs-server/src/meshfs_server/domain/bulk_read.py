"""Bulk reads: what a subtree or a list of paths holds, resolved in one read transaction.

The answer is a list of :class:`Outgoing` members (directories first, then what they hold,
sorted by path), each with the head version it will be read at. The versions are immutable, so
streaming them afterwards gives every file as one consistent version even while others write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from meshfs_common import paths
from meshfs_common.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    IsADirError,
    MeshFSError,
    NotFoundError,
)
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.ports import MetadataStore, NodeRow, ReadTx, VersionRow
from meshfs_server.domain.tree import resolve


@dataclass(slots=True)
class Outgoing:
    """One member of a bulk read: a directory, a file at its head version, or a failure."""

    name: str
    """The member's name in the archive (relative, no leading ``/``)."""
    path: str
    kind: Literal["file", "dir"]
    node: NodeRow | None = None
    version: VersionRow | None = None
    error: MeshFSError | None = None

    @property
    def size(self) -> int:
        return self.version.size if self.version is not None else 0


class BulkReads:
    """Resolve what a bulk read sends (the content is read by the route, as it streams)."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    async def subtree(self, actor: Actor, path: str) -> list[Outgoing]:
        """Every live directory and file under *path* (a file: itself), named relative to it."""
        where = paths.normalise(path)
        actor.check_read(where)
        async with self.store.read(actor.tenant_id) as tx:
            top = await resolve(tx, where)
            if not top.is_dir:
                return [await _file(tx, paths.basename(where), where, top)]
            below = await tx.live_descendants(top.node_id)
            names: dict[str, tuple[str, ...]] = {top.node_id: ()}
            by_id = {node.node_id: node for node in below}

            def names_of(node: NodeRow) -> tuple[str, ...]:
                found = names.get(node.node_id)
                if found is None:
                    parent = by_id.get(node.parent_id or "", top)
                    found = (*names_of(parent), node.name)
                    names[node.node_id] = found
                return found

            out: list[Outgoing] = []
            for node in sorted(below, key=names_of):
                relative = names_of(node)
                name = "/".join(relative)
                full = paths.join([*paths.split(where), *relative])
                if node.is_dir:
                    out.append(Outgoing(name + "/", full, "dir", node))
                elif node.kind == "file" and node.head_version_id is not None:
                    out.append(await _file(tx, name, full, node))
            return out

    async def files(self, actor: Actor, wanted: Sequence[str], *, strict: bool) -> list[Outgoing]:
        """The files at *wanted*, in that order, named by their paths; one that cannot be read
        is a member with its error, or (*strict*) fails the request, naming it."""
        out: list[Outgoing] = []
        async with self.store.read(actor.tenant_id) as tx:
            for raw in wanted:
                try:
                    where = paths.normalise(raw)
                    actor.check_read(where)
                    node = await resolve(tx, where)
                    if node.is_dir:
                        raise IsADirError(f"is a directory: {where}")
                    out.append(await _file(tx, where.lstrip("/"), where, node))
                except (BadRequestError, ConflictError, ForbiddenError, NotFoundError) as exc:
                    if strict:
                        exc.message = f"{raw}: {exc.message}"
                        exc.detail = {**(exc.detail or {}), "path": raw}
                        raise
                    out.append(Outgoing(raw.lstrip("/") or raw, raw, "file", error=exc))
        return out


async def _file(tx: ReadTx, name: str, path: str, node: NodeRow) -> Outgoing:
    version = await tx.get_version(node.head_version_id or "")
    if version is None:
        raise NotFoundError(f"no content for {path}")
    return Outgoing(name, path, "file", node, version)
