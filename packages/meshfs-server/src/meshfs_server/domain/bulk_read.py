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
from meshfs_server.domain.tree import lookup, not_a_directory, resolve


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
        is a member with its error, or (*strict*) fails the request, naming it.

        Each directory on the way is resolved once, and a directory many of the files are in
        is listed once (a tree's files cost about one query each, for their versions).
        """
        out: list[Outgoing] = []
        async with self.store.read(actor.tenant_id) as tx:
            nodes = _Lookups(tx)
            checked: list[str | MeshFSError] = []
            for raw in wanted:
                try:
                    at = paths.normalise(raw)
                    actor.check_read(at)
                except (BadRequestError, ConflictError, ForbiddenError, NotFoundError) as exc:
                    checked.append(exc)
                    continue
                nodes.want(at)
                checked.append(at)
            for raw, path in zip(wanted, checked, strict=True):
                try:
                    if isinstance(path, MeshFSError):
                        raise path
                    node = await nodes.node(path)
                    if node.is_dir:
                        raise IsADirError(f"is a directory: {path}")
                    out.append(await _file(tx, path.lstrip("/"), path, node))
                except (BadRequestError, ConflictError, ForbiddenError, NotFoundError) as exc:
                    if strict:
                        exc.message = f"{raw}: {exc.message}"
                        exc.detail = {**(exc.detail or {}), "path": raw}
                        raise
                    out.append(Outgoing(raw.lstrip("/") or raw, raw, "file", error=exc))
        return out


#: Files wanted in one directory from which it is listed at once rather than looked up by name.
LISTED = 8


class _Lookups:
    """The live nodes at paths in one read transaction, as :func:`resolve` finds them, each
    directory on the way resolved once."""

    def __init__(self, tx: ReadTx) -> None:
        self.tx = tx
        self._wanted: dict[tuple[str, ...], int] = {}
        self._dirs: dict[tuple[str, ...], NodeRow] = {}
        self._listed: dict[tuple[str, ...], dict[str, NodeRow] | None] = {}

    def want(self, path: str) -> None:
        """Say that *path* will be asked for (so its directory may be listed once)."""
        names = paths.split(path)
        if names:
            self._wanted[names[:-1]] = self._wanted.get(names[:-1], 0) + 1

    async def node(self, path: str) -> NodeRow:
        """The live node at canonical *path* (errors as :func:`resolve` raises them)."""
        names = paths.split(path)
        if not names:
            return await resolve(self.tx, path)
        parent = await self._dir(names[:-1], path)
        listing = await self._listing(names[:-1], parent)
        if listing is None:
            node = await self.tx.child(parent.node_id, names[-1])
        else:
            node = listing.get(names[-1])
        if node is None:
            raise NotFoundError(f"no such file or directory: {path}")
        return node

    async def _dir(self, names: tuple[str, ...], path: str) -> NodeRow:
        known = self._dirs.get(names)
        if known is not None:
            return known
        node = await lookup(self.tx, names)
        if node is None:
            raise NotFoundError(f"no such file or directory: {path}")
        if not node.is_dir:
            raise not_a_directory(node, paths.join(names))
        self._dirs[names] = node
        return node

    async def _listing(self, names: tuple[str, ...], parent: NodeRow) -> dict[str, NodeRow] | None:
        """The whole of a directory many wanted files are in; None: look names up one by one."""
        if names in self._listed:
            return self._listed[names]
        listing = None
        count = self._wanted.get(names, 0)
        if count >= LISTED:
            limit = 4 * count + 64
            rows = await self.tx.children(parent.node_id, after=None, limit=limit)
            if len(rows) < limit:  # all of it: a name not there does not exist
                listing = {row.name: row for row in rows}
        self._listed[names] = listing
        return listing


async def _file(tx: ReadTx, name: str, path: str, node: NodeRow) -> Outgoing:
    version = await tx.get_version(node.head_version_id or "")
    if version is None:
        raise NotFoundError(f"no content for {path}")
    return Outgoing(name, path, "file", node, version)
