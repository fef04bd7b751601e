"""History of :class:`~meshfs_client.MeshFSClient`: versions, diffs, changes, snapshots and
the change feed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from meshfs_client._base import required, segment, where
from meshfs_client._files import FileMethods
from meshfs_client._watch import ChangeFeed
from meshfs_common import paths
from meshfs_common.errors import (
    NotFoundError,
)
from meshfs_common.models import (
    ChangeSummary,
    CommitResult,
    FileDiff,
    PullResponse,
    RestoreRequest,
    Snapshot,
    SnapshotCreateRequest,
    SnapshotDiff,
    SnapshotList,
    SnapshotRestoreResult,
    Version,
    VersionPage,
)


class HistoryMethods(FileMethods):
    """``versions``, ``restore``, ``diff``, ``changes``, snapshots, ``pull`` and ``watch``."""

    # --- versions ---------------------------------------------------------------------------

    async def node_id_of(self, path: str) -> str:
        """The node id of *path*, also for a deleted file (its newest tombstone)."""
        try:
            return (await self.meta(path)).node_id
        except NotFoundError:
            canonical = paths.normalise(path)
            name = paths.basename(canonical)
            candidates = [
                entry
                async for entry in self.iterdir(paths.parent(canonical), include_deleted=True)
                if entry.name == name
            ]
            if not candidates:
                raise
            newest = max(candidates, key=lambda e: e.deleted_at or e.modified_at)
            return newest.node_id

    async def versions_page(
        self,
        path: str | None = None,
        *,
        node_id: str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> VersionPage:
        """One page of a file's versions, newest first."""
        node = node_id or await self.node_id_of(required(path))
        return await self._t.call(
            "GET",
            f"/files/{node}/versions",
            VersionPage,
            params={"limit": limit, "before": before},
            idempotent=True,
        )

    async def versions(
        self, path: str | None = None, *, node_id: str | None = None, page_size: int = 100
    ) -> AsyncIterator[Version]:
        """Every version of a file, newest first, fetching pages as needed."""
        node = node_id or await self.node_id_of(required(path))
        before: str | None = None
        while True:
            page = await self.versions_page(node_id=node, limit=page_size, before=before)
            for version in page.versions:
                yield version
            if not page.has_more or not page.versions:
                return
            before = page.next_before or page.versions[-1].version_id

    async def restore(
        self,
        path: str | None,
        version_id: str,
        *,
        node_id: str | None = None,
        to_path: str | None = None,
    ) -> CommitResult:
        """Make an old version the head again (also undeletes; ``to_path`` relocates)."""
        node = node_id or await self.node_id_of(required(path))
        # Safe to resend: restoring the version that is already the head writes identical
        # content, which the server treats as a no-op.
        return await self._t.call(
            "POST",
            f"/files/{node}/versions/{version_id}/restore",
            CommitResult,
            json=RestoreRequest(path=paths.normalise(to_path) if to_path else None),
            idempotent=True,
        )

    # --- diffs, changes and snapshots --------------------------------------------------------

    async def diff(
        self,
        path: str | None,
        v1: str | None = None,
        v2: str | None = None,
        *,
        node_id: str | None = None,
    ) -> FileDiff:
        """The difference between two versions of a file, as a unified text diff.

        ``diff(path)``: the head against the version before it; ``diff(path, v1)``: *v1*
        against the head; ``diff(path, v1, v2)``: *v1* against *v2*; ``diff(path, v2=v)``: the
        version before *v* against *v*. A first version is compared with no content. Binary
        content, or text over ``text_limit`` bytes, gets a summary instead (``unified`` None,
        ``no_text`` says why; compare ``old``/``new`` size, media type and hash). A deleted
        file is addressed by ``node_id``.
        """
        versions = {"v1": v1, "v2": v2}
        try:
            return await self._t.call(
                "GET",
                "/files/diff",
                FileDiff,
                params={**where(path, node_id), **versions},
                idempotent=True,
            )
        except NotFoundError:
            if node_id is not None or path is None:
                raise
            # Not live at that path: the newest deleted file that was there.
            node = await self.node_id_of(path)
        return await self._t.call(
            "GET", "/files/diff", FileDiff, params={"node_id": node, **versions}, idempotent=True
        )

    async def changes(
        self,
        path: str = "/",
        *,
        since_cursor: int | None = None,
        since_time: float | None = None,
    ) -> ChangeSummary:
        """Everything that changed under *path* after a feed cursor or since a time (epoch
        seconds), one entry per file or directory: created, modified (with changed line
        counts for text), deleted, renamed (with the old path), and who changed it.

        Give exactly one of *since_cursor* and *since_time*. ``has_more`` means the range was
        too long for one answer: call again with ``since_cursor=summary.to_cursor``.
        """
        return await self._t.call(
            "GET",
            "/files/changes",
            ChangeSummary,
            params={
                "path": paths.normalise(path),
                "since_cursor": since_cursor,
                "since_time": None if since_time is None else repr(float(since_time)),
            },
            idempotent=True,
        )

    async def snapshot_create(self, path: str, name: str) -> Snapshot:
        """Name the current state of the subtree at *path* (``name`` unique in the tenant).

        The snapshot keeps every version it references from retention until deleted.
        """
        # Not resent after a lost answer: the name would then be taken (409) by our own call.
        return await self._t.call(
            "POST",
            "/snapshots",
            Snapshot,
            json=SnapshotCreateRequest(path=paths.normalise(path), name=name),
            idempotent=False,
        )

    async def snapshots(self, path: str | None = None) -> list[Snapshot]:
        """Snapshots of subtrees at or below *path* (default: all you may read), newest first."""
        page = await self._t.call(
            "GET",
            "/snapshots",
            SnapshotList,
            params={"path": paths.normalise(path) if path is not None else None},
            idempotent=True,
        )
        return list(page.snapshots)

    async def snapshot(self, name_or_id: str) -> Snapshot:
        """One snapshot, by name or id."""
        return await self._t.call(
            "GET", f"/snapshots/{segment(name_or_id)}", Snapshot, idempotent=True
        )

    async def snapshot_diff(self, name_or_id: str) -> SnapshotDiff:
        """How the snapshot's subtree differs now, one entry per file (snapshot -> now)."""
        return await self._t.call(
            "GET", f"/snapshots/{segment(name_or_id)}/diff", SnapshotDiff, idempotent=True
        )

    async def snapshot_restore(self, name_or_id: str) -> SnapshotRestoreResult:
        """Restore the subtree to the snapshot in one atomic commit.

        Files changed since get their snapshot content as a new version, files created since
        are deleted, deleted ones come back, moved ones move back; all history stays. The
        answer's ``undo`` snapshot was taken just before: restoring it undoes this.
        """
        # Safe to resend: restoring the same snapshot again changes nothing more.
        return await self._t.call(
            "POST",
            f"/snapshots/{segment(name_or_id)}/restore",
            SnapshotRestoreResult,
            idempotent=True,
        )

    async def snapshot_delete(self, name_or_id: str) -> Snapshot:
        """Delete a snapshot (history stays; retention may then prune what only it kept)."""
        return await self._t.call(
            "DELETE", f"/snapshots/{segment(name_or_id)}", Snapshot, idempotent=False
        )

    # --- change feed ------------------------------------------------------------------------

    async def pull(self, cursor: int = 0, *, limit: int = 1000) -> PullResponse:
        """One page of change events after *cursor*."""
        return await self._t.call(
            "GET",
            "/sync/pull",
            PullResponse,
            params={"cursor": cursor, "limit": limit},
            idempotent=True,
        )

    async def current_cursor(self) -> int:
        """The cursor of the newest event (start here to see only future changes)."""
        # A cursor ahead of the log is answered with `reset` and the current cursor.
        page = await self.pull(2**62, limit=1)
        return page.cursor

    def watch(
        self,
        cursor: int = 0,
        *,
        websocket: bool = True,
        poll_interval: float = 2.0,
        max_failures: int | None = None,
        on_state: Callable[[ChangeFeed], None] | None = None,
    ) -> ChangeFeed:
        """Live change events after *cursor*: ``async with client.watch(n) as feed:``.

        *on_state* is called with the feed whenever its ``state`` changes (``connecting``,
        ``live``, ``offline``; see :class:`ChangeFeed`).
        """
        return ChangeFeed(
            self._t,
            cursor,
            websocket=websocket,
            poll_interval=poll_interval,
            max_failures=max_failures,
            on_state=on_state,
        )
