"""Partial writes: a new version described as "this base version, with these chunks replaced
and this new size".

The content hash is a function of the chunk names alone (:mod:`meshfs_common.hashing`), so the
server builds the new version's chunk list from the base's without reading any content:

* chunks below the new size that are not replaced are the base's, which must keep their length
  (the chunk holding the new end of a shortened file, or the old end of an extended one,
  changes length and so must be given);
* chunks past the base's end that are not replaced are zeros - a file extended without being
  written (``truncate`` up, a sparse tail) - named by :func:`zero_chunk_hash`, which the server
  stores itself once per tenant; the client never uploads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from meshfs_common.errors import BadRequestError
from meshfs_common.hashing import CHUNK_SIZE, zero_chunk_hash
from meshfs_server.domain.ports import VersionRow


def chunk_count(size: int) -> int:
    """How many chunks content of *size* bytes has."""
    return (size + CHUNK_SIZE - 1) // CHUNK_SIZE


def expected_chunk_size(size: int, index: int) -> int:
    """The length of chunk *index* of content of *size* bytes."""
    return min(CHUNK_SIZE, size - index * CHUNK_SIZE)


@dataclass(frozen=True, slots=True)
class Patched:
    """The chunk list of a partial write, and what in it is new."""

    chunks: tuple[str, ...]
    reused: frozenset[str]
    """Chunks taken from the base version (stored and referenced already)."""
    zeros: dict[str, int]
    """Zero chunks filling an extension: name -> length (the server stores them)."""
    new_bytes: int
    """The lengths of the replaced chunks and zero chunks: what the write may add to the
    tenant's storage at most."""


def patch(base: VersionRow, size: int, replace: Mapping[int, str]) -> Patched:
    """The chunk list of *base* cut or extended to *size* with *replace* applied; a 400 when
    *replace* names an index outside the new content or omits a chunk whose length changes."""
    count = chunk_count(size)
    outside = sorted(i for i in replace if not 0 <= i < count)
    if outside:
        raise BadRequestError(
            f"replace names chunk {outside[0]}, but a {size}-byte file has chunks 0 to {count - 1}",
            detail={"chunks": count},
        )
    chunks: list[str] = []
    zeros: dict[str, int] = {}
    reused: set[str] = set()
    new_bytes = 0
    for index in range(count):
        length = expected_chunk_size(size, index)
        if index in replace:
            chunks.append(replace[index])
            new_bytes += length
        elif index < len(base.chunks):
            before = expected_chunk_size(base.size, index)
            if before != length:
                raise BadRequestError(
                    f"chunk {index} changes length ({before} -> {length} bytes) at the new"
                    " size: give its new content in replace",
                    detail={"index": index},
                )
            chunks.append(base.chunks[index])
            reused.add(base.chunks[index])
        else:
            name = zero_chunk_hash(length)
            if name not in zeros:
                new_bytes += length
            zeros[name] = length
            chunks.append(name)
    return Patched(tuple(chunks), frozenset(reused), zeros, new_bytes)
