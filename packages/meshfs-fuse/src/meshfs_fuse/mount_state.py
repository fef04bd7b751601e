"""What every request handler of the mount shares: its tables, stores and open handles.

:class:`MountState` holds the state of one mount and the small steps the handlers in
:mod:`~meshfs_fuse.file_handlers`, :mod:`~meshfs_fuse.namespace_handlers` and
:mod:`~meshfs_fuse.attribute_handlers` have in common (name checks, resolving a name, the
reply the kernel gets); :class:`~meshfs_fuse.operations.MeshFSOperations` combines them.
"""

from __future__ import annotations

import errno
import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import msgspec
import pyfuse3

from meshfs_common.errors import NotFoundError
from meshfs_common.models import Entry
from meshfs_fuse.attributes import FILE_MODE, NodeAttributes, Owner, to_entry_attributes
from meshfs_fuse.content import ContentStore, FileContent
from meshfs_fuse.inodes import Inode, InodeTable

__all__ = ["MAX_NAME", "DirHandle", "FileHandle", "MountState", "fail"]

MAX_NAME = 255
"""Longest name in bytes (``f_namemax``)."""


def fail(code: int) -> pyfuse3.FUSEError:
    """The error that makes the kernel answer the request with errno *code*."""
    return pyfuse3.FUSEError(code)


@dataclass(eq=False, slots=True)
class FileHandle:
    """An open file: its inode, its content and whether it was opened for writing."""

    node: Inode
    content: FileContent
    writable: bool


@dataclass(eq=False, slots=True)
class DirHandle:
    """An open directory: the names it lists and the entries known for them."""

    node: Inode
    names: list[str]
    entries: dict[str, Entry]


class MountState(pyfuse3.Operations):
    """The state of one mount: the inode table, the content store and the open handles."""

    def __init__(
        self,
        table: InodeTable,
        store: ContentStore,
        owner: Owner,
        *,
        read_only: bool = False,
        ttl: float = 60.0,
    ) -> None:
        super().__init__()
        self.table = table
        self.store = store
        self.remote = store.remote
        self.owner = owner
        self.read_only = read_only
        self.ttl = ttl
        self.entry_ttl = ttl
        """How long the kernel may keep a name (runtime option ``meshfs.option.entry_ttl``)."""
        self.attr_ttl = ttl
        """How long the kernel may keep attributes (``meshfs.option.attr_ttl``)."""
        self._handles: dict[int, FileHandle] = {}
        self._dirs: dict[int, DirHandle] = {}
        self._contents: dict[int, FileContent] = {}
        self._unsent: dict[int, tuple[Inode, FileContent]] = {}
        self._fh = itertools.count(1)
        self._statfs: tuple[float, pyfuse3.StatvfsData] | None = None
        self.feed_position: Callable[[], int] = lambda: 0
        """The change feed's cursor (set by the daemon): listings are cached only when no
        event arrived while they were fetched."""

    # --- what the handlers share --------------------------------------------------------------

    def attributes(self, node: Inode) -> NodeAttributes:
        """What ``stat`` shows for *node*: the server's entry, or the local spool's content."""
        content = self._contents.get(node.ino)
        if node.entry is not None:
            base = NodeAttributes.from_entry(node.entry, self.owner)
        else:
            wanted = node.created_with or {}
            base = NodeAttributes.new_file(
                Owner(wanted.get("uid", self.owner.uid), wanted.get("gid", self.owner.gid)),
                content.mtime_ns if content else 0,
                wanted.get("mode", FILE_MODE),
            )
        if not node.attached:
            base = replace(base, nlink=0)  # unlinked (still open): no name counts it
        if content is not None and content.spool is not None and content.dirty:
            return base.with_content(content.spool.size, content.mtime_ns)
        return base

    async def _fresh(self, node: Inode) -> Inode:
        """*node*, its entry fetched again if the change feed marked it stale."""
        if node.stale and node.node_id is not None:
            node.stale = False
            try:
                node.entry = await self.remote.meta(node_id=node.node_id)
            except BaseException:
                node.stale = True
                raise
        return node

    def _entries_changed(
        self, *directories: Inode, at_ns: int | None = None, subdirs: int = 0
    ) -> None:
        """This mount added, removed or moved a name in each of *directories*; the kernel
        drops its copy of their attributes after such a request and asks again.

        The server set their mtime and ctime to the time of the change, which its answer
        carries as the new or moved node's ctime (*at_ns*), and their nlink grew by *subdirs*:
        the cached entry is updated so. Without *at_ns* (a removal) the next ``getattr`` asks
        the server.
        """
        for directory in directories:
            entry = directory.entry
            if entry is None or directory.node_id is None:
                continue
            if at_ns is None or directory.stale or entry.ctime_ns == 0 or at_ns < entry.ctime_ns:
                directory.stale = True
                continue
            directory.entry = msgspec.structs.replace(
                entry,
                mtime_ns=at_ns,
                ctime_ns=at_ns,
                modified_at=datetime.fromtimestamp(at_ns / 1e9, tz=UTC),
                nlink=entry.nlink + subdirs,
            )

    def _reply(self, node: Inode) -> pyfuse3.EntryAttributes:
        reply = to_entry_attributes(
            node.ino, self.table.generation, self.attributes(node), self.entry_ttl
        )
        reply.attr_timeout = self.attr_ttl
        return reply

    def _name(self, raw: bytes) -> str:
        if len(raw) > MAX_NAME:
            raise fail(errno.ENAMETOOLONG)
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise fail(errno.EINVAL) from None

    def _directory(self, ino: int) -> Inode:
        node = self.table.get(ino)
        if not node.is_dir:
            raise fail(errno.ENOTDIR)
        return node

    def _writable(self) -> None:
        if self.read_only:
            raise fail(errno.EROFS)

    async def _child(self, parent: Inode, name: str) -> Inode:
        """The inode of *name* in *parent*, asking the server only when nothing is known."""
        node = self.table.child(parent.ino, name)
        if node is not None:
            return node
        if parent.listing is not None:
            listed = parent.listing.get(name)
            if listed is None:
                raise NotFoundError(f"no such file: {name}")
            return self.table.attach(parent.ino, name, listed)
        if (parent.ino, name) in self.table.negative:
            raise NotFoundError(f"no such file: {name}")
        path = self.table.child_path(parent.ino, name)
        try:
            entry = await self.remote.meta(path)
        except NotFoundError:
            if self.table.child(parent.ino, name) is None:
                self.table.negative.add(parent.ino, name)
            raise
        # Something may have appeared here while we waited (a create of this mount).
        return self.table.child(parent.ino, name) or self.table.attach(parent.ino, name, entry)

    def _listed(self, parent: Inode, name: str, entry: Entry | None) -> None:
        if parent.listing is None:
            return
        if entry is None:
            parent.listing.pop(name, None)
        else:
            parent.listing[name] = entry
