"""The FUSE handlers of metadata: getattr, setattr, statfs, access, and what is refused.

``chmod``/``chown`` to the values shown are accepted (nothing changes); any other mode or
owner is ``EPERM``. Setting mtime/atime to "now" on a file with uncommitted writes is kept;
any other time is ``ENOTSUP``. Symlinks, hard links, device nodes and extended attributes
are refused: the server has no place to keep them yet.
"""

from __future__ import annotations

import errno
import os
import time

import pyfuse3

from meshfs_fuse.errno_map import fuse_errors
from meshfs_fuse.file_handlers import FileHandlers
from meshfs_fuse.inodes import Inode
from meshfs_fuse.mount_state import MAX_NAME, fail

__all__ = ["AttributeHandlers"]

_NOW_SLACK_NS = 5 * 1_000_000_000
_BLOCK = 4096


class AttributeHandlers(FileHandlers):
    """Attributes, file system statistics and the POSIX features the server cannot keep.

    Built on :class:`~meshfs_fuse.file_handlers.FileHandlers`: a size change truncates the
    file's spool.
    """

    @fuse_errors
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._reply(self.table.get(inode))

    @fuse_errors
    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        node = self.table.get(inode)
        current = self.attributes(node)
        if fields.update_mode and (attr.st_mode & 0o7777) != current.mode:
            raise fail(errno.EPERM)
        if fields.update_uid and attr.st_uid not in (current.uid, 0xFFFFFFFF):
            raise fail(errno.EPERM)
        if fields.update_gid and attr.st_gid not in (current.gid, 0xFFFFFFFF):
            raise fail(errno.EPERM)
        if fields.update_size:
            self._writable()
            if node.is_dir:
                raise fail(errno.EISDIR)
            await self._truncate(node, attr.st_size, with_handle=fh is not None)
        if fields.update_mtime or fields.update_atime:
            self._check_times(node, attr, fields)
        return self._reply(node)

    def _check_times(
        self, node: Inode, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields
    ) -> None:
        """Accept only times the mount can keep (see the module docstring)."""
        current = self.attributes(node)
        content = self._contents.get(node.ino)
        pending = node.entry is None or (content is not None and content.dirty)
        now = time.time_ns()
        for wanted, asked in (
            (attr.st_mtime_ns, fields.update_mtime),
            (attr.st_atime_ns, fields.update_atime),
        ):
            if not asked or wanted == current.mtime_ns:
                continue
            if pending and abs(wanted - now) <= _NOW_SLACK_NS:
                continue
            raise fail(errno.ENOTSUP)

    @fuse_errors
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        now = time.monotonic()
        if self._statfs is not None and now - self._statfs[0] < 10:
            return self._statfs[1]
        quota_bytes, used_bytes = await self.remote.storage()
        quota = int(quota_bytes or 0) or 2**50  # no quota: a petabyte
        used = int(used_bytes or 0)  # not shown to a token limited to a folder
        result = pyfuse3.StatvfsData()
        result.f_bsize = _BLOCK
        result.f_frsize = _BLOCK
        result.f_blocks = quota // _BLOCK
        result.f_bfree = max(0, quota - used) // _BLOCK
        result.f_bavail = result.f_bfree
        result.f_files = 2**32
        result.f_ffree = 2**32 - len(self.table)
        result.f_favail = result.f_ffree
        result.f_namemax = MAX_NAME
        self._statfs = (now, result)
        return result

    @fuse_errors
    async def access(self, inode: int, mode: int, ctx: pyfuse3.RequestContext) -> bool:
        self.table.get(inode)
        if mode & os.W_OK and self.read_only:
            raise fail(errno.EROFS)
        return True

    # --- what the server cannot keep yet (its POSIX model) ----------------------------------

    @fuse_errors
    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        raise fail(errno.EPERM)

    @fuse_errors
    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        raise fail(errno.EPERM)

    @fuse_errors
    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        raise fail(errno.EPERM)

    @fuse_errors
    async def setxattr(
        self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext
    ) -> None:
        self.table.get(inode)
        raise fail(errno.ENOTSUP)

    @fuse_errors
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        self.table.get(inode)
        raise fail(pyfuse3.ENOATTR)

    @fuse_errors
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        self.table.get(inode)
        return []

    @fuse_errors
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self.table.get(inode)
        raise fail(pyfuse3.ENOATTR)
