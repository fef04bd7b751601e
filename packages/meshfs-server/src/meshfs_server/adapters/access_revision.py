"""A number every process on one machine sees change when who-may-do-what changed.

The embedded database's processes (server workers, ``meshfs-server admin``) share a small
file mapped into memory. After a transaction that wrote sessions, users, memberships or tenants
commits, the writer stores a fresh random 64-bit value in it; a reader compares the value with
the one it saw when it resolved a token. Reading it is a memory load, so a server may remember
resolved tokens across requests (see :class:`meshfs_server.auth.principal_cache.PrincipalCache`)
and still refuse a revoked session on the very next request, in every process.

Why a random value rather than a counter: two processes publishing at once could both store
``n + 1`` and one change would look like none; two random values never collide in practice,
and a reader only asks "changed since I looked?".
"""

from __future__ import annotations

import mmap
import os
import random
import re
import struct
from pathlib import Path

from meshfs_server.adapters.private_files import private_file

_SIZE = 8
_FORMAT = "<Q"

#: Statements that change what a token resolves to.
ACCESS_WRITE = re.compile(
    r"^\s*(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|REPLACE\s+INTO|UPDATE|DELETE\s+FROM)\s+"
    r"(?:sessions|users|memberships|tenants)\b",
    re.IGNORECASE,
)


class AccessRevision:
    """The shared value in the file at *path* (created 0600 when missing)."""

    def __init__(self, path: Path) -> None:
        private_file(path)
        fd = os.open(path, os.O_RDWR)
        try:
            if os.fstat(fd).st_size < _SIZE:
                os.ftruncate(fd, _SIZE)
            self._map = mmap.mmap(fd, _SIZE)
        finally:
            os.close(fd)
        self._random = random.Random()

    def current(self) -> int:
        """The value now."""
        value: int = struct.unpack_from(_FORMAT, self._map, 0)[0]
        return value

    def publish(self) -> None:
        """Tell every process that access changed (call after the commit)."""
        struct.pack_into(_FORMAT, self._map, 0, self._random.getrandbits(64))

    def close(self) -> None:
        self._map.close()
