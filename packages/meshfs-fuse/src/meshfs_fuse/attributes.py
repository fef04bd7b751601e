"""One place where a node's metadata becomes the attributes the kernel sees.

The server keeps each node's POSIX attributes (``mode``, ``uid``, ``gid``, ``nlink``, times in
nanoseconds, ``rdev``) and its kind; :meth:`NodeAttributes.from_entry` reads them from the
entry, adding the file-type bits from the kind. An entry without them (``ctime_ns`` 0: a
server from before the POSIX model) shows as mode 0644 (files) or 0755 (directories), owned by
the user who mounted, with every time = ``modified_at``.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, replace
from datetime import datetime

import pyfuse3

from meshfs_common.models import KIND_TYPE_BITS, Entry, NodeKind

__all__ = [
    "BLOCK_SIZE",
    "DIR_MODE",
    "FILE_MODE",
    "KIND_BITS",
    "NodeAttributes",
    "Owner",
    "kind_of_mode",
    "to_entry_attributes",
]

FILE_MODE = 0o644
DIR_MODE = 0o755
BLOCK_SIZE = 4096
"""``st_blksize``, and the unit of ``st_blocks`` is 512 bytes as everywhere."""

KIND_BITS: dict[NodeKind, int] = KIND_TYPE_BITS
"""The file-type bits of ``st_mode`` for each kind of node."""


def kind_of_mode(mode: int) -> NodeKind | None:
    """The kind of node the file-type bits of *mode* ask for (``None``: not one we know)."""
    bits = stat.S_IFMT(mode)
    for kind, kind_bits in KIND_BITS.items():
        if kind_bits == bits:
            return kind
    return None


@dataclass(frozen=True, slots=True)
class Owner:
    """Who owns nodes whose entry names no owner (the user who mounted)."""

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
    kind: NodeKind = "file"
    nlink: int = 1
    atime_ns: int = 0
    ctime_ns: int = 0
    rdev: int = 0

    @classmethod
    def from_entry(cls, entry: Entry, owner: Owner) -> NodeAttributes:
        """The attributes of a server entry."""
        is_dir = entry.kind == "dir"
        size = entry.size if entry.kind == "file" else 0
        if entry.kind == "symlink" and entry.target is not None:
            size = len(entry.target.encode())
        if entry.ctime_ns == 0:  # no POSIX attributes on this entry
            mtime = _ns(entry.modified_at)
            return cls(
                is_dir=is_dir,
                size=size,
                mtime_ns=mtime,
                mode=DIR_MODE if is_dir else FILE_MODE,
                uid=owner.uid,
                gid=owner.gid,
                kind=entry.kind,
                nlink=2 if is_dir else 1,
                atime_ns=mtime,
                ctime_ns=mtime,
            )
        return cls(
            is_dir=is_dir,
            size=size,
            mtime_ns=entry.mtime_ns,
            mode=entry.mode & 0o7777,
            uid=entry.uid,
            gid=entry.gid,
            kind=entry.kind,
            nlink=max(1, entry.nlink),
            atime_ns=entry.atime_ns,
            ctime_ns=entry.ctime_ns,
            rdev=entry.rdev,
        )

    @classmethod
    def new_file(cls, owner: Owner, now_ns: int, mode: int = FILE_MODE) -> NodeAttributes:
        """A file created here (by *owner*, with *mode*) and not committed yet."""
        return cls(False, 0, now_ns, mode, owner.uid, owner.gid, atime_ns=now_ns, ctime_ns=now_ns)

    def with_content(self, size: int, mtime_ns: int) -> NodeAttributes:
        """These attributes with local content of *size* bytes written at *mtime_ns*."""
        return replace(self, size=size, mtime_ns=mtime_ns, ctime_ns=max(self.ctime_ns, mtime_ns))

    @property
    def st_mode(self) -> int:
        return KIND_BITS[self.kind] | self.mode


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
    result.st_nlink = attrs.nlink
    result.st_uid = attrs.uid
    result.st_gid = attrs.gid
    result.st_rdev = attrs.rdev
    result.st_size = attrs.size
    result.st_blksize = BLOCK_SIZE
    result.st_blocks = (attrs.size + 511) // 512
    result.st_atime_ns = attrs.atime_ns or attrs.mtime_ns
    result.st_mtime_ns = attrs.mtime_ns
    result.st_ctime_ns = attrs.ctime_ns or attrs.mtime_ns
    return result
