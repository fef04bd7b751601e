"""What POSIX tools (and pjdfstest) check of names through a real mount: hard links of every
kind, a directory's times after a change inside it, path limits, an unlinked open file, and
the kernel's permission checks with ``--default-permissions``."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from mount_testkit import Account, Mount, mounted

from meshfs_client import MeshFS
from meshfs_common.paths import MAX_PATH_BYTES

NOBODY = 65534


def errno_of(call: Callable[..., object], *args: object) -> int:
    with pytest.raises(OSError) as info:
        call(*args)
    code = info.value.errno
    assert code is not None
    return code


def test_every_kind_but_a_directory_is_hard_linked(home: tuple[Path, str], api: MeshFS) -> None:
    local, remote = home
    os.symlink("../some/where", local / "symlink")
    os.mkfifo(local / "fifo", 0o640)
    os.mknod(local / "socket", 0o600 | stat.S_IFSOCK)
    os.mknod(local / "chardev", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(local / "blockdev", 0o600 | stat.S_IFBLK, os.makedev(8, 1))
    for kind in ("symlink", "fifo", "socket", "chardev", "blockdev"):
        os.link(local / kind, local / f"{kind}.2", follow_symlinks=False)
        one, two = os.lstat(local / kind), os.lstat(local / f"{kind}.2")
        assert (two.st_ino, two.st_mode, two.st_rdev) == (one.st_ino, one.st_mode, one.st_rdev)
        assert one.st_nlink == two.st_nlink == 2, kind
        assert api.meta(f"{remote}/{kind}.2").nlink == 2
        os.unlink(local / kind)
        assert os.lstat(local / f"{kind}.2").st_nlink == 1, kind
        assert api.meta(f"{remote}/{kind}.2").kind == kind
    assert os.readlink(local / "symlink.2") == "../some/where"
    os.mkdir(local / "dir")
    assert errno_of(os.link, local / "dir", local / "dir.2") == errno.EPERM


def _times(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_ctime_ns


def test_a_directory_shows_the_changes_made_in_it_at_once(
    home: tuple[Path, str], api: MeshFS
) -> None:
    local, remote = home
    (local / "sub").mkdir()
    (local / "other").mkdir()
    steps: list[tuple[str, Callable[[], object], Path]] = [
        ("mkdir", lambda: os.mkdir(local / "d"), local),
        ("create", lambda: (local / "f").write_bytes(b"x"), local),
        ("symlink", lambda: os.symlink("f", local / "s"), local),
        ("mkfifo", lambda: os.mkfifo(local / "p"), local),
        ("link", lambda: os.link(local / "f", local / "sub" / "g"), local / "sub"),
        ("unlink", lambda: os.unlink(local / "s"), local),
        ("rename", lambda: os.rename(local / "f", local / "other" / "f"), local / "other"),
        ("rmdir", lambda: os.rmdir(local / "d"), local),
    ]
    for what, step, directory in steps:
        before = _times(directory)
        step()
        after = _times(directory)
        assert after[0] > before[0], f"mtime after {what}"
        assert after[1] > before[1], f"ctime after {what}"
        stored = api.meta(remote + str(directory)[len(str(local)) :])
        assert after == (stored.mtime_ns, stored.ctime_ns), f"the server's times after {what}"
    # A directory moved in counts in its new parent's nlink, and leaves the old one's.
    assert os.stat(local / "other").st_nlink == 2
    os.rename(local / "sub", local / "other" / "sub")
    assert os.stat(local / "other").st_nlink == 3
    assert os.stat(local).st_nlink == 3  # "other" alone


def test_a_path_the_server_cannot_hold_is_refused_at_once(
    home: tuple[Path, str], mount: Mount, api: MeshFS
) -> None:
    local, remote = home
    # Directories down to just under the server's limit on a whole path from the tenant root
    # (walked with directory descriptors: the local path is longer than PATH_MAX).
    fd = os.open(local, os.O_RDONLY | os.O_DIRECTORY)
    remote_deep = remote
    try:
        while len(remote_deep.encode()) + 1 + 255 < MAX_PATH_BYTES:
            os.mkdir("d" * 200, dir_fd=fd)
            inner = os.open("d" * 200, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd, remote_deep = inner, f"{remote_deep}/{'d' * 200}"
        room = MAX_PATH_BYTES - len(remote_deep.encode()) - 1
        fits, too_long = "f" * room, "f" * (room + 1)
        os.close(os.open(fits, os.O_CREAT | os.O_WRONLY, dir_fd=fd))
        assert api.meta(f"{remote_deep}/{fits}").size == 0
        refused = [
            lambda: os.open(too_long, os.O_CREAT | os.O_WRONLY, dir_fd=fd),
            lambda: os.mkdir(too_long, dir_fd=fd),
            lambda: os.mkfifo(too_long, dir_fd=fd),
            lambda: os.symlink("x", too_long, dir_fd=fd),
            lambda: os.rename(fits, too_long, src_dir_fd=fd, dst_dir_fd=fd),
        ]
        for call in refused:
            assert errno_of(call) == errno.ENAMETOOLONG
        listing = os.open(".", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)  # a fresh opendir
        try:
            assert os.listdir(listing) == [fits]
        finally:
            os.close(listing)
    finally:
        os.close(fd)
    assert errno_of(os.open, local / ("n" * 256), os.O_CREAT | os.O_WRONLY) == errno.ENAMETOOLONG
    assert "not committed yet" not in mount.log()


def test_an_unlinked_open_file_has_no_links(home: tuple[Path, str]) -> None:
    local, _ = home
    (local / "f").write_bytes(b"still here")
    with open(local / "f", "rb") as f:
        os.unlink(local / "f")
        assert os.fstat(f.fileno()).st_nlink == 0
        assert f.read() == b"still here"


def test_permissions_are_checked_by_the_kernel_only_when_asked(
    account: Account, tmp_path: Path, mount: Mount
) -> None:
    assert "default_permissions" not in _options(mount.target)
    with mounted(
        account, tmp_path / "checked", tmp_path / "checked-cache", "--default-permissions",
        "--allow-other",
    ) as checked:  # fmt: skip
        assert "default_permissions" in _options(checked.target)
        home = checked.target / "permissions"
        home.mkdir()
        (home / "private").write_text("secret")
        os.chmod(home / "private", 0o600)
        (home / "shared").write_text("hello")
        os.chmod(home / "shared", 0o644)
        os.chmod(home, 0o755)

        def cat(name: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["cat", name], cwd=home, user=NOBODY, capture_output=True, text=True, timeout=30
            )

        assert cat("shared").stdout == "hello"
        refused = cat("private")
        assert refused.returncode != 0
        assert "Permission denied" in refused.stderr
        assert os.stat(home / "private").st_uid == 0  # the creator's uid, as stored


def _options(target: Path) -> list[str]:
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if fields[1] == str(target):
            return fields[3].split(",")
    raise AssertionError(f"{target} is not mounted")


def test_a_file_renamed_over_another_keeps_its_inode_number(
    home: tuple[Path, str], api: MeshFS
) -> None:
    # mv src dst (an editor's save): dst is src's inode, as rename(2) promises, while the
    # server keeps dst's node and history.
    local, remote = home
    (local / "dst").write_text("old")
    (local / "src").write_text("new")
    number = os.lstat(local / "src").st_ino
    target_id = api.meta(f"{remote}/dst").node_id
    os.rename(local / "src", local / "dst")
    assert os.lstat(local / "dst").st_ino == number
    assert (local / "dst").read_text() == "new"
    assert os.lstat(local / "dst").st_ino == number
    assert api.meta(f"{remote}/dst").node_id == target_id
    assert [v.size for v in api.versions(f"{remote}/dst")] == [3, 3]
