"""The engine's shared bookkeeping: marked paths, held echoes, failures and the status.

Every loop of the engine marks paths ("dirty") for the reconciler, holds the paths of its own
changes until their echo arrives from the feed, and reports through :class:`SyncStatus`. A path
whose step failed is retried with backoff; an outage (the server away) is reported once.
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
from pathlib import Path
from typing import TypeVar

from meshfs_client._client import MeshFSClient
from meshfs_client._retry import RetryPolicy, backoff_delay
from meshfs_client.mirror._ignore import IgnoreRules
from meshfs_client.mirror._remote import RemoteTree
from meshfs_client.mirror._state import StateDB
from meshfs_client.mirror._status import SyncEvent, SyncOptions, SyncStatus
from meshfs_client.mirror._transfers import Executor
from meshfs_common import paths
from meshfs_common.errors import AuthError, MeshFSError, NotFoundError, PreconditionFailedError

log = logging.getLogger("meshfs.sync")

T = TypeVar("T")

RETRY = RetryPolicy(attempts=0, initial=0.5, maximum=30.0)
"""Backoff for a path whose step failed (``attempts`` unused: a path is retried until it
syncs; after :data:`GIVE_UP_AFTER` failures of a non-retryable kind it waits for a change)."""
GIVE_UP_AFTER = 8
_OUTAGE = frozenset({"unavailable", "timeout"})
"""Error codes that mean the server is away (an outage), not that one path failed."""
_PENDING_SAVE_INTERVAL = 1.0


class EngineBase:
    """The state every part of :class:`~meshfs_client.mirror.MirrorSync` shares."""

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
        self._swaps: list[tuple[str, str]] = []  # remote exchanges to mirror on disk
        self._echo_keys: dict[str, tuple[set[str], float]] = {}
        self._held: dict[str, str] = {}  # path -> echo key
        self._walks: list[str] = []
        self._writing: set[str] = set()  # files open for writing, reported once closed
        self._wake = asyncio.Event()
        self._transfer_slots = asyncio.Semaphore(max(1, options.transfers))
        self._state: StateDB | None = None
        self._tree: RemoteTree | None = None
        self._exec: Executor | None = None
        self._saved_pending = 0.0
        self._unscanned_since: float | None = None  # activity not yet covered by a full scan
        self.state_path: Path | None = None

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

    def _activity(self) -> None:
        if not self.options.once:
            self._unscanned_since = time.monotonic()

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
        key = echo_key(kind, node_id, version_id)
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

    def _settled(self, rel: str) -> None:
        self._online()
        self._failures.pop(rel, None)
        self._since.pop(rel, None)
        self.status.error_paths.pop(rel, None)

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


def echo_key(kind: str, node_id: str, version_id: str | None) -> str:
    if kind in ("write", "restore"):
        return f"write:{node_id}:{version_id}"
    return f"{kind}:{node_id}"


__all__ = ["GIVE_UP_AFTER", "RETRY", "EngineBase", "echo_key"]
