"""POSIX attributes and node kinds of :class:`~meshfs_client.MeshFSClient`: chmod, chown,
utimens, symbolic links and special nodes, shaped like :func:`os.chmod` and friends.

The server stores what a client sets and does not enforce permissions; ``ctime`` is kept by
the server. Times are integer nanoseconds since the epoch, as :func:`os.stat` reports them in
``st_mtime_ns``.
"""

from __future__ import annotations

from meshfs_client._files import FileMethods
from meshfs_common import paths
from meshfs_common.errors import BadRequestError
from meshfs_common.models import (
    AttributesRequest,
    Entry,
    MknodRequest,
    SpecialKind,
    SymlinkRequest,
)


class PosixMethods(FileMethods):
    """``set_attributes``, ``chmod``, ``chown``, ``utime``, ``symlink``, ``readlink``,
    ``mknod``."""

    async def set_attributes(
        self,
        path: str,
        *,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        mtime_ns: int | None = None,
        atime_ns: int | None = None,
        if_match: str | None = None,
    ) -> Entry:
        """Set any of *mode* (0..0o7777), *uid*, *gid*, *mtime_ns*, *atime_ns* of *path* in one
        atomic change; returns the entry as it now is. No content version is made; the change
        feed gets an ``attributes`` event with the old and new values. *if_match* is the head
        version (a directory's or link's node id) the change expects."""
        request = AttributesRequest(
            path=paths.normalise(path), mode=mode, uid=uid, gid=gid, mtime_ns=mtime_ns,
            atime_ns=atime_ns,
        )  # fmt: skip
        return await self._t.call(
            "POST",
            "/files/attributes",
            Entry,
            json=request,
            headers={"If-Match": if_match} if if_match else None,
            idempotent=True,  # setting the same values again changes nothing
        )

    async def chmod(self, path: str, mode: int) -> Entry:
        """Set the permission bits of *path* (with setuid, setgid and sticky: 0..0o7777)."""
        return await self.set_attributes(path, mode=mode)

    async def chown(self, path: str, uid: int | None = None, gid: int | None = None) -> Entry:
        """Set the owner and/or group of *path* (numbers, stored as given)."""
        return await self.set_attributes(path, uid=uid, gid=gid)

    async def utime(self, path: str, *, mtime_ns: int, atime_ns: int | None = None) -> Entry:
        """Set the modification (and access) time of *path* in nanoseconds (utimens)."""
        return await self.set_attributes(path, mtime_ns=mtime_ns, atime_ns=atime_ns)

    async def symlink(
        self, path: str, target: str, *, uid: int | None = None, gid: int | None = None
    ) -> Entry:
        """Make a symbolic link at *path* pointing to *target* (stored verbatim, at most
        4,096 bytes; the server never follows it). An existing *path* raises
        :class:`~meshfs_common.errors.AlreadyExistsError`."""
        return await self._t.call(
            "POST",
            "/files/symlink",
            Entry,
            json=SymlinkRequest(path=paths.normalise(path), target=target, uid=uid, gid=gid),
            idempotent=False,  # a resend after a lost answer would find the link made
        )

    async def readlink(self, path: str) -> str:
        """The target of the symbolic link at *path*."""
        entry = await self.meta(path)
        if entry.target is None:
            raise BadRequestError(f"{entry.path} is a {entry.kind}, not a symbolic link")
        return entry.target

    async def mknod(
        self,
        path: str,
        kind: SpecialKind,
        *,
        mode: int | None = None,
        rdev: int = 0,
        uid: int | None = None,
        gid: int | None = None,
    ) -> Entry:
        """Make a FIFO, socket, character or block device node at *path* (no content;
        *rdev* is a device's number)."""
        request = MknodRequest(
            path=paths.normalise(path), kind=kind, mode=mode, rdev=rdev, uid=uid, gid=gid
        )
        return await self._t.call("POST", "/files/mknod", Entry, json=request, idempotent=False)
