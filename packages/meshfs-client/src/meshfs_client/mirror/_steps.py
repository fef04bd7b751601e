"""Carrying out one planned step on one path and recording the outcome.

Transfers (uploads, downloads) run in parallel, bounded by ``SyncOptions.transfers``; small
downloads planned together share bulk reads (:mod:`._batched`), uploads of small new files
share bulk writes (:mod:`._bulk_uploads`); other steps run in order. A
step that succeeded settles the path and marks it to be looked at again; one that failed goes
to :meth:`~meshfs_client.mirror._bookkeeping.EngineBase._failed`.
"""

from __future__ import annotations

from meshfs_client.mirror import _bulk_uploads
from meshfs_client.mirror._batched import SMALL, DownloadBatcher
from meshfs_client.mirror._bookkeeping import EngineBase
from meshfs_client.mirror._bulk_uploads import UploadBatcher
from meshfs_client.mirror._model import EXEC_BITS, LocalNode, RemoteNode, SyncedNode
from meshfs_client.mirror._planner import Action, remote_attributes_equal, remote_changed
from meshfs_client.mirror._status import SyncEvent
from meshfs_client.mirror._transfers import LocalChangedError
from meshfs_common.errors import MeshFSError


class StepRunner(EngineBase):
    """Runs the planner's actions through the executor and keeps the counters."""

    _batcher: DownloadBatcher | None = None
    _upload_batcher: UploadBatcher | None = None

    @property
    def _downloads(self) -> DownloadBatcher:
        """Small downloads in bulk reads (made for the current executor)."""
        if self._batcher is None or self._batcher.executor is not self.executor:
            self._batcher = DownloadBatcher(self.executor, self._transfer_slots)
        return self._batcher

    @property
    def _uploads(self) -> UploadBatcher:
        """Uploads of small new files in bulk writes (made for the current executor)."""
        if self._upload_batcher is None or self._upload_batcher.executor is not self.executor:
            self._upload_batcher = UploadBatcher(self.executor, self._transfer_slots)
        return self._upload_batcher

    async def _transfer(
        self, rel: str, action: Action, local: LocalNode | None, remote: RemoteNode | None
    ) -> None:
        try:
            if action.kind == "download" and remote is not None and remote.size <= SMALL:
                # Shares a bulk read (and a transfer slot) with the round's other downloads.
                await self._downloads.download(rel, remote, local)
                self.status.downloads += 1
            elif (
                action.kind == "upload" and action.if_none_match and action.if_match is None
                and local is not None and local.kind == "file"
                and local.size <= _bulk_uploads.SMALL
            ):  # fmt: skip
                # A new file: shares a bulk write (and a transfer slot) with the round's others.
                await self._uploads.upload(rel, local)
                self.status.uploads += 1
            else:
                async with self._transfer_slots:
                    if action.kind == "download":
                        assert remote is not None
                        await self.executor.download(rel, remote, local)
                        self.status.downloads += 1
                    else:
                        assert local is not None
                        await self.executor.upload(
                            rel, local, if_match=action.if_match,
                            if_none_match=action.if_none_match,
                        )  # fmt: skip
                        self.status.uploads += 1
            self._emit(SyncEvent(action.kind, rel))
            self._settled(rel)
            self._mark([rel])
        except LocalChangedError:
            self._mark([rel], delay=0.05)
        except (MeshFSError, OSError) as exc:
            await self._failed(rel, exc)
        finally:
            self._busy.discard(rel)
            self._wake.set()

    async def _step(
        self,
        rel: str,
        action: Action,
        local: LocalNode | None,
        remote: RemoteNode | None,
        synced: SyncedNode | None,
    ) -> None:
        run = self.executor
        try:
            kind = action.kind
            if kind == "record":
                self._record(rel, local, remote)
            elif kind == "mkdir_local":
                assert remote is not None
                await run.mkdir_local(rel, remote)
            elif kind == "mkdir_remote":
                assert local is not None
                await run.mkdir_remote(rel, local)
            elif kind == "delete_local":
                if local is not None and local.kind == "dir":
                    kept = await run.delete_local_dir(rel)
                    self._mark(kept)
                    if kept:
                        self._emit(SyncEvent("conflict", rel, f"kept {len(kept)} changed files"))
                else:
                    assert local is not None
                    await run.delete_local_file(rel, local)
                self.status.deletes += 1
            elif kind == "delete_remote":
                assert remote is not None
                if remote.kind == "dir" and local is None and not self._clean_remote_subtree(rel):
                    # Something below changed on the server: keep the directory (an edit beats
                    # a delete); unchanged files below are deleted one by one.
                    await run.mkdir_local(rel, remote)
                    self._emit(SyncEvent("conflict", rel, "changed on the server; kept"))
                else:
                    await run.delete_remote(rel, remote, action.if_match)
                    self.status.deletes += 1
            elif kind in ("keep_both", "move_local_aside"):
                assert local is not None
                copy = await run.keep_both(rel, local)
                self.status.conflicts += 1
                said = "local copy kept as" if kind == "keep_both" else "local file moved to"
                self._emit(SyncEvent("conflict", rel, f"{said} {copy}"))
                self._mark([copy])
            elif kind in ("attributes_remote", "attributes_local"):
                assert local is not None
                assert remote is not None
                if kind == "attributes_remote":
                    await run.attributes_remote(rel, local, remote)
                else:
                    await run.attributes_local(rel, local, remote)
                self.status.attributes += 1
            elif kind == "link_local":
                assert remote is not None
                await run.link_local(rel, remote, local)
            elif kind == "link_remote":
                assert local is not None
                await run.link_remote(rel, local, remote, action.if_match)
            elif kind == "move_remote_aside":
                assert remote is not None
                copy = await run.move_remote_aside(rel, remote)
                self.status.conflicts += 1
                self._emit(SyncEvent("conflict", rel, f"remote file moved to {copy}"))
            if kind != "record":
                self._emit(SyncEvent(kind, rel))
            self._settled(rel)
            self._mark([rel])
        except LocalChangedError:
            self._mark([rel], delay=0.05)
        except (MeshFSError, OSError) as exc:
            await self._failed(rel, exc)

    async def _mkdirs(self, wanted: list[tuple[str, LocalNode]]) -> None:
        """The ``mkdir_remote`` steps of one round: new directories made in one request (a
        first pass over a folder of many directories made them one request each)."""
        outcome = await self.executor.mkdirs_remote(wanted)
        for rel, _ in wanted:
            failure = outcome.get(rel)
            if isinstance(failure, LocalChangedError):
                self._mark([rel], delay=0.05)
            elif isinstance(failure, MeshFSError | OSError):
                await self._failed(rel, failure)
            elif failure is not None:
                raise failure
            else:
                self._emit(SyncEvent("mkdir_remote", rel))
                self._settled(rel)
                self._mark([rel])

    def _record(self, rel: str, local: LocalNode | None, remote: RemoteNode | None) -> None:
        if local is None or remote is None:
            self.state.drop_synced(rel)
            return
        previous = self.state.synced.get(rel)
        content_hash = local.content_hash or (previous.content_hash if previous else None)
        if local.kind == "file" and content_hash is None:
            content_hash = remote.content_hash  # agree() established equality
        self.state.set_synced(
            rel,
            SyncedNode(
                local.kind,
                remote.node_id,
                remote.version_id,
                content_hash if local.kind != "dir" else None,
                local.size,
                local.mtime_ns,
                local.inode,
                # Attributes are compared from here on only when both sides are known to agree.
                local.mode & EXEC_BITS
                if local.kind == "file" and remote_attributes_equal(remote, local)
                else None,
            ),
        )

    def _clean_remote_subtree(self, rel: str) -> bool:
        """True when nothing below *rel* changed on the server since the last sync."""
        below = set(self.state.remote_below(rel))
        if below != set(self.state.synced_below(rel)):
            return False
        return not any(
            remote_changed(self.state.remote[p], self.state.synced.get(p)) for p in below
        )


__all__ = ["StepRunner"]
