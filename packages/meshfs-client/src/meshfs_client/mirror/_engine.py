"""The mirror engine: one local folder and one remote directory kept identical, both ways.

Three concurrent loops run in one task group, owned by :meth:`MirrorSync.run`:

* **remote follower** - catches up from the stored cursor with ``/sync/pull``, then follows the
  WebSocket push (:class:`~meshfs_client.ChangeFeed`, which falls back to pulling). Every event
  updates the remote tree in the state database together with the cursor, and marks the paths
  it touched. A ``reset`` answer relists the whole remote root (full reconciliation).
* **local watcher** - :mod:`watchfiles` batches of changed paths (a full scan at start catches
  what changed while the mirror was off).
* **reconciler** - takes the marked ("dirty") paths, looks at each one's local, remote and synced
  state, asks the planner for the next step and carries it out; transfers run in parallel
  (bounded), other steps in order. After each step the path is looked at again until both sides
  agree.

Our own changes come back through the feed. Until that echo has arrived, the paths involved are
held (not planned), so an older event for the same path can never make the planner undo a step
that was just taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

from meshfs_client._client import MeshFSClient
from meshfs_client._retry import RetryPolicy, backoff_delay
from meshfs_client._watch import ChangeFeed, FeedReset
from meshfs_client.mirror._conflicts import ConflictPolicy
from meshfs_client.mirror._ignore import IGNORE_FILE, IgnoreRules
from meshfs_client.mirror._local import UNSUPPORTED, Unsupported, hash_node, scan, stat_node, to_os
from meshfs_client.mirror._local import watch as watch_local
from meshfs_client.mirror._model import LocalNode, RemoteNode, SyncedNode
from meshfs_client.mirror._planner import Action, plan, remote_changed
from meshfs_client.mirror._remote import RemoteTree
from meshfs_client.mirror._state import StateDB, default_state_dir, state_file, within
from meshfs_client.mirror._transfers import Executor, LocalChangedError, remove_stale_temps
from meshfs_common import paths
from meshfs_common.errors import (
    AuthError,
    MeshFSError,
    NotFoundError,
    PreconditionFailedError,
)
from meshfs_common.models import ChangeEvent

log = logging.getLogger("meshfs.sync")

T = TypeVar("T")

RETRY = RetryPolicy(attempts=0, initial=0.5, maximum=30.0)
"""Backoff for a path whose step failed (``attempts`` unused: a path is retried until it
syncs; after :data:`GIVE_UP_AFTER` failures of a non-retryable kind it waits for a change)."""
GIVE_UP_AFTER = 8
_OUTAGE = frozenset({"unavailable", "timeout"})
"""Error codes that mean the server is away (an outage), not that one path failed."""
_PENDING_SAVE_INTERVAL = 1.0
IDLE_RESCAN = 1.0
"""Seconds of quiet after local or remote activity before a full rescan (a safety net: the
file watcher can misreport paths while directories are moved around under it, and a change it
missed would otherwise wait for the next start)."""


@dataclass(frozen=True, slots=True)
class SyncOptions:
    """What to mirror and how."""

    target: Path
    remote_root: str = "/"
    conflicts: ConflictPolicy = ConflictPolicy.LWW
    once: bool = False
    state_dir: Path | None = None
    transfers: int = 8
    websocket: bool = True
    watch_step_ms: int = 10
    echo_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class SyncEvent:
    """One thing the engine did or noticed (for the status line and the structured log)."""

    kind: str
    """upload, download, mkdir_local, mkdir_remote, delete_local, delete_remote, rename_local,
    rename_remote, conflict, error, reset, live, offline, recovered, idle."""
    path: str = ""
    detail: str = ""


@dataclass(slots=True)
class SyncStatus:
    """Counters and state for ``--status`` and the status line.

    ``scanned`` turns true when the first full pass (catch-up and local scan) is done.
    ``offline`` is true while the server cannot be reached (``offline_reason`` says why, the
    next try is at ``retry_at``, wall clock); ``recovered_at`` is when it last came back.
    ``error_paths`` holds the paths failing now (an outage is not counted there); ``errors``
    counts every failure since the start.
    """

    pending: int = 0
    in_flight: int = 0
    uploads: int = 0
    downloads: int = 0
    deletes: int = 0
    renames: int = 0
    conflicts: int = 0
    errors: int = 0
    cursor: int = 0
    live: bool = False
    feed: str = "starting"
    last_error: str = ""
    error_paths: dict[str, str] = field(default_factory=dict)
    scanned: bool = False
    offline: bool = False
    offline_reason: str = ""
    retry_at: float = 0.0
    recovered_at: float = 0.0


class _Finished(Exception):
    """``--once``: everything is in sync; stop the loops."""


class MirrorSync:
    """Two-way sync of ``options.target`` with ``options.remote_root`` on the client's server."""

    def __init__(
        self,
        client: MeshFSClient,
        options: SyncOptions,
        on_event: Callable[[SyncEvent], None] | None = None,
    ) -> None:
        self.client = client
        self.options = options
        self.target = options.target.resolve()
        self.root = paths.normalise(options.remote_root)
        self.status = SyncStatus()
        self._on_event = on_event or (lambda event: None)
        self._rules = IgnoreRules.load(self.target)
        self._dirty: dict[str, float] = {}  # path -> not before (monotonic)
        self._since: dict[str, float] = {}  # path -> first marked (wall clock, for --status)
        self._busy: set[str] = set()
        self._failures: dict[str, int] = {}
        self._hints: list[tuple[str, str]] = []
        self._echo_keys: dict[str, tuple[set[str], float]] = {}
        self._held: dict[str, str] = {}  # path -> echo key
        self._walks: list[str] = []
        self._wake = asyncio.Event()
        self._transfer_slots = asyncio.Semaphore(max(1, options.transfers))
        self._state: StateDB | None = None
        self._tree: RemoteTree | None = None
        self._exec: Executor | None = None
        self._saved_pending = 0.0
        self._unscanned_since: float | None = None  # activity not yet covered by a full scan
        self.state_path: Path | None = None

    # --- set-up ---------------------------------------------------------------------------------

    @property
    def state(self) -> StateDB:
        assert self._state is not None, "run() first"
        return self._state

    @property
    def tree(self) -> RemoteTree:
        assert self._tree is not None, "run() first"
        return self._tree

    @property
    def executor(self) -> Executor:
        assert self._exec is not None, "run() first"
        return self._exec

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

    async def _with_retry(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run a request until it succeeds, waiting out outages (bounded with ``once``)."""
        failures = 0
        while True:
            try:
                result = await call()
            except MeshFSError as exc:
                if not exc.retryable:
                    raise
                failures += 1
                if self.options.once and failures >= GIVE_UP_AFTER:
                    raise
                delay = backoff_delay(failures, RETRY, random.random())
                self._offline(exc.message, delay)
                await asyncio.sleep(delay)
                continue
            self._online()
            return result

    def _offline(self, reason: str, retry_in: float) -> None:
        """The server cannot be reached; the next try is in *retry_in* seconds."""
        status = self.status
        status.retry_at = time.time() + retry_in
        status.live = False
        if not status.offline or status.offline_reason != reason:
            status.offline, status.offline_reason = True, reason
            status.feed = "offline"
            self._emit(SyncEvent("offline", "", reason))

    def _online(self) -> None:
        """The server answered again (after :meth:`_offline`)."""
        status = self.status
        if status.offline:
            status.offline, status.offline_reason, status.retry_at = False, "", 0.0
            status.recovered_at = time.time()
            self._emit(SyncEvent("recovered", "", "the server answers again"))
            # What waited out the outage is tried again now, not at the end of its backoff.
            self._mark(list(self._dirty))
            self._mark(list(status.error_paths))

    def _feed_state(self, feed: ChangeFeed) -> None:
        self.status.feed = feed.mode if feed.state != "offline" else "offline"
        if feed.state == "offline":
            self._offline(feed.error, max(0.0, feed.retry_at - time.monotonic()))
        elif feed.state == "live":
            self.status.live = True
            self._online()

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
            except* _Finished:
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

    async def _relist(self) -> None:
        touched = await self._with_retry(lambda: self.tree.relist(self.client))
        self._mark(touched)
        self._mark(self.state.synced)
        self._emit(SyncEvent("reset", "/", "full reconciliation from a listing"))

    async def _rescan(self) -> None:
        self._unscanned_since = None
        self._rules = await asyncio.to_thread(IgnoreRules.load, self.target)
        found = await asyncio.to_thread(scan, self.target, self._rules)
        self._mark(found)
        self._mark(self.state.synced)
        self._mark(self.state.remote)

    # --- remote ---------------------------------------------------------------------------------

    async def _catch_up(self) -> bool:
        """Pull events until the feed has no more; True when any arrived."""
        any_event = False
        while True:
            cursor = self.state.cursor or 0
            page = await self._with_retry(partial(self.client.pull, cursor))
            if page.reset:
                await self._relist()
                self.state.cursor = page.cursor
                any_event = True
            for event in page.events:
                if event.seq > cursor:
                    self._apply(event)
                    any_event = True
            await self._walk_moved_in()
            if not page.events and not page.reset:
                self.state.cursor = max(cursor, page.cursor)
            self.state.commit()
            self.status.cursor = self.state.cursor or 0
            if not page.has_more:
                return any_event

    def _apply(self, event: ChangeEvent) -> None:
        log.debug("%s event %s %s %s", self.target.name, event.seq, event.type, event.path)
        self._activity()
        applied = self.tree.apply(event)
        self.state.cursor = event.seq
        key = _echo_key(event.type, event.node_id, event.version_id)
        echoed = self._echo_keys.pop(key, None)
        if echoed is not None:
            for rel in echoed[0]:
                if self._held.get(rel) == key:
                    del self._held[rel]
            self._mark(echoed[0])
        elif applied.renamed is not None:
            self._hints.append(applied.renamed)
        if applied.walk is not None:
            self._walks.append(applied.walk)
        self._mark(applied.touched)

    async def _walk_moved_in(self) -> None:
        """List directories that moved into the mirror from elsewhere on the server."""
        while self._walks:
            walked = self._walks.pop()
            self._mark(await self._with_retry(partial(self.tree.relist, self.client, walked)))

    async def _follow_remote(self) -> None:
        while True:
            cursor = self.state.cursor or 0
            feed = self.client.watch(
                cursor, websocket=self.options.websocket, on_state=self._feed_state
            )
            async with feed:
                count = 0
                async for item in feed:
                    if isinstance(item, FeedReset):
                        await self._relist()
                        self.state.cursor = item.cursor
                    else:
                        self._apply(item)
                    await self._walk_moved_in()
                    count += 1
                    if feed.live or count % 256 == 0:
                        self.state.commit()
                    self.status.cursor = self.state.cursor or 0
                    self.status.live = feed.live
                    self.status.feed = feed.mode if feed.state != "offline" else "offline"

    # --- local ----------------------------------------------------------------------------------

    async def _watch_local(self) -> None:
        async for batch in watch_local(self.target, step_ms=self.options.watch_step_ms):
            if f"/{IGNORE_FILE}" in batch:
                await self._rescan()
            self._activity()
            self._mark(batch)

    # --- bookkeeping ----------------------------------------------------------------------------

    def _activity(self) -> None:
        if not self.options.once:
            self._unscanned_since = time.monotonic()

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

    def _mark(self, rels: Iterable[str], delay: float = 0.0) -> None:
        now = time.monotonic()
        wall = time.time()
        for rel in rels:
            if rel == "/":
                continue
            when = now + delay
            if rel not in self._dirty or self._dirty[rel] > when:
                self._dirty[rel] = when
            self._since.setdefault(rel, wall)
        self._wake.set()

    def _expect_echo(
        self, kind: str, node_id: str, version_id: str | None, rels: list[str]
    ) -> None:
        key = _echo_key(kind, node_id, version_id)
        held, _ = self._echo_keys.get(key, (set(), 0.0))
        held.update(rels)
        self._echo_keys[key] = (held, time.monotonic() + self.options.echo_timeout)
        for rel in rels:
            self._held[rel] = key

    def _expire_echoes(self) -> None:
        now = time.monotonic()
        for key, (rels, deadline) in list(self._echo_keys.items()):
            if deadline <= now:
                del self._echo_keys[key]
                for rel in rels:
                    if self._held.get(rel) == key:
                        del self._held[rel]
                self._mark(rels)

    def _emit(self, event: SyncEvent) -> None:
        self._on_event(event)

    def _save_status(self, *, force: bool = False) -> None:
        if self._state is None:
            return
        now = time.monotonic()
        if not force and now - self._saved_pending < _PENDING_SAVE_INTERVAL:
            return
        self._saved_pending = now
        self.status.pending = len(self._dirty)
        self.status.in_flight = len(self._busy)
        self._state.set_pending({rel: self._since.get(rel, time.time()) for rel in self._dirty})
        snapshot = {
            "pid": os.getpid(),
            "updated_at": time.time(),
            "running": not force,
            **{k: v for k, v in dataclasses.asdict(self.status).items() if k != "error_paths"},
            "error_paths": dict(list(self.status.error_paths.items())[:50]),
        }
        self._state.set_meta("status", json.dumps(snapshot))
        self._state.commit()

    # --- the reconciler -------------------------------------------------------------------------

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
                    raise _Finished
                if self._rescan_due():
                    log.debug("%s idle: full rescan", self.target.name)
                    await self._rescan()
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
        return sorted(due)

    async def _apply_hints(self) -> None:
        """Mirror remote renames as local renames where the local side allows it."""
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
        node = stat_node(to_os(self.target, rel))
        if isinstance(node, LocalNode) and self._rules.ignored(rel, is_dir=node.kind == "dir"):
            return UNSUPPORTED
        return node

    async def _round(self, due: list[str], transfers: asyncio.TaskGroup) -> None:
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
        for rel in due:
            if rel in self._busy or rel in self._held or rel in self._dirty:
                continue  # handled by a rename above, or re-marked
            if any(within(rel, d) for d in changed_dirs):
                self._mark([rel])
                continue
            local = observed.get(rel)
            if isinstance(local, Unsupported):
                continue  # ignored, symlink, special file: stays local
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
            else:
                await self._step(rel, action, local, remote, synced)
                if any(n is not None and n.kind == "dir" for n in (local, remote, synced)):
                    changed_dirs.append(rel)

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

    def _settled(self, rel: str) -> None:
        self._online()
        self._failures.pop(rel, None)
        self._since.pop(rel, None)
        self.status.error_paths.pop(rel, None)

    async def _transfer(
        self, rel: str, action: Action, local: LocalNode | None, remote: RemoteNode | None
    ) -> None:
        try:
            async with self._transfer_slots:
                if action.kind == "download":
                    assert remote is not None
                    await self.executor.download(rel, remote, local)
                    self.status.downloads += 1
                else:
                    assert local is not None
                    await self.executor.upload(
                        rel, local, if_match=action.if_match, if_none_match=action.if_none_match
                    )
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
            elif kind == "keep_both":
                assert local is not None
                copy = await run.keep_both(rel, local)
                self.status.conflicts += 1
                self._emit(SyncEvent("conflict", rel, f"local copy kept as {copy}"))
                self._mark([copy])
            elif kind == "move_local_aside":
                assert local is not None
                copy = await run.keep_both(rel, local)
                self.status.conflicts += 1
                self._emit(SyncEvent("conflict", rel, f"local file moved to {copy}"))
                self._mark([copy])
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
                content_hash if local.kind == "file" else None,
                local.size,
                local.mtime_ns,
                local.inode,
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

    async def _failed(self, rel: str, exc: BaseException) -> None:
        if isinstance(exc, AuthError):
            raise exc  # the session is gone: stop with a clear message (exit code 3)
        if isinstance(exc, MeshFSError) and exc.code in _OUTAGE:
            # Not this path's fault: the whole server is away. Say so once, try again later.
            delay = backoff_delay(self._failures.get(rel, 0) + 1, RETRY, random.random())
            self._failures[rel] = self._failures.get(rel, 0) + 1
            self._offline(exc.message, delay)
            self._mark([rel], delay=delay)
            return
        count = self._failures.get(rel, 0) + 1
        self._failures[rel] = count
        message = f"{type(exc).__name__}: {exc}"
        self.status.errors += 1
        self.status.last_error = f"{rel}: {message}"
        self.status.error_paths[rel] = message
        if isinstance(exc, PreconditionFailedError | NotFoundError):
            # Our view of the server is behind: the feed is bringing the news; re-plan soon.
            # Should that not settle it, relist the directory as a safety net.
            if count >= 3:
                with contextlib.suppress(MeshFSError):
                    self._mark(await self.executor.refresh(rel))
            self._mark([rel], delay=backoff_delay(count, RETRY, random.random()))
            return
        retryable = isinstance(exc, OSError) or (isinstance(exc, MeshFSError) and exc.retryable)
        if not retryable and count >= GIVE_UP_AFTER:
            self._emit(SyncEvent("error", rel, f"giving up until it changes: {message}"))
            return
        self._emit(SyncEvent("error", rel, message))
        self._mark([rel], delay=backoff_delay(count, RETRY, random.random()))


def _needs_hash(local: LocalNode, remote: RemoteNode | None, synced: SyncedNode | None) -> bool:
    if synced is not None and synced.kind == "file" and local.same_stat(synced):
        return False
    # A brand-new local file with nothing on the server is uploaded without comparing.
    return not (synced is None and remote is None)


def _echo_key(kind: str, node_id: str, version_id: str | None) -> str:
    if kind in ("write", "restore"):
        return f"write:{node_id}:{version_id}"
    return f"{kind}:{node_id}"


__all__ = ["MirrorSync", "SyncEvent", "SyncOptions", "SyncStatus"]
