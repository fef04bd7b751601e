"""Feed events update the inode table and queue kernel invalidations; echoes cost nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import trio

from meshfs_client import FeedReset
from meshfs_common.errors import NotFoundError
from meshfs_common.models import ChangeEvent, Entry
from meshfs_fuse.coherence import Coherence, Invalidation, Invalidator
from meshfs_fuse.inodes import ROOT, InodeTable

AT = datetime(2026, 1, 1, tzinfo=UTC)


def entry(node_id: str, path: str, kind: str = "file", version: str | None = "v1") -> Entry:
    return Entry(
        node_id=node_id,
        path=path,
        name=path.rsplit("/", 1)[-1],
        kind=kind,  # type: ignore[arg-type]
        created_at=AT,
        modified_at=AT,
        size=1,
        version_id=version if kind == "file" else None,
    )


def event(seq: int, type_: str, node_id: str, path: str, **fields: object) -> ChangeEvent:
    fields.setdefault("kind", "file")
    return ChangeEvent(seq=seq, type=type_, node_id=node_id, path=path, at=AT, **fields)  # type: ignore[arg-type]


class Recorder(Invalidator):
    def __init__(self) -> None:
        super().__init__()
        self.queued: list[Invalidation] = []

    def inode(self, ino: int) -> None:
        self.queued.append(Invalidation(ino))

    def entry(self, parent: int, name: str) -> None:
        self.queued.append(Invalidation(parent, name))


@pytest.fixture
def setup() -> tuple[InodeTable, Recorder, Coherence]:
    table = InodeTable(entry("root", "/", "dir"))
    recorder = Recorder()
    return table, recorder, Coherence(table, recorder)


def test_a_new_version_elsewhere_invalidates_the_inode(
    setup: tuple[InodeTable, Recorder, Coherence],
) -> None:
    table, recorder, coherence = setup
    f = table.attach(ROOT, "f", entry("n-f", "/f"))
    coherence.apply(event(5, "write", "n-f", "/f", version_id="v2", size=9))
    assert f.entry is not None
    assert (f.entry.version_id, f.entry.size) == ("v2", 9)
    assert recorder.queued == [Invalidation(f.ino)]
    assert coherence.cursor == 5


def test_the_mounts_own_write_is_an_echo(setup: tuple[InodeTable, Recorder, Coherence]) -> None:
    table, recorder, coherence = setup
    table.attach(ROOT, "f", entry("n-f", "/f", version="v7"))
    coherence.apply(event(1, "write", "n-f", "/f", version_id="v7", size=1))
    table.attach(ROOT, "d", entry("n-d", "/d", "dir"))
    coherence.apply(event(2, "mkdir", "n-d", "/d", kind="dir"))
    assert recorder.queued == []
    assert coherence.echoes == 2


def test_a_new_name_updates_a_cached_listing(
    setup: tuple[InodeTable, Recorder, Coherence],
) -> None:
    table, _, coherence = setup
    root = table.get(ROOT)
    root.listing = {}
    table.negative.add(ROOT, "g")
    coherence.apply(event(1, "write", "n-g", "/g", version_id="v1", size=3))
    assert root.listing["g"].node_id == "n-g"
    assert (ROOT, "g") not in table.negative


def test_delete_detaches_and_invalidates_the_name(
    setup: tuple[InodeTable, Recorder, Coherence],
) -> None:
    table, recorder, coherence = setup
    f = table.attach(ROOT, "f", entry("n-f", "/f"))
    table.remember(f)
    coherence.apply(event(1, "delete", "n-f", "/f"))
    assert table.child(ROOT, "f") is None
    assert recorder.queued == [Invalidation(ROOT, "f")]
    coherence.apply(event(2, "delete", "n-f", "/f"))  # again: nothing left to do
    assert recorder.queued == [Invalidation(ROOT, "f")]


def test_rename_moves_the_inode(setup: tuple[InodeTable, Recorder, Coherence]) -> None:
    table, recorder, coherence = setup
    d = table.attach(ROOT, "d", entry("n-d", "/d", "dir"))
    f = table.attach(ROOT, "f", entry("n-f", "/f"))
    coherence.apply(event(1, "rename", "n-f", "/d/g", old_path="/f", version_id="v1"))
    assert table.child(d.ino, "g") is f
    assert table.path_of(f.ino) == "/d/g"
    assert Invalidation(ROOT, "f") in recorder.queued
    recorder.queued.clear()
    coherence.apply(event(2, "rename", "n-f", "/d/g", old_path="/f", version_id="v1"))
    assert recorder.queued == []  # already so: an echo


def test_rename_over_a_file_keeps_the_targets_node_id(
    setup: tuple[InodeTable, Recorder, Coherence],
) -> None:
    table, recorder, coherence = setup
    target = table.attach(ROOT, "doc", entry("n-doc", "/doc"))
    temporary = table.attach(ROOT, ".doc.swp", entry("n-swp", "/.doc.swp"))
    coherence.apply(
        event(
            1, "rename", "n-doc", "/doc", old_path="/.doc.swp",
            replaced_node_id="n-swp", version_id="v9", size=4,
        )
    )  # fmt: skip
    assert table.child(ROOT, "doc") is temporary
    assert table.by_node("n-doc") is temporary
    assert target.parent is None
    assert Invalidation(ROOT, "doc") in recorder.queued
    assert Invalidation(ROOT, ".doc.swp") in recorder.queued


def test_reset_forgets_every_name_not_open(setup: tuple[InodeTable, Recorder, Coherence]) -> None:
    table, recorder, coherence = setup
    f = table.attach(ROOT, "f", entry("n-f", "/f"))
    g = table.attach(ROOT, "g", entry("n-g", "/g"))
    table.opened(g)
    table.get(ROOT).listing = {}
    coherence.apply(FeedReset(cursor=40))
    assert coherence.cursor == 40
    assert table.child(ROOT, "f") is None
    assert table.child(ROOT, "g") is g
    assert table.get(ROOT).listing is None
    assert recorder.queued == [Invalidation(ROOT, "f")]
    assert f.parent is None


async def test_invalidator_runs_queued_calls_in_a_thread() -> None:
    invalidator = Invalidator()
    # Not mounted: pyfuse3 refuses, and the invalidator logs and goes on with the next one.
    invalidator.inode(12345)
    invalidator.entry(ROOT, "x")
    invalidator.close()
    with trio.fail_after(5):
        await invalidator.run()
    assert invalidator.done == 2


def test_a_rename_the_table_already_shows_still_updates_listings(
    setup: tuple[InodeTable, Recorder, Coherence],
) -> None:
    table, _, coherence = setup
    root = table.get(ROOT)
    d = table.attach(ROOT, "d", entry("n-d", "/d", "dir"))
    root.listing = {"f": entry("n-f", "/f"), "d": entry("n-d", "/d", "dir")}
    d.listing = {}
    # A lookup found the file at its new name before the rename event arrived.
    f = table.attach(d.ino, "g", entry("n-f", "/d/g"))
    coherence.apply(event(1, "rename", "n-f", "/d/g", old_path="/f", version_id="v1"))
    assert "f" not in root.listing
    assert d.listing["g"].node_id == "n-f"
    assert table.child(d.ino, "g") is f


def test_an_entry_fetched_before_a_remote_delete_is_not_attached_again(
    setup: tuple[InodeTable, Recorder, Coherence],
) -> None:
    table, _, coherence = setup
    d = table.attach(ROOT, "d", entry("n-d", "/d", "dir"))
    d.listing = {"f": entry("n-f", "/d/f")}
    listed = entry("n-f", "/d/f")  # what an open directory handle (or a lookup) holds
    table.attach(d.ino, "f", listed)
    coherence.apply(event(1, "delete", "n-f", "/d/f"))
    # readdir of the handle opened before the delete, or a lookup answered before it.
    with pytest.raises(NotFoundError):
        table.attach(d.ino, "f", listed)
    assert table.child(d.ino, "f") is None
    assert sorted(set(d.listing) | set(d.children)) == []  # what the next opendir lists


def test_a_lookup_answered_before_a_remote_delete_is_not_attached(
    setup: tuple[InodeTable, Recorder, Coherence],
) -> None:
    table, _, coherence = setup
    d = table.attach(ROOT, "d", entry("n-d", "/d", "dir"))
    coherence.apply(event(1, "delete", "n-f", "/d/f"))  # applied while the lookup was out
    with pytest.raises(NotFoundError):
        table.attach(d.ino, "f", entry("n-f", "/d/f"))
    assert d.children == {}


def test_an_entry_fetched_before_a_remote_rename_does_not_move_it_back(
    setup: tuple[InodeTable, Recorder, Coherence],
) -> None:
    table, _, coherence = setup
    d = table.attach(ROOT, "d", entry("n-d", "/d", "dir"))
    f = table.attach(ROOT, "f", entry("n-f", "/f"))
    coherence.apply(event(1, "rename", "n-f", "/d/g", old_path="/f", version_id="v1"))
    with pytest.raises(NotFoundError):
        table.attach(ROOT, "f", entry("n-f", "/f"))
    assert table.child(d.ino, "g") is f
    assert table.child(ROOT, "f") is None


def test_a_name_the_feed_brings_back_is_attached_again(
    setup: tuple[InodeTable, Recorder, Coherence],
) -> None:
    table, _, coherence = setup
    f = table.attach(ROOT, "f", entry("n-f", "/f"))
    coherence.apply(event(1, "rename", "n-f", "/g", old_path="/f", version_id="v1"))
    coherence.apply(event(2, "rename", "n-f", "/f", old_path="/g", version_id="v1"))
    assert table.child(ROOT, "f") is f
    coherence.apply(event(3, "delete", "n-f", "/f"))
    coherence.apply(event(4, "restore", "n-f", "/f", version_id="v1"))
    assert table.attach(ROOT, "f", entry("n-f", "/f")).node_id == "n-f"


def posix_entry(node_id: str, path: str, kind: str = "file") -> Entry:
    plain = entry(node_id, path, kind)
    return Entry(**{**{f: getattr(plain, f) for f in plain.__struct_fields__},
                    "mode": 0o644, "uid": 1, "gid": 1, "mtime_ns": 5, "atime_ns": 5,
                    "ctime_ns": 5})  # fmt: skip


def test_an_attribute_change_elsewhere_updates_the_entry_and_invalidates(
    setup: tuple[InodeTable, Recorder, Coherence],
) -> None:
    table, recorder, coherence = setup
    f = table.attach(ROOT, "f", posix_entry("n-f", "/f"))
    changed = {"mode": 0o600, "mtime_ns": 10**18}
    coherence.apply(event(1, "attributes", "n-f", "/f", attributes=changed))
    assert f.entry is not None
    assert (f.entry.mode, f.entry.mtime_ns, f.entry.uid) == (0o600, 10**18, 1)
    assert f.entry.modified_at == datetime.fromtimestamp(1e9, tz=UTC)
    assert recorder.queued == [Invalidation(f.ino)]
    # The same values again (this mount's own chmod) are an echo.
    coherence.apply(event(2, "attributes", "n-f", "/f", attributes={"mode": 0o600}))
    assert coherence.echoes == 1
    # An xattr event changes nothing cached.
    coherence.apply(event(3, "xattr", "n-f", "/f", xattr_name="user.a", xattr_action="set"))
    assert recorder.queued == [Invalidation(f.ino)]


def test_a_link_elsewhere_marks_the_node_stale_and_drops_the_listing(
    setup: tuple[InodeTable, Recorder, Coherence],
) -> None:
    table, recorder, coherence = setup
    root = table.get(ROOT)
    f = table.attach(ROOT, "f", posix_entry("n-f", "/f"))
    root.listing = {"f": posix_entry("n-f", "/f")}
    coherence.apply(event(1, "link", "n-f", "/g"))
    assert f.stale
    assert root.listing is None  # the next opendir lists the new name with its attributes
    assert recorder.queued == [Invalidation(f.ino)]


def test_an_exchange_elsewhere_swaps_the_two_names(
    setup: tuple[InodeTable, Recorder, Coherence],
) -> None:
    table, _, coherence = setup
    a = table.attach(ROOT, "a", posix_entry("n-a", "/a"))
    d = table.attach(ROOT, "d", posix_entry("n-d", "/d", "dir"))
    first = event(1, "rename", "n-a", "/d", old_path="/a", exchanged_with="n-d")
    second = event(2, "rename", "n-d", "/a", old_path="/d", exchanged_with="n-a", kind="dir")
    coherence.apply(first)
    coherence.apply(second)  # finds the swap done
    assert table.child(ROOT, "d") is a
    assert table.child(ROOT, "a") is d
    assert table.path_of(a.ino) == "/d"
    assert table.by_node("n-a") is a
    assert coherence.echoes == 1
