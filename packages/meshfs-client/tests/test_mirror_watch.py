"""The mirror's local watcher (inotify on Linux): changes reported as they happen, files still
being written held back until closed, directories followed as they appear and move; and what
that means for a running mirror (no half-written upload, a burst of edits ends in the last)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from meshfs_client_testkit import Account
from mirror_testkit import running_mirrors, wait_for

from meshfs_client import MeshFSClient
from meshfs_client.mirror import _inotify
from meshfs_common.errors import NotFoundError


class Watching:
    """The watcher running on a folder, everything it reported collected."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.writing: set[str] = set()
        self.reported: set[str] = set()
        self.batches = 0

    async def run(self) -> None:
        async for batch in _inotify.watch(self.target, self.writing):
            self.reported |= batch
            self.batches += 1

    async def until_reported(self, rel: str, *, touch: bool = False) -> None:
        async def seen() -> bool:
            if touch:  # written again until seen: the watcher may not be in place yet
                (self.target / rel.lstrip("/")).write_bytes(b"probe")
            return rel in self.reported

        await wait_for(seen, deadline=20, what=f"{rel} reported by the watcher")


@contextlib.contextmanager
def open_for_writing(path: Path) -> Iterator[int]:
    """A new file held open for writing (as an application writing it would)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.asynccontextmanager
async def watching(target: Path) -> AsyncIterator[Watching]:
    os.makedirs(target, exist_ok=True)
    watcher = Watching(target)
    task = asyncio.create_task(watcher.run())
    try:
        await watcher.until_reported("/ready", touch=True)
        yield watcher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_file_being_written_is_reported_once_its_writer_closes_it(
    tmp_path: Path,
) -> None:
    async with watching(tmp_path / "m") as watcher:
        with open_for_writing(watcher.target / "partial.bin") as fd:
            os.write(fd, b"first half ")
            # A file written after it is reported: the watcher has read past the partial write.
            (watcher.target / "after.txt").write_bytes(b"complete")
            await watcher.until_reported("/after.txt")
            assert "/partial.bin" not in watcher.reported
            assert watcher.writing == {"/partial.bin"}
            os.write(fd, b"second half")
        await watcher.until_reported("/partial.bin")
        assert watcher.writing == set()


async def test_a_file_its_writer_keeps_open_is_reported_once_the_writer_goes_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_inotify, "WRITE_SETTLE", 0.2)
    async with watching(tmp_path / "m") as watcher:
        with open_for_writing(watcher.target / "log.txt") as fd:
            os.write(fd, b"a line that stays\n")
            await watcher.until_reported("/log.txt")
            assert watcher.writing == set()


async def test_a_file_that_keeps_being_written_is_reported_now_and_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_inotify, "WRITE_SETTLE", 60.0)
    monkeypatch.setattr(_inotify, "WRITE_HOLD_MAX", 0.3)
    async with watching(tmp_path / "m") as watcher:
        with open_for_writing(watcher.target / "growing.log") as fd:

            async def reported_while_written() -> bool:
                os.write(fd, b"another line\n")  # never quiet for WRITE_SETTLE
                return "/growing.log" in watcher.reported

            await wait_for(reported_while_written, deadline=20, what="the log reported")


async def test_a_hard_link_is_reported_although_nobody_writes_it(tmp_path: Path) -> None:
    async with watching(tmp_path / "m") as watcher:
        (watcher.target / "a.txt").write_bytes(b"content")
        await watcher.until_reported("/a.txt")
        os.link(watcher.target / "a.txt", watcher.target / "b.txt")
        await watcher.until_reported("/b.txt")


async def test_new_directories_are_watched_and_what_is_inside_is_reported(
    tmp_path: Path,
) -> None:
    async with watching(tmp_path / "m") as watcher:
        (watcher.target / "d" / "e").mkdir(parents=True)
        (watcher.target / "d" / "e" / "f.txt").write_bytes(b"made with the directory")
        await watcher.until_reported("/d/e/f.txt")
        assert {"/d", "/d/e"} <= watcher.reported
        (watcher.target / "d" / "e" / "g.txt").write_bytes(b"made later")
        await watcher.until_reported("/d/e/g.txt")


async def test_a_directory_moved_within_the_folder_reports_under_its_new_name(
    tmp_path: Path,
) -> None:
    async with watching(tmp_path / "m") as watcher:
        (watcher.target / "d" / "sub").mkdir(parents=True)
        await watcher.until_reported("/d/sub")
        (watcher.target / "d").rename(watcher.target / "moved")
        await watcher.until_reported("/moved")
        (watcher.target / "moved" / "sub" / "x.txt").write_bytes(b"in the moved directory")
        await watcher.until_reported("/moved/sub/x.txt")
        assert not any(rel.startswith("/d/") for rel in watcher.reported - {"/d/sub"})


def _queue_limit() -> int:
    with open("/proc/sys/fs/inotify/max_queued_events") as limit:
        return int(limit.read())


async def test_lost_events_ask_for_a_rescan_and_watching_goes_on(tmp_path: Path) -> None:
    limit = _queue_limit()
    async with watching(tmp_path / "m") as watcher:
        # More events than the kernel queues, made while the watcher cannot read them.
        for i in range(limit // 2 + 100):
            os.close(os.open(watcher.target / f"f{i}", os.O_WRONLY | os.O_CREAT))
        await watcher.until_reported("/")
        (watcher.target / "after.txt").write_bytes(b"still watched")
        await watcher.until_reported("/after.txt")


async def test_two_directories_that_swap_names_report_under_their_new_names(
    tmp_path: Path,
) -> None:
    import ctypes

    async with watching(tmp_path / "m") as watcher:
        (watcher.target / "d" / "x").mkdir(parents=True)
        (watcher.target / "m" / "y").mkdir(parents=True)
        await watcher.until_reported("/d/x")
        await watcher.until_reported("/m/y")
        # renameat2(RENAME_EXCHANGE): d and m swap names in one step.
        libc = ctypes.CDLL(None, use_errno=True)
        d, m = bytes(watcher.target / "d"), bytes(watcher.target / "m")
        assert libc.renameat2(-100, d, -100, m, 2) == 0, os.strerror(ctypes.get_errno())
        await watcher.until_reported("/m")
        watcher.reported.clear()
        (watcher.target / "m" / "x" / "new.txt").write_bytes(b"in x, now below m")
        (watcher.target / "d" / "y" / "new.txt").write_bytes(b"in y, now below d")
        await watcher.until_reported("/m/x/new.txt")
        await watcher.until_reported("/d/y/new.txt")
        assert "/d/x/new.txt" not in watcher.reported
        assert "/m/y/new.txt" not in watcher.reported


async def test_the_mirrors_temporary_files_are_not_reported(tmp_path: Path) -> None:
    async with watching(tmp_path / "m") as watcher:
        (watcher.target / ".f.txt.0a1b2c3d.meshfs-tmp").write_bytes(b"a download")
        (watcher.target / "after.txt").write_bytes(b"x")
        await watcher.until_reported("/after.txt")
        assert not any(rel.endswith(".meshfs-tmp") for rel in watcher.reported)


async def _on_server(client: MeshFSClient, path: str) -> bool:
    try:
        await client.meta(path)
    except NotFoundError:
        return False
    return True


@pytest.mark.live
async def test_a_file_being_written_is_not_uploaded_half_written(
    account: Account, client: MeshFSClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Long enough that only the writer closing the file can release it during the test.
    monkeypatch.setattr(_inotify, "WRITE_SETTLE", 60.0)
    a = tmp_path / "a"
    async with running_mirrors(account, [a], tmp_path / "state"):
        a.mkdir(exist_ok=True)
        (a / "ready.txt").write_bytes(b"ready")
        await wait_for(lambda: _on_server(client, "/ready.txt"), what="the mirror to run")
        with open_for_writing(a / "report.csv") as fd:
            os.write(fd, b"header\n" + b"row\n" * 1000)
            (a / "marker.txt").write_bytes(b"written after the first half")
            await wait_for(lambda: _on_server(client, "/marker.txt"), what="marker.txt uploaded")
            assert not await _on_server(client, "/report.csv")
            os.write(fd, b"last row\n")
        full = (a / "report.csv").read_bytes()

        async def uploaded_whole() -> bool:
            return await _on_server(client, "/report.csv") and (
                await client.read_bytes("/report.csv") == full
            )

        await wait_for(uploaded_whole, what="report.csv uploaded once closed")
        versions = [v async for v in client.versions("/report.csv")]
        assert len(versions) == 1


@pytest.mark.live
async def test_a_burst_of_edits_to_one_file_ends_in_the_last_content_everywhere(
    account: Account, client: MeshFSClient, tmp_path: Path
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    async with running_mirrors(account, [a, b], tmp_path / "state"):
        a.mkdir(exist_ok=True)
        (a / "ready.txt").write_bytes(b"ready")
        await wait_for(lambda: _async((b / "ready.txt").exists()), what="both mirrors to run")
        for i in range(30):
            (a / "notes.txt").write_bytes(f"edit {i}\n".encode() * (i + 1))
        last = b"edit 29\n" * 30

        async def everywhere() -> bool:
            on_b = b / "notes.txt"
            return (
                on_b.exists()
                and on_b.read_bytes() == last
                and await _on_server(client, "/notes.txt")
                and await client.read_bytes("/notes.txt") == last
            )

        await wait_for(everywhere, what="the last edit on the server and in b")
        assert (a / "notes.txt").read_bytes() == last


async def _async(value: bool) -> bool:
    return value


@pytest.mark.live
async def test_an_edit_is_not_held_up_by_the_rescan_once_idle(
    account: Account, client: MeshFSClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meshfs_client.mirror import _reconciler

    real_scan = _reconciler.scan
    hold = threading.Event()  # set: scans from now on wait (as on a very large folder)
    scanning = threading.Event()
    release = threading.Event()

    def slow_scan(*args: Any) -> Any:
        if hold.is_set():
            scanning.set()
            release.wait(60)
        return real_scan(*args)

    monkeypatch.setattr(_reconciler, "scan", slow_scan)
    a = tmp_path / "a"
    try:
        async with running_mirrors(account, [a], tmp_path / "state"):
            a.mkdir(exist_ok=True)
            (a / "ready.txt").write_bytes(b"ready")
            await wait_for(lambda: _on_server(client, "/ready.txt"), what="the mirror to run")
            hold.set()
            await wait_for(lambda: _async(scanning.is_set()), what="the rescan once idle")
            (a / "live.txt").write_bytes(b"written during the rescan")
            await wait_for(
                lambda: _on_server(client, "/live.txt"), deadline=20, what="live.txt uploaded"
            )
            assert not release.is_set()  # the scan was still running all along
    finally:
        release.set()


def test_the_rescan_once_idle_marks_only_what_differs_from_the_synced_state() -> None:
    from meshfs_client.mirror._model import LocalNode, RemoteNode, SyncedNode
    from meshfs_client.mirror._reconciler import _unsettled

    synced = {
        "/same.txt": SyncedNode("file", "n1", "v1", "h1", 3, 10, 100),
        "/edited.txt": SyncedNode("file", "n2", "v2", "h2", 3, 10, 101),
        "/gone.txt": SyncedNode("file", "n3", "v3", "h3", 3, 10, 102),
        "/remote-edit.txt": SyncedNode("file", "n4", "v4", "h4", 3, 10, 103),
        "/dir": SyncedNode("dir", "n5", inode=104),
    }
    found = {
        "/same.txt": LocalNode("file", 3, 10, 100),
        "/edited.txt": LocalNode("file", 4, 11, 101),
        "/remote-edit.txt": LocalNode("file", 3, 10, 103),
        "/dir": LocalNode("dir", inode=104),
        "/new.txt": LocalNode("file", 1, 12, 105),
    }
    remote = {
        "/same.txt": RemoteNode("file", "n1", "v1", "h1", 3),
        "/edited.txt": RemoteNode("file", "n2", "v2", "h2", 3),
        "/gone.txt": RemoteNode("file", "n3", "v3", "h3", 3),
        "/remote-edit.txt": RemoteNode("file", "n4", "v9", "h9", 5),
        "/dir": RemoteNode("dir", "n5"),
        "/remote-new.txt": RemoteNode("file", "n6", "v6", "h6", 1),
    }
    assert _unsettled(found, synced, remote) == {
        "/edited.txt",
        "/gone.txt",
        "/remote-edit.txt",
        "/new.txt",
        "/remote-new.txt",
    }
