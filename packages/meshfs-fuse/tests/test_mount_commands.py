"""The ways a user mounts: `meshfs mount` / `meshfs umount`, and `mount.meshfs` (mount -t)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from mount_testkit import BIN, Account, daemon_gone, is_mounted, unmount, wait_for

from meshfs_client import MeshFS


def test_meshfs_mount_and_umount(account: Account, api: MeshFS, tmp_path: Path) -> None:
    target = tmp_path / "mnt"
    target.mkdir()
    api.upload("/through-meshfs-mount.txt", b"seen")
    try:
        done = subprocess.run(
            [str(BIN / "meshfs"), "mount", str(target), "--cache-dir", str(tmp_path / "c")],
            env=account.env(),
            capture_output=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert os.path.ismount(target)
        assert (target / "through-meshfs-mount.txt").read_bytes() == b"seen"
        done = subprocess.run(
            [str(BIN / "meshfs"), "umount", str(target)], capture_output=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        wait_for(lambda: not is_mounted(target), 10, "the unmount")
    finally:
        unmount(target)
        wait_for(lambda: daemon_gone(tmp_path / "c"), 20, "the daemon to exit")


def test_mount_helper_mounts_with_mount_options(account: Account, tmp_path: Path) -> None:
    target = tmp_path / "mnt"
    target.mkdir()
    try:
        done = subprocess.run(
            [
                str(BIN / "mount.meshfs"),
                account.server.url,
                str(target),
                "-o",
                f"ro,noatime,cache_dir={tmp_path / 'c'},cache_size=64M",
            ],
            env=account.env(),
            capture_output=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert os.path.ismount(target)
        options = next(
            line.split()[3]
            for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1] == str(target)
        )
        assert "ro" in options.split(",")
    finally:
        unmount(target)
        wait_for(lambda: daemon_gone(tmp_path / "c"), 20, "the daemon to exit")
