"""The mount daemon: set everything up, serve FUSE requests, shut down cleanly.

:func:`serve` runs in the foreground process that holds the mount:

1. The asyncio bridge thread opens the MeshFS client (the stored login or ``MESHFS_TOKEN``)
   and checks that the server accepts it.
2. Spools a previous run left dirty (a crash, ``kill -9``, an outage at close) are committed.
3. The inode table starts at the root; the change feed is followed from the current cursor.
4. ``pyfuse3.init`` mounts; trio runs ``pyfuse3.main`` beside the feed follower and the
   kernel invalidator in one nursery.
5. SIGINT/SIGTERM: every dirty spool is committed, then the session ends and the mount point
   is unmounted. With ``auto_unmount`` (the default) libfuse's helper and the daemon's own
   guardian (:mod:`meshfs_fuse.guardian`) unmount even when the daemon is killed, so no
   "Transport endpoint is not connected" is left behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyfuse3
import trio

from meshfs_client import MeshFSClient
from meshfs_common.errors import MeshFSError, NotFoundError
from meshfs_fuse.attributes import Owner
from meshfs_fuse.bridge import AsyncioBridge
from meshfs_fuse.chunk_cache import ChunkCache
from meshfs_fuse.coherence import Coherence, Invalidator
from meshfs_fuse.content import ContentStore
from meshfs_fuse.guardian import start_guardian
from meshfs_fuse.inodes import InodeTable
from meshfs_fuse.operations import MeshFSOperations
from meshfs_fuse.remote import Remote
from meshfs_fuse.spool import SpoolDirectory

__all__ = ["DaemonConfig", "MountError", "recover_spools", "serve"]

log = logging.getLogger(__name__)

RETRY_INTERVAL = 2.0
"""Seconds between attempts to commit files whose close could not (an outage)."""


class MountError(Exception):
    """The mount cannot start; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """Everything the daemon needs to run one mount."""

    target: Path
    server: str | None
    cache_dir: Path
    cache_size: int
    fuse_options: frozenset[str]
    read_only: bool = False
    ttl: float = 60.0


async def recover_spools(remote: Remote, spools: SpoolDirectory) -> int:
    """Commit the dirty spools an earlier run left behind; return how many were committed.

    A spool that still cannot be committed stays for the next start.
    """
    committed = 0
    for record, data in spools.recoverable():
        path = record.path
        if record.node_id is not None:
            try:
                entry = await remote.meta(node_id=record.node_id)
                if entry.deleted_at is None:
                    path = entry.path  # renamed since
            except NotFoundError:
                pass
        try:
            await remote.upload(path, data, data.stat().st_size)
        except (MeshFSError, OSError) as exc:
            log.error("could not commit %s from the journal yet: %s", path, exc)
            continue
        spools.remove(record.spool_id)
        log.info("committed %s from the journal", path)
        committed += 1
    return committed


def _raise_read_ahead(target: Path) -> None:
    """Ask the kernel for 1 MiB read-ahead on the mount (4x faster cold reads); best effort."""
    dev = os.stat(target).st_dev
    knob = Path(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb")
    try:
        knob.write_text("1024")
    except OSError:
        log.debug("could not raise %s", knob)


class _CacheLock:
    """One daemon per cache directory: its spools must not be committed by two mounts."""

    def __init__(self, cache_dir: Path) -> None:
        cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fd = os.open(cache_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise MountError(f"{cache_dir} is in use by another meshfs mount") from None

    def release(self) -> None:
        os.close(self._fd)


async def _follow(remote: Remote, coherence: Coherence, cursor: int) -> None:
    """Apply the change feed for as long as the mount runs (the feed reconnects by itself;
    anything else that ends it is logged and the feed is resumed from the last cursor)."""
    coherence.cursor = cursor
    delay = 1.0
    while True:
        try:
            async for item in remote.feed(coherence.cursor):
                coherence.apply(item)
                delay = 1.0
        except (MeshFSError, OSError) as exc:
            log.error("change feed stopped (%s); resuming in %.0fs", exc, delay)
        await trio.sleep(delay)
        delay = min(60.0, delay * 2)


async def _run(
    config: DaemonConfig, bridge: AsyncioBridge, client: MeshFSClient, ready: Callable[[], None]
) -> None:
    remote = Remote(bridge, client)
    try:
        await remote.call_whoami()
        root = await remote.meta("/")
        cursor = await remote.current_cursor()
    except (MeshFSError, TimeoutError, OSError) as exc:
        raise MountError(f"cannot reach {client.server}: {exc}") from exc
    spools = SpoolDirectory(config.cache_dir / "spool")
    await recover_spools(remote, spools)
    table = InodeTable(root)
    chunks = ChunkCache(config.cache_dir / "chunks", config.cache_size)
    store = ContentStore(remote, chunks, spools)
    owner = Owner(os.getuid(), os.getgid())
    operations = MeshFSOperations(table, store, owner, read_only=config.read_only, ttl=config.ttl)
    invalidator = Invalidator()
    coherence = Coherence(table, invalidator)
    operations.feed_position = lambda: coherence.cursor
    operations.feed_state = lambda: remote.feed_state
    try:
        pyfuse3.init(operations, str(config.target), set(config.fuse_options))
    except RuntimeError as exc:
        raise MountError(f"cannot mount on {config.target}: {exc}") from exc
    guardian = None
    if "auto_unmount" in config.fuse_options:
        guardian = start_guardian(config.target)
    unmounted = False
    try:
        async with trio.open_nursery() as nursery:
            # stat() of the mount point is a FUSE request: only a thread may wait for it.
            nursery.start_soon(trio.to_thread.run_sync, _raise_read_ahead, config.target)
            store.prefetch_in(nursery)
            nursery.start_soon(invalidator.run)
            nursery.start_soon(_follow, remote, coherence, cursor)
            nursery.start_soon(_retry_unsent, operations)
            await nursery.start(_on_signals, operations)
            ready()
            await pyfuse3.main()
            nursery.cancel_scope.cancel()
        pyfuse3.close(unmount=True)
        unmounted = True
    finally:
        if not unmounted:
            pyfuse3.close(unmount=True)
        if guardian is not None and guardian.stdin is not None:
            guardian.stdin.close()  # the guardian finds the mount gone and exits
            with contextlib.suppress(subprocess.TimeoutExpired):
                guardian.wait(timeout=5)


async def _retry_unsent(operations: MeshFSOperations) -> None:
    """Commit files whose close failed (the server was unreachable) once it answers again."""
    while True:
        await trio.sleep(RETRY_INTERVAL)
        if operations.unsent:
            await operations.retry_unsent()


async def _on_signals(
    operations: MeshFSOperations, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            log.info("signal %d: committing open files, then unmounting", signum)
            failed = await operations.drain()
            if failed:
                log.error("%d file(s) stay in the journal for the next mount", failed)
            pyfuse3.terminate()
            return


def serve(config: DaemonConfig, ready: Callable[[], None]) -> None:
    """Mount and serve until unmounted or signalled; *ready* is called once mounted.

    Raises :class:`MountError` when the mount cannot start.
    """
    lock = _CacheLock(config.cache_dir)
    try:
        with AsyncioBridge() as bridge:
            client = MeshFSClient(config.server)
            try:
                bridge.run_blocking(client.__aenter__())
            except (MeshFSError, OSError) as exc:
                raise MountError(str(exc)) from exc
            try:
                trio.run(_run, config, bridge, client, ready)
            finally:
                bridge.run_blocking(client.close())
    finally:
        lock.release()
