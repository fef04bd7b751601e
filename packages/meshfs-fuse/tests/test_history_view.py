"""The virtual inodes of ``.meshfs``: numbering, lifetime, names and option values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from meshfs_common.errors import NotFoundError
from meshfs_common.models import Version
from meshfs_fuse.history_view import FIRST_VIRTUAL, VirtualTree, parse_size, version_name


def version(version_id: str, created_at: datetime) -> Version:
    return Version(
        version_id=version_id, node_id="n1", size=1, content_hash="h", created_at=created_at
    )


def test_virtual_inodes_are_apart_from_node_inodes() -> None:
    tree = VirtualTree()
    made = tree.node("tree", "/a")
    assert all(tree.owns(ino) for ino in (tree.meta.ino, tree.control.ino, made.ino))
    assert not tree.owns(2**40)  # far beyond any node inode a mount counts up to
    assert made.ino >= FIRST_VIRTUAL


def test_a_held_inode_stays_the_same_and_is_freed_when_forgotten() -> None:
    tree = VirtualTree()
    held = tree.node("history", "/a.txt")
    held.lookups = 2
    assert tree.node("history", "/a.txt") is held
    tree.forget(held.ino, 1)
    assert tree.get(held.ino) is held
    tree.forget(held.ino, 1)
    with pytest.raises(NotFoundError):
        tree.get(held.ino)
    again = tree.node("history", "/a.txt")
    assert again.ino != held.ino  # never reused
    tree.forget(tree.meta.ino, 5)
    tree.forget(tree.control.ino, 5)
    assert tree.get(tree.meta.ino) is tree.meta  # the fixed ones stay
    tree.forget(12345, 1)  # unknown: ignored


def test_version_names_sort_oldest_first() -> None:
    start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    versions = [version(f"v{9 - i}", start + timedelta(microseconds=i)) for i in range(3)]
    names = [version_name(v) for v in versions]
    assert names[0] == "2026-01-02T03:04:05.000000Z_v9"
    assert sorted(names) == names


@pytest.mark.parametrize(
    ("text", "size"), [("4096", 4096), ("512M", 512 * 1024**2), ("4g", 4 * 1024**3)]
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "M", "lots", "-1M", "1.5G"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)
