"""The write spool and its journal; the on-disk chunk cache."""

from __future__ import annotations

import os
from pathlib import Path

from meshfs_fuse.chunk_cache import CHUNK_SIZE, ChunkCache
from meshfs_fuse.spool import SpoolDirectory, SpoolRecord


async def test_spool_writes_reads_truncates(tmp_path: Path) -> None:
    spool = SpoolDirectory(tmp_path).new()
    assert await spool.pwrite(b"hello world", 0) == 11
    await spool.pwrite(b"W", 6)
    assert await spool.pread(0, 100) == b"hello World"
    await spool.truncate(5)
    assert spool.size == 5
    assert await spool.pread(0, 100) == b"hello"
    await spool.discard()
    assert os.listdir(tmp_path) == []


async def test_dirty_spool_is_recovered_after_the_process_dies(tmp_path: Path) -> None:
    directory = SpoolDirectory(tmp_path)
    dirty = directory.new()
    await dirty.pwrite(b"acknowledged", 0)
    await dirty.mark("dirty", "/a/b.txt", "node-1")
    clean = directory.new()
    await clean.pwrite(b"committed", 0)
    await clean.mark("clean", "/c.txt", "node-2")
    unjournaled = directory.new()
    await unjournaled.pwrite(b"base content being copied in", 0)
    # No discard: the daemon was killed. The next start looks at the directory afresh.
    found = SpoolDirectory(tmp_path).recoverable()
    assert [record for record, _ in found] == [
        SpoolRecord(dirty.spool_id, "/a/b.txt", "node-1", "dirty")
    ]
    assert found[0][1].read_bytes() == b"acknowledged"
    # Clean read caches and unjournaled spools are gone; the dirty one stays until committed.
    assert sorted(os.listdir(tmp_path)) == sorted(
        [f"{dirty.spool_id}.data", f"{dirty.spool_id}.json"]
    )


async def test_a_created_file_is_journaled_with_its_spool(tmp_path: Path) -> None:
    # create(2) acknowledges an empty file: killed before close, the next start commits it.
    created = SpoolDirectory(tmp_path).new_dirty("/new.txt")
    assert created.dirty
    found = SpoolDirectory(tmp_path).recoverable()
    assert [record for record, _ in found] == [
        SpoolRecord(created.spool_id, "/new.txt", None, "dirty")
    ]
    assert found[0][1].read_bytes() == b""


async def test_read_all_returns_the_whole_spool(tmp_path: Path) -> None:
    spool = SpoolDirectory(tmp_path).new()
    content = os.urandom(3 * 1024 * 1024 + 5)
    await spool.pwrite(content, 0)
    assert await spool.read_all() == content
    await spool.truncate(0)
    assert await spool.read_all() == b""
    await spool.discard()


async def test_marking_clean_then_dirty_rewrites_the_record(tmp_path: Path) -> None:
    directory = SpoolDirectory(tmp_path)
    spool = directory.new()
    await spool.mark("dirty", "/f", None)
    await spool.mark("clean", "/f", "n")
    assert directory.recoverable() == []


async def test_chunk_cache_fetches_each_chunk_once(tmp_path: Path) -> None:
    content = bytes(range(256)) * ((CHUNK_SIZE + 1000) // 256 + 1)
    content = content[: CHUNK_SIZE + 1000]
    fetched: list[tuple[int, int]] = []

    async def fetch(offset: int, length: int) -> bytes:
        fetched.append((offset, length))
        return content[offset : offset + length]

    cache = ChunkCache(tmp_path / "chunks", capacity=64 * 1024 * 1024)
    size = len(content)
    assert await cache.read("h", size, 10, 20, fetch) == content[10:30]
    assert await cache.read("h", size, CHUNK_SIZE - 5, 10, fetch) == content[CHUNK_SIZE - 5 :][:10]
    assert await cache.read("h", size, 0, size + 50, fetch) == content
    assert await cache.read("h", size, size, 10, fetch) == b""
    assert fetched == [(0, CHUNK_SIZE), (CHUNK_SIZE, 1000)]
    assert cache.hits >= 3


async def test_chunk_cache_evicts_least_recently_used(tmp_path: Path) -> None:
    fetched: list[str] = []

    def fetcher(name: str):  # type: ignore[no-untyped-def]
        async def fetch(offset: int, length: int) -> bytes:
            fetched.append(name)
            return name.encode() * length

        return fetch

    cache = ChunkCache(tmp_path / "chunks", capacity=250)
    for name in ("a", "b", "a", "c"):
        await cache.read(name, 100, 0, 100, fetcher(name))
    # a, b fetched; a hit; c evicted b (least recently used), not a.
    assert fetched == ["a", "b", "c"]
    assert cache.size == 200
    await cache.read("a", 100, 0, 100, fetcher("a"))
    await cache.read("b", 100, 0, 100, fetcher("b"))
    assert fetched == ["a", "b", "c", "b"]
    assert len(os.listdir(tmp_path / "chunks")) == 2


async def test_sequential_reads_fetch_the_next_chunks_ahead(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    import trio

    from meshfs_common.models import Entry
    from meshfs_fuse.content import ContentStore
    from meshfs_fuse.spool import SpoolDirectory

    size = 4 * CHUNK_SIZE
    fetched: list[int] = []

    class Server:
        async def read_range(self, node_id: str, version: str, offset: int, length: int) -> bytes:
            fetched.append(offset // CHUNK_SIZE)
            return b"x" * length

    now = datetime.now(UTC)
    entry = Entry(
        node_id="n", path="/f", name="f", kind="file", created_at=now, modified_at=now,
        size=size, version_id="v", content_hash="h",
    )  # fmt: skip
    store = ContentStore(
        Server(),  # type: ignore[arg-type]
        ChunkCache(tmp_path / "chunks", 64 * CHUNK_SIZE),
        SpoolDirectory(tmp_path / "spool"),
        read_ahead=2,
    )
    async with trio.open_nursery() as nursery:
        store.prefetch_in(nursery)
        await store.read(entry, 0, 131072)
        assert fetched == [0]  # a first read is not yet sequential
        await store.read(entry, 131072, 131072)
    # The nursery waited for the read-ahead: chunks 1 and 2 came without being asked for.
    assert sorted(fetched) == [0, 1, 2]
    await store.read(entry, 2 * CHUNK_SIZE, 10)  # a cached chunk, read out of sequence
    assert sorted(fetched) == [0, 1, 2]


async def test_reads_arriving_out_of_order_still_fetch_ahead(tmp_path: Path) -> None:
    """The kernel sends a reader's read-ahead as several requests at once: the request for
    bytes 2-3 MiB may come before the one for 1-2 MiB. The reader is still sequential, so the
    next chunks are fetched early (an exact-offset check missed four reads in five)."""
    from datetime import UTC, datetime

    import trio

    from meshfs_common.models import Entry
    from meshfs_fuse.content import ContentStore

    size = 8 * CHUNK_SIZE
    mib = 1024 * 1024
    fetched: list[int] = []

    class Server:
        async def read_range(self, node_id: str, version: str, offset: int, length: int) -> bytes:
            fetched.append(offset // CHUNK_SIZE)
            return b"x" * length

    now = datetime.now(UTC)
    entry = Entry(
        node_id="n", path="/f", name="f", kind="file", created_at=now, modified_at=now,
        size=size, version_id="v", content_hash="h",
    )  # fmt: skip
    store = ContentStore(
        Server(),  # type: ignore[arg-type]
        ChunkCache(tmp_path / "chunks", 64 * CHUNK_SIZE),
        SpoolDirectory(tmp_path / "spool"),
        read_ahead=3,
    )
    async with trio.open_nursery() as nursery:
        store.prefetch_in(nursery)
        await store.read(entry, 0, mib)
        await store.read(entry, 2 * mib, mib)  # ahead of 1-2 MiB, which follows
        await store.read(entry, mib, mib)
    assert sorted(fetched) == [0, 1, 2, 3]
    # A second pass from the start is a new sequential reader: read-ahead again, from there.
    fetched.clear()
    store.chunks.resize(0)
    store.chunks.resize(64 * CHUNK_SIZE)
    async with trio.open_nursery() as nursery:
        store.prefetch_in(nursery)
        await store.read(entry, 0, mib)
        await store.read(entry, mib, mib)
    assert sorted(fetched) == [0, 1, 2, 3]


async def test_small_spool_io_needs_no_worker_thread(tmp_path: Path) -> None:
    """A small write or read of a spool is served on the calling thread: it completes while
    every worker thread is taken (on a loaded machine a trip to a worker thread and back cost
    more than the write itself)."""
    import trio

    from meshfs_fuse.spool import INLINE_BYTES

    spool = SpoolDirectory(tmp_path / "spool").new()
    limiter = trio.to_thread.current_default_thread_limiter()
    tokens = limiter.total_tokens
    limiter.total_tokens = 1
    try:
        async with limiter:  # the only worker thread is busy
            with trio.fail_after(5):
                assert await spool.pwrite(b"x" * INLINE_BYTES, 0) == INLINE_BYTES
                assert await spool.pread(100, 10) == b"x" * 10
                assert await spool.read_all() == b"x" * INLINE_BYTES
            with trio.move_on_after(0.2) as waited:
                await spool.pwrite(b"y" * (INLINE_BYTES + 1), 0)
            assert waited.cancelled_caught  # a large write still goes to a worker thread
    finally:
        limiter.total_tokens = tokens
    assert await spool.pread(0, 1) in (b"x", b"y")
    spool.discard_now()
