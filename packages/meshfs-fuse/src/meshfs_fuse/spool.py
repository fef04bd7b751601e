"""The write spool: a file on local disk per file being written, with a journal.

Writes never wait for the network: each ``write`` is a ``pwrite`` into the file's spool (a
large one in a worker thread, so the trio thread never waits for the disk; a small one, which
only touches the page cache, right away - see :data:`INLINE_BYTES`), and the whole spool becomes one
version when the file is flushed, closed or fsynced (see :mod:`meshfs_fuse.operations`).

The journal is one small JSON record beside each spool's data, written atomically (temporary
file, rename) when a spool first holds acknowledged writes that are not committed yet
(``dirty``), and removed when they are committed (the spool is then ``clean``: only a read
cache while the file is open). ``fsync`` syncs data, record and directory to the disk.

A spool whose base content is still being copied in has no record at all (nothing was
acknowledged yet). After a crash - even ``kill -9`` of the daemon - the next start finds the
``dirty`` records with :meth:`SpoolDirectory.recoverable` and commits them: nothing a ``write``
acknowledged is lost. The data itself is in the page cache the moment ``pwrite`` returns, so it
survives the process; after ``fsync`` it survives a power loss too.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import trio

__all__ = ["Spool", "SpoolDirectory", "SpoolRecord"]

SpoolState = Literal["dirty", "clean"]

INLINE_BYTES = 64 * 1024
"""Spool reads and writes up to this size run on the calling (trio) thread.

They touch only the page cache (a spool's pages were written moments before), which takes
microseconds, while a trip to a worker thread and back costs 50 us on a quiet machine and
3-4 ms on a loaded one (measured: a 4 KiB write through the mount took 3.9 ms, almost all of
it waiting for the two thread switches). Larger transfers still go to a worker thread."""


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    """The journal record of one spool: where its content belongs."""

    spool_id: str
    path: str
    node_id: str | None
    state: SpoolState


class Spool:
    """The local content of one file being written. Not safe for concurrent writers of the
    same byte range (the kernel serialises them per file as a local file system would)."""

    def __init__(self, directory: SpoolDirectory, spool_id: str) -> None:
        self._directory = directory
        self.spool_id = spool_id
        self.data_path = directory.root / f"{spool_id}.data"
        self._fd = os.open(self.data_path, os.O_RDWR | os.O_CREAT, 0o600)
        self.size = os.fstat(self._fd).st_size
        self.state: SpoolState | None = None
        self.path = ""
        self.node_id: str | None = None

    @property
    def dirty(self) -> bool:
        return self.state == "dirty"

    async def pwrite(self, data: bytes, offset: int) -> int:
        if len(data) <= INLINE_BYTES:
            written = os.pwrite(self._fd, data, offset)
        else:
            written = await trio.to_thread.run_sync(os.pwrite, self._fd, data, offset)
        self.size = max(self.size, offset + written)
        return written

    async def pread(self, offset: int, length: int) -> bytes:
        if length <= INLINE_BYTES:
            return os.pread(self._fd, length, offset)
        return await trio.to_thread.run_sync(os.pread, self._fd, length, offset)

    async def read_all(self) -> bytes:
        """The whole content, in one read."""
        if self.size <= INLINE_BYTES:
            return _pread_exact(self._fd, self.size)
        return await trio.to_thread.run_sync(_pread_exact, self._fd, self.size)

    async def truncate(self, size: int) -> None:
        await trio.to_thread.run_sync(os.ftruncate, self._fd, size)
        self.size = size

    async def sync(self) -> None:
        """Make the data and the journal record survive a power loss (``fsync``)."""
        await trio.to_thread.run_sync(self._directory.sync, self.spool_id, self._fd)

    async def mark(self, state: SpoolState, path: str, node_id: str | None) -> None:
        """Journal that this spool is *state* and belongs at *path* (node *node_id*).

        ``clean`` removes the record: a clean spool is only a read cache.
        """
        if (self.state, self.path, self.node_id) == (state, path, node_id):
            return
        if state == "clean":
            await trio.to_thread.run_sync(self._directory.forget_record, self.spool_id)
        else:
            record = SpoolRecord(self.spool_id, path, node_id, state)
            await trio.to_thread.run_sync(self._directory.write_record, record)
        self.state, self.path, self.node_id = state, path, node_id

    async def discard(self) -> None:
        """Close and delete the spool and its record."""
        await trio.to_thread.run_sync(self.discard_now)

    def close(self) -> None:
        """Close the data file and keep both it and the record (for the next start)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def discard_now(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._directory.remove(self.spool_id)


def _pread_exact(fd: int, length: int) -> bytes:
    parts: list[bytes] = []
    offset = 0
    while offset < length:
        block = os.pread(fd, length - offset, offset)
        if not block:
            break
        parts.append(block)
        offset += len(block)
    return b"".join(parts)


class SpoolDirectory:
    """The spools of one mount, under ``<cache dir>/spool``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def new(self) -> Spool:
        """A new, empty spool (no record until :meth:`Spool.mark`)."""
        return Spool(self, uuid.uuid4().hex)

    def new_dirty(self, path: str | None) -> Spool:
        """A new, empty spool already journaled ``dirty`` at *path* (a file created here: its
        emptiness is acknowledged content too). Blocking: call it in a worker thread."""
        spool = self.new()
        if path is not None:
            self.write_record(SpoolRecord(spool.spool_id, path, None, "dirty"))
            spool.state, spool.path = "dirty", path
        return spool

    def _record_path(self, spool_id: str) -> Path:
        return self.root / f"{spool_id}.json"

    def write_record(self, record: SpoolRecord) -> None:
        """Replace the record of a spool atomically (it survives the process being killed;
        :meth:`sync` makes it survive a power loss too)."""
        final = self._record_path(record.spool_id)
        temporary = final.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(record)))
        os.replace(temporary, final)

    def forget_record(self, spool_id: str) -> None:
        self._record_path(spool_id).unlink(missing_ok=True)

    def sync(self, spool_id: str, data_fd: int) -> None:
        """fsync a spool's data, its record and the directory."""
        os.fsync(data_fd)
        record = self._record_path(spool_id)
        if record.exists():
            fd = os.open(record, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        dir_fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def remove(self, spool_id: str) -> None:
        for path in (self._record_path(spool_id), self.root / f"{spool_id}.data"):
            path.unlink(missing_ok=True)

    def recoverable(self) -> list[tuple[SpoolRecord, Path]]:
        """The ``dirty`` spools left by an earlier run, oldest first; other leftovers (clean
        read caches, spools with no record) are deleted."""
        found: list[tuple[float, SpoolRecord, Path]] = []
        keep: set[str] = set()
        for record_path in self.root.glob("*.json"):
            try:
                raw = json.loads(record_path.read_text())
                record = SpoolRecord(**raw)
            except (OSError, ValueError, TypeError):
                continue
            data = self.root / f"{record.spool_id}.data"
            if record.state == "dirty" and data.exists():
                found.append((record_path.stat().st_mtime, record, data))
                keep.add(record.spool_id)
        for leftover in self.root.iterdir():
            if leftover.name.split(".", 1)[0] not in keep:
                leftover.unlink(missing_ok=True)
        return [(record, data) for _, record, data in sorted(found, key=lambda f: f[0])]
