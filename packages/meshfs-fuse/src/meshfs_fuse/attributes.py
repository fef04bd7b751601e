"""One place where a node's metadata becomes the attributes the kernel sees.

Today the server knows a node as a file or a directory with ``modified_at``, a size and a head
version; it keeps no mode, owner or times of its own. So a node shows as mode 0644 (files) or
0755 (directories), owned by the user who mounted, with mtime = ctime = atime = ``modified_at``.
When the server stores POSIX attributes, :meth:`NodeAttributes.from_entry` reads them from the
entry and nothing else in the mount changes.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, replace
from datetime import datetime

import pyfuse3

from meshfs_common.models import Entry

__all__ = [
    "BLOCK_SIZE",
    "DIR_MODE",
    "FILE_MODE",
    "NodeAttributes",
    "Owner",
    "to_entry_attributes",
]

FILE_MODE = 0o644
DIR_MODE = 0o755
BLOCK_SIZE = 4096
"""``st_blksize``, and the unit of ``st_blocks`` is 512 bytes as everywhere."""


@dataclass(frozen=True, slots=True)
class Owner:
    """Who owns every node of the mount (the user who mounted it)."""

    uid: int
    gid: int


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


@dataclass(frozen=True, slots=True)
class NodeAttributes:
    """What the mount reports about a node (``stat``)."""

    is_dir: bool
    size: int
    mtime_ns: int
    mode: int
    uid: int
    gid: int

    @classmethod
    def from_entry(cls, entry: Entry, owner: Owner) -> NodeAttributes:
        """The attributes of a server entry."""
        is_dir = entry.kind == "dir"
        return cls(
            is_dir=is_dir,
            size=0 if is_dir else entry.size,
            mtime_ns=_ns(entry.modified_at),
            mode=DIR_MODE if is_dir else FILE_MODE,
            uid=owner.uid,
            gid=owner.gid,
        )

    @classmethod
    def new_file(cls, owner: Owner, now_ns: int) -> NodeAttributes:
        """A file created here and not committed yet."""
        return cls(False, 0, now_ns, FILE_MODE, owner.uid, owner.gid)

    def with_content(self, size: int, mtime_ns: int) -> NodeAttributes:
        """These attributes with local content of *size* bytes written at *mtime_ns*."""
        return replace(self, size=size, mtime_ns=mtime_ns)

    @property
    def st_mode(self) -> int:
        return (stat.S_IFDIR if self.is_dir else stat.S_IFREG) | self.mode


def to_entry_attributes(
    ino: int, generation: int, attrs: NodeAttributes, ttl: float
) -> pyfuse3.EntryAttributes:
    """The ``pyfuse3.EntryAttributes`` for inode *ino* (entry and attribute timeouts *ttl*)."""
    result = pyfuse3.EntryAttributes()
    result.st_ino = ino
    result.generation = generation
    result.entry_timeout = ttl
    result.attr_timeout = ttl
    result.st_mode = attrs.st_mode
    result.st_nlink = 2 if attrs.is_dir else 1
    result.st_uid = attrs.uid
    result.st_gid = attrs.gid
    result.st_rdev = 0
    result.st_size = attrs.size
    result.st_blksize = BLOCK_SIZE
    result.st_blocks = (attrs.size + 511) // 512
    result.st_atime_ns = attrs.mtime_ns
    result.st_mtime_ns = attrs.mtime_ns
    result.st_ctime_ns = attrs.mtime_ns
    return result
