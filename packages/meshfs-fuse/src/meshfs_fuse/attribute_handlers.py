"""The FUSE handlers of metadata: getattr, setattr, statfs, access, links, special nodes, xattrs.

``chmod``/``chown``/``utimens`` (explicit times, ``UTIME_NOW``, ``UTIME_OMIT``) are stored on
the server in one atomic change (a file's uncommitted writes are committed first, so the times
set stay the times shown). Symbolic links, hard links (``EPERM`` on a directory), FIFOs,
sockets and device nodes (metadata only: the kernel serves FIFOs and devices itself) and
``user.*`` extended attributes live on the server. ``system.posix_acl_*`` and every other
namespace are ``ENOTSUP`` (answered here: the kernel asks for ``security.capability`` on every
write).
"""

from __future__ import annotations

import errno
import os
import time

import msgspec
import pyfuse3

from meshfs_common.errors import AlreadyExistsError
from meshfs_common.models import Entry
from meshfs_fuse.attributes import kind_of_mode
from meshfs_fuse.errno_map import fuse_errors
from meshfs_fuse.file_handlers import FileHandlers
from meshfs_fuse.inodes import Inode
from meshfs_fuse.mount_state import MAX_NAME, fail

__all__ = ["AttributeHandlers"]

_BLOCK = 4096
_NO_ID = 0xFFFFFFFF
_STORED_XATTRS = ("user.", "meshfs.")
"""Extended attribute namespaces the server answers (``meshfs.*`` read-only)."""


class AttributeHandlers(FileHandlers):
    """Attributes, file system statistics and the POSIX features the server cannot keep.

    Built on :class:`~meshfs_fuse.file_handlers.FileHandlers`: a size change truncates the
    file's spool.
    """

    @fuse_errors
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._reply(await self._fresh(self.table.get(inode)))

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
        changes: dict[str, int] = {}
        if fields.update_mode:
            changes["mode"] = attr.st_mode & 0o7777
        if fields.update_uid and attr.st_uid != _NO_ID:
            changes["uid"] = attr.st_uid
        if fields.update_gid and attr.st_gid != _NO_ID:
            changes["gid"] = attr.st_gid
        if fields.update_mtime:
            changes["mtime_ns"] = attr.st_mtime_ns
        if fields.update_atime:
            changes["atime_ns"] = attr.st_atime_ns
        if fields.update_size:
            self._writable()
            if node.is_dir:
                raise fail(errno.EISDIR)
            await self._truncate(node, attr.st_size, with_handle=fh is not None)
        if changes:
            self._writable()
            await self._set_attributes(node, changes)
        return self._reply(node)

    async def _set_attributes(self, node: Inode, changes: dict[str, int]) -> None:
        """Store *changes* for *node* on the server (after its uncommitted writes)."""
        await self._committed(node)
        path = self.table.path_of(node.ino)
        if path is None or node.entry is None:
            return  # unlinked: nothing keeps its attributes, as on a local disk
        entry = await self.remote.set_attributes(path, **changes)
        self._adopt(node, entry)

    async def _committed(self, node: Inode) -> None:
        """Commit *node*'s uncommitted writes, so the server has the node as it is shown."""
        content = self._contents.get(node.ino)
        if content is not None and content.dirty:
            await self._commit(node, content)

    def _adopt(self, node: Inode, entry: Entry) -> None:
        """*entry* is what the server now says of *node*'s current name."""
        self.table.set_entry(node, entry)
        if node.parent is not None:
            parent = self.table.find(node.parent)
            if parent is not None:
                self._listed(parent, node.name, entry)

    def _path(self, node: Inode) -> str:
        path = self.table.path_of(node.ino)
        if path is None:
            raise fail(errno.ENOENT)
        return path

    @fuse_errors
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        now = time.monotonic()
        if self._statfs is not None and now - self._statfs[0] < 10:
            return self._statfs[1]
        stats = await self.remote.statfs()
        total = stats.total_bytes or 2**50  # no quota: a petabyte
        if stats.free_bytes is not None:
            free = stats.free_bytes
        else:  # a token limited to a folder is not shown the tenant's use
            free = max(0, total - (stats.used_bytes or 0))
        nodes = stats.files + stats.directories
        result = pyfuse3.StatvfsData()
        result.f_bsize = _BLOCK
        result.f_frsize = _BLOCK
        result.f_blocks = total // _BLOCK
        result.f_bfree = max(0, free) // _BLOCK
        result.f_bavail = result.f_bfree
        result.f_files = 2**32 + nodes
        result.f_ffree = 2**32
        result.f_favail = result.f_ffree
        result.f_namemax = min(MAX_NAME, stats.name_max)
        self._statfs = (now, result)
        return result

    @fuse_errors
    async def access(self, inode: int, mode: int, ctx: pyfuse3.RequestContext) -> bool:
        self.table.get(inode)
        if mode & os.W_OK and self.read_only:
            raise fail(errno.EROFS)
        return True

    # --- symbolic links, hard links, special nodes -----------------------------------------

    @fuse_errors
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        node = self.table.get(inode)
        if node.entry is None or node.entry.target is None:
            raise fail(errno.EINVAL)
        return node.entry.target.encode()

    @fuse_errors
    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._writable()
        parent = self._directory(parent_inode)
        text = self._name(name)
        try:
            destination = target.decode()
        except UnicodeDecodeError:
            raise fail(errno.EINVAL) from None
        path = self.table.child_path(parent.ino, text)
        self._refuse_known(parent, text)
        entry = await self.remote.symlink(path, destination, uid=ctx.uid, gid=ctx.gid)
        return self._created(parent, text, entry)

    @fuse_errors
    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._writable()
        parent = self._directory(parent_inode)
        text = self._name(name)
        path = self.table.child_path(parent.ino, text)
        self._refuse_known(parent, text)
        kind = kind_of_mode(mode)
        owner = {"uid": ctx.uid, "gid": ctx.gid}
        if kind == "file":
            entry = (await self.remote.upload_bytes(path, b"")).entry
            at_ns = entry.ctime_ns  # the time of the create (set_attributes moves the ctime)
            wanted = {"mode": mode & 0o7777, **owner}
            if any(getattr(entry, key) != value for key, value in wanted.items()):
                entry = await self.remote.set_attributes(path, **wanted)
            return self._created(parent, text, entry, at_ns)
        if kind in ("fifo", "socket", "chardev", "blockdev"):
            entry = await self.remote.mknod(
                path, kind, mode=mode & 0o7777, rdev=rdev, uid=ctx.uid, gid=ctx.gid
            )
        else:
            raise fail(errno.EINVAL)
        return self._created(parent, text, entry)

    @fuse_errors
    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._writable()
        node = self.table.get(inode)
        if node.is_dir:
            raise fail(errno.EPERM)
        parent = self._directory(new_parent_inode)
        text = self._name(new_name)
        new_path = self.table.child_path(parent.ino, text)
        self._refuse_known(parent, text)
        await self._committed(node)
        entry = await self.remote.link(self._path(node), new_path)
        # One inode for every name: the kernel sees the same st_ino and a new nlink.
        if node.entry is not None:
            node.entry = msgspec.structs.replace(entry, path=node.entry.path, name=node.entry.name)
            old_parent = self.table.find(node.parent) if node.parent is not None else None
            if old_parent is not None:
                self._listed(old_parent, node.name, node.entry)
        self._listed(parent, text, entry)
        self._entries_changed(parent, at_ns=entry.ctime_ns)
        self.table.negative.discard(parent.ino, text)
        self.table.removed.discard(parent.ino, text)
        self.table.remember(node)
        return self._reply(node)

    def _refuse_known(self, parent: Inode, name: str) -> None:
        if self.table.child(parent.ino, name) is not None or (
            parent.listing is not None and name in parent.listing
        ):
            raise AlreadyExistsError(f"file exists: {name}")

    def _created(
        self, parent: Inode, name: str, entry: Entry, at_ns: int | None = None
    ) -> pyfuse3.EntryAttributes:
        """*entry* was made at *name* in *parent* at *at_ns* (default: its ctime)."""
        node = self.table.attach(parent.ino, name, entry)
        self._listed(parent, name, entry)
        self._entries_changed(parent, at_ns=entry.ctime_ns if at_ns is None else at_ns)
        self.table.remember(node)
        return self._reply(node)

    # --- extended attributes --------------------------------------------------------------

    def _xattr_name(self, raw: bytes) -> str:
        try:
            name = raw.decode()
        except UnicodeDecodeError:
            raise fail(errno.EINVAL) from None
        if not name.startswith(_STORED_XATTRS):
            raise fail(errno.ENOTSUP)  # system.posix_acl_*, security.*, trusted.*
        return name

    @fuse_errors
    async def setxattr(
        self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext
    ) -> None:
        node = self.table.get(inode)
        text = self._xattr_name(name)
        self._writable()
        await self._committed(node)
        self._adopt(node, await self.remote.setxattr(self._path(node), text, value, None))

    @fuse_errors
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        node = self.table.get(inode)
        if name.startswith(b"system.posix_acl_"):
            raise fail(errno.ENOTSUP)
        try:
            text = self._xattr_name(name)
        except pyfuse3.FUSEError:
            raise fail(pyfuse3.ENOATTR) from None  # nothing is ever stored there
        if node.entry is None:
            raise fail(pyfuse3.ENOATTR)
        return await self.remote.getxattr(self._path(node), text)

    @fuse_errors
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        node = self.table.get(inode)
        if node.entry is None:
            return []
        return [name.encode() for name in await self.remote.listxattr(self._path(node))]

    @fuse_errors
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        node = self.table.get(inode)
        text = self._xattr_name(name)
        self._writable()
        if node.entry is None:
            raise fail(pyfuse3.ENOATTR)
        self._adopt(node, await self.remote.removexattr(self._path(node), text))
