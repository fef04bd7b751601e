"""Downloads are appended past the page cache where the filesystem allows it: the file must hold
exactly the bytes written, whatever the block sizes and wherever an earlier partial file ended,
on a disk (O_DIRECT: aligned pieces, a short tail through the page cache) and on tmpfs (which
refuses O_DIRECT)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshfs_client._disk_writer import BUFFER, AppendWriter

SHM = Path("/dev/shm")
PIECES = (1, 4095, 70_001, BUFFER, 3, BUFFER - 7, 262_144, 5)


def _append_all(path: Path, start: int) -> bytes:
    data = [os.urandom(n) for n in PIECES]
    with AppendWriter(path, start) as out:
        for piece in data:
            out.write(piece)
        out.finish()
    return b"".join(data)


@pytest.fixture(params=["disk", "tmpfs"])
def folder(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    if request.param == "disk":
        yield tmp_path
        return
    if not SHM.is_dir():
        pytest.skip("no tmpfs at /dev/shm")
    path = SHM / f"meshfs-test-{os.getpid()}-{id(request)}"
    path.mkdir()
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.mark.parametrize("earlier", [0, 1, 4096, 500_000, BUFFER + 17])
def test_appended_bytes_follow_an_earlier_partial_file_exactly(folder: Path, earlier: int) -> None:
    path = folder / "part"
    before = os.urandom(earlier)
    if earlier:
        path.write_bytes(before)
    added = _append_all(path, earlier)
    assert path.read_bytes() == before + added


@pytest.mark.skipif(sys.platform != "linux", reason="O_DIRECT is Linux's")
def test_a_disk_file_is_written_past_the_page_cache(tmp_path: Path) -> None:
    with AppendWriter(tmp_path / "part", 0) as out:
        assert out.direct
