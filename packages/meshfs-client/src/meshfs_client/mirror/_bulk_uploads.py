"""Uploads of new small files gathered into bulk writes (the first pass of a mirror sends
thousands).

Each upload step of a small local file the server does not have (the planner's upload with
``if_none_match``) waits in :meth:`UploadBatcher.upload` as before, but the steps planned in
the same round share requests: the first to arrive lets the others queue (one turn of the event
loop), then reads up to :data:`BATCH` of them (or :data:`BATCH_BYTES`) with the same "unchanged
since it was planned" check :meth:`~meshfs_client.mirror._transfers.Executor.upload` makes and
sends them with one :meth:`~meshfs_client.MeshFSClient.write_many` (create only, each file with
the mode and mtime a single upload would give it: the server's 0644 with the local executable
bits, the local mtime to the nanosecond) inside a transfer slot. Each file created is recorded
exactly as a single upload records it.

Everything else takes the single-request path, so conflicts are handled as they always were:
a batch of one (a live edit must not wait for a bulk round trip), a file the server refused
(``already_exists``: someone created it meanwhile; any other error) and one it already had with
this very content (no new version: not created by this write). A local file that changed since
it was planned is :class:`~meshfs_client.mirror._transfers.LocalChangedError`, as for a single
upload.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from meshfs_client._bulk import BulkMember
from meshfs_client.mirror._model import EXEC_BITS, LocalNode
from meshfs_client.mirror._rounds import Rounds
from meshfs_client.mirror._transfers import Executor, LocalChangedError, _read_if_same
from meshfs_common import paths
from meshfs_common.bulk import BULK_MAX_FILE, BulkWritten
from meshfs_common.hashing import hash_bytes
from meshfs_common.models import CommitResult, Entry, Version

BATCH = 1000
BATCH_BYTES = 32 * 1024 * 1024
"""At most this many bytes are read into memory for one batch."""
SMALL = BULK_MAX_FILE
"""Uploads of new files up to this size go through the batcher."""
NEW_FILE_MODE = 0o644
"""The mode the server gives a file it creates (the local executable bits are added)."""


@dataclass(slots=True)
class _Wanted:
    rel: str
    local: LocalNode
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class UploadBatcher(Rounds[_Wanted]):
    """Shares bulk writes between the upload steps (of new small files) of one engine."""

    def __init__(self, executor: Executor, slots: asyncio.Semaphore) -> None:
        super().__init__(slots)
        self.executor = executor

    async def upload(self, rel: str, local: LocalNode) -> None:
        """:meth:`Executor.upload` (``if_none_match``) of a small new file, in a bulk write
        with the others queued."""
        await self.join(_Wanted(rel, local))

    def take(self, queue: list[_Wanted]) -> tuple[list[_Wanted], list[_Wanted]]:
        """At most :data:`BATCH` files and :data:`BATCH_BYTES` (one file at least)."""
        size = 0
        for count, wanted in enumerate(queue):
            size += wanted.local.size
            if count >= BATCH or (count and size > BATCH_BYTES):
                return queue[:count], queue[count:]
        return queue, []

    async def carry_out(self, batch: list[_Wanted]) -> None:
        run = self.executor
        if len(batch) == 1:
            await self._single(batch[0])
            return
        read = await asyncio.to_thread(_read_all, run, batch)
        members: dict[str, tuple[_Wanted, bytes, int]] = {}
        for wanted, data in zip(batch, read, strict=True):
            if data is None:
                wanted.done.set_exception(LocalChangedError(wanted.rel))
                continue
            mode = NEW_FILE_MODE | (wanted.local.mode & EXEC_BITS)
            members[paths.normalise(run.tree.remote_path(wanted.rel))] = (wanted, data, mode)
        if not members:
            return
        try:
            result = await run.client.write_many(
                [BulkMember(path, data, mode=mode, mtime_ns=wanted.local.mtime_ns)
                 for path, (wanted, data, mode) in members.items()],
                if_absent=True,
            )  # fmt: skip
        except Exception as exc:
            for wanted, _, _ in members.values():
                wanted.done.set_exception(exc)
            return
        written = {w.path: w for w in result.written if w.kind == "file"}
        for path, (wanted, data, mode) in members.items():
            landed = written.get(path)
            if landed is None or not landed.created_version or landed.version_id is None:
                # Refused (already there, or another error), or there already with this
                # content: the single upload handles it as it always has.
                await self._single(wanted)
                continue
            content_hash = hash_bytes(data).content_hash
            try:
                committed = _committed(landed, path, mode, wanted.local.mtime_ns)
                run._record_commit(wanted.rel, committed, wanted.local, content_hash,
                                   committed.entry)  # fmt: skip
            except Exception as exc:
                wanted.done.set_exception(exc)
            else:
                wanted.done.set_result(None)

    async def _single(self, wanted: _Wanted) -> None:
        """The single-request upload of *wanted*, its outcome put in its future."""
        try:
            await self.executor.upload(wanted.rel, wanted.local, if_match=None, if_none_match=True)
        except Exception as exc:
            wanted.done.set_exception(exc)
        else:
            wanted.done.set_result(None)


def _read_all(run: Executor, batch: list[_Wanted]) -> list[bytes | None]:
    """Each file's content if it is still as planned (else None), in one thread hand-off."""
    return [_read_if_same(Path(run.os_path(w.rel)), w.local) for w in batch]


def _committed(landed: BulkWritten, path: str, mode: int, mtime_ns: int) -> CommitResult:
    """A bulk write's new file as the commit a single upload answers with: the file as it now
    is, with the mode and mtime the write gave it."""
    assert landed.version_id is not None
    assert landed.content_hash is not None
    at = datetime.fromtimestamp(mtime_ns / 1e9, UTC)
    entry = Entry(
        node_id=landed.node_id, path=path, name=paths.basename(path), kind="file",
        created_at=at, modified_at=at, size=landed.size, version_id=landed.version_id,
        content_hash=landed.content_hash, mode=mode, mtime_ns=mtime_ns,
    )  # fmt: skip
    version = Version(
        version_id=landed.version_id, node_id=landed.node_id, size=landed.size,
        content_hash=landed.content_hash, created_at=at, mode=mode,
    )  # fmt: skip
    return CommitResult(entry=entry, version=version, created_version=True)
