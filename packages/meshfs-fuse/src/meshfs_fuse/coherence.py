"""Keeping the caches true: apply the change feed, then invalidate the kernel's caches.

The kernel caches entries and attributes for the mount's TTL (60 s) and file pages while a
version stays the head. A change made elsewhere (another mount, the API, an agent) reaches
this mount through the change feed; :class:`Coherence` updates the daemon's own tables first,
then queues the kernel invalidations that the change requires.

:class:`Invalidator` runs those invalidations from one dedicated trio task, each in a worker
thread. Never from a request handler, never on the trio thread: both deadlock the kernel (see
docs in MOUNT.md - ``invalidate_entry`` inside a handler; ``invalidate_inode`` on the trio
thread while a read or dirty pages of that inode are in flight).

This mount's own changes come back through the feed too; they find the tables already as the
event says (same node at that name, same head version) and cost nothing (no invalidation).
"""

from __future__ import annotations

import logging
import math
import posixpath
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
import pyfuse3
import trio

from meshfs_client import FeedItem, FeedReset
from meshfs_common.models import ChangeEvent, Entry
from meshfs_fuse.inodes import ROOT, Inode, InodeTable

__all__ = ["Coherence", "Invalidation", "Invalidator"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Invalidation:
    """One kernel invalidation: an inode's attributes and pages, or one directory entry."""

    inode: int
    name: str | None = None


class Invalidator:
    """Runs kernel invalidations in order, from its own task, in a worker thread."""

    def __init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[Invalidation](math.inf)
        self.done = 0

    def inode(self, ino: int) -> None:
        """Drop the kernel's attributes and cached pages of *ino*."""
        self._send.send_nowait(Invalidation(ino))

    def entry(self, parent: int, name: str) -> None:
        """Drop the kernel's entry *name* in directory *parent*."""
        self._send.send_nowait(Invalidation(parent, name))

    def close(self) -> None:
        """Accept no more invalidations: :meth:`run` returns once the queue is empty."""
        self._send.close()

    async def run(self) -> None:
        """Apply queued invalidations until cancelled (or closed and drained)."""
        async for item in self._receive:
            await trio.to_thread.run_sync(_invalidate, item)
            self.done += 1


def _invalidate(item: Invalidation) -> None:
    try:
        if item.name is None:
            pyfuse3.invalidate_inode(item.inode, False)
        else:
            pyfuse3.invalidate_entry(item.inode, item.name.encode())
    except FileNotFoundError:
        pass  # the kernel never saw it: nothing to drop
    except OSError as exc:
        log.debug("kernel invalidation %s failed: %s", item, exc)


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def _with_attributes(entry: Entry, changes: dict[str, int], event: ChangeEvent) -> Entry:
    """*entry* with the attributes an ``attributes`` event set."""
    updated = msgspec.structs.replace(entry, ctime_ns=_ns(event.at))
    for key, value in changes.items():
        updated = msgspec.structs.replace(updated, **{key: value})
    if "mtime_ns" in changes:
        moment = datetime.fromtimestamp(changes["mtime_ns"] / 1e9, tz=UTC)
        updated = msgspec.structs.replace(updated, modified_at=moment)
    return updated


def entry_from_event(event: ChangeEvent) -> Entry:
    """The entry a change event describes (for a name this mount has not looked up)."""
    return Entry(
        node_id=event.node_id,
        path=event.path,
        name=posixpath.basename(event.path),
        kind=event.kind,
        created_at=event.at,
        modified_at=event.at,
        size=event.size or 0,
        version_id=event.version_id,
        content_hash=event.content_hash,
    )


class Coherence:
    """Applies feed items to the inode table and queues kernel invalidations."""

    def __init__(self, table: InodeTable, invalidator: Invalidator) -> None:
        self._table = table
        self._invalidator = invalidator
        self.cursor = 0
        self.applied = 0
        self.echoes = 0

    def apply(self, item: FeedItem) -> None:
        """Bring the tables up to date with one feed item."""
        if isinstance(item, FeedReset):
            self._reset()
            self.cursor = item.cursor
            return
        self.cursor = item.seq
        changed = self._apply(item)
        if changed:
            self.applied += 1
        else:
            self.echoes += 1

    def _apply(self, event: ChangeEvent) -> bool:
        if event.type == "delete":
            return self._deleted(event)
        if event.type == "rename" and event.exchanged_with:
            return self._exchanged(event)
        if event.type == "rename":
            return self._renamed(event)
        if event.type == "attributes":
            return self._attributes(event)
        if event.type == "xattr":
            return False  # extended attributes are not cached: nothing to update
        if event.type in ("link", "create"):
            return self._named(event)
        return self._written(event)

    def _attributes(self, event: ChangeEvent) -> bool:
        """chmod/chown/utimens elsewhere: the new values, and the kernel asks again."""
        changes = {
            key: value
            for key, value in (event.attributes or {}).items()
            if key in ("mode", "uid", "gid", "mtime_ns", "atime_ns")
        }
        node = self._table.by_node(event.node_id)
        if node is not None and node.entry is not None:
            entry = node.entry
            if not entry.ctime_ns:  # an entry made from an event: the server says the rest
                node.stale = True
            elif all(getattr(entry, k) == v for k, v in changes.items()):
                return False  # this mount's own change, or already known
            else:
                node.entry = _with_attributes(entry, changes, event)
            self._listed(node.parent, node.name, node.entry)
            self._invalidator.inode(node.ino)
            return True
        self._forget_listing(event.path)
        return True

    def _named(self, event: ChangeEvent) -> bool:
        """A symbolic link or special node made, or a hard link added, elsewhere."""
        parent = self._parent(event.path)
        name = posixpath.basename(event.path)
        node = self._table.by_node(event.node_id)
        if parent is not None:
            listed = parent.listing.get(name) if parent.listing is not None else None
            if listed is not None and listed.node_id == event.node_id:
                return False  # this mount's own change
            self._table.negative.discard(parent.ino, name)
            self._table.removed.discard(parent.ino, name)
            # The event carries no attributes: the next listing or lookup asks the server.
            parent.listing = None
        if node is not None:
            node.stale = True  # its link count changed
            self._invalidator.inode(node.ino)
        return True

    def _forget_listing(self, path: str) -> None:
        parent = self._parent(path)
        if parent is not None:
            parent.listing = None

    def _exchanged(self, event: ChangeEvent) -> bool:
        """One side of an exchange: swap both names (the other side finds it done)."""
        assert event.exchanged_with is not None
        moving = self._table.by_node(event.node_id)
        other = self._table.by_node(event.exchanged_with)
        new_parent = self._parent(event.path)
        new_name = posixpath.basename(event.path)
        if (
            moving is not None
            and new_parent is not None
            and self._table.child(new_parent.ino, new_name) is moving
        ):
            return False  # already swapped (this mount's exchange, or the first event)
        old_parent = self._parent(event.old_path) if event.old_path else None
        old_name = posixpath.basename(event.old_path or "")
        for parent, name in ((old_parent, old_name), (new_parent, new_name)):
            if parent is not None:
                self._invalidator.entry(parent.ino, name)
                parent.listing = None
        if (
            moving is not None
            and other is not None
            and old_parent is not None
            and new_parent is not None
            and self._table.child(old_parent.ino, old_name) is moving
            and self._table.child(new_parent.ino, new_name) is other
        ):
            self._table.exchange(moving, other)
            return True
        # Only one side known here: it is no longer at its name; lookups ask the server.
        for node in (moving, other):
            if node is not None and node.parent is not None and node.opens == 0:
                self._table.detach(node)
        return True

    def _parent(self, path: str) -> Inode | None:
        return self._table.resolve(posixpath.dirname(path))

    def _written(self, event: ChangeEvent) -> bool:
        node = self._table.by_node(event.node_id)
        if node is not None and node.entry is not None:
            if node.entry.version_id == event.version_id and event.kind == "file":
                return False
            if event.kind == "dir":
                return False
            at_ns = _ns(event.at) if node.entry.ctime_ns else 0
            node.entry = msgspec.structs.replace(
                node.entry,
                size=event.size or 0,
                version_id=event.version_id,
                content_hash=event.content_hash,
                modified_at=event.at,
                mtime_ns=at_ns,
                ctime_ns=at_ns,
            )
            self._listed(node.parent, node.name, node.entry)
            self._invalidator.inode(node.ino)
            return True
        parent = self._parent(event.path)
        if parent is None:
            return False
        name = posixpath.basename(event.path)
        self._table.negative.discard(parent.ino, name)
        self._table.removed.discard(parent.ino, name)
        if parent.listing is not None:
            known = parent.listing.get(name)
            if known is not None and known.version_id == event.version_id:
                return False
            parent.listing[name] = entry_from_event(event)
        return True

    def _deleted(self, event: ChangeEvent) -> bool:
        node = self._table.by_node(event.node_id)
        parent = self._parent(event.path)
        name = posixpath.basename(event.path)
        changed = False
        if parent is not None:
            # An entry fetched before this event (a listing, a lookup) must not bring it back.
            self._table.removed.add(parent.ino, name, event.node_id)
        if parent is not None and parent.listing is not None:
            known = parent.listing.get(name)
            if known is not None and known.node_id == event.node_id:
                del parent.listing[name]
                changed = True
        if event.nlink and node is not None:
            # One name of a hard-linked file: the file stays at its other names.
            node.stale = True
            self._invalidator.inode(node.ino)
            if parent is not None:
                self._invalidator.entry(parent.ino, name)
            if node.parent != (parent.ino if parent is not None else None) or node.name != name:
                return True
        if node is not None and node.parent is not None:
            old_parent, old_name = node.parent, node.name
            self._table.removed.add(old_parent, old_name, event.node_id)
            self._table.detach(node)
            self._invalidator.entry(old_parent, old_name)
            changed = True
        return changed

    def _renamed(self, event: ChangeEvent) -> bool:
        moving_id = event.replaced_node_id or event.node_id
        new_parent = self._parent(event.path)
        new_name = posixpath.basename(event.path)
        old_name = posixpath.basename(event.old_path or "")
        old_parent = self._parent(event.old_path) if event.old_path else None
        # Listings follow every rename, even one the table already shows (a lookup may have
        # moved the inode before the event came): a stale old name would bring it back.
        # An entry fetched before this event (a listing, a lookup) must not put it back there.
        if old_parent is not None:
            self._table.removed.add(old_parent.ino, old_name, moving_id)
        if old_parent is not None and old_parent.listing is not None:
            listed = old_parent.listing.get(old_name)
            if listed is not None and listed.node_id in (moving_id, event.node_id):
                del old_parent.listing[old_name]
        if new_parent is not None:
            current = self._table.child(new_parent.ino, new_name)
            if (
                current is not None
                and current.node_id == event.node_id
                and current.entry is not None
                and (event.kind == "dir" or current.entry.version_id == event.version_id)
                and self._table.by_node(moving_id) in (None, current)
            ):
                self._table.removed.discard(new_parent.ino, new_name)
                if new_parent.listing is not None:
                    new_parent.listing[new_name] = current.entry
                return False  # already so: this mount made the change, or looked it up
        moving = self._table.by_node(moving_id)
        entry = entry_from_event(event)
        if moving is not None and moving.entry is not None:
            entry = msgspec.structs.replace(
                moving.entry,
                node_id=event.node_id,
                path=event.path,
                name=new_name,
                size=event.size if event.size is not None else moving.entry.size,
                version_id=event.version_id or moving.entry.version_id,
                content_hash=event.content_hash or moving.entry.content_hash,
            )
        if moving is not None and moving.parent is not None:
            self._table.removed.add(moving.parent, moving.name, moving_id)
            self._invalidator.entry(moving.parent, moving.name)
        if new_parent is None:
            if moving is not None:
                self._table.detach(moving)  # moved out of what this mount knows
            return True
        displaced = self._table.child(new_parent.ino, new_name)
        if displaced is not None and displaced is not moving:
            self._invalidator.entry(new_parent.ino, new_name)
        if moving is not None:
            self._table.place(moving, new_parent.ino, new_name)
            self._table.set_entry(moving, entry)
            if event.replaced_node_id:
                self._invalidator.inode(moving.ino)
        elif displaced is not None:
            self._table.detach(displaced)
        self._table.negative.discard(new_parent.ino, new_name)
        self._table.removed.discard(new_parent.ino, new_name)
        if new_parent.listing is not None:
            new_parent.listing[new_name] = entry
        return True

    def _listed(self, parent: int | None, name: str, entry: Entry) -> None:
        directory = self._table.find(parent) if parent is not None else None
        if directory is not None and directory.listing is not None:
            directory.listing[name] = entry

    def _reset(self) -> None:
        """The feed lost track: forget every name and listing; the kernel asks again."""
        self._table.negative.clear()
        self._table.removed.clear()
        for node in self._table:
            node.listing = None
            if node.ino != ROOT and node.parent is not None and node.opens == 0:
                parent, name = node.parent, node.name
                self._table.detach(node)
                self._invalidator.entry(parent, name)
