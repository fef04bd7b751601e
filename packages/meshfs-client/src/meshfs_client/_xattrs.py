"""Extended attributes of :class:`~meshfs_client.MeshFSClient`: ``user.*`` names per file or
directory, shaped like :func:`os.listxattr` and friends."""

from __future__ import annotations

from typing import Literal

from meshfs_client._base import ClientBase
from meshfs_common import paths
from meshfs_common.models import Entry, XattrList

XattrFlag = Literal["create", "replace"]
"""``create``: fail if the attribute exists; ``replace``: fail if it does not."""


class XattrMethods(ClientBase):
    """``listxattr``, ``getxattr``, ``setxattr``, ``removexattr``."""

    async def xattrs(self, path: str) -> XattrList:
        """The ``user.*`` extended attributes of *path* with the sizes of their values."""
        return await self._t.call(
            "GET",
            "/files/xattrs",
            XattrList,
            params={"path": paths.normalise(path)},
            idempotent=True,
        )

    async def listxattr(self, path: str) -> list[str]:
        """The names of *path*'s ``user.*`` extended attributes, sorted."""
        return [x.name for x in (await self.xattrs(path)).xattrs]

    async def getxattr(self, path: str, name: str) -> bytes:
        """The value of extended attribute *name* of *path*.

        Besides ``user.*`` names, ``meshfs.node_id``, ``meshfs.version_id`` and
        ``meshfs.content_hash`` read the file's identity. A missing attribute raises
        :class:`~meshfs_common.errors.XattrNotFoundError` (ENODATA).
        """
        reply = await self._t.request(
            "GET",
            "/files/xattr",
            params={"path": paths.normalise(path), "name": name},
            idempotent=True,
        )
        return reply.body

    async def setxattr(
        self,
        path: str,
        name: str,
        value: bytes,
        *,
        flag: XattrFlag | None = None,
        if_match: str | None = None,
    ) -> Entry:
        """Set ``user.*`` attribute *name* of *path* to *value* (at most 64 KiB).

        ``flag="create"`` raises :class:`~meshfs_common.errors.AlreadyExistsError` if the
        attribute exists, ``flag="replace"`` :class:`~meshfs_common.errors.XattrNotFoundError`
        if it does not. A node holds at most 256 attributes and 1 MiB of names and values
        (:class:`~meshfs_common.errors.XattrSpaceFullError` beyond).
        """
        return await self._t.call(
            "PUT",
            "/files/xattr",
            Entry,
            params={"path": paths.normalise(path), "name": name, "flag": flag},
            data=bytes(value),
            headers={"If-Match": if_match} if if_match else None,
            idempotent=flag is None,  # setting the same value twice is the same state
        )

    async def removexattr(self, path: str, name: str, *, if_match: str | None = None) -> Entry:
        """Remove extended attribute *name* of *path*
        (:class:`~meshfs_common.errors.XattrNotFoundError` when it has none)."""
        return await self._t.call(
            "DELETE",
            "/files/xattr",
            Entry,
            params={"path": paths.normalise(path), "name": name},
            headers={"If-Match": if_match} if if_match else None,
            idempotent=False,  # a resend after a lost answer would report xattr_not_found
        )
