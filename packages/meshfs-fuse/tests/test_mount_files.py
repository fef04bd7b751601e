"""Files and directories through a real mount, with plain os calls, checked through the API."""

from __future__ import annotations

import ctypes
import errno
import os
import re
from pathlib import Path

import pytest
from mount_testkit import Account, Mount, Server, mounted, wait_for

from meshfs_client import MeshFS

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
AT_FDCWD = -100


def renameat2(old: Path, new: Path, flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(AT_FDCWD, bytes(old), AT_FDCWD, bytes(new), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def versions(api: MeshFS, path: str) -> int:
    return len(api.versions(path))


def test_create_write_read_append_truncate(home: tuple[Path, str], api: MeshFS) -> None:
    local, remote = home
    f = local / "notes.txt"
    f.write_text("hello")
    assert f.read_text() == "hello"
    assert api.read_bytes(f"{remote}/notes.txt") == b"hello"
    with open(f, "a") as out:
        out.write(" world")
    assert f.read_text() == "hello world"
    assert os.stat(f).st_size == 11
    os.truncate(f, 5)
    assert f.read_text() == "hello"
    with open(f, "r+b") as out:
        out.seek(1)
        out.write(b"E")
    assert api.read_bytes(f"{remote}/notes.txt") == b"hEllo"
    with open(f, "r+b") as out:
        out.truncate(2)
        out.seek(10)
        out.write(b"!")
    assert f.read_bytes() == b"hE" + b"\0" * 8 + b"!"
    assert api.read_bytes(f"{remote}/notes.txt") == b"hE" + b"\0" * 8 + b"!"


def test_each_close_is_exactly_one_version(home: tuple[Path, str], api: MeshFS) -> None:
    local, remote = home
    data = os.urandom(5 * 1024 * 1024 + 17)  # several server chunks, many FUSE writes
    with open(local / "big.bin", "wb") as out:
        for start in range(0, len(data), 100_000):
            out.write(data[start : start + 100_000])
    assert versions(api, f"{remote}/big.bin") == 1
    assert api.read_bytes(f"{remote}/big.bin") == data
    assert (local / "big.bin").read_bytes() == data

    # A file created empty is one empty version.
    (local / "empty").touch()
    assert versions(api, f"{remote}/empty") == 1
    assert api.meta(f"{remote}/empty").size == 0

    # Opening without writing commits nothing.
    with open(local / "big.bin", "r+b") as untouched:
        untouched.read(10)
    assert versions(api, f"{remote}/big.bin") == 1

    # Truncate + write (O_TRUNC) is one version.
    (local / "big.bin").write_bytes(b"short")
    assert versions(api, f"{remote}/big.bin") == 2
    assert api.read_bytes(f"{remote}/big.bin") == b"short"


def test_editor_save_replaces_the_file_atomically(home: tuple[Path, str], api: MeshFS) -> None:
    local, remote = home
    target = local / "doc.txt"
    target.write_text("version one\n")
    with open(target) as reader:  # a reader of the old file during the save
        # vim-style: write a temporary file, fsync it, rename it over the original.
        temporary = local / ".doc.txt.swp"
        with open(temporary, "w") as out:
            out.write("version two\n")
            out.flush()
            os.fsync(out.fileno())
        os.rename(temporary, target)
        assert reader.read() == "version one\n"
    assert target.read_text() == "version two\n"
    assert sorted(os.listdir(local)) == ["doc.txt"]
    assert api.read_bytes(f"{remote}/doc.txt") == b"version two\n"
    # The server keeps the target's history: the saved content is its next version.
    assert versions(api, f"{remote}/doc.txt") == 2
    assert not api.exists(f"{remote}/.doc.txt.swp")


def test_directories_and_listing(home: tuple[Path, str], api: MeshFS) -> None:
    local, remote = home
    os.makedirs(local / "a" / "b")
    names = {f"f{i:03d}" for i in range(150)}
    for name in names:
        (local / "a" / name).write_bytes(name.encode())
    assert set(os.listdir(local / "a")) == names | {"b"}
    sizes = {e.name: e.stat().st_size for e in os.scandir(local / "a") if e.is_file()}
    assert sizes == dict.fromkeys(names, 4)
    assert {e.name for e in api.listdir(f"{remote}/a")} == names | {"b"}
    os.rename(local / "a", local / "c")
    assert (local / "c" / "f007").read_text() == "f007"
    assert api.read_bytes(f"{remote}/c/f007") == b"f007"
    os.rmdir(local / "c" / "b")
    assert not (local / "c" / "b").exists()


def test_unlinked_open_file_stays_readable(home: tuple[Path, str], api: MeshFS) -> None:
    local, remote = home
    (local / "gone.txt").write_bytes(b"still here" * 1000)
    with open(local / "gone.txt", "rb") as reader:
        os.unlink(local / "gone.txt")
        assert not (local / "gone.txt").exists()
        assert not api.exists(f"{remote}/gone.txt")
        assert reader.read() == b"still here" * 1000
    # A file unlinked while being written keeps working until closed, and is not recreated.
    with open(local / "scratch", "w+b") as scratch:
        os.unlink(local / "scratch")
        scratch.write(b"temporary")
        scratch.seek(0)
        assert scratch.read() == b"temporary"
    assert not api.exists(f"{remote}/scratch")


def test_every_error_path_has_its_errno(home: tuple[Path, str]) -> None:
    local, _ = home
    (local / "file").write_text("x")
    os.mkdir(local / "dir")
    (local / "dir" / "inside").write_text("y")

    def errno_of(call: object, *args: object) -> int:
        with pytest.raises(OSError) as info:
            call(*args)  # type: ignore[operator]
        assert info.value.errno is not None
        return info.value.errno

    assert errno_of(open, local / "missing") == errno.ENOENT
    assert errno_of(os.stat, local / "missing" / "deeper") == errno.ENOENT
    assert errno_of(os.unlink, local / "missing") == errno.ENOENT
    assert errno_of(os.mkdir, local / "file") == errno.EEXIST
    assert errno_of(os.mkdir, local / "dir") == errno.EEXIST
    assert errno_of(os.open, local / "file", os.O_CREAT | os.O_EXCL | os.O_WRONLY) == errno.EEXIST
    assert errno_of(os.rmdir, local / "dir") == errno.ENOTEMPTY
    assert errno_of(os.rmdir, local / "file") == errno.ENOTDIR
    assert errno_of(open, local / "file" / "x") == errno.ENOTDIR
    assert errno_of(os.listdir, local / "file") == errno.ENOTDIR
    assert errno_of(open, local / "dir", "w") == errno.EISDIR
    assert errno_of(os.unlink, local / "dir") == errno.EISDIR
    assert errno_of(os.rename, local / "file", local / "dir") == errno.EISDIR
    assert errno_of(os.rename, local / "dir", local / "file") == errno.ENOTDIR
    assert errno_of(open, local / ("n" * 256), "w") == errno.ENAMETOOLONG
    (local / "other").write_text("z")
    flags = RENAME_NOREPLACE
    assert errno_of(renameat2, local / "file", local / "other", flags) == errno.EEXIST
    assert errno_of(renameat2, local / "file", local / "absent", RENAME_EXCHANGE) == errno.ENOENT
    # NOREPLACE onto a free name works.
    renameat2(local / "file", local / "moved", RENAME_NOREPLACE)
    assert (local / "moved").read_text() == "x"


def test_statfs(mount: Mount) -> None:
    info = os.statvfs(mount.target)
    assert info.f_namemax == 255
    assert info.f_blocks > 0
    assert info.f_bavail <= info.f_blocks


def test_read_only_mount(account: Account, api: MeshFS, tmp_path: Path) -> None:
    api.upload("/ro-check.txt", b"readable")
    with mounted(account, tmp_path / "ro", tmp_path / "cache", "--read-only") as ro:
        assert (ro.target / "ro-check.txt").read_bytes() == b"readable"
        for call, args in (
            (open, (ro.target / "new.txt", "w")),
            (open, (ro.target / "ro-check.txt", "a")),
            (os.mkdir, (ro.target / "newdir",)),
            (os.unlink, (ro.target / "ro-check.txt",)),
            (os.rename, (ro.target / "ro-check.txt", ro.target / "x")),
        ):
            with pytest.raises(OSError) as info:
                call(*args)  # type: ignore[operator]
            assert info.value.errno == errno.EROFS
    assert api.read_bytes("/ro-check.txt") == b"readable"


def test_a_file_read_twice_is_fetched_once(
    home: tuple[Path, str], api: MeshFS, server: Server
) -> None:
    local, remote = home
    api.upload(f"{remote}/twice.bin", os.urandom(300_000))
    node_id = api.meta(f"{remote}/twice.bin").node_id
    # The mount learns of the new file from the change feed.
    wait_for(lambda: (local / "twice.bin").exists(), 10, "the new file in the mount")
    before = server.log_path.read_text()
    first = (local / "twice.bin").read_bytes()
    second = (local / "twice.bin").read_bytes()
    assert first == second
    assert len(first) == 300_000

    def downloads() -> list[str]:
        log = server.log_path.read_text()[len(before) :]
        return re.findall(r"GET /files/download\S*" + re.escape(node_id), log)

    # The access log line is written once the answer has gone out: wait for it to land.
    wait_for(lambda: bool(downloads()), 10, "the download in the server's access log")
    assert len(downloads()) == 1, server.log_path.read_text()[len(before) :]


def test_a_readers_close_does_not_commit_a_writers_unfinished_file(
    home: tuple[Path, str], api: MeshFS
) -> None:
    local, remote = home
    (local / "shared.txt").write_text("first")
    with open(local / "shared.txt", "r+") as writer:
        writer.write("half")
        writer.flush()  # in the mount's spool now, not committed
        with open(local / "shared.txt") as reader:
            assert reader.read() == "halft"
        assert versions(api, f"{remote}/shared.txt") == 1
        writer.write("!")
    assert versions(api, f"{remote}/shared.txt") == 2
    assert api.read_bytes(f"{remote}/shared.txt") == b"half!"
