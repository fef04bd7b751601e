"""The FUSE handlers of names and directories: lookup, mkdir, unlink, rmdir, rename, listings.

Directory changes are committed on the server before their request returns; the parent's
cached listing and the negative entries follow each change made here (the change feed keeps
them current for changes made elsewhere, outside any handler).
"""

from __future__ import annotations

import errno
import logging
import posixpath
from collections.abc import Sequence

import pyfuse3

from meshfs_common.errors import AlreadyExistsError, NotFoundError
from meshfs_fuse.errno_map import fuse_errors
from meshfs_fuse.inodes import Inode
from meshfs_fuse.mount_state import DirHandle, MountState, fail

__all__ = ["NamespaceHandlers"]

log = logging.getLogger(__name__)


class NamespaceHandlers(MountState):
    """Lookups, name changes and directory listings."""

    @fuse_errors
    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        parent = self._directory(parent_inode)
        node = await self._fresh(await self._child(parent, self._name(name)))
        self.table.remember(node)
        return self._reply(node)

    @fuse_errors
    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for ino, count in inode_list:
            try:
                self.table.forget(ino, count)
            except Exception:
                log.exception("forget(%d, %d) failed", ino, count)

    @fuse_errors
    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._writable()
        parent = self._directory(parent_inode)
        text = self._name(name)
        if self.table.child(parent.ino, text) is not None:
            raise AlreadyExistsError(f"file exists: {text}")
        entry = await self.remote.mkdir(
            self.table.child_path(parent.ino, text), mode=mode & 0o7777, uid=ctx.uid, gid=ctx.gid
        )
        node = self.table.attach(parent.ino, text, entry)
        node.listing = {}  # new and empty: lookups inside need no request
        self._listed(parent, text, entry)
        self._entries_changed(parent, at_ns=entry.ctime_ns, subdirs=1)
        self.table.remember(node)
        return self._reply(node)

    @fuse_errors
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._writable()
        parent = self._directory(parent_inode)
        text = self._name(name)
        node = await self._child(parent, text)
        if node.is_dir:
            raise fail(errno.EISDIR)
        if node.node_id is not None:
            await self.remote.delete(self.table.child_path(parent.ino, text))
            self._entries_changed(parent)
        self._listed(parent, text, None)
        self.table.negative.add(parent.ino, text)
        if node.entry is not None and node.entry.nlink > 1:
            await self._to_other_name(node)
        else:
            self.table.detach(node)

    async def _to_other_name(self, node: Inode) -> None:
        """*node* lost one of its hard links: keep it at a name it still has."""
        assert node.node_id is not None
        self.table.detach_quietly(node)
        node.parent = None
        try:
            entry = await self.remote.meta(node_id=node.node_id)
        except NotFoundError:
            entry = None
        parent = self.table.resolve(posixpath.dirname(entry.path)) if entry else None
        if entry is None or parent is None or not parent.is_dir:
            self.table.detach(node)
            return
        self.table.place(node, parent.ino, entry.name)
        self.table.set_entry(node, entry)

    @fuse_errors
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._writable()
        parent = self._directory(parent_inode)
        text = self._name(name)
        node = await self._child(parent, text)
        if not node.is_dir:
            raise fail(errno.ENOTDIR)
        if any(self.table.child(node.ino, n) for n in node.children) or node.listing:
            raise fail(errno.ENOTEMPTY)
        await self.remote.delete(self.table.child_path(parent.ino, text))
        self._entries_changed(parent)
        self._listed(parent, text, None)
        self.table.detach(node)
        self.table.negative.add(parent.ino, text)

    @fuse_errors
    async def rename(
        self,
        parent_inode_old: int,
        name_old: bytes,
        parent_inode_new: int,
        name_new: bytes,
        flags: int,
        ctx: pyfuse3.RequestContext,
    ) -> None:
        self._writable()
        if flags & pyfuse3.RENAME_EXCHANGE:
            await self._exchange(parent_inode_old, name_old, parent_inode_new, name_new)
            return
        noreplace = bool(flags & pyfuse3.RENAME_NOREPLACE)
        old_parent = self._directory(parent_inode_old)
        new_parent = self._directory(parent_inode_new)
        old, new = self._name(name_old), self._name(name_new)
        self.table.child_path(new_parent.ino, new)  # ENAMETOOLONG before anything changes
        source = await self._child(old_parent, old)
        try:
            target: Inode | None = await self._child(new_parent, new)
        except NotFoundError:
            target = None
        if target is source:
            return
        if target is not None:
            if noreplace:
                raise AlreadyExistsError(f"file exists: {new}")
            if target.is_dir and not source.is_dir:
                raise fail(errno.EISDIR)
            if source.is_dir and not target.is_dir:
                raise fail(errno.ENOTDIR)
        # A target with other names (hard links) keeps its file there: only this name changes
        # hands, as on the server.
        linked = target if target is not None and target.entry is not None else None
        if linked is not None and (linked.entry is None or linked.entry.nlink <= 1):
            linked = None
        if source.node_id is None:
            # Not on the server yet: its first commit goes to the new name. Over an existing
            # file, that commit becomes the target's next version, as the server's rename does;
            # over a name of a linked file, the name is removed first.
            if linked is not None:
                await self.remote.delete(self.table.child_path(new_parent.ino, new))
                await self._to_other_name(linked)
            self.table.place(source, new_parent.ino, new)
            if target is not None and target.entry is not None and linked is None:
                self.table.set_entry(source, target.entry)
        else:
            entry = await self.remote.rename(
                self.table.child_path(old_parent.ino, old),
                self.table.child_path(new_parent.ino, new),
                overwrite=not noreplace,
            )
            if linked is not None:
                await self._to_other_name(linked)
            self.table.place(source, new_parent.ino, new)
            self.table.set_entry(source, entry)
            self._listed(new_parent, new, entry)
            if source.is_dir or (target is not None and target.is_dir):
                self._entries_changed(old_parent, new_parent)  # nlink moves too: ask
            else:
                self._entries_changed(old_parent, new_parent, at_ns=entry.ctime_ns)
        self._listed(old_parent, old, None)
        self.table.negative.add(old_parent.ino, old)
        content = self._contents.get(source.ino)
        if content is not None and content.dirty:
            await self.store.written(content, self.table.path_of(source.ino), source.node_id)

    async def _exchange(
        self, parent_inode_a: int, name_a: bytes, parent_inode_b: int, name_b: bytes
    ) -> None:
        """``RENAME_EXCHANGE``: swap two existing names in one step on the server."""
        parent_a = self._directory(parent_inode_a)
        parent_b = self._directory(parent_inode_b)
        a_name, b_name = self._name(name_a), self._name(name_b)
        a = await self._child(parent_a, a_name)
        b = await self._child(parent_b, b_name)
        if a is b:
            return
        if a.entry is None or b.entry is None:
            raise fail(errno.EBUSY)  # created here and not committed yet (open, unwritten)
        entry = await self.remote.exchange(
            self.table.child_path(parent_a.ino, a_name),
            self.table.child_path(parent_b.ino, b_name),
        )
        if (
            self.table.child(parent_a.ino, a_name) is a
            and self.table.child(parent_b.ino, b_name) is b
        ):
            self.table.exchange(a, b)  # unless the change feed's echo came first and did it
        self.table.set_entry(a, entry)
        self._listed(parent_b, b_name, entry)
        self._listed(parent_a, a_name, b.entry)
        self._entries_changed(parent_a, parent_b)

    @fuse_errors
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        node = self._directory(inode)
        path = self.table.path_of(node.ino)
        if path is None:
            raise NotFoundError("the directory was removed")
        if node.listing is not None:
            # Listed before and kept current by this mount's changes and the change feed.
            listing = dict(node.listing)
        else:
            position = self.feed_position()
            listing = {entry.name: entry for entry in await self.remote.listdir(path)}
            # Names committed while the listing was on its way are known to the table.
            for name, ino in node.children.items():
                child = self.table.find(ino)
                if child is not None and child.entry is not None:
                    listing.setdefault(name, child.entry)
            if self.feed_position() == position:
                # Kept only if no change event came while it was on its way (it could
                # predate one and would then stay stale).
                node.listing = dict(listing)
        names = sorted(set(listing) | set(node.children))
        fh = next(self._fh)
        self._dirs[fh] = DirHandle(node, names, listing)
        return fh

    @fuse_errors
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        handle = self._dirs.get(fh)
        if handle is None:
            raise fail(errno.EBADF)
        directory = handle.node
        for index in range(start_id, len(handle.names)):
            name = handle.names[index]
            node = self.table.child(directory.ino, name)
            if node is None:
                entry = handle.entries.get(name)
                if entry is None or not directory.attached:
                    continue
                try:
                    node = self.table.attach(directory.ino, name, entry)
                except NotFoundError:
                    continue  # removed by the change feed since the directory was opened
            if not pyfuse3.readdir_reply(token, name.encode(), self._reply(node), index + 1):
                self.table.forget(node.ino, 0)  # frees it if the kernel never took it
                return
            self.table.remember(node)  # readdirplus: the kernel now holds a reference

    @fuse_errors
    async def releasedir(self, fh: int) -> None:
        self._dirs.pop(fh, None)

    @fuse_errors
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        # Directory changes are committed on the server before their request returns.
        return
