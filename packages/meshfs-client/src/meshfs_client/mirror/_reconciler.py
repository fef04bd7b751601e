"""The reconciler: marked paths in, planned steps out, until both sides agree.

It takes the marked ("dirty") paths that are due, looks at each one's local, remote and synced
state, asks the planner for the next step and hands it to the step runner. After each step the
path is looked at again. Paths held for an echo are not planned; local renames are detected from
inodes and remote renames are mirrored locally before planning. Once quiet after activity, a scan
of the whole folder compared with the synced state catches what the file watcher missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from meshfs_client.mirror._bookkeeping import log
from meshfs_client.mirror._follower import RemoteFollower
from meshfs_client.mirror._ignore import IgnoreRules
from meshfs_client.mirror._local import (
    UNSUPPORTED,
    Unsupported,
    hash_node,
    scan,
    stat_node,
    to_os,
    under_link,
)
from meshfs_client.mirror._model import LocalNode, RemoteNode, SyncedNode
from meshfs_client.mirror._planner import plan, remote_changed
from meshfs_client.mirror._state import within
from meshfs_client.mirror._status import SyncEvent
from meshfs_client.mirror._steps import StepRunner
from meshfs_common.errors import MeshFSError

IDLE_RESCAN = 1.0
"""Seconds of quiet after local or remote activity before a full rescan (a safety net: the
file watcher can misreport paths while directories are moved around under it, and a change it
missed would otherwise wait for the next start)."""

_INLINE_STATS = 16
"""Up to this many paths are looked at on the event loop: a few ``lstat`` calls cost less than
handing them to a thread and back (which is most of a live edit's local latency)."""


class Finished(Exception):
    """``--once``: everything is in sync; stop the loops."""


class Reconciler(StepRunner, RemoteFollower):
    """Plans and carries out the marked paths; with ``once``, stops when all agree."""

    async def _rescan(self, *, everything: bool = True) -> None:
        """Scan the folder and mark what to look at: every path, or (``everything=False``,
        the safety net once idle) only those that differ from the synced state."""
        self._unscanned_since = None
        self._rules = await asyncio.to_thread(IgnoreRules.load, self.target)
        found = await asyncio.to_thread(scan, self.target, self._rules)
        if everything:
            self._mark(found)
            self._mark(self.state.synced)
            self._mark(self.state.remote)
            return
        # Copies taken on the loop (the engine changes them meanwhile), compared in a thread:
        # an idle pass over a large folder must not hold up a live edit for its whole length.
        synced, remote = dict(self.state.synced), dict(self.state.remote)
        self._mark(await asyncio.to_thread(_unsettled, found, synced, remote))

    def _rescan_due(self) -> bool:
        """Quiet for :data:`IDLE_RESCAN` after activity, with nothing left to do."""
        return (
            self._unscanned_since is not None
            and time.monotonic() - self._unscanned_since >= IDLE_RESCAN
            and not self._dirty
            and not self._busy
            and not self._held
            and not self._hints
        )

    async def _reconcile(self) -> None:
        async with asyncio.TaskGroup() as transfers:
            while True:
                self._expire_echoes()
                await self._apply_hints()
                due = self._take_due()
                self.status.pending = len(self._dirty) + len(due)
                self.status.in_flight = len(self._busy)
                if due:
                    await self._round(due, transfers)
                    self._save_status()
                    continue
                self._save_status()
                if self.options.once and await self._once_done():
                    raise Finished
                if self._rescan_due():
                    log.debug("%s idle: rescan", self.target.name)
                    # In the background: an edit made meanwhile is not held up for as long as
                    # a scan of a large folder takes (what the scan finds is only marked).
                    self._unscanned_since = None
                    transfers.create_task(self._rescan(everything=False))
                    continue
                self._wake.clear()
                timeout = self._next_wake()
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation that arrives as the event is set, and the engine never stops.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()

    async def _once_done(self) -> bool:
        # --once: wait for running transfers, then fetch the echoes of what we did.
        while self._busy:
            self._wake.clear()
            await self._wake.wait()
        if self._dirty and not self._held and not self._hints:
            return False
        await self._catch_up()
        self._expire_echoes()
        if self._held:
            for key, (rels, _) in list(self._echo_keys.items()):
                del self._echo_keys[key]  # an echo that is not in the log now never will be
                for rel in rels:
                    self._held.pop(rel, None)
                self._mark(rels)
        return not self._dirty and not self._busy and not self._hints

    def _next_wake(self) -> float:
        now = time.monotonic()
        times = [
            t for rel, t in self._dirty.items() if rel not in self._busy and rel not in self._held
        ]
        times += [deadline for _, deadline in self._echo_keys.values()]
        if self._unscanned_since is not None and not (self._busy or self._held or self._hints):
            times.append(self._unscanned_since + IDLE_RESCAN)
        if not times:
            return 5.0
        return max(0.0, min(times) - now) + 0.001

    def _take_due(self) -> list[str]:
        now = time.monotonic()
        due = [
            rel
            for rel, when in self._dirty.items()
            if when <= now and rel not in self._busy and rel not in self._held
        ]
        for rel in due:
            del self._dirty[rel]
        # A file its writer still has open is not read half-written: the watcher reports it
        # again once the writer closes it (or goes quiet).
        return sorted(rel for rel in due if rel not in self._writing)

    async def _apply_hints(self) -> None:
        """Mirror remote renames (and exchanges) locally where the local side allows it."""
        while self._swaps:
            one, other = self._swaps[0]
            if any(within(b, one) or within(b, other) for b in self._busy):
                return
            self._swaps.pop(0)
            try:
                swapped = await self.executor.exchange_local(one, other)
            except OSError as exc:
                log.warning("could not exchange %s and %s locally: %s", one, other, exc)
                swapped = False
            if swapped:
                self.status.renames += 1
                self._emit(SyncEvent("exchange_local", one, f"with {other}"))
            self._mark([one, other, *self.state.synced_below(one)])
            self._mark([*self.state.synced_below(other), *self.state.remote_below(one)])
            await self._mark_local_subtree(one)
            await self._mark_local_subtree(other)
        while self._hints:
            old, new = self._hints.pop(0)
            if any(within(b, old) or within(b, new) for b in self._busy):
                self._hints.insert(0, (old, new))
                return
            try:
                done = await self.executor.rename_local(old, new)
            except OSError as exc:
                log.warning("could not rename %s to %s locally: %s", old, new, exc)
                done = False
            if done:
                self.status.renames += 1
                self._emit(SyncEvent("rename_local", new, f"from {old}"))
            self._mark([old, new, *self.state.synced_below(new), *self.state.remote_below(new)])
            await self._mark_local_subtree(new)

    def _local(self, rel: str) -> LocalNode | Unsupported | None:
        if under_link(self.target, rel):
            return UNSUPPORTED  # behind a symbolic link: not in the folder
        node = stat_node(to_os(self.target, rel))
        if isinstance(node, LocalNode) and self._rules.ignored(rel, is_dir=node.kind == "dir"):
            return UNSUPPORTED
        return node

    async def _round(self, due: list[str], transfers: asyncio.TaskGroup) -> None:
        if len(due) <= _INLINE_STATS:
            observed = {rel: self._local(rel) for rel in due}
        else:
            observed = await asyncio.to_thread(lambda: {rel: self._local(rel) for rel in due})
        # Directories that appeared or vanished: look at everything below them too.
        extra: set[str] = set()
        for rel in due:
            local, remote, synced = (
                observed[rel],
                self.state.remote.get(rel),
                self.state.synced.get(rel),
            )
            kinds = {
                n.kind
                for n in (local, remote, synced)
                if isinstance(n, LocalNode | RemoteNode | SyncedNode)
            }
            # A directory replaced by another one (a new inode: moved away and recreated, e.g.
            # by a download racing the user's rename) is no longer the one whose children we
            # synced: what was below it has to be looked at as well.
            if "dir" in kinds and not (
                isinstance(local, LocalNode)
                and local.kind == "dir"
                and remote is not None
                and remote.kind == "dir"
                and synced is not None
                and synced.kind == "dir"
                and local.inode == synced.inode
            ):
                extra.update(self.state.synced_below(rel))
                extra.update(self.state.remote_below(rel))
                if isinstance(local, LocalNode) and local.kind == "dir":
                    extra.update(await asyncio.to_thread(scan, self.target, self._rules, rel))
        extra -= set(due)
        extra -= self._busy
        if extra:
            self._mark(extra)
            due = sorted(set(due) | {r for r in extra if r not in self._held})
            for rel in due:
                self._dirty.pop(rel, None)
            more = await asyncio.to_thread(lambda: {rel: self._local(rel) for rel in extra})
            observed.update(more)
        await self._detect_local_renames(due, observed)
        changed_dirs: list[str] = []  # a step on a directory makes what we saw below it stale
        new_dirs: list[tuple[str, LocalNode]] = []  # made together at the end of the round
        for rel in due:
            if rel in self._busy or rel in self._held or rel in self._dirty:
                continue  # handled by a rename above, or re-marked
            if any(within(rel, d) for d in changed_dirs):
                self._mark([rel])
                continue
            local = observed.get(rel)
            if isinstance(local, Unsupported):
                continue  # ignored, special file, behind a link: stays local
            remote = self.state.remote.get(rel)
            if remote is not None and remote.kind == "file" and self._rules.ignored(rel):
                continue
            synced = self.state.synced.get(rel)
            if local is not None and local.kind == "file" and _needs_hash(local, remote, synced):
                hashed = await asyncio.to_thread(hash_node, to_os(self.target, rel), local)
                if hashed is None:
                    self._mark([rel], delay=0.2)  # still being written
                    continue
                local = hashed
            action = plan(local, remote, synced, self.options.conflicts)
            log.debug(
                "%s plan %s: %s (%s | %s | %s)",
                self.target.name,
                rel,
                action.kind,
                local,
                remote,
                synced,
            )
            if action.kind == "nothing":
                self._settled(rel)
                continue
            if action.kind in ("upload", "download"):
                self._busy.add(rel)
                transfers.create_task(self._transfer(rel, action, local, remote))
            elif action.kind == "mkdir_remote" and isinstance(local, LocalNode):
                new_dirs.append((rel, local))
                changed_dirs.append(rel)
            else:
                await self._step(rel, action, local, remote, synced)
                if any(n is not None and n.kind == "dir" for n in (local, remote, synced)):
                    changed_dirs.append(rel)
        if new_dirs:
            await self._mkdirs(new_dirs)

    async def _detect_local_renames(
        self, due: list[str], observed: dict[str, LocalNode | Unsupported | None]
    ) -> None:
        """A path gone locally whose inode now lives at a new path was renamed: mirror that."""
        arrivals: dict[tuple[str, int], str] = {}
        for rel in due:
            node = observed.get(rel)
            synced = self.state.synced.get(rel)
            if isinstance(node, LocalNode) and (synced is None or synced.inode != node.inode):
                arrivals[(node.kind, node.inode)] = rel
        if not arrivals:
            return
        for rel in due:
            synced = self.state.synced.get(rel)
            remote = self.state.remote.get(rel)
            if observed.get(rel) is not None or synced is None or remote is None:
                continue
            if remote_changed(remote, synced):
                continue
            new = arrivals.get((synced.kind, synced.inode))
            if new is None or within(new, rel) or new in self._held:
                continue
            target_remote = self.state.remote.get(new)
            if target_remote is not None and (synced.kind == "dir" or target_remote.kind == "dir"):
                continue
            if any(within(b, rel) or within(b, new) for b in self._busy):
                continue
            try:
                await self.executor.rename_remote(rel, new, synced)
            except MeshFSError as exc:
                await self._failed(rel, exc)
                continue
            self.status.renames += 1
            self._emit(SyncEvent("rename_remote", new, f"from {rel}"))
            self._mark([rel, new, *self.state.synced_below(new)])
            # Files created in the directory since the last sync moved with it.
            await self._mark_local_subtree(new)
            del arrivals[(synced.kind, synced.inode)]

    async def _mark_local_subtree(self, rel: str) -> None:
        found = await asyncio.to_thread(scan, self.target, self._rules, rel)
        self._mark(found)


def _unsettled(
    found: dict[str, LocalNode], synced: dict[str, SyncedNode], remote: dict[str, RemoteNode]
) -> set[str]:
    """Paths where the folder or the server differ from the synced state."""
    changed = {
        rel for rel, node in found.items() if rel not in synced or not node.same_stat(synced[rel])
    }
    changed.update(rel for rel in synced if rel not in found or rel not in remote)
    changed.update(rel for rel, node in remote.items() if remote_changed(node, synced.get(rel)))
    return changed


def _needs_hash(local: LocalNode, remote: RemoteNode | None, synced: SyncedNode | None) -> bool:
    if synced is not None and synced.kind == "file" and local.same_stat(synced):
        return False
    # A brand-new local file with nothing on the server is uploaded without comparing.
    return not (synced is None and remote is None)


__all__ = ["IDLE_RESCAN", "Finished", "Reconciler"]
