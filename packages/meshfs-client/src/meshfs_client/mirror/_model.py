"""The three views of one path that the mirror compares: local, remote and last synced.

Paths inside the mirror are *relative* MeshFS paths: canonical (``meshfs_common.paths``), rooted
at the mirrored remote directory, so ``/`` is that directory itself and ``/a/b`` is
``<remote root>/a/b`` on the server and ``<target>/a/b`` on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["file", "dir", "symlink"]
"""A symbolic link is mirrored as a link (never followed); its target stands in the nodes'
``content_hash`` (see :func:`link_hash`), so a changed target is a changed "content"."""


@dataclass(frozen=True, slots=True)
class LocalNode:
    """What is on disk at a path. ``content_hash`` is filled only when it had to be computed
    (the file's stat differs from the synced one)."""

    kind: Kind
    size: int = 0
    mtime_ns: int = 0
    inode: int = 0
    content_hash: str | None = None
    mode: int = 0
    """The permission bits (a file's executable bits are mirrored)."""

    def same_stat(self, synced: SyncedNode) -> bool:
        """True when size, mtime and inode equal the ones recorded at the last sync."""
        return (
            self.kind == synced.kind
            and self.size == synced.size
            and self.mtime_ns == synced.mtime_ns
            and self.inode == synced.inode
        )


@dataclass(frozen=True, slots=True)
class RemoteNode:
    """What the server has at a path (as of the feed cursor)."""

    kind: Kind
    node_id: str
    version_id: str | None = None
    content_hash: str | None = None
    size: int = 0
    mode: int | None = None
    """The permission bits (``None``: not known yet, e.g. after a write event)."""
    mtime_ns: int | None = None
    """The modification time (``None``: not known yet)."""


@dataclass(frozen=True, slots=True)
class SyncedNode:
    """The last state known to be identical on both sides (the merge base)."""

    kind: Kind
    node_id: str
    version_id: str | None = None
    content_hash: str | None = None
    size: int = 0
    mtime_ns: int = 0
    inode: int = 0
    exec_bits: int | None = None
    """The executable bits both sides had (``None``: recorded before attributes were
    mirrored; then neither the bits nor the mtime are compared until the next transfer).
    A row with bits also says the local mtime equalled the server's."""


EXEC_BITS = 0o111
LINK_PREFIX = "symlink:"


def link_hash(target: str) -> str:
    """What stands in ``content_hash`` for a symbolic link to *target*."""
    return LINK_PREFIX + target


def link_target(node: LocalNode | RemoteNode | SyncedNode) -> str:
    """The target of a symbolic link node."""
    assert node.kind == "symlink"
    assert node.content_hash is not None
    return node.content_hash[len(LINK_PREFIX) :]


def local_path(root_rel: str) -> str:
    """The relative OS path (``a/b``) of a mirror path (``/a/b``)."""
    return root_rel.lstrip("/")
