"""Diffs, change summaries and snapshots against a REAL meshfs-server process: the async client,
the blocking facade, the CLI, and the agent scenario (an agent token edits a project, the owner
sees what changed, diffs it and restores the snapshot)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
from meshfs_client_testkit import Account

from meshfs_client import MeshFS, MeshFSClient
from meshfs_common.errors import ForbiddenError, NotFoundError, ReadOnlyError

pytestmark = pytest.mark.live

MESHFS = str(Path(sys.executable).with_name("meshfs"))


async def tree(client: MeshFSClient, path: str) -> dict[str, bytes | None]:
    """Every path below *path* with its content (None for a directory)."""
    out: dict[str, bytes | None] = {}
    async for entry in client.walk(path):
        out[entry.path] = None if entry.kind == "dir" else await client.read_bytes(entry.path)
    return out


async def test_diff_between_versions(client: MeshFSClient) -> None:
    first = await client.upload("/notes.txt", b"alpha\nbeta\n")
    second = await client.upload("/notes.txt", b"alpha\ngamma\n")
    head = await client.diff("/notes.txt")
    assert head.old.version_id == first.version.version_id
    assert head.new.version_id == second.version.version_id
    assert "-beta\n+gamma\n" in (head.unified or "")
    assert (head.added, head.removed) == (1, 1)
    same = await client.diff("/notes.txt", first.version.version_id, first.version.version_id)
    assert same.identical
    assert same.unified == ""
    await client.upload("/blob", b"\x00\x01")
    await client.upload("/blob", b"\x00\x02")
    binary = await client.diff("/blob")
    assert binary.unified is None
    assert binary.no_text == "binary"
    assert binary.old.content_hash != binary.new.content_hash
    # A deleted file is still diffable by its path.
    await client.delete("/notes.txt")
    gone = await client.diff("/notes.txt")
    assert gone.new.version_id == second.version.version_id
    with pytest.raises(NotFoundError):
        await client.diff("/never-existed.txt")


async def test_changes_since_cursor_and_time(client: MeshFSClient) -> None:
    await client.upload("/w/a.txt", b"1\n")
    start = await client.current_cursor()
    await client.upload("/w/a.txt", b"1\n2\n")
    await client.upload("/w/b.txt", b"b\n")
    summary = await client.changes("/w", since_cursor=start)
    assert [(c.path, c.status) for c in summary.changes] == [
        ("/w/a.txt", "modified"),
        ("/w/b.txt", "created"),
    ]
    assert (summary.changes[0].added, summary.changes[0].removed) == (1, 0)
    assert summary.to_cursor == await client.current_cursor()
    by_time = await client.changes("/w", since_time=0.0)
    assert {c.path for c in by_time.changes} == {"/w", "/w/a.txt", "/w/b.txt"}


def test_blocking_facade_has_the_same_methods(account: Account) -> None:
    for name in (
        "diff", "changes", "snapshot_create", "snapshots", "snapshot", "snapshot_diff",
        "snapshot_restore", "snapshot_delete",
    ):  # fmt: skip
        blocking = inspect.signature(getattr(MeshFS, name)).parameters
        assert blocking == inspect.signature(getattr(MeshFSClient, name)).parameters, name
    with MeshFS(account.server.url, settings=account.settings) as fs:
        fs.upload("/b/x.txt", b"x\n")
        snap = fs.snapshot_create("/b", "blocking")
        fs.upload("/b/x.txt", b"y\n")
        assert [s.name for s in fs.snapshots("/b")] == ["blocking"]
        assert fs.snapshot("blocking").snapshot_id == snap.snapshot_id
        assert [c.status for c in fs.snapshot_diff("blocking").changes] == ["modified"]
        assert "+y" in (fs.diff("/b/x.txt").unified or "")
        assert len(fs.changes("/b", since_cursor=snap.cursor).changes) == 1
        restored = fs.snapshot_restore("blocking")
        assert restored.undo.name.startswith("before-restore-blocking-")
        assert fs.read_bytes("/b/x.txt") == b"x\n"
        assert fs.snapshot_delete("blocking").name == "blocking"
        assert [s.name for s in fs.snapshots("/b")] == [restored.undo.name]


async def test_agent_edits_then_owner_reviews_and_restores(account: Account) -> None:
    """The issue's scenario, with a real agent token on a real server."""
    async with account.client() as owner:
        await owner.upload("/proj/README.md", b"# Project\n\nStatus: draft\n")
        await owner.upload("/proj/src/app.py", b"def main():\n    return 1\n")
        await owner.upload("/proj/src/old.py", b"legacy = True\n")
        await owner.upload("/proj/notes.txt", b"keep me\n")
        await owner.upload("/outside.txt", b"not the agent's\n")
        before = await tree(owner, "/proj")
        snap = await owner.snapshot_create("/proj", "before-agent")
        agent_token = await owner.create_agent_token("refactor-bot", path_prefix="/proj")

    async with MeshFSClient(account.server.url, token=agent_token["token"],
                            settings=account.settings) as agent:  # fmt: skip
        await agent.upload("/proj/src/app.py", b"def main():\n    return 2\n\n\nmain()\n")
        await agent.upload("/proj/src/new_module.py", b"VALUE = 42\n")
        await agent.rename("/proj/src/old.py", "/proj/src/legacy.py")
        await agent.delete("/proj/notes.txt")
        await agent.upload("/proj/README.md", b"# Project\n\nStatus: refactored\n")
        # The agent's limits hold for history too.
        with pytest.raises(ForbiddenError):
            await agent.changes("/", since_cursor=snap.cursor)
        with pytest.raises(ForbiddenError):
            await agent.diff("/outside.txt")
        assert [s.name for s in await agent.snapshots()] == ["before-agent"]
    async with MeshFSClient(account.server.url, token=(await _read_only_token(account)),
                            settings=account.settings) as reviewer:  # fmt: skip
        assert (await reviewer.snapshot_diff("before-agent")).changes
        with pytest.raises(ReadOnlyError):
            await reviewer.snapshot_restore("before-agent")

    async with account.client() as owner:
        # What changed, per file, and who did it.
        summary = await owner.changes("/proj", since_cursor=snap.cursor)
        seen = {(c.status, c.path, c.old_path) for c in summary.changes}
        assert seen == {
            ("modified", "/proj/README.md", None),
            ("modified", "/proj/src/app.py", None),
            ("created", "/proj/src/new_module.py", None),
            ("renamed", "/proj/src/legacy.py", "/proj/src/old.py"),
            ("deleted", "/proj/notes.txt", None),
        }
        assert all([w.agent_name for w in c.writers] == ["refactor-bot"] for c in summary.changes)
        app = next(c for c in summary.changes if c.path == "/proj/src/app.py")
        assert (app.added, app.removed) == (4, 1)
        # The diff of one of them.
        diff = await owner.diff("/proj/src/app.py", app.old_version_id)
        assert "-    return 1\n+    return 2\n" in (diff.unified or "")
        assert diff.new.writer is not None
        assert diff.new.writer.agent_name == "refactor-bot"
        # The snapshot's view agrees.
        snap_diff = await owner.snapshot_diff("before-agent")
        assert {(c.status, c.path) for c in snap_diff.changes} == {(s, p) for s, p, _ in seen}

        restored = await owner.snapshot_restore("before-agent")
        assert await tree(owner, "/proj") == before
        assert (await owner.snapshot_diff("before-agent")).changes == []
        assert await owner.read_bytes("/outside.txt") == b"not the agent's\n"

        # The history shows everything: the agent's version, then the restore, nothing lost.
        history = [v async for v in owner.versions("/proj/src/app.py")]
        assert [v.writer.agent_name if v.writer else None for v in history[:2]] == [
            None,
            "refactor-bot",
        ]
        assert history[0].restored_from == app.old_version_id
        assert len(history) == 3
        created = [v async for v in owner.versions("/proj/src/new_module.py")]
        kept = await owner.read_bytes(node_id=created[0].node_id, version_id=created[0].version_id)
        assert kept == b"VALUE = 42\n"
        # Net over the whole stretch nothing changed; the feed still shows every step.
        assert (await owner.changes("/proj", since_cursor=snap.cursor)).changes == []
        steps = (await owner.pull(snap.cursor)).events
        by_agent = {(e.type, e.path) for e in steps if e.writer and e.writer.agent_name}
        assert ("write", "/proj/src/new_module.py") in by_agent
        assert ("delete", "/proj/notes.txt") in by_agent
        restores = {(e.type, e.path) for e in steps if e.seq > restored.undo.cursor}
        assert {("restore", "/proj/notes.txt"), ("delete", "/proj/src/new_module.py")} <= restores
        # And the restore itself is undoable.
        await owner.snapshot_restore(restored.undo.name)
        assert await owner.read_bytes("/proj/src/new_module.py") == b"VALUE = 42\n"
        assert not await owner.exists("/proj/notes.txt")


async def _read_only_token(account: Account) -> str:
    async with account.client() as owner:
        made = await owner.create_agent_token("reviewer", path_prefix="/proj", read_only=True)
    return str(made["token"])


def meshfs(account: Account, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = account.env()
    return subprocess.run([MESHFS, *args], env=env, capture_output=True, timeout=120, check=False)


def ok(done: subprocess.CompletedProcess[bytes]) -> str:
    assert done.returncode == 0, done.stderr.decode()
    assert b"Traceback" not in done.stderr
    return done.stdout.decode()


def test_cli_diff_changes_and_snapshots(account: Account, tmp_path: Path) -> None:
    local = tmp_path / "f.txt"
    local.write_text("one\n")
    ok(meshfs(account, "put", str(local), "/c/f.txt"))
    ok(meshfs(account, "snapshot", "create", "/c", "--name", "base"))
    local.write_text("one\ntwo\n")
    ok(meshfs(account, "put", str(local), "/c/f.txt"))
    ok(meshfs(account, "mkdir", "/c/sub"))
    assert "+two" in ok(meshfs(account, "diff", "/c/f.txt"))
    versions = json.loads(ok(meshfs(account, "--json", "versions", "/c/f.txt")))
    old, new = versions[1]["version_id"], versions[0]["version_id"]
    assert ok(meshfs(account, "diff", "/c/f.txt", old, new)).startswith("--- a/c/f.txt@")
    # Within the last hour /c was created; since the snapshot, f.txt changed.
    assert "created   /c/f.txt  by " in ok(meshfs(account, "changes", "/c", "--since", "1h"))
    snap = json.loads(ok(meshfs(account, "--json", "snapshot", "list", "/c")))[0]
    changed = ok(meshfs(account, "changes", "/c", "--cursor", str(snap["cursor"])))
    assert "modified  /c/f.txt  +1 -0  by " in changed
    assert "created   /c/sub/" in changed
    summary = json.loads(ok(meshfs(account, "changes", "/c", "--cursor", str(snap["cursor"]),
                                   "--json")))  # fmt: skip
    assert {c["path"] for c in summary["changes"]} == {"/c/f.txt", "/c/sub"}
    assert "modified  /c/f.txt" in ok(meshfs(account, "snapshot", "diff", "base"))
    restored = meshfs(account, "snapshot", "restore", "base")
    ok(restored)
    assert b"undo with: meshfs snapshot restore before-restore-base-" in restored.stderr
    assert ok(meshfs(account, "cat", "/c/f.txt")) == "one\n"
    ok(meshfs(account, "snapshot", "delete", "base"))
    # Usage and server errors: one line, documented exit codes, no traceback.
    usage = meshfs(account, "changes", "/c")
    assert usage.returncode == 2
    assert b"--cursor" in usage.stderr
    missing = meshfs(account, "snapshot", "diff", "base")
    assert missing.returncode != 0
    assert b"Traceback" not in missing.stderr
    assert b"no such snapshot" in missing.stderr
