"""Content hashing: the SHA-256 block list (meshfs_common.hashing)."""

from __future__ import annotations

import hashlib
import io
import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshfs_common import hashing
from meshfs_common.hashing import (
    CHUNK_SIZE,
    EMPTY_CONTENT_HASH,
    ContentDigest,
    ContentHasher,
    hash_bytes,
    hash_file,
)


def reference(data: bytes, chunk_size: int) -> ContentDigest:
    """The documented formula, written out independently of the implementation."""
    blocks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
    digests = [hashlib.sha256(b).digest() for b in blocks]
    return ContentDigest(
        size=len(data),
        content_hash=hashlib.sha256(b"".join(digests)).hexdigest(),
        chunks=tuple(d.hex() for d in digests),
    )


def test_chunk_size_is_the_protocol_constant() -> None:
    # Changing it changes every content hash: clients and servers would stop agreeing.
    assert CHUNK_SIZE == 4 * 1024 * 1024


def test_reference_examples() -> None:
    hello = hash_bytes(b"hello")
    assert hello.size == 5
    assert hello.chunks == (hashlib.sha256(b"hello").hexdigest(),)
    assert hello.content_hash == hashlib.sha256(hashlib.sha256(b"hello").digest()).hexdigest()
    assert hello.content_hash == (
        "9595c9df90075148eb06860365df33584b75bff782a510c6cd4883a419833d50"
    )


def test_empty_content_has_no_chunks_and_the_empty_hash() -> None:
    digest = hash_bytes(b"")
    assert digest == ContentDigest(0, EMPTY_CONTENT_HASH, ())
    assert hashlib.sha256(b"").hexdigest() == EMPTY_CONTENT_HASH


@pytest.mark.parametrize("chunk_size", [2, 7, 16])
@pytest.mark.parametrize("which", ["0", "1", "cs-1", "cs", "cs+1"])
def test_chunk_boundaries(chunk_size: int, which: str) -> None:
    size = {"0": 0, "1": 1, "cs-1": chunk_size - 1, "cs": chunk_size, "cs+1": chunk_size + 1}
    data = bytes(i % 251 for i in range(size[which]))
    digest = hash_bytes(data, chunk_size)
    assert digest == reference(data, chunk_size)
    assert digest.size == len(data)
    assert len(digest.chunks) == -(-len(data) // chunk_size)
    if data:
        tail_start = (len(digest.chunks) - 1) * chunk_size
        assert digest.chunks[-1] == hashlib.sha256(data[tail_start:]).hexdigest()


def test_a_full_size_chunk_and_one_byte_more() -> None:
    data = b"\x00" * CHUNK_SIZE + b"\x01"
    digest = hash_bytes(data)
    assert digest == reference(data, CHUNK_SIZE)
    assert len(digest.chunks) == 2
    assert hash_bytes(data[:CHUNK_SIZE]).chunks == digest.chunks[:1]


@given(
    data=st.binary(max_size=600),
    chunk_size=st.integers(min_value=1, max_value=64),
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=12),
)
def test_hasher_fed_in_any_pieces_equals_hash_bytes(
    data: bytes, chunk_size: int, cuts: list[int]
) -> None:
    hasher = ContentHasher(chunk_size)
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    completed: list[str] = []
    for start, end in itertools.pairwise(bounds):
        completed += hasher.update(memoryview(data)[start:end])
    digest = hasher.finish()
    assert digest == hash_bytes(data, chunk_size) == reference(data, chunk_size)
    # update() reports each full chunk as soon as it completes; finish() adds the short tail.
    full = len(data) // chunk_size
    assert completed == list(digest.chunks[:full])


@given(data=st.binary(max_size=300), chunk_size=st.integers(min_value=1, max_value=40))
def test_hash_file_equals_hash_bytes(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, chunk_size: int
) -> None:
    path = tmp_path_factory.mktemp("h") / "f"
    path.write_bytes(data)
    assert hash_file(path, chunk_size) == hash_bytes(data, chunk_size)
    assert hash_file(str(path), chunk_size) == hash_bytes(data, chunk_size)


def test_hash_file_default_chunk_size(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"meshfs" * 1000)
    assert hash_file(path) == hash_bytes(b"meshfs" * 1000)


class TrickleStream(io.RawIOBase):
    """A stream that returns at most 3 bytes per read, like a pipe or socket may."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = 3 if size < 0 else min(size, 3)
        out, self._data = self._data[:size], self._data[size:]
        return out


def test_iter_chunks_fills_whole_chunks_from_short_reads() -> None:
    data = bytes(range(50))
    blocks = list(hashing.iter_chunks(TrickleStream(data), 16))  # type: ignore[arg-type]
    assert [len(b) for b in blocks] == [16, 16, 16, 2]
    assert b"".join(blocks) == data


def test_content_hash_of_chunk_names() -> None:
    digest = hash_bytes(b"abc" * 10, 4)
    assert hashing.content_hash_of(digest.chunks) == digest.content_hash
    assert hashing.content_hash_of([]) == EMPTY_CONTENT_HASH
    assert hashing.chunk_hash(b"abc") == hashlib.sha256(b"abc").hexdigest()
