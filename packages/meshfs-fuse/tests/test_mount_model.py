"""Random sequences of file operations give the same results on the mount as on a local disk:
names, contents, modes, times set, symbolic and hard links, extended attributes."""

from __future__ import annotations

import itertools
import os
import shutil
import stat
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mount_testkit import Mount

NAMES = ["a", "b", "d", "d/a", "d/e", "e"]
data = st.binary(max_size=300)
operations = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(NAMES), data),
    st.tuples(st.just("append"), st.sampled_from(NAMES), data),
    st.tuples(st.just("pwrite"), st.sampled_from(NAMES), st.integers(0, 400), data),
    st.tuples(st.just("truncate"), st.sampled_from(NAMES), st.integers(0, 400)),
    st.tuples(st.just("rename"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
    st.tuples(st.just("unlink"), st.sampled_from(NAMES)),
    st.tuples(st.just("mkdir"), st.sampled_from(NAMES)),
    st.tuples(st.just("rmdir"), st.sampled_from(NAMES)),
    st.tuples(st.just("chmod"), st.sampled_from(NAMES), st.sampled_from([0o600, 0o755, 0o4711])),
    st.tuples(st.just("utime"), st.sampled_from(NAMES), st.integers(0, 2**62)),
    st.tuples(st.just("symlink"), st.sampled_from(NAMES), st.sampled_from(["a", "../x", "d/e"])),
    st.tuples(st.just("link"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
    st.tuples(st.just("setxattr"), st.sampled_from(NAMES), st.sampled_from(["user.a", "user.b"])),
    st.tuples(st.just("removexattr"), st.sampled_from(NAMES), st.just("user.a")),
)
_runs = itertools.count()


def apply(root: Path, operation: tuple[object, ...]) -> object:
    """Run one operation under *root*; its result or the errno it failed with."""
    kind, name, *rest = operation
    path = root / str(name)
    try:
        if kind == "write":
            path.write_bytes(rest[0])  # type: ignore[arg-type]
        elif kind == "append":
            with open(path, "ab") as out:
                out.write(rest[0])  # type: ignore[arg-type]
        elif kind == "pwrite":
            fd = os.open(path, os.O_WRONLY)
            try:
                os.pwrite(fd, rest[1], rest[0])  # type: ignore[arg-type]
            finally:
                os.close(fd)
        elif kind == "truncate":
            os.truncate(path, rest[0])  # type: ignore[arg-type]
        elif kind == "rename":
            os.rename(path, root / str(rest[0]))
        elif kind == "unlink":
            os.unlink(path)
        elif kind == "mkdir":
            os.mkdir(path)
        elif kind == "rmdir":
            os.rmdir(path)
        elif kind == "chmod":
            if os.path.islink(path):  # Linux has no lchmod: a link's own mode never changes
                return "a symbolic link"
            os.chmod(path, rest[0])  # type: ignore[arg-type]
        elif kind == "utime":
            os.utime(path, ns=(rest[0], rest[0]), follow_symlinks=False)  # type: ignore[arg-type]
            return os.lstat(path).st_mtime_ns, os.lstat(path).st_atime_ns
        elif kind == "symlink":
            os.symlink(str(rest[0]), path)
        elif kind == "link" and path.is_symlink():
            return "hard links are for files (the server refuses a link's link)"
        elif kind == "link":
            os.link(path, root / str(rest[0]), follow_symlinks=False)
        elif kind == "setxattr":
            os.setxattr(path, str(rest[0]), str(name).encode(), follow_symlinks=False)
        elif kind == "removexattr":
            os.removexattr(path, str(rest[0]), follow_symlinks=False)
    except OSError as exc:
        return exc.errno
    return None


def tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Every node under *root*: kind, mode, content or target, link count, xattrs."""
    result: dict[str, tuple[object, ...]] = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(directory, name)
            info = os.lstat(full)
            kind = stat.S_IFMT(info.st_mode)
            if stat.S_ISLNK(info.st_mode):
                body: object = os.readlink(full)
                xattrs: list[tuple[str, bytes]] = []
            else:
                body = Path(full).read_bytes() if stat.S_ISREG(info.st_mode) else None
                xattrs = sorted(
                    (x, os.getxattr(full, x)) for x in os.listxattr(full) if x.startswith("user.")
                )
            nlink = info.st_nlink if stat.S_ISREG(info.st_mode) else None
            mode = stat.S_IMODE(info.st_mode) if not stat.S_ISLNK(info.st_mode) else None
            result[os.path.relpath(full, root)] = (kind, mode, body, nlink, xattrs)
    return result


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(operations, min_size=1, max_size=12))
def test_the_mount_behaves_like_a_local_disk(
    steps: list[tuple[object, ...]], mount: Mount, tmp_path: Path
) -> None:
    run = next(_runs)
    here, there = tmp_path / f"local-{run}", mount.target / f"model-{run}"
    here.mkdir()
    there.mkdir()
    try:
        for step in steps:
            assert apply(there, step) == apply(here, step), step
            assert tree(there) == tree(here), step
    finally:
        shutil.rmtree(here)
