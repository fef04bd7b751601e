"""The FUSE request handlers of the mount: files and directories over MeshFS.

Every handler goes through :func:`~meshfs_fuse.errno_map.fuse_errors`, so whatever goes wrong
becomes the errno of the error table; ``forget`` never raises.

Semantics (what a program sees):

* Names and attributes: see :mod:`meshfs_fuse.attributes`. ``chmod``/``chown`` to the values
  shown are accepted (nothing changes); any other mode or owner is refused with ``EPERM`` -
  the server has no place to keep it yet. Times: setting mtime/atime to "now" on a file with
  uncommitted writes is kept (its version is stamped when committed); any other time is
  refused with ``ENOTSUP``.
* Writes go to a local spool and become one version at ``close`` (flush), ``fsync`` or a
  ``truncate`` by path. ``close`` returns once the version is committed. A file created here
  is committed at its first flush, empty if nothing was written; opening without writing
  commits nothing.
* ``rename`` over an existing file replaces it atomically (the editor's save);
  ``RENAME_NOREPLACE`` is honoured; ``RENAME_EXCHANGE`` is ``EINVAL`` (the server cannot swap
  two names in one step yet).
* An unlinked open file stays readable and writable until its last close; its writes are not
  committed (it has no name any more), as on a local disk.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyfuse3
import trio

from meshfs_common.errors import AlreadyExistsError, MeshFSError, NotFoundError
from meshfs_common.models import Entry
from meshfs_fuse.attributes import NodeAttributes, Owner, to_entry_attributes
from meshfs_fuse.content import ContentStore, FileContent
from meshfs_fuse.errno_map import fuse_errors
from meshfs_fuse.inodes import Inode, InodeTable

__all__ = ["MAX_NAME", "MeshFSOperations"]

log = logging.getLogger(__name__)

MAX_NAME = 255
"""Longest name in bytes (``f_namemax``)."""

_NOW_SLACK_NS = 5 * 1_000_000_000
_BLOCK = 4096


def _fail(code: int) -> pyfuse3.FUSEError:
    return pyfuse3.FUSEError(code)


@dataclass(eq=False, slots=True)
class _Handle:
    node: Inode
    content: FileContent
    writable: bool


@dataclass(eq=False, slots=True)
class _DirHandle:
    node: Inode
    names: list[str]
    entries: dict[str, Entry]


class MeshFSOperations(pyfuse3.Operations):
    """pyfuse3 operations over the inode table, the content store and the server."""

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
        self._handles: dict[int, _Handle] = {}
        self._dirs: dict[int, _DirHandle] = {}
        self._contents: dict[int, FileContent] = {}
        self._unsent: dict[int, tuple[Inode, FileContent]] = {}
        self._fh = itertools.count(1)
        self._statfs: tuple[float, pyfuse3.StatvfsData] | None = None
        self.feed_position: Callable[[], int] = lambda: 0
        """The change feed's cursor (set by the daemon): listings are cached only when no
        event arrived while they were fetched."""

    # --- attributes ---------------------------------------------------------------------------

    def attributes(self, node: Inode) -> NodeAttributes:
        """What ``stat`` shows for *node*: the server's entry, or the local spool's content."""
        content = self._contents.get(node.ino)
        if node.entry is not None:
            base = NodeAttributes.from_entry(node.entry, self.owner)
        else:
            base = NodeAttributes.new_file(self.owner, content.mtime_ns if content else 0)
        if content is not None and content.spool is not None and content.dirty:
            return base.with_content(content.spool.size, content.mtime_ns)
        return base

    def _reply(self, node: Inode) -> pyfuse3.EntryAttributes:
        return to_entry_attributes(node.ino, self.table.generation, self.attributes(node), self.ttl)

    def _name(self, raw: bytes) -> str:
        if len(raw) > MAX_NAME:
            raise _fail(errno.ENAMETOOLONG)
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise _fail(errno.EINVAL) from None

    def _directory(self, ino: int) -> Inode:
        node = self.table.get(ino)
        if not node.is_dir:
            raise _fail(errno.ENOTDIR)
        return node

    def _writable(self) -> None:
        if self.read_only:
            raise _fail(errno.EROFS)

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

    # --- lookup and attributes ----------------------------------------------------------------

    @fuse_errors
    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        parent = self._directory(parent_inode)
        node = await self._child(parent, self._name(name))
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
            raise _fail(errno.EPERM)
        if fields.update_uid and attr.st_uid not in (current.uid, 0xFFFFFFFF):
            raise _fail(errno.EPERM)
        if fields.update_gid and attr.st_gid not in (current.gid, 0xFFFFFFFF):
            raise _fail(errno.EPERM)
        if fields.update_size:
            self._writable()
            if node.is_dir:
                raise _fail(errno.EISDIR)
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
            raise _fail(errno.ENOTSUP)

    async def _truncate(self, node: Inode, size: int, *, with_handle: bool) -> None:
        content = self._contents.get(node.ino)
        transient = content is None
        if content is None:
            content = self._contents[node.ino] = FileContent()
        try:
            async with content.lock:
                spool = await self.store.open_spool(content, node.entry, size)
                await spool.truncate(size)
                await self.store.written(content, self.table.path_of(node.ino), node.node_id)
            if not with_handle:
                # truncate(2) by path: one version now, as no close will follow.
                await self._commit(node, content)
        finally:
            if transient and node.opens == 0:
                await self._drop_content(node, content)

    # --- files --------------------------------------------------------------------------------

    def _open_handle(self, node: Inode, content: FileContent, writable: bool) -> int:
        fh = next(self._fh)
        self._handles[fh] = _Handle(node, content, writable)
        self.table.opened(node)
        return fh

    def _handle(self, fh: int) -> _Handle:
        try:
            return self._handles[fh]
        except KeyError:
            raise _fail(errno.EBADF) from None

    @fuse_errors
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        node = self.table.get(inode)
        if node.is_dir:
            raise _fail(errno.EISDIR)
        writable = (flags & os.O_ACCMODE) != os.O_RDONLY
        if writable:
            self._writable()
        content = self._contents.setdefault(node.ino, FileContent())
        fh = self._open_handle(node, content, writable)
        try:
            if writable and flags & os.O_TRUNC:
                async with content.lock:
                    spool = await self.store.open_spool(content, None, 0)
                    await spool.truncate(0)
                    await self.store.written(content, self.table.path_of(node.ino), node.node_id)
        except BaseException:
            await self._close_handle(fh)
            raise
        version = node.entry.version_id if node.entry is not None else None
        keep = version is not None and version == node.cached_version and not content.dirty
        node.cached_version = version
        return pyfuse3.FileInfo(fh=fh, keep_cache=keep)

    @fuse_errors
    async def create(
        self,
        parent_inode: int,
        name: bytes,
        mode: int,
        flags: int,
        ctx: pyfuse3.RequestContext,
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        self._writable()
        parent = self._directory(parent_inode)
        text = self._name(name)
        try:
            existing = await self._child(parent, text)
        except NotFoundError:
            existing = None
        if existing is not None:
            if flags & os.O_EXCL:
                raise AlreadyExistsError(f"file exists: {text}")
            if existing.is_dir:
                raise _fail(errno.EISDIR)
            attrs = self._reply(existing)
            info = await self.open(existing.ino, flags, ctx)
            self.table.remember(existing)
            return info, attrs
        node = self.table.add_pending(parent.ino, text)
        content = self._contents[node.ino] = FileContent()
        content.mtime_ns = time.time_ns()
        fh = self._open_handle(node, content, True)
        self.table.remember(node)
        try:
            await self.store.open_spool(content, None, 0)
            await self.store.written(content, self.table.path_of(node.ino), None)
        except BaseException:
            self.table.forget(node.ino, 1)
            self.table.detach(node)
            await self._close_handle(fh)
            raise
        return pyfuse3.FileInfo(fh=fh), self._reply(node)

    @fuse_errors
    async def read(self, fh: int, off: int, size: int) -> bytes:
        handle = self._handle(fh)
        content = handle.content
        if content.spool is not None:
            return await content.spool.pread(off, size)
        entry = handle.node.entry
        if entry is None:
            return b""
        return await self.store.read(entry, off, size)

    @fuse_errors
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        handle = self._handle(fh)
        node, content = handle.node, handle.content
        async with content.lock:
            spool = await self.store.open_spool(content, node.entry, 2**63)
            written = await spool.pwrite(buf, off)
            await self.store.written(content, self.table.path_of(node.ino), node.node_id)
        return written

    @fuse_errors
    async def flush(self, fh: int) -> None:
        handle = self._handle(fh)
        # Only a writer's close commits: a reader closing must not commit another
        # process's half-written file.
        if handle.writable and handle.content.dirty:
            await self._commit(handle.node, handle.content)

    @fuse_errors
    async def fsync(self, fh: int, datasync: bool) -> None:
        handle = self._handle(fh)
        content = handle.content
        if content.dirty and content.spool is not None:
            await content.spool.sync()
            await self._commit(handle.node, content)

    @fuse_errors
    async def release(self, fh: int) -> None:
        handle = self._handles.get(fh)
        if handle is None:
            return
        try:
            # A writer's last release commits what its flush could not (e.g. mmap writes);
            # the last handle of all commits whatever is left.
            last = handle.node.opens <= 1
            if handle.content.dirty and (handle.writable or last):
                await self._commit(handle.node, handle.content)
        finally:
            await self._close_handle(fh)

    async def _close_handle(self, fh: int) -> None:
        handle = self._handles.pop(fh)
        node = handle.node
        self.table.released(node)
        if node.opens == 0:
            await self._drop_content(node, handle.content)

    async def _drop_content(self, node: Inode, content: FileContent) -> None:
        if content.dirty and node.attached:
            # The last close could not commit (the server is unreachable): keep the content
            # (reads and stat still see it) and hold the inode until retry_unsent commits it.
            if node.ino not in self._unsent:
                self._unsent[node.ino] = (node, content)
                self.table.opened(node)
                log.warning(
                    "%s is not committed yet; retrying until the server answers",
                    self.table.path_of(node.ino),
                )
            return
        if self._contents.get(node.ino) is content:
            del self._contents[node.ino]
        spool = content.spool
        content.spool = None
        if spool is not None:
            await spool.discard()

    @property
    def unsent(self) -> int:
        """Closed files whose commit failed and is being retried."""
        return len(self._unsent)

    async def retry_unsent(self) -> None:
        """Try again to commit closed files the server could not take (after an outage)."""
        for ino, (node, content) in list(self._unsent.items()):
            if content.dirty and node.attached:
                try:
                    await self._commit(node, content)
                except (MeshFSError, OSError) as exc:
                    log.debug("%s still not committed: %s", self.table.path_of(ino), exc)
                    continue
                log.info("%s committed after a failed close", self.table.path_of(ino))
            del self._unsent[ino]
            self.table.released(node)
            if node.opens == 0:
                await self._drop_content(node, content)

    async def _commit(self, node: Inode, content: FileContent) -> None:
        """Commit *content* as one version of *node* (no-op when nothing changed)."""
        async with content.lock:
            if not content.dirty:
                return
            path = self.table.path_of(node.ino)
            if path is None:
                return  # unlinked: nothing to commit, as on a local disk
            result = await self.store.commit(content, path)
            self.table.set_entry(node, result.entry)
            node.cached_version = result.entry.version_id
            if node.parent is not None:
                parent = self.table.find(node.parent)
                if parent is not None:
                    self._listed(parent, node.name, result.entry)

    # --- names --------------------------------------------------------------------------------

    @fuse_errors
    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._writable()
        parent = self._directory(parent_inode)
        text = self._name(name)
        if self.table.child(parent.ino, text) is not None:
            raise AlreadyExistsError(f"file exists: {text}")
        entry = await self.remote.mkdir(self.table.child_path(parent.ino, text))
        node = self.table.attach(parent.ino, text, entry)
        node.listing = {}  # new and empty: lookups inside need no request
        self._listed(parent, text, entry)
        self.table.remember(node)
        return self._reply(node)

    @fuse_errors
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._writable()
        parent = self._directory(parent_inode)
        text = self._name(name)
        node = await self._child(parent, text)
        if node.is_dir:
            raise _fail(errno.EISDIR)
        if node.node_id is not None:
            await self.remote.delete(self.table.child_path(parent.ino, text))
        self._listed(parent, text, None)
        self.table.detach(node)
        self.table.negative.add(parent.ino, text)

    @fuse_errors
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._writable()
        parent = self._directory(parent_inode)
        text = self._name(name)
        node = await self._child(parent, text)
        if not node.is_dir:
            raise _fail(errno.ENOTDIR)
        if any(self.table.child(node.ino, n) for n in node.children) or node.listing:
            raise _fail(errno.ENOTEMPTY)
        await self.remote.delete(self.table.child_path(parent.ino, text))
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
            raise _fail(errno.EINVAL)
        noreplace = bool(flags & pyfuse3.RENAME_NOREPLACE)
        old_parent = self._directory(parent_inode_old)
        new_parent = self._directory(parent_inode_new)
        old, new = self._name(name_old), self._name(name_new)
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
                raise _fail(errno.EISDIR)
            if source.is_dir and not target.is_dir:
                raise _fail(errno.ENOTDIR)
        if source.node_id is None:
            # Not on the server yet: its first commit goes to the new name. Over an existing
            # file, that commit becomes the target's next version, as the server's rename does.
            self.table.place(source, new_parent.ino, new)
            if target is not None and target.entry is not None:
                self.table.set_entry(source, target.entry)
        else:
            entry = await self.remote.rename(
                self.table.child_path(old_parent.ino, old),
                self.table.child_path(new_parent.ino, new),
                overwrite=not noreplace,
            )
            self.table.place(source, new_parent.ino, new)
            self.table.set_entry(source, entry)
            self._listed(new_parent, new, entry)
        self._listed(old_parent, old, None)
        self.table.negative.add(old_parent.ino, old)
        content = self._contents.get(source.ino)
        if content is not None and content.dirty:
            await self.store.written(content, self.table.path_of(source.ino), source.node_id)

    # --- directories --------------------------------------------------------------------------

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
        self._dirs[fh] = _DirHandle(node, names, listing)
        return fh

    @fuse_errors
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        handle = self._dirs.get(fh)
        if handle is None:
            raise _fail(errno.EBADF)
        directory = handle.node
        for index in range(start_id, len(handle.names)):
            name = handle.names[index]
            node = self.table.child(directory.ino, name)
            if node is None:
                entry = handle.entries.get(name)
                if entry is None or not directory.attached:
                    continue
                node = self.table.attach(directory.ino, name, entry)
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
            raise _fail(errno.EROFS)
        return True

    # --- what the server cannot keep yet (its POSIX model) ----------------------------------

    @fuse_errors
    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        raise _fail(errno.EPERM)

    @fuse_errors
    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        raise _fail(errno.EPERM)

    @fuse_errors
    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        raise _fail(errno.EPERM)

    @fuse_errors
    async def setxattr(
        self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext
    ) -> None:
        self.table.get(inode)
        raise _fail(errno.ENOTSUP)

    @fuse_errors
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        self.table.get(inode)
        raise _fail(pyfuse3.ENOATTR)

    @fuse_errors
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        self.table.get(inode)
        return []

    @fuse_errors
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self.table.get(inode)
        raise _fail(pyfuse3.ENOATTR)

    # --- for the daemon -----------------------------------------------------------------------

    async def drain(self) -> int:
        """Commit every dirty open file (at shutdown); the number that could not be (their
        journal records stay for the next mount)."""
        await self.retry_unsent()
        failed = 0
        for ino, content in list(self._contents.items()):
            node = self.table.find(ino)
            if node is None or not content.dirty:
                continue
            try:
                await self._commit(node, content)
            except (MeshFSError, OSError, trio.TooSlowError):
                failed += 1
        return failed
