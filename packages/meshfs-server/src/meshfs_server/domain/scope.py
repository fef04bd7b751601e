"""What part of a tenant an actor may see: its scope, and the feed as seen through it.

A device session sees its whole tenant. An agent token is confined to a path prefix: every path
it names must lie within it, and everything the server tells it - listings, metadata, versions,
downloads, change events, upload answers - describes only nodes within it. :class:`Scope` is
that one rule; the namespace checks paths with :meth:`Scope.check`, the change feed shows events
through :meth:`Scope.view`, and content deduplication is limited by :attr:`Scope.whole_tenant`.

How the feed looks through a prefix (cursors stay the tenant's sequence numbers, so an agent
sees gaps):

* an event whose path is within the prefix is shown as it is;
* a rename *into* the prefix (from outside) is shown as the creation of what arrived: a
  ``write`` of the file's head, or a ``mkdir`` of the directory (whose content, if any, is not
  replayed: list it);
* a rename *out of* the prefix is shown as a ``delete`` of the old path;
* a new name (hard link) within the prefix is shown as a ``write`` of the file there: the
  file's other names may lie outside;
* an exchange of a path inside with one outside (two ``rename`` events naming each other in
  ``exchanged_with``) is shown as one creation at the path inside (the event moving in) whose
  ``replaced_node_id`` is the node that left; the event moving out is not shown;
* a delete or rename of an ancestor of the prefix (the prefix itself vanished, or something else
  now stands at its path) is :data:`REPLACED`: the viewer must reconcile (a ``reset``);
* nothing else is shown: no outside path, node id, version id, size, hash or writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from meshfs_common import paths
from meshfs_common.errors import ForbiddenError
from meshfs_common.models import ChangeEvent


class Replaced:
    """The scope's root was deleted or moved, or something was moved onto its path."""

    def __repr__(self) -> str:
        return "REPLACED"


REPLACED: Final = Replaced()


@dataclass(frozen=True, slots=True)
class Scope:
    """The subtree of a tenant an actor may see (the whole tenant unless ``prefix`` limits it)."""

    prefix: str = paths.ROOT

    @property
    def whole_tenant(self) -> bool:
        """True when nothing is hidden (device sessions, agent tokens for ``/``)."""
        return self.prefix == paths.ROOT

    def contains(self, path: str) -> bool:
        """True when canonical *path* lies within the scope."""
        return paths.is_within(path, self.prefix)

    def check(self, path: str) -> None:
        """Refuse a path outside the scope (``403 forbidden``)."""
        if not self.contains(path):
            raise ForbiddenError(f"this token is limited to {self.prefix}")

    def _above(self, path: str | None) -> bool:
        """True when *path* is a strict ancestor of the prefix."""
        return path is not None and path != self.prefix and paths.is_within(self.prefix, path)

    def view(self, event: ChangeEvent) -> ChangeEvent | Replaced | None:
        """*event* as this scope sees it: unchanged, rewritten, :data:`REPLACED`, or None
        (invisible). See the module notes."""
        if self.whole_tenant:
            return event
        inside = self.contains(event.path)
        if event.type != "rename":
            if inside and event.type == "link" and event.kind != "file":
                return ChangeEvent(  # a symbolic link or special node whose names may lie outside
                    seq=event.seq, type="create", node_id=event.node_id, kind=event.kind,
                    path=event.path, at=event.at, target=event.target, writer=event.writer,
                )  # fmt: skip
            if inside and event.type == "link":  # the file's other names may lie outside
                return ChangeEvent(
                    seq=event.seq, type="write", node_id=event.node_id, kind="file",
                    path=event.path, at=event.at, version_id=event.version_id, size=event.size,
                    content_hash=event.content_hash, writer=event.writer,
                )  # fmt: skip
            if inside:
                return event
            return REPLACED if event.type == "delete" and self._above(event.path) else None
        came_from_inside = event.old_path is not None and self.contains(event.old_path)
        if inside and came_from_inside:
            return event
        if self._above(event.old_path) or self._above(event.path):
            return REPLACED
        # One side of an exchange: the node the scope knew at the path inside is replaced.
        replaced = event.exchanged_with
        if inside:  # moved in from outside: a creation
            if event.kind == "dir":
                return ChangeEvent(
                    seq=event.seq, type="mkdir", node_id=event.node_id, kind="dir",
                    path=event.path, at=event.at, writer=event.writer, replaced_node_id=replaced,
                )  # fmt: skip
            if event.kind != "file":  # a symbolic link or special node
                return ChangeEvent(
                    seq=event.seq, type="create", node_id=event.node_id, kind=event.kind,
                    path=event.path, at=event.at, target=event.target, writer=event.writer,
                    replaced_node_id=replaced,
                )  # fmt: skip
            return ChangeEvent(
                seq=event.seq, type="write", node_id=event.node_id, kind="file",
                path=event.path, at=event.at, version_id=event.version_id, size=event.size,
                content_hash=event.content_hash, writer=event.writer, replaced_node_id=replaced,
            )  # fmt: skip
        if came_from_inside and replaced is not None:
            return None  # the other side's event (moved in) tells of the replacement
        if came_from_inside:  # moved out: gone from this view
            assert event.old_path is not None
            # Moved over a file outside: the node that left is the one now a tombstone, and
            # the head version belongs to the file outside.
            return ChangeEvent(
                seq=event.seq, type="delete", node_id=event.replaced_node_id or event.node_id,
                kind=event.kind, path=event.old_path, at=event.at,
                version_id=None if event.replaced_node_id else event.version_id,
                writer=event.writer,
            )  # fmt: skip
        return None


WHOLE_TENANT: Final = Scope()
