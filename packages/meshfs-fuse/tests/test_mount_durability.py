"""Nothing acknowledged is lost: kill -9 of the daemon, SIGTERM, a revoked login."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from pathlib import Path

import pytest
from mount_testkit import Account, Server, login, mounted, wait_for

from meshfs_client import MeshFS


def _gone_cleanly(target: Path) -> bool:
    """Unmounted, and no "Transport endpoint is not connected" left behind."""
    try:
        os.listdir(target)
    except OSError as exc:
        if exc.errno == errno.ENOTCONN:  # a dead mount, still there
            return False
        raise
    return not os.path.ismount(target)


def _kill_9(process: object) -> None:
    process.send_signal(signal.SIGKILL)  # type: ignore[attr-defined]
    process.wait(timeout=20)  # type: ignore[attr-defined]


def test_kill_9_after_close_loses_nothing(account: Account, api: MeshFS, tmp_path: Path) -> None:
    target = tmp_path / "mnt"
    with mounted(account, target, tmp_path / "cache", foreground=True) as mount:
        (target / "kill9-closed.txt").write_bytes(b"closed before the crash")
        _kill_9(mount.process)
        wait_for(lambda: _gone_cleanly(target), 30, "auto_unmount after kill -9")
    assert api.read_bytes("/kill9-closed.txt") == b"closed before the crash"


@pytest.mark.parametrize("fsync", [False, True], ids=["written", "fsynced"])
def test_write_not_closed_is_committed_at_the_next_start(
    account: Account, api: MeshFS, tmp_path: Path, fsync: bool
) -> None:
    target, cache = tmp_path / "mnt", tmp_path / "cache"
    name = f"kill9-open-{fsync}.bin"
    data = os.urandom(300_000)
    with mounted(account, target, cache, foreground=True) as mount:
        (target / name).write_bytes(b"old content")
        fd = os.open(target / name, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, data)  # acknowledged, not closed
            if fsync:
                os.fsync(fd)
                os.write(fd, b"+after fsync")  # acknowledged after the fsync's commit
            _kill_9(mount.process)
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)  # the daemon is dead: closing reports an error
        wait_for(lambda: _gone_cleanly(target), 30, "auto_unmount after kill -9")
    expected = data + (b"+after fsync" if fsync else b"")
    assert api.read_bytes(f"/{name}") != expected  # not committed by the dead daemon
    with mounted(account, target, cache):
        # The next mount commits the journal before it serves anything.
        assert api.read_bytes(f"/{name}") == expected
        assert (target / name).read_bytes() == expected


def test_sigterm_commits_open_files_and_unmounts(
    account: Account, api: MeshFS, tmp_path: Path
) -> None:
    target = tmp_path / "mnt"
    with mounted(account, target, tmp_path / "cache", foreground=True) as mount:
        assert mount.process is not None
        fd = os.open(target / "sigterm.txt", os.O_WRONLY | os.O_CREAT)
        try:
            os.write(fd, b"written, still open at SIGTERM")
            mount.process.send_signal(signal.SIGTERM)
            assert mount.process.wait(timeout=30) == 0
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)  # the mount has ended under the open file
        wait_for(lambda: _gone_cleanly(target), 10, "the unmount")
    assert api.read_bytes("/sigterm.txt") == b"written, still open at SIGTERM"


def test_revoked_login_is_an_errno_and_one_log_line(
    server: Server, api: MeshFS, tmp_path: Path
) -> None:
    own = login(server, tmp_path / "config", "mounter", "mounter")
    api.mkdir("/revoked-check")
    with mounted(own, tmp_path / "mnt", tmp_path / "cache") as mount:
        with own.client() as client:
            client.logout()  # revokes the session the mount uses
        for _ in range(2):
            with pytest.raises(OSError) as info:
                os.listdir(mount.target / "revoked-check")
            assert info.value.errno == errno.EACCES
        assert mount.log().count("refused this mount's login") == 1
