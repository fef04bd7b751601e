"""The mirror engine: one local folder and one remote directory kept identical, both ways.

Three concurrent loops run in one task group, owned by :meth:`MirrorSync.run`:

* **remote follower** - catches up from the stored cursor with ``/sync/pull``, then follows the
  WebSocket push (:class:`~meshfs_client.ChangeFeed`, which falls back to pulling). Every event
  updates the remote tree in the state database together with the cursor, and marks the paths
  it touched. A ``reset`` answer relists the whole remote root (full reconciliation).
* **local watcher** - changed paths as the kernel reports them (:mod:`._inotify` on Linux,
  :mod:`watchfiles` elsewhere); a file still open for writing waits until it is closed. A full
  scan at start catches what changed while the mirror was off.
* **reconciler** - takes the marked ("dirty") paths, looks at each one's local, remote and synced
  state, asks the planner for the next step and carries it out; transfers run in parallel
  (bounded), other steps in order. After each step the path is looked at again until both sides
  agree.

Our own changes come back through the feed. Until that echo has arrived, the paths involved are
held (not planned), so an older event for the same path can never make the planner undo a step
that was just taken.

The parts live in their own modules: :mod:`._bookkeeping` (marked and held paths,
failures, status), :mod:`._follower` (the remote follower), :mod:`._reconciler` (the
reconciler) and :mod:`._steps` (carrying out one step); this module ties them together and
watches the local folder.
"""

from __future__ import annotations

import asyncio

from meshfs_client.mirror._bookkeeping import log
from meshfs_client.mirror._ignore import IGNORE_FILE
from meshfs_client.mirror._local import watch as watch_local
from meshfs_client.mirror._reconciler import Finished, Reconciler
from meshfs_client.mirror._remote import RemoteTree
from meshfs_client.mirror._state import StateDB, default_state_dir, state_file
from meshfs_client.mirror._status import SyncEvent, SyncOptions, SyncStatus
from meshfs_client.mirror._transfers import Executor, remove_stale_temps
from meshfs_common import paths


class MirrorSync(Reconciler):
    """Two-way sync of ``options.target`` with ``options.remote_root`` on the client's server."""

    async def open(self) -> StateDB:
        """Open (or create) this mirror's state database."""
        me = await self._with_retry(self.client.whoami)
        state_dir = self.options.state_dir or default_state_dir()
        self.state_path = state_file(
            state_dir, self.client.server, me.tenant_id, self.root, self.target
        )
        self._state = StateDB(self.state_path)
        for key, value in (
            ("server", self.client.server),
            ("tenant", me.tenant_id),
            ("remote_root", self.root),
            ("target", str(self.target)),
        ):
            self._state.set_meta(key, value)
        self._tree = RemoteTree(self._state, self.root)
        self._exec = Executor(self.client, self.target, self._tree, self._state, self._expect_echo)
        return self._state

    async def run(self) -> None:
        """Sync until cancelled (or, with ``once``, until both sides agree)."""
        await asyncio.to_thread(self.target.mkdir, parents=True, exist_ok=True)
        if self._state is None:
            await self.open()
        try:
            await self._start()
            try:
                async with asyncio.TaskGroup() as group:
                    if not self.options.once:
                        group.create_task(self._follow_remote())
                        group.create_task(self._watch_local())
                    group.create_task(self._reconcile())
            except* Finished:
                pass
        finally:
            self._save_status(force=True)
            self.state.close()
            self._state = None

    async def _start(self) -> None:
        removed = await asyncio.to_thread(remove_stale_temps, self.target)
        if removed:
            log.info("removed %d temporary files of an interrupted run", removed)
        if self.root != paths.ROOT:
            await self._with_retry(lambda: self.client.mkdir(self.root))
        if self.state.cursor is None:
            cursor = await self._with_retry(self.client.current_cursor)
            await self._relist()
            self.state.cursor = cursor
            self.state.commit()
        await self._catch_up()
        await self._rescan()
        self.status.scanned = True

    async def _watch_local(self) -> None:
        # What changes between the scan at start and the watcher being in place is found by
        # the rescan once idle.
        self._activity()
        async for batch in watch_local(
            self.target, step_ms=self.options.watch_step_ms, writing=self._writing
        ):
            if "/" in batch or f"/{IGNORE_FILE}" in batch:
                await self._rescan()
            self._activity()
            self._mark(batch)


__all__ = ["MirrorSync", "SyncEvent", "SyncOptions", "SyncStatus"]
