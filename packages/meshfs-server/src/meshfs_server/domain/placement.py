"""Where a chunk's content lives: small chunks in the metadata database, the rest in the
content store.

Written to the content store, a small file costs three durable writes before it is answered
(the chunk file's fsync, its directory's fsync and the metadata commit). Kept in its chunk's
row (``mark_stored(..., data)``) by the transaction that commits the version, it costs one: the
commit, whose fsync concurrent writers share. Both engines keep such content like any other
column: copies, versions and snapshots reference the chunk by name as before, quotas count its
size, and the collector's claim and deletion of the row delete the content with it.

Reads ask the database for every chunk small enough to be kept there and fall back to the
content store (content stored before this placement, by a bulk write, or put into the bucket
through a presigned URL). A presigned download of such a chunk copies it into the bucket first.
"""

from __future__ import annotations

INLINE_MAX = 64 * 1024
"""The largest chunk (bytes) kept in the metadata database."""


def may_be_inline(size: int) -> bool:
    """Whether a chunk of *size* bytes may be kept in the metadata database (so a read asks
    the database before the content store)."""
    return 0 < size <= INLINE_MAX
