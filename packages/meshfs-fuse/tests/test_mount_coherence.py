"""Changes made elsewhere (the API, a second mount) show through the mount, by the feed."""

from __future__ import annotations

import os
from pathlib import Path

from mount_testkit import Account, mounted, wait_for

from meshfs_client import MeshFS

DEADLINE = 10.0  # far above the target (a loaded CI machine); bench/mount.py measures it


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def test_api_changes_show_in_the_mount(home: tuple[Path, str], api: MeshFS) -> None:
    local, remote = home
    assert os.listdir(local) == []  # the mount has listed this directory (and caches it)
    api.upload(f"{remote}/new.txt", b"from the API")
    wait_for(lambda: _read(local / "new.txt") == b"from the API", DEADLINE, "a new file")
    assert os.listdir(local) == ["new.txt"]

    # Content read before is cached by the kernel; a new version must replace it.
    assert (local / "new.txt").read_bytes() == b"from the API"
    api.upload(f"{remote}/new.txt", b"changed elsewhere, and longer")
    wait_for(
        lambda: _read(local / "new.txt") == b"changed elsewhere, and longer",
        DEADLINE,
        "the new version",
    )
    assert os.stat(local / "new.txt").st_size == len(b"changed elsewhere, and longer")

    api.mkdir(f"{remote}/sub")
    wait_for(lambda: (local / "sub").is_dir(), DEADLINE, "a new directory")
    api.rename(f"{remote}/new.txt", f"{remote}/sub/moved.txt")
    wait_for(
        lambda: not (local / "new.txt").exists() and (local / "sub" / "moved.txt").exists(),
        DEADLINE,
        "a rename",
    )
    assert (local / "sub" / "moved.txt").read_bytes() == b"changed elsewhere, and longer"
    # Listings the mount keeps follow the feed too.
    assert os.listdir(local) == ["sub"]
    assert os.listdir(local / "sub") == ["moved.txt"]
    api.delete(f"{remote}/sub/moved.txt")
    wait_for(lambda: os.listdir(local / "sub") == [], DEADLINE, "a delete in a listing")
    # The kernel's entry is dropped just after the daemon's tables change (milliseconds).
    wait_for(lambda: not (local / "sub" / "moved.txt").exists(), DEADLINE, "the kernel's entry")
    api.upload(f"{remote}/sub/again.txt", b"x")
    wait_for(lambda: os.listdir(local / "sub") == ["again.txt"], DEADLINE, "a new name")


def test_a_second_mount_sees_writes(
    home: tuple[Path, str], account: Account, tmp_path: Path
) -> None:
    local, remote = home
    with mounted(account, tmp_path / "second", tmp_path / "cache2") as second:
        there = second.target / remote.lstrip("/")
        assert os.listdir(there) == []
        (local / "shared.txt").write_text("one")
        wait_for(lambda: _read(there / "shared.txt") == b"one", DEADLINE, "the second mount")
        (local / "shared.txt").write_text("two")
        wait_for(lambda: _read(there / "shared.txt") == b"two", DEADLINE, "the next version")
        (there / "back.txt").write_text("reply")
        wait_for(lambda: _read(local / "back.txt") == b"reply", DEADLINE, "the first mount")
