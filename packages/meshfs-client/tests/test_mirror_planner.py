"""The sync rules (the planner) and the pieces around it, offline and fast.

The central property, checked with Hypothesis over every combination of local, remote and
synced states: repeatedly applying the planned step to a model of both sides always ends with
both sides equal, within a few steps, and never loses content (every content either side ever
held is on the server in the end or in its history).
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshfs_client.mirror._conflicts import ConflictPolicy, conflict_name
from meshfs_client.mirror._ignore import IgnoreRules
from meshfs_client.mirror._model import LocalNode, RemoteNode, SyncedNode, link_hash
from meshfs_client.mirror._planner import Action, agree, plan
from meshfs_client.mirror._state import StateDB, subtree_bounds

# --- the model ----------------------------------------------------------------------------------
# One path. Content is a small int (its "hash"); a directory is kind "dir".


def _local(kind: str | None, content: int, stat: int) -> LocalNode | None:
    if kind is None:
        return None
    if kind == "dir":
        return LocalNode("dir", inode=stat)
    return LocalNode("file", size=content, mtime_ns=stat, inode=1, content_hash=f"h{content}")


def _remote(kind: str | None, content: int, version: int) -> RemoteNode | None:
    if kind is None:
        return None
    if kind == "dir":
        return RemoteNode("dir", "d")
    return RemoteNode("file", "n", f"v{version}", f"h{content}", content)


@dataclass
class World:
    """Both sides of one path, the synced row, and every content ever committed remotely."""

    local: LocalNode | None
    remote: RemoteNode | None
    synced: SyncedNode | None
    history: set[str] = field(default_factory=set)
    copies: list[str] = field(default_factory=list)  # conflict copies' contents (new files)
    versions: int = 100

    def step(self, action: Action) -> None:
        kind = action.kind
        if kind == "record":
            if self.local is None or self.remote is None:
                self.synced = None
            else:
                self.synced = _synced(self.local, self.remote)
        elif kind == "upload":
            assert self.local is not None
            assert self.local.kind == "file"
            if action.if_none_match:
                assert self.remote is None, "If-None-Match: * would fail"
            else:
                assert self.remote is not None
                assert action.if_match == self.remote.version_id
            self.versions += 1
            self.remote = RemoteNode(
                "file", "n", f"v{self.versions}", self.local.content_hash, self.local.size
            )
            self.history.add(self.local.content_hash or "")
            self.synced = _synced(self.local, self.remote)
        elif kind == "download":
            assert self.remote is not None
            assert self.remote.kind == "file"
            assert self.local is None or self.local.kind == "file"
            self.local = LocalNode("file", self.remote.size, 999, 2, self.remote.content_hash)
            self.synced = _synced(self.local, self.remote)
        elif kind == "mkdir_local":
            assert self.remote is not None
            assert self.remote.kind == "dir"
            assert self.local is None
            self.local = LocalNode("dir", inode=7)
            self.synced = _synced(self.local, self.remote)
        elif kind == "mkdir_remote":
            assert self.local is not None
            assert self.local.kind == "dir"
            assert self.remote is None
            self.remote = RemoteNode("dir", "d")
            self.synced = _synced(self.local, self.remote)
        elif kind == "delete_local":
            assert self.local is not None
            assert self.synced is not None
            if self.local.kind == "file":
                assert self.local.content_hash == self.synced.content_hash, "unsynced edit lost"
            self.local = None
            self.synced = None
        elif kind == "delete_remote":
            assert self.remote is not None
            assert self.synced is not None
            expected = self.remote.node_id if self.remote.kind == "dir" else self.remote.version_id
            assert action.if_match == expected, "delete without the right precondition"
            self.remote = None
            self.synced = None
        elif kind in ("keep_both", "move_local_aside"):
            assert self.local is not None
            assert self.local.kind == "file"
            self.copies.append(self.local.content_hash or "")
            self.local = None
            self.synced = None
        elif kind == "move_remote_aside":
            assert self.remote is not None
            assert self.remote.kind == "file"
            self.copies.append(self.remote.content_hash or "")
            self.remote = None
            self.synced = None
        else:
            raise AssertionError(f"unexpected step {kind}")


def _synced(local: LocalNode, remote: RemoteNode) -> SyncedNode:
    return SyncedNode(
        local.kind,
        remote.node_id,
        remote.version_id,
        remote.content_hash,
        local.size,
        local.mtime_ns,
        local.inode,
    )


kinds = st.sampled_from([None, "file", "dir"])
contents = st.integers(0, 3)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    base_kind = draw(kinds)
    base_content = draw(contents)
    synced = None
    if base_kind is not None:
        synced = SyncedNode(
            base_kind,
            "d" if base_kind == "dir" else "n",
            None if base_kind == "dir" else "v1",
            None if base_kind == "dir" else f"h{base_content}",
            base_content if base_kind == "file" else 0,
            5 if base_kind == "file" else 0,
            1 if base_kind == "file" else 5,
        )
    # Each side either keeps the synced state or moves anywhere.
    if synced is not None and draw(st.booleans()):
        local = _local(base_kind, base_content, 5)
    else:
        local = _local(draw(kinds), draw(contents), draw(st.integers(6, 9)))
    if synced is not None and draw(st.booleans()):
        remote = _remote(base_kind, base_content, 1)
    else:
        remote = _remote(draw(kinds), draw(contents), draw(st.integers(2, 9)))
    history = {f"h{base_content}"} if base_kind == "file" else set()
    if remote is not None and remote.content_hash:
        history.add(remote.content_hash)
    return World(local, remote, synced, history)


@settings(max_examples=2000, deadline=None)
@given(worlds(), st.sampled_from(list(ConflictPolicy)))
def test_planning_converges_without_losing_content(world: World, policy: ConflictPolicy) -> None:
    local_content = world.local.content_hash if world.local and world.local.kind == "file" else None
    for _ in range(5):
        action = plan(world.local, world.remote, world.synced, policy)
        if action.kind == "nothing":
            break
        world.step(action)
    else:
        raise AssertionError(f"no agreement after 5 steps: {world}")
    assert agree(world.local, world.remote)
    if world.local is not None and world.remote is not None:
        assert world.synced is not None
    # No content lost: a local edit reached the server (or a conflict copy), and every
    # remote content is still in history.
    if local_content is not None:
        assert local_content in world.history or local_content in world.copies


def test_remote_edit_is_downloaded_local_edit_uploaded_with_precondition() -> None:
    synced = SyncedNode("file", "n", "v1", "h1", 1, 5, 1)
    same = LocalNode("file", 1, 5, 1)
    assert plan(same, RemoteNode("file", "n", "v2", "h2", 2), synced).kind == "download"
    edited = LocalNode("file", 2, 6, 1, "h2")
    step = plan(edited, RemoteNode("file", "n", "v1", "h1", 1), synced)
    assert step == Action("upload", if_match="v1")
    assert plan(edited, None, None) == Action("upload", if_none_match=True)


def test_conflict_rules() -> None:
    synced = SyncedNode("file", "n", "v1", "h1", 1, 5, 1)
    edited = LocalNode("file", 2, 6, 1, "h2")
    theirs = RemoteNode("file", "n", "v2", "h3", 3)
    # Last writer wins: our commit goes on top of the head we know.
    assert plan(edited, theirs, synced) == Action("upload", if_match="v2")
    assert plan(edited, theirs, synced, ConflictPolicy.KEEP_BOTH).kind == "keep_both"
    # An edit beats a delete, both ways.
    assert plan(None, theirs, synced).kind == "download"
    assert plan(edited, None, synced) == Action("upload", if_none_match=True)
    # A touched file with the same content is only re-recorded.
    touched = LocalNode("file", 1, 9, 1, "h1")
    assert plan(touched, RemoteNode("file", "n", "v1", "h1", 1), synced).kind == "record"
    # Both sides made the same change: nothing to transfer.
    assert plan(edited, RemoteNode("file", "n", "v2", "h2", 2), synced).kind == "record"
    # A directory keeps the name against a file.
    assert plan(LocalNode("file", 1, 1, 1, "h9"), RemoteNode("dir", "d"), None).kind == (
        "move_local_aside"
    )
    assert plan(LocalNode("dir", inode=3), RemoteNode("file", "n", "v", "h", 1), None).kind == (
        "move_remote_aside"
    )


def test_attribute_only_changes_are_planned_without_content() -> None:
    synced = SyncedNode("file", "n", "v1", "h1", 1, mtime_ns=5, inode=1, exec_bits=0)
    remote = RemoteNode("file", "n", "v1", "h1", 1, mode=0o644, mtime_ns=5)
    same = LocalNode("file", 1, 5, 1, "h1", mode=0o644)
    assert plan(same, remote, synced) == Action("nothing")
    chmodded = LocalNode("file", 1, 5, 1, "h1", mode=0o755)
    assert plan(chmodded, remote, synced) == Action("attributes_remote", if_match="v1")
    touched = LocalNode("file", 1, 9, 1, "h1", mode=0o644)
    assert plan(touched, remote, synced).kind == "attributes_remote"
    server_chmod = RemoteNode("file", "n", "v1", "h1", 1, mode=0o755, mtime_ns=5)
    assert plan(same, server_chmod, synced).kind == "attributes_local"
    server_utime = RemoteNode("file", "n", "v1", "h1", 1, mode=0o644, mtime_ns=7)
    assert plan(same, server_utime, synced).kind == "attributes_local"
    # Both changed differently: the local attributes win; the same change: only recorded.
    assert plan(chmodded, server_utime, synced).kind == "attributes_remote"
    both = RemoteNode("file", "n", "v1", "h1", 1, mode=0o755, mtime_ns=5)
    assert plan(chmodded, both, synced) == Action("record")
    # Unknown server attributes (after a write event) are not a change.
    assert plan(same, RemoteNode("file", "n", "v1", "h1", 1), synced) == Action("nothing")
    # A row from before attributes were mirrored compares none of them.
    old = SyncedNode("file", "n", "v1", "h1", 1, mtime_ns=5, inode=1)
    assert plan(chmodded, remote, old) == Action("nothing")


def test_links_are_planned_as_links() -> None:
    link = LocalNode("symlink", 1, 7, 2, link_hash("a"))
    assert plan(link, None, None) == Action("link_remote")
    remote = RemoteNode("symlink", "l", content_hash=link_hash("b"))
    assert plan(None, remote, None) == Action("link_local")
    synced = SyncedNode("symlink", "l", None, link_hash("b"), 1, 1, 2)
    assert plan(link, remote, synced) == Action("link_remote", if_match="l")  # retargeted
    assert plan(None, remote, synced) == Action("delete_remote", if_match="l")
    unchanged = LocalNode("symlink", 1, 1, 2, link_hash("b"))
    assert plan(unchanged, remote, synced) == Action("nothing")
    assert plan(unchanged, None, synced) == Action("delete_local")
    retargeted = RemoteNode("symlink", "m", content_hash=link_hash("c"))
    assert plan(unchanged, retargeted, synced) == Action("link_local")
    # A local file where the server now has a link (both new): the local one wins.
    file = LocalNode("file", 1, 1, 3, "h1")
    assert plan(file, remote, None) == Action("delete_remote", if_match="l")
    assert plan(link, RemoteNode("file", "n", "v1", "h1", 1), None) == Action(
        "link_remote", if_match="v1"
    )


def test_conflict_name_keeps_extension_and_limit() -> None:
    name = conflict_name("/a/report.final.pdf", host="laptop.local", now=0)
    assert name.startswith("/a/report.final (conflict laptop ")
    assert name.endswith(").pdf")
    long = conflict_name("/" + "x" * 250 + ".txt", host="h", now=0)
    assert len(long.rsplit("/", 1)[1].encode()) <= 255
    assert conflict_name("/.env", host="h", now=0).startswith("/.env (conflict h ")


def test_ignore_rules() -> None:
    rules = IgnoreRules(["build/", "*.log", "!keep.log"])
    assert rules.ignored("/build", is_dir=True)
    assert rules.ignored("/build/x.o")
    assert rules.ignored("/a/b.log")
    assert not rules.ignored("/keep.log")
    assert not rules.ignored("/a/b.txt")
    for temp in ("/.a.txt.swp", "/4913", "/a~", "/.#a", "/#a#", "/.a.1234abcd.meshfs-tmp"):
        assert rules.ignored(temp), temp
    assert rules.ignored("/.meshfsignore")


def test_state_db_moves_and_survives_reopen(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "s.sqlite3"
    db = StateDB(path)
    for rel in ("/d", "/d/a", "/d/a/b", "/d0", "/e"):
        db.set_remote(rel, RemoteNode("dir", rel))
    db.cursor = 42
    db.move_remote("/d", "/x")
    assert sorted(db.remote) == ["/d0", "/e", "/x", "/x/a", "/x/a/b"]
    db.set_synced("/x/a", SyncedNode("dir", "n"))
    db.move_synced("/x", "/y")
    assert "/y/a" in db.synced
    db.close()
    again = StateDB(path)
    assert sorted(again.remote) == ["/d0", "/e", "/x", "/x/a", "/x/a/b"]
    assert again.remote["/x/a"] == RemoteNode("dir", "/d/a")
    assert again.cursor == 42
    assert "/y/a" in again.synced
    again.close()
    assert subtree_bounds("/a") == ("/a/", "/a0")


def test_state_db_is_private(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """It names every mirrored file: 0600 in directories made 0700, whatever the umask, and an
    older readable one is tightened with a warning."""
    previous = os.umask(0o022)
    try:
        path = tmp_path / "state" / "mirror" / "s.sqlite3"
        db = StateDB(path)
        db.cursor = 1
        db.commit()
        for made in (path.parent, path.parent.parent):
            assert stat.S_IMODE(made.stat().st_mode) == 0o700
        for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
        db.close()
        path.chmod(0o644)
        with caplog.at_level(logging.WARNING, logger="meshfs.sync"):
            StateDB(path).close()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert f"{path} was readable by other users (mode 0644)" in caplog.text
    finally:
        os.umask(previous)
