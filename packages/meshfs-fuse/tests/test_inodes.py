"""The inode table: attach, move, detach, lookup counts, freeing at forget, negative entries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meshfs_common.errors import NotFoundError
from meshfs_common.models import Entry
from meshfs_fuse.attributes import NodeAttributes, Owner, to_entry_attributes
from meshfs_fuse.inodes import ROOT, InodeTable, NegativeEntries

NOW = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)


def entry(node_id: str, path: str, kind: str = "file", size: int = 0) -> Entry:
    name = path.rsplit("/", 1)[-1]
    return Entry(
        node_id=node_id,
        path=path,
        name=name,
        kind=kind,  # type: ignore[arg-type]
        created_at=NOW,
        modified_at=NOW,
        size=size,
    )


@pytest.fixture
def table() -> InodeTable:
    return InodeTable(entry("root", "/", "dir"), generation=7)


def test_attach_resolve_and_paths(table: InodeTable) -> None:
    d = table.attach(ROOT, "d", entry("n-d", "/d", "dir"))
    f = table.attach(d.ino, "f", entry("n-f", "/d/f"))
    assert table.path_of(f.ino) == "/d/f"
    assert table.resolve("/d/f") is f
    assert table.by_node("n-f") is f
    assert table.attach(d.ino, "f", entry("n-f", "/d/f", size=3)) is f  # same node, same inode
    assert f.entry is not None
    assert f.entry.size == 3


def test_a_moved_directory_moves_its_children_paths(table: InodeTable) -> None:
    d = table.attach(ROOT, "d", entry("n-d", "/d", "dir"))
    f = table.attach(d.ino, "f", entry("n-f", "/d/f"))
    e = table.attach(ROOT, "e", entry("n-e", "/e", "dir"))
    table.place(d, e.ino, "d2")
    assert table.path_of(f.ino) == "/e/d2/f"
    assert table.child(ROOT, "d") is None


def test_forget_frees_only_when_unused(table: InodeTable) -> None:
    f = table.attach(ROOT, "f", entry("n-f", "/f"))
    table.remember(f, 2)
    table.opened(f)
    table.forget(f.ino, 2)
    assert table.find(f.ino) is f  # still open
    table.released(f)
    assert table.find(f.ino) is None
    assert table.by_node("n-f") is None
    assert table.child(ROOT, "f") is None
    with pytest.raises(NotFoundError):
        table.get(f.ino)
    table.forget(f.ino, 1)  # unknown inode: never raises
    table.forget(ROOT, 100)
    assert table.find(ROOT) is not None


def test_unlinked_open_file_stays_until_released(table: InodeTable) -> None:
    f = table.attach(ROOT, "f", entry("n-f", "/f"))
    table.remember(f)
    table.opened(f)
    table.detach(f)
    assert table.child(ROOT, "f") is None
    assert table.path_of(f.ino) is None
    table.forget(f.ino, 1)
    assert table.find(f.ino) is f
    table.released(f)
    assert table.find(f.ino) is None


def test_placing_over_a_name_detaches_the_old_inode(table: InodeTable) -> None:
    old = table.attach(ROOT, "f", entry("n-old", "/f"))
    table.remember(old)
    tmp = table.attach(ROOT, "f.tmp", entry("n-tmp", "/f.tmp"))
    table.remember(tmp)
    table.place(tmp, ROOT, "f")
    # The server keeps the target's node id on a rename over it.
    table.set_entry(tmp, entry("n-old", "/f", size=5))
    assert table.child(ROOT, "f") is tmp
    assert table.by_node("n-old") is tmp
    assert old.parent is None


def test_pending_inode_gets_its_node_at_commit(table: InodeTable) -> None:
    p = table.add_pending(ROOT, "new")
    assert p.node_id is None
    assert table.child(ROOT, "new") is p
    table.set_entry(p, entry("n-new", "/new"))
    assert table.by_node("n-new") is p


def test_inode_numbers_are_never_given_to_another_node(table: InodeTable) -> None:
    seen = set()
    for i in range(100):
        node = table.attach(ROOT, f"f{i}", entry(f"n{i}", f"/f{i}"))
        seen.add(node.ino)
        table.detach(node)
    assert len(seen) == 100
    assert len(table) == 1  # only the root is left


def test_a_forgotten_node_gets_its_number_back_and_no_other_node_takes_it(
    table: InodeTable,
) -> None:
    f = table.attach(ROOT, "f", entry("n-f", "/f"))
    number = f.ino
    table.detach(f)  # the kernel forgot it (no lookups): freed
    assert table.find(number) is None
    g = table.attach(ROOT, "g", entry("n-g", "/g"))
    assert g.ino != number
    again = table.attach(ROOT, "f", entry("n-f", "/f"))
    assert again.ino == number


def test_a_file_renamed_over_another_keeps_its_number(table: InodeTable) -> None:
    # The server keeps the target's node (and history); the mount keeps the moved file's
    # inode number at the new name, also after the kernel forgets and looks it up again.
    source = table.attach(ROOT, "src", entry("n-src", "/src"))
    target = table.attach(ROOT, "dst", entry("n-dst", "/dst"))
    table.remember(target)  # still held by the kernel
    table.place(source, ROOT, "dst")
    table.set_entry(source, entry("n-dst", "/dst"))
    assert table.child(ROOT, "dst") is source
    assert not target.attached
    number = source.ino
    table.detach(source)
    assert table.attach(ROOT, "dst", entry("n-dst", "/dst")).ino == number
    # The replaced inode, still held, keeps its own number; the source's old id has none.
    assert table.find(target.ino) is target
    assert table.attach(ROOT, "back", entry("n-src", "/back")).ino not in (number, target.ino)


def test_remembered_numbers_are_bounded() -> None:
    table = InodeTable(entry("root", "/", "dir"), numbers_capacity=2)
    numbers = {}
    for name in "abc":
        node = table.attach(ROOT, name, entry(f"n-{name}", f"/{name}"))
        numbers[name] = node.ino
        table.detach(node)
    assert table.attach(ROOT, "c", entry("n-c", "/c")).ino == numbers["c"]
    assert table.attach(ROOT, "a", entry("n-a", "/a")).ino not in numbers.values()


def test_negative_entries_are_bounded() -> None:
    negative = NegativeEntries(capacity=3)
    for name in "abcd":
        negative.add(ROOT, name)
    assert len(negative) == 3
    assert (ROOT, "a") not in negative
    assert (ROOT, "d") in negative
    negative.discard(ROOT, "d")
    assert (ROOT, "d") not in negative


def test_attaching_a_name_clears_its_negative_entry(table: InodeTable) -> None:
    table.negative.add(ROOT, "f")
    table.attach(ROOT, "f", entry("n-f", "/f"))
    assert (ROOT, "f") not in table.negative


def test_entry_attributes_from_a_server_entry() -> None:
    owner = Owner(1000, 1001)
    attrs = NodeAttributes.from_entry(entry("n", "/f", size=1234), owner)
    result = to_entry_attributes(42, 7, attrs, 60)
    assert result.st_ino == 42
    assert result.generation == 7
    assert oct(result.st_mode) == "0o100644"
    assert (result.st_uid, result.st_gid) == (1000, 1001)
    assert result.st_size == 1234
    assert result.st_blocks == 3
    assert result.st_mtime_ns == int(NOW.timestamp()) * 10**9 + 600_000_000
    directory = NodeAttributes.from_entry(entry("d", "/d", "dir"), owner)
    assert oct(to_entry_attributes(2, 7, directory, 60).st_mode) == "0o40755"


def test_entry_attributes_from_the_servers_posix_model() -> None:
    owner = Owner(1000, 1001)
    stored = Entry(node_id="n", path="/p", name="p", kind="fifo", created_at=NOW,
                   modified_at=NOW, mode=0o4751, uid=7, gid=8, mtime_ns=30, atime_ns=20,
                   ctime_ns=40, nlink=3, rdev=0)  # fmt: skip
    result = to_entry_attributes(5, 7, NodeAttributes.from_entry(stored, owner), 60)
    assert oct(result.st_mode) == "0o14751"  # S_IFIFO | 4751
    assert (result.st_uid, result.st_gid, result.st_nlink) == (7, 8, 3)
    assert (result.st_mtime_ns, result.st_atime_ns, result.st_ctime_ns) == (30, 20, 40)
    link = Entry(node_id="l", path="/l", name="l", kind="symlink", created_at=NOW,
                 modified_at=NOW, mode=0o777, target="../t", ctime_ns=1)  # fmt: skip
    attrs = to_entry_attributes(6, 7, NodeAttributes.from_entry(link, owner), 60)
    assert oct(attrs.st_mode) == "0o120777"
    assert attrs.st_size == 4
    device = Entry(node_id="c", path="/c", name="c", kind="chardev", created_at=NOW,
                   modified_at=NOW, mode=0o600, rdev=259, ctime_ns=1)  # fmt: skip
    attrs = to_entry_attributes(7, 7, NodeAttributes.from_entry(device, owner), 60)
    assert attrs.st_rdev == 259
