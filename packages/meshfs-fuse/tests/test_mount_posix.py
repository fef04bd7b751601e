"""The POSIX model through a real mount: modes, owners, times, links, special nodes, xattrs."""

from __future__ import annotations

import ctypes
import errno
import os
import re
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from mount_testkit import Server, wait_for

from meshfs_client import MeshFS

RENAME_EXCHANGE = 2
AT_FDCWD = -100


def errno_of(call: Callable[..., object], *args: object) -> int:
    with pytest.raises(OSError) as info:
        call(*args)
    code = info.value.errno
    assert code is not None
    return code


def renameat2(old: Path, new: Path, flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(AT_FDCWD, bytes(old), AT_FDCWD, bytes(new), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def test_chmod_chown_and_times_are_stored_on_the_server(
    home: tuple[Path, str], api: MeshFS
) -> None:
    local, remote = home
    f = local / "f.txt"
    f.write_text("x")
    os.chown(f, 1234, 5678)
    os.chmod(f, 0o4750)  # after chown, which clears set-user-ID
    os.utime(f, ns=(1_111_111_111_123_456_789, 1_222_222_222_987_654_321))
    st = os.stat(f)
    assert stat.S_ISREG(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o4750
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert (st.st_atime_ns, st.st_mtime_ns) == (
        1_111_111_111_123_456_789,
        1_222_222_222_987_654_321,
    )
    entry = api.meta(f"{remote}/f.txt")
    assert (entry.mode, entry.uid, entry.gid) == (0o4750, 1234, 5678)
    assert (entry.atime_ns, entry.mtime_ns) == (
        1_111_111_111_123_456_789,
        1_222_222_222_987_654_321,
    )
    assert len(api.versions(f"{remote}/f.txt")) == 1  # attributes make no version
    # touch -m: mtime "now", atime left alone (UTIME_OMIT).
    before = time.time_ns()
    subprocess.run(["touch", "-m", str(f)], check=True)
    st = os.stat(f)
    assert st.st_atime_ns == 1_111_111_111_123_456_789
    assert st.st_mtime_ns >= before - 1_000_000_000
    assert api.meta(f"{remote}/f.txt").mtime_ns == st.st_mtime_ns
    # chown -1: the group alone.
    os.chown(f, -1, 42)
    assert (os.stat(f).st_uid, os.stat(f).st_gid) == (1234, 42)


def test_times_set_on_a_file_being_written_are_the_times_shown(
    home: tuple[Path, str], api: MeshFS
) -> None:
    local, remote = home
    with open(local / "copied", "wb") as out:
        out.write(b"data")
        out.flush()
        os.utime(out.fileno(), ns=(10**18, 10**18))  # cp -p: futimens before close
    assert os.stat(local / "copied").st_mtime_ns == 10**18
    assert api.meta(f"{remote}/copied").mtime_ns == 10**18
    assert api.read_bytes(f"{remote}/copied") == b"data"
    assert len(api.versions(f"{remote}/copied")) == 1


def test_new_nodes_get_the_creators_mode_and_owner(home: tuple[Path, str], api: MeshFS) -> None:
    local, remote = home
    fd = os.open(local / "private", os.O_CREAT | os.O_WRONLY, 0o600)
    os.write(fd, b"secret")
    os.close(fd)
    os.mkdir(local / "dir", 0o700)
    assert stat.S_IMODE(os.stat(local / "private").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(local / "dir").st_mode) == 0o700
    assert api.meta(f"{remote}/private").mode == 0o600
    assert api.meta(f"{remote}/dir").mode == 0o700
    assert api.meta(f"{remote}/private").uid == os.getuid()
    assert os.stat(local / "dir").st_nlink == 2


def test_symbolic_links(home: tuple[Path, str], api: MeshFS) -> None:
    local, remote = home
    (local / "target.txt").write_text("pointed at")
    os.symlink("target.txt", local / "link")
    os.symlink("../nowhere/at/all", local / "dangling")
    assert os.readlink(local / "link") == "target.txt"
    assert (local / "link").read_text() == "pointed at"  # the kernel follows it
    st = os.lstat(local / "dangling")
    assert stat.S_ISLNK(st.st_mode)
    assert st.st_size == len("../nowhere/at/all")
    entry = api.meta(f"{remote}/link")
    assert (entry.kind, entry.target) == ("symlink", "target.txt")
    assert errno_of(os.symlink, "x", local / "link") == errno.EEXIST
    assert errno_of(os.readlink, local / "target.txt") == errno.EINVAL
    assert sorted(os.listdir(local)) == ["dangling", "link", "target.txt"]


def test_hard_links(home: tuple[Path, str], api: MeshFS) -> None:
    local, remote = home
    (local / "a").write_text("one")
    os.mkdir(local / "d")
    os.link(local / "a", local / "b")
    st_a, st_b = os.stat(local / "a"), os.stat(local / "b")
    assert st_a.st_ino == st_b.st_ino
    assert st_a.st_nlink == st_b.st_nlink == 2
    assert api.meta(f"{remote}/b").nlink == 2
    (local / "b").write_text("two")
    assert (local / "a").read_text() == "two"
    assert api.read_bytes(f"{remote}/a") == b"two"
    os.unlink(local / "a")
    assert (local / "b").read_text() == "two"
    (local / "b").write_text("three")  # the remaining name still commits
    assert api.read_bytes(f"{remote}/b") == b"three"
    assert os.stat(local / "b").st_nlink == 1
    assert errno_of(os.link, local / "d", local / "d2") == errno.EPERM
    assert errno_of(os.link, local / "b", local / "d") == errno.EEXIST


def test_a_file_renamed_over_a_hard_link_leaves_the_other_name_alone(
    home: tuple[Path, str], api: MeshFS
) -> None:
    # echo one > c; ln c d; echo two > e; mv e d: d is e now, c keeps "one" with one link.
    local, remote = home
    (local / "c").write_text("one")
    os.link(local / "c", local / "d")
    (local / "e").write_text("two")
    os.rename(local / "e", local / "d")
    assert (local / "d").read_text() == "two"
    assert (local / "c").read_text() == "one"
    assert os.stat(local / "c").st_nlink == 1
    assert api.read_bytes(f"{remote}/c") == b"one"
    assert api.read_bytes(f"{remote}/d") == b"two"
    assert api.meta(f"{remote}/c").nlink == 1
    # The same over a name of a file not yet committed (created and renamed while open).
    os.link(local / "c", local / "f")
    with open(local / "g", "w") as g:
        g.write("three")
        os.rename(local / "g", local / "f")
    assert (local / "f").read_text() == "three"
    assert (local / "c").read_text() == "one"
    assert api.read_bytes(f"{remote}/f") == b"three"
    assert api.read_bytes(f"{remote}/c") == b"one"


def test_special_nodes_are_metadata(home: tuple[Path, str], api: MeshFS) -> None:
    local, remote = home
    os.mkfifo(local / "fifo", 0o640)
    os.mknod(local / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(local / "sock", 0o600 | stat.S_IFSOCK)
    os.mknod(local / "plain", 0o640 | stat.S_IFREG)
    assert stat.S_ISFIFO(os.stat(local / "fifo").st_mode)
    assert stat.S_IMODE(os.stat(local / "fifo").st_mode) == 0o640
    dev = os.stat(local / "null")
    assert stat.S_ISCHR(dev.st_mode)
    assert dev.st_rdev == os.makedev(1, 3)
    assert stat.S_ISSOCK(os.stat(local / "sock").st_mode)
    assert stat.S_ISREG(os.stat(local / "plain").st_mode)
    assert stat.S_IMODE(os.stat(local / "plain").st_mode) == 0o640
    assert api.meta(f"{remote}/fifo").kind == "fifo"
    assert api.meta(f"{remote}/null").rdev == os.makedev(1, 3)
    assert api.meta(f"{remote}/plain").size == 0
    assert errno_of(os.mkfifo, local / "fifo") == errno.EEXIST


def test_extended_attributes(home: tuple[Path, str], api: MeshFS) -> None:
    local, remote = home
    f = local / "tagged"
    f.write_text("x")
    os.setxattr(f, "user.colour", b"blue")
    os.setxattr(f, "user.empty", b"")
    assert os.getxattr(f, "user.colour") == b"blue"
    assert os.getxattr(f, "user.empty") == b""
    assert sorted(os.listxattr(f)) == ["user.colour", "user.empty"]
    assert api.getxattr(f"{remote}/tagged", "user.colour") == b"blue"
    assert errno_of(os.setxattr, f, "user.colour", b"red", os.XATTR_CREATE) == errno.EEXIST
    os.setxattr(f, "user.colour", b"red", os.XATTR_REPLACE)
    assert os.getxattr(f, "user.colour") == b"red"
    assert errno_of(os.setxattr, f, "user.none", b"v", os.XATTR_REPLACE) == errno.ENODATA
    assert errno_of(os.getxattr, f, "user.none") == errno.ENODATA
    assert errno_of(os.removexattr, f, "user.none") == errno.ENODATA
    os.removexattr(f, "user.colour")
    assert os.listxattr(f) == ["user.empty"]
    assert os.getxattr(f, "meshfs.node_id").decode() == api.meta(f"{remote}/tagged").node_id
    assert errno_of(os.setxattr, f, "meshfs.node_id", b"x") == errno.EPERM
    assert errno_of(os.setxattr, f, "trusted.x", b"v") == errno.ENOTSUP
    assert errno_of(os.setxattr, f, "system.posix_acl_access", b"v") in (
        errno.ENOTSUP,
        errno.EINVAL,  # the kernel checks the ACL's format before asking
    )
    assert errno_of(os.getxattr, f, "system.posix_acl_access") == errno.ENOTSUP
    assert errno_of(os.getxattr, f, "security.capability") == errno.ENODATA
    assert errno_of(os.setxattr, f, "user.big", b"v" * 65537) == errno.E2BIG
    os.mkdir(local / "d")
    os.setxattr(local / "d", "user.on-a-dir", b"1")
    assert os.listxattr(local / "d") == ["user.on-a-dir"]


def test_extended_attributes_have_a_limit_per_node(home: tuple[Path, str]) -> None:
    local, _ = home
    f = local / "full"
    f.write_text("x")
    refused = None
    for index in range(1000):
        try:
            os.setxattr(f, f"user.a{index}", b"v" * 4000)
        except OSError as exc:
            refused = exc.errno
            break
    assert refused == errno.ENOSPC
    assert len(os.listxattr(f)) == index  # nothing of the refused one was kept


def test_rename_exchange_swaps_two_names(home: tuple[Path, str], api: MeshFS) -> None:
    local, remote = home
    (local / "a").write_text("A")
    os.mkdir(local / "d")
    (local / "d" / "inside").write_text("in d")
    renameat2(local / "a", local / "d", RENAME_EXCHANGE)
    assert (local / "d").read_text() == "A"
    assert (local / "a" / "inside").read_text() == "in d"
    assert api.read_bytes(f"{remote}/d") == b"A"
    assert api.read_bytes(f"{remote}/a/inside") == b"in d"
    (local / "d").write_text("A2")  # the swapped file commits under its new name
    assert api.read_bytes(f"{remote}/d") == b"A2"


def test_attribute_changes_elsewhere_reach_the_mount(home: tuple[Path, str], api: MeshFS) -> None:
    local, remote = home
    (local / "f").write_text("x")
    assert stat.S_IMODE(os.stat(local / "f").st_mode) == 0o644
    api.chmod(f"{remote}/f", 0o600)
    api.utime(f"{remote}/f", mtime_ns=10**18)
    wait_for(
        lambda: (
            stat.S_IMODE(os.stat(local / "f").st_mode) == 0o600
            and os.stat(local / "f").st_mtime_ns == 10**18
        ),
        10,
        "the new mode and mtime in the mount",
    )
    api.symlink(f"{remote}/made-elsewhere", "f")
    api.link(f"{remote}/f", f"{remote}/second-name")
    wait_for(
        lambda: os.path.islink(local / "made-elsewhere") and os.stat(local / "f").st_nlink == 2,
        10,
        "the link and the hard link in the mount",
    )
    assert os.readlink(local / "made-elsewhere") == "f"
    assert stat.S_IMODE(os.stat(local / "second-name").st_mode) == 0o600


def _stat(mount_root: Path, name: str) -> int:
    return int(os.getxattr(mount_root / ".meshfs" / "control", f"meshfs.stats.{name}"))


def test_a_small_change_to_a_big_file_sends_one_chunk(
    home: tuple[Path, str], api: MeshFS, server: Server
) -> None:
    local, remote = home
    chunk = 4 * 1024 * 1024
    original = os.urandom(3 * chunk + 1000)  # four server chunks
    api.upload(f"{remote}/big.bin", original)
    wait_for(lambda: (local / "big.bin").exists(), 10, "the file in the mount")
    before = server.log_path.read_text()
    with open(local / "big.bin", "r+b") as out:
        out.seek(chunk + 100)
        out.write(b"x" * 4096)
    expected = original[: chunk + 100] + b"x" * 4096 + original[chunk + 4196 :]
    assert api.read_bytes(f"{remote}/big.bin") == expected
    assert (local / "big.bin").read_bytes() == expected
    log = server.log_path.read_text()[len(before) :]
    assert len(re.findall(r"PUT /files/upload/part\S* ", log)) == 1, log
    assert "GET /files/chunks" in log
    assert _stat(local.parent, "partial_commits") == 1
    # Truncated then extended: the cut-away bytes are zeros, not the base's.
    with open(local / "big.bin", "r+b") as out:
        out.truncate(2 * chunk)
        out.truncate(3 * chunk)
        out.seek(3 * chunk - 1)
        out.write(b"!")
    expected = expected[: 2 * chunk] + b"\0" * (chunk - 1) + b"!"
    assert api.read_bytes(f"{remote}/big.bin") == expected
    assert _stat(local.parent, "partial_commits") == 2


def test_a_stale_base_sends_the_whole_file(home: tuple[Path, str], api: MeshFS) -> None:
    local, remote = home
    chunk = 4 * 1024 * 1024
    api.upload(f"{remote}/big.bin", b"a" * (2 * chunk))
    wait_for(lambda: (local / "big.bin").exists(), 10, "the file in the mount")
    with open(local / "big.bin", "r+b") as out:
        out.write(b"b")
        out.flush()
        api.upload(f"{remote}/big.bin", b"c" * (2 * chunk))  # committed elsewhere meanwhile
    # The mount's close wins as a whole file (last writer wins), never a mix of the two.
    assert api.read_bytes(f"{remote}/big.bin") == b"b" + b"a" * (2 * chunk - 1)
    assert _stat(local.parent, "partial_commits") == 0
