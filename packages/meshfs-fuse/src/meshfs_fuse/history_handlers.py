"""The FUSE handlers in front of all others: requests for ``.meshfs`` are answered here.

Each handler answers a request about a virtual inode (:mod:`~meshfs_fuse.history_view`) itself
and hands every other request to the next handler class (``super()``); changes inside
``.meshfs`` are ``EROFS``. ``.meshfs`` is looked up but never listed in the root. Extended
attributes outside ``.meshfs/control`` stay refused as before.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence

import pyfuse3

from meshfs_fuse.errno_map import fuse_errors
from meshfs_fuse.history_view import OPTIONS, STATS, HistoryView

__all__ = ["HistoryHandlers"]


class HistoryHandlers(HistoryView):
    """``.meshfs``: file versions and the control file, read-only."""

    # --- names --------------------------------------------------------------------------------

    @fuse_errors
    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        if self._is_meta_name(parent_inode, name):
            return self._hold(self.virtual.meta)
        if self.virtual.owns(parent_inode):
            parent = self.virtual.get(parent_inode)
            return self._hold(await self._virtual_lookup(parent, self._name(name)))
        return await super().lookup(parent_inode, name, ctx)

    @fuse_errors
    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        virtual = [(ino, n) for ino, n in inode_list if self.virtual.owns(ino)]
        for ino, count in virtual:
            self.virtual.forget(ino, count)
        await super().forget([(ino, n) for ino, n in inode_list if not self.virtual.owns(ino)])

    @fuse_errors
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        if self.virtual.owns(inode):
            return self._virtual_reply(self.virtual.get(inode))
        return await super().getattr(inode, ctx)

    # --- listings -----------------------------------------------------------------------------

    @fuse_errors
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        if not self.virtual.owns(inode):
            return await super().opendir(inode, ctx)
        node = self.virtual.get(inode)
        if not node.is_dir:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        fh = next(self._fh)
        self._virtual_dirs[fh] = await self._virtual_children(node)
        return fh

    @fuse_errors
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        children = self._virtual_dirs.get(fh)
        if children is None:
            return await super().readdir(fh, start_id, token)
        for index in range(start_id, len(children)):
            name, node = children[index]
            if not pyfuse3.readdir_reply(
                token, name.encode(), self._virtual_reply(node), index + 1
            ):
                self.virtual.forget(node.ino, 0)
                return None
            node.lookups += 1
        return None

    @fuse_errors
    async def releasedir(self, fh: int) -> None:
        if self._virtual_dirs.pop(fh, None) is None:
            await super().releasedir(fh)

    # --- content ------------------------------------------------------------------------------

    @fuse_errors
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        if not self.virtual.owns(inode):
            return await super().open(inode, flags, ctx)
        node = self.virtual.get(inode)
        if node.is_dir:
            raise pyfuse3.FUSEError(errno.EISDIR)
        if (flags & os.O_ACCMODE) != os.O_RDONLY or flags & os.O_TRUNC:
            raise pyfuse3.FUSEError(errno.EROFS)
        fh = next(self._fh)
        self._virtual_files[fh] = node
        node.lookups += 1  # held while open, as an open node inode is
        return pyfuse3.FileInfo(fh=fh, keep_cache=True)

    @fuse_errors
    async def read(self, fh: int, off: int, size: int) -> bytes:
        node = self._virtual_files.get(fh)
        if node is None:
            return await super().read(fh, off, size)
        return await self._virtual_read(node, off, size)

    @fuse_errors
    async def flush(self, fh: int) -> None:
        if fh not in self._virtual_files:
            await super().flush(fh)

    @fuse_errors
    async def fsync(self, fh: int, datasync: bool) -> None:
        if fh not in self._virtual_files:
            await super().fsync(fh, datasync)

    @fuse_errors
    async def release(self, fh: int) -> None:
        node = self._virtual_files.pop(fh, None)
        if node is None:
            await super().release(fh)
        else:
            self.virtual.forget(node.ino, 1)

    # --- changes: none inside .meshfs ---------------------------------------------------------

    @fuse_errors
    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        self._refuse_virtual(inode)
        return await super().setattr(inode, attr, fields, fh, ctx)

    @fuse_errors
    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        self._refuse_virtual(parent_inode)
        self._refuse_meta_name(parent_inode, name)
        return await super().create(parent_inode, name, mode, flags, ctx)

    @fuse_errors
    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._refuse_virtual(parent_inode)
        self._refuse_meta_name(parent_inode, name)
        return await super().mkdir(parent_inode, name, mode, ctx)

    @fuse_errors
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._refuse_virtual(parent_inode)
        self._refuse_meta_name(parent_inode, name)
        await super().unlink(parent_inode, name, ctx)

    @fuse_errors
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._refuse_virtual(parent_inode)
        self._refuse_meta_name(parent_inode, name)
        await super().rmdir(parent_inode, name, ctx)

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
        self._refuse_virtual(parent_inode_old, parent_inode_new)
        self._refuse_meta_name(parent_inode_old, name_old)
        self._refuse_meta_name(parent_inode_new, name_new)
        await super().rename(parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx)

    @fuse_errors
    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._refuse_virtual(parent_inode)
        self._refuse_meta_name(parent_inode, name)
        return await super().symlink(parent_inode, name, target, ctx)

    @fuse_errors
    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._refuse_virtual(parent_inode)
        self._refuse_meta_name(parent_inode, name)
        return await super().mknod(parent_inode, name, mode, rdev, ctx)

    @fuse_errors
    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._refuse_virtual(inode, new_parent_inode)
        self._refuse_meta_name(new_parent_inode, new_name)
        return await super().link(inode, new_parent_inode, new_name, ctx)

    def _refuse_meta_name(self, parent_inode: int, name: bytes) -> None:
        if self._is_meta_name(parent_inode, name):
            raise pyfuse3.FUSEError(errno.EROFS)

    @fuse_errors
    async def access(self, inode: int, mode: int, ctx: pyfuse3.RequestContext) -> bool:
        if not self.virtual.owns(inode):
            return await super().access(inode, mode, ctx)
        self.virtual.get(inode)
        if mode & os.W_OK:
            raise pyfuse3.FUSEError(errno.EROFS)
        return True

    # --- extended attributes: the control file ------------------------------------------------

    @fuse_errors
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        if not self.virtual.owns(inode):
            return await super().getxattr(inode, name, ctx)
        if inode != self.control_node.ino:
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
        return self._control_get(name.decode(errors="replace"))

    @fuse_errors
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        if not self.virtual.owns(inode):
            return list(await super().listxattr(inode, ctx))
        if inode != self.control_node.ino:
            return []
        return [name.encode() for name in (*STATS, *OPTIONS)]

    @fuse_errors
    async def setxattr(
        self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext
    ) -> None:
        if not self.virtual.owns(inode):
            await super().setxattr(inode, name, value, ctx)
            return
        if inode != self.control_node.ino:
            raise pyfuse3.FUSEError(errno.EROFS)
        self._control_set(name.decode(errors="replace"), value)

    @fuse_errors
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        if not self.virtual.owns(inode):
            await super().removexattr(inode, name, ctx)
            return
        raise pyfuse3.FUSEError(errno.EROFS)
