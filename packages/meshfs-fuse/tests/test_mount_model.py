"""Random sequences of file operations give the same results on the mount as on a local disk."""

from __future__ import annotations

import itertools
import os
import shutil
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
    except OSError as exc:
        return exc.errno
    return None


def tree(root: Path) -> dict[str, bytes | None]:
    result: dict[str, bytes | None] = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs:
            result[os.path.relpath(os.path.join(directory, name), root)] = None
        for name in files:
            full = os.path.join(directory, name)
            result[os.path.relpath(full, root)] = Path(full).read_bytes()
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
