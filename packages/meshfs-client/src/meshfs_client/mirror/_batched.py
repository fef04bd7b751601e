"""Small downloads gathered into bulk reads (the first pass of a mirror fetches thousands).

Each download step of a small file waits in :meth:`DownloadBatcher.download` as before, but
the steps planned in the same round share requests: the first to arrive lets the others queue
(one turn of the event loop), then fetches up to :data:`BATCH` of them with one
:meth:`~meshfs_client.MeshFSClient.read_many` inside a transfer slot, and places each file
exactly as :meth:`~meshfs_client.mirror._transfers.Executor.download` does (checked against
its hash, written aside, fsynced, moved into place unless the local file changed). A file the
server no longer has at the planned version, or could not read, is downloaded on its own.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field

from meshfs_client.mirror._ignore import TEMP_SUFFIX
from meshfs_client.mirror._model import LocalNode, RemoteNode
from meshfs_client.mirror._rounds import Rounds
from meshfs_client.mirror._transfers import (
    Executor,
    LocalChangedError,
    _short,
    _write_and_place,
)
from meshfs_common.bulk import BULK_MAX_FILE

BATCH = 500
SMALL = BULK_MAX_FILE
"""Downloads of files up to this size go through the batcher."""


@dataclass(slots=True)
class _Wanted:
    rel: str
    remote: RemoteNode
    expected: LocalNode | None
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class DownloadBatcher(Rounds[_Wanted]):
    """Shares bulk reads between the download steps of one engine."""

    def __init__(self, executor: Executor, slots: asyncio.Semaphore) -> None:
        super().__init__(slots)
        self.executor = executor

    async def download(self, rel: str, remote: RemoteNode, expected: LocalNode | None) -> None:
        """:meth:`Executor.download` of a small file, in a bulk read with the others queued."""
        await self.join(_Wanted(rel, remote, expected))

    def take(self, queue: list[_Wanted]) -> tuple[list[_Wanted], list[_Wanted]]:
        return queue[:BATCH], queue[BATCH:]

    async def carry_out(self, batch: list[_Wanted]) -> None:
        run = self.executor
        if len(batch) == 1:
            # A live edit: one plain download (content and attributes asked for at once) is
            # quicker than a bulk read followed by the attributes.
            wanted = batch[0]
            try:
                await run.download(wanted.rel, wanted.remote, wanted.expected)
            except Exception as exc:
                wanted.done.set_exception(exc)
            else:
                wanted.done.set_result(None)
            return
        where = {run.tree.remote_path(w.rel): w for w in batch}
        try:
            found = {f.path: f async for f in run.client.read_many(list(where))}
        except Exception as exc:
            for wanted in batch:
                wanted.done.set_exception(exc)
            return
        for path, wanted in where.items():
            got = found.get(path)
            try:
                if (
                    got is None or got.error is not None or got.data is None
                    or got.version_id != wanted.remote.version_id
                ):  # fmt: skip
                    # Changed since it was planned, or not readable in bulk: on its own.
                    await run.download(wanted.rel, wanted.remote, wanted.expected)
                else:
                    dest = run.os_path(wanted.rel)
                    temp = dest.with_name(
                        f".{_short(dest.name)}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
                    )
                    attrs = await run.attributes_of(wanted.remote)
                    placed, content_hash = await asyncio.to_thread(
                        _write_and_place, wanted.rel, got.data, wanted.remote.content_hash,
                        temp, dest, wanted.expected, attrs,
                    )  # fmt: skip
                    if placed is None:
                        raise LocalChangedError(wanted.rel)
                    run._record_download(wanted.rel, wanted.remote, placed, content_hash, attrs)
            except Exception as exc:
                wanted.done.set_exception(exc)
                continue
            wanted.done.set_result(None)
