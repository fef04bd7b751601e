"""The FUSE handlers of file content: open, create, read, write, flush, fsync, release.

Writes go to a local spool and become one version at ``close`` (flush), ``fsync`` or a
``truncate`` by path; a close the server cannot take is kept and retried (:meth:`retry_unsent`)
and whatever is dirty at shutdown is committed by :meth:`drain`.
"""

from __future__ import annotations

import errno
import logging
import os
import time

import pyfuse3
import trio

from meshfs_common.errors import AlreadyExistsError, MeshFSError, NotFoundError
from meshfs_fuse.content import FileContent
from meshfs_fuse.errno_map import fuse_errors
from meshfs_fuse.inodes import Inode
from meshfs_fuse.mount_state import FileHandle, MountState, fail

__all__ = ["FileHandlers"]

log = logging.getLogger(__name__)


class FileHandlers(MountState):
    """Open files, their spools and their commits."""

    def _open_handle(self, node: Inode, content: FileContent, writable: bool) -> int:
        fh = next(self._fh)
        self._handles[fh] = FileHandle(node, content, writable)
        self.table.opened(node)
        return fh

    def _handle(self, fh: int) -> FileHandle:
        try:
            return self._handles[fh]
        except KeyError:
            raise fail(errno.EBADF) from None

    @fuse_errors
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        node = self.table.get(inode)
        if node.is_dir:
            raise fail(errno.EISDIR)
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
                    content.truncated(0)
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
                raise fail(errno.EISDIR)
            attrs = self._reply(existing)
            info = await self.open(existing.ino, flags, ctx)
            self.table.remember(existing)
            return info, attrs
        node = self.table.add_pending(parent.ino, text)
        node.created_with = {"mode": mode & 0o7777, "uid": ctx.uid, "gid": ctx.gid}
        content = self._contents[node.ino] = FileContent()
        content.mtime_ns = time.time_ns()
        fh = self._open_handle(node, content, True)
        self.table.remember(node)
        try:
            await self.store.create_spool(content, self.table.path_of(node.ino))
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
            content.changed_range(off, written)
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
            entry = result.entry
            wanted, node.created_with = node.created_with, None
            if wanted and any(getattr(entry, key) != value for key, value in wanted.items()):
                # The file's first version: the creator's mode and owner go with it.
                entry = await self.remote.set_attributes(path, **wanted)
            created = node.node_id is None
            self.table.set_entry(node, entry)
            node.cached_version = result.entry.version_id
            if node.parent is not None:
                parent = self.table.find(node.parent)
                if parent is not None:
                    self._listed(parent, node.name, entry)
                    if created:  # the file's first version made its name on the server
                        self._entries_changed(parent, at_ns=result.entry.ctime_ns)

    async def _truncate(self, node: Inode, size: int, *, with_handle: bool) -> None:
        content = self._contents.get(node.ino)
        transient = content is None
        if content is None:
            content = self._contents[node.ino] = FileContent()
        try:
            async with content.lock:
                spool = await self.store.open_spool(content, node.entry, size)
                await spool.truncate(size)
                content.truncated(size)
                await self.store.written(content, self.table.path_of(node.ino), node.node_id)
            if not with_handle:
                # truncate(2) by path: one version now, as no close will follow.
                await self._commit(node, content)
        finally:
            if transient and node.opens == 0:
                await self._drop_content(node, content)

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
