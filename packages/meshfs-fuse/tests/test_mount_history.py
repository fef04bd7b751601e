"""``.meshfs`` through a real mount: file versions and the control file, with plain os calls."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from mount_testkit import Mount, wait_for

from meshfs_client import MeshFS


def test_meshfs_is_looked_up_but_not_listed(mount: Mount) -> None:
    root = mount.target
    assert ".meshfs" not in os.listdir(root)
    assert sorted(os.listdir(root / ".meshfs")) == ["control", "versions"]
    assert os.path.isdir(root / ".meshfs" / "versions")


def test_versions_listed_and_readable(home: tuple[Path, str], api: MeshFS, mount: Mount) -> None:
    local, remote = home
    contents = [b"first", b"second, longer", os.urandom(5 * 1024 * 1024 + 3)]
    for data in contents[:2]:
        (local / "doc.bin").write_bytes(data)
    api.upload(f"{remote}/doc.bin", contents[2])  # a write made elsewhere
    history = mount.target / ".meshfs" / "versions" / local.name / "doc.bin"
    assert os.listdir(mount.target / ".meshfs" / "versions" / local.name) == ["doc.bin"]
    wait_for(lambda: len(os.listdir(history)) == 3, 10, "the remote version to be listed")
    names = os.listdir(history)
    ids = [v.version_id for v in reversed(api.versions(f"{remote}/doc.bin"))]
    assert [name.rsplit("_", 1)[1] for name in sorted(names)] == ids
    for name, data in zip(sorted(names), contents, strict=True):
        assert (history / name).read_bytes() == data
        assert os.stat(history / name).st_size == len(data)


def test_nothing_inside_meshfs_can_change(home: tuple[Path, str], mount: Mount) -> None:
    local, _ = home
    (local / "a.txt").write_text("a")
    meta = mount.target / ".meshfs"
    history = meta / "versions" / local.name / "a.txt"
    (version,) = os.listdir(history)
    attempts = [
        lambda: (history / version).write_text("x"),
        lambda: open(history / version, "r+b").close(),
        lambda: os.truncate(history / version, 0),
        lambda: (history / "new").write_text("x"),
        lambda: os.mkdir(meta / "versions" / "d"),
        lambda: os.unlink(history / version),
        lambda: os.rename(history / version, history / "moved"),
        lambda: os.rename(local / "a.txt", meta / "versions" / "a.txt"),
        lambda: os.rmdir(meta / "versions"),
        lambda: os.rename(meta, mount.target / "elsewhere"),
        lambda: os.mkdir(meta / "control" / "x"),
    ]
    for attempt in attempts:
        with pytest.raises(OSError) as caught:
            attempt()
        assert caught.value.errno in (errno.EROFS, errno.ENOTDIR, errno.EEXIST), caught.value
    assert (local / "a.txt").read_text() == "a"
    assert (history / version).read_text() == "a"


def stats(control: Path) -> dict[str, str]:
    names = [n for n in os.listxattr(control) if n.startswith("meshfs.stats.")]
    return {n.removeprefix("meshfs.stats."): os.getxattr(control, n).decode() for n in names}


def test_control_stats_follow_reads_and_writes(home: tuple[Path, str], mount: Mount) -> None:
    local, _ = home
    control = mount.target / ".meshfs" / "control"
    before = stats(control)
    assert set(before) >= {
        "cache_hits",
        "cache_misses",
        "cache_bytes",
        "spool_files",
        "spool_bytes",
        "uncommitted",
        "feed_cursor",
        "feed_state",
    }
    wait_for(lambda: stats(control)["feed_state"] == "online", 10, "the feed to connect")
    (local / "s.bin").write_bytes(b"x" * 1000)
    wait_for(
        lambda: int(stats(control)["feed_cursor"]) > int(before["feed_cursor"]),
        10,
        "the feed cursor to move",
    )
    with open(local / "s.bin", "r+b") as out:
        out.write(b"y" * 10)
        out.flush()
        during = stats(control)
        assert during["spool_files"] == "1"
        assert during["spool_bytes"] == "1000"
        assert during["uncommitted"] == "1"
    after_write = stats(control)
    assert after_write["spool_files"] == "0"
    assert after_write["uncommitted"] == "0"
    (local / "s.bin").write_bytes(b"z" * 1000)
    (local / "s.bin").write_bytes(b"x" * 1000)  # the content of the first version again
    history = mount.target / ".meshfs" / "versions" / local.name / "s.bin"
    first, _, third, fourth = sorted(os.listdir(history))
    assert (history / third).read_bytes() == b"z" * 1000
    read_once = stats(control)
    assert int(read_once["cache_misses"]) > int(after_write["cache_misses"])
    assert int(read_once["cache_bytes"]) >= 1000
    assert (history / first).read_bytes() == b"x" * 1000
    assert (history / fourth).read_bytes() == b"x" * 1000  # same content: from the cache
    assert int(stats(control)["cache_hits"]) > int(read_once["cache_hits"])


def test_control_options_are_validated_and_take_effect(
    home: tuple[Path, str], mount: Mount
) -> None:
    local, _ = home
    control = mount.target / ".meshfs" / "control"
    (local / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    assert (local / "big.bin").stat().st_size == 3 * 1024 * 1024
    history = mount.target / ".meshfs" / "versions" / local.name / "big.bin"
    (version,) = os.listdir(history)
    (history / version).read_bytes()
    assert int(os.getxattr(control, "meshfs.stats.cache_bytes")) >= 3 * 1024 * 1024
    os.setxattr(control, "meshfs.option.cache_size", b"2M")
    assert os.getxattr(control, "meshfs.option.cache_size") == str(2 * 1024 * 1024).encode()
    assert int(os.getxattr(control, "meshfs.stats.cache_bytes")) <= 2 * 1024 * 1024
    os.setxattr(control, "meshfs.option.attr_ttl", b"0")
    os.setxattr(control, "meshfs.option.entry_ttl", b"2.5")
    assert os.getxattr(control, "meshfs.option.attr_ttl") == b"0"
    assert os.getxattr(control, "meshfs.option.entry_ttl") == b"2.5"
    for name, value in [
        ("meshfs.option.cache_size", b"lots"),
        ("meshfs.option.cache_size", b"-5M"),
        ("meshfs.option.cache_size", b"1"),
        ("meshfs.option.attr_ttl", b"-1"),
        ("meshfs.option.entry_ttl", b"soon"),
        ("meshfs.option.entry_ttl", b"nan"),
    ]:
        with pytest.raises(OSError) as caught:
            os.setxattr(control, name, value)
        assert caught.value.errno == errno.EINVAL, (name, value)
    assert os.getxattr(control, "meshfs.option.entry_ttl") == b"2.5"
    with pytest.raises(OSError) as stat_set:
        os.setxattr(control, "meshfs.stats.cache_hits", b"0")
    assert stat_set.value.errno == errno.ENOTSUP
    # Anywhere else, xattrs are the node's own (kept by the server).
    os.setxattr(local / "big.bin", "user.note", b"x")
    assert os.getxattr(local / "big.bin", "user.note") == b"x"
