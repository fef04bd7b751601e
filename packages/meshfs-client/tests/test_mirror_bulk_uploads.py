"""The mirror's upload batcher against a fake executor: new small files planned together share
one bulk write carrying their modes and mtimes; a batch of one, a refused file and one the server
already had take the single upload; a file changed since it was planned is re-planned; a
cancelled leader leaves the others to be sent."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from meshfs_client import BulkMember
from meshfs_client.mirror._bulk_uploads import UploadBatcher
from meshfs_client.mirror._local import stat_node
from meshfs_client.mirror._model import LocalNode
from meshfs_client.mirror._transfers import Executor, LocalChangedError
from meshfs_common.bulk import BulkFailure, BulkWriteResult, BulkWritten
from meshfs_common.hashing import hash_bytes
from meshfs_common.models import CommitResult, Entry


@dataclass
class FakeClient:
    exists: set[str] = field(default_factory=set)
    already_same: set[str] = field(default_factory=set)
    requests: list[list[BulkMember]] = field(default_factory=list)
    gate: asyncio.Event | None = None
    sent: asyncio.Event = field(default_factory=asyncio.Event)

    async def write_many(self, files: list[BulkMember], *, if_absent: bool) -> BulkWriteResult:
        assert if_absent
        self.requests.append(list(files))
        self.sent.set()
        if self.gate is not None:
            await self.gate.wait()
        result = BulkWriteResult(written=[], failed=[])
        for member in files:
            if member.path in self.exists:
                result.failed.append(BulkFailure(
                    name=member.path[1:], path=member.path, error="already_exists",
                    message="exists",
                ))  # fmt: skip
                continue
            data = cast(bytes, member.source)
            result.written.append(BulkWritten(
                name=member.path[1:], path=member.path, kind="file", node_id="n" + member.path,
                version_id="v" + member.path, size=len(data),
                content_hash=hash_bytes(data).content_hash,
                created_version=member.path not in self.already_same,
            ))  # fmt: skip
        return result


@dataclass
class FakeTree:
    def remote_path(self, rel: str) -> str:
        return "/root" + rel


@dataclass
class FakeExecutor:
    target: Path
    client: FakeClient = field(default_factory=FakeClient)
    tree: FakeTree = field(default_factory=FakeTree)
    single: list[str] = field(default_factory=list)
    recorded: dict[str, tuple[CommitResult, str, Entry | None]] = field(default_factory=dict)

    def os_path(self, rel: str) -> Path:
        return self.target / rel.lstrip("/")

    async def upload(
        self, rel: str, local: LocalNode, *, if_match: str | None, if_none_match: bool
    ) -> None:
        assert (if_match, if_none_match) == (None, True)
        self.single.append(rel)

    def _record_commit(
        self, rel: str, result: CommitResult, local: LocalNode, content_hash: str,
        attributed: Entry | None,
    ) -> None:  # fmt: skip
        self.recorded[rel] = (result, content_hash, attributed)


def make(root: Path, rel: str, data: bytes, *, mode: int = 0o644, mtime_ns: int = 0) -> LocalNode:
    path = root / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    if mtime_ns:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    node = stat_node(path)
    assert isinstance(node, LocalNode)
    return node


def batcher(executor: FakeExecutor, slots: int = 8) -> UploadBatcher:
    return UploadBatcher(cast(Executor, executor), asyncio.Semaphore(slots))


async def test_new_files_planned_together_share_one_bulk_write(tmp_path: Path) -> None:
    run = FakeExecutor(tmp_path)
    odd = 1_600_000_000_123_456_789
    nodes = {f"/f{i}": make(tmp_path, f"/f{i}", b"x" * i, mtime_ns=odd + i) for i in range(5)}
    nodes["/run.sh"] = make(tmp_path, "/run.sh", b"#!", mode=0o750, mtime_ns=odd)
    uploads = batcher(run)
    await asyncio.gather(*(uploads.upload(rel, node) for rel, node in nodes.items()))
    [request] = run.client.requests
    sent = {m.path: (m.source, m.mode, m.mtime_ns) for m in request}
    assert sent["/root/run.sh"] == (b"#!", 0o644 | 0o110, odd)  # server's 0644 + local x bits
    assert sent["/root/f3"] == (b"xxx", 0o644, odd + 3)
    assert run.single == []
    result, content_hash, attributed = run.recorded["/f2"]
    assert content_hash == hash_bytes(b"xx").content_hash
    assert (result.entry.node_id, result.entry.version_id, result.created_version) == (
        "n/root/f2", "v/root/f2", True,
    )  # fmt: skip
    # Recorded as an upload that gave the version its attributes in the same commit.
    assert attributed is not None
    assert (attributed.mode, attributed.mtime_ns) == (result.entry.mode, result.entry.mtime_ns)


async def test_a_batch_of_one_is_a_plain_upload(tmp_path: Path) -> None:
    run = FakeExecutor(tmp_path)
    await batcher(run).upload("/only", make(tmp_path, "/only", b"live edit"))
    assert run.client.requests == []
    assert run.single == ["/only"]


async def test_refused_or_not_created_files_take_the_single_upload(tmp_path: Path) -> None:
    run = FakeExecutor(tmp_path)
    run.client.exists = {"/root/taken"}
    run.client.already_same = {"/root/same"}
    nodes = {rel: make(tmp_path, rel, rel.encode()) for rel in ("/taken", "/same", "/new")}
    uploads = batcher(run)
    await asyncio.gather(*(uploads.upload(rel, node) for rel, node in nodes.items()))
    assert sorted(run.single) == ["/same", "/taken"]
    assert set(run.recorded) == {"/new"}


async def test_a_file_changed_since_it_was_planned_is_replanned(tmp_path: Path) -> None:
    run = FakeExecutor(tmp_path)
    nodes = {rel: make(tmp_path, rel, b"before") for rel in ("/a", "/b")}
    (tmp_path / "a").write_bytes(b"changed meanwhile")
    uploads = batcher(run)
    got = await asyncio.gather(
        *(uploads.upload(rel, node) for rel, node in nodes.items()), return_exceptions=True
    )
    assert isinstance(got[0], LocalChangedError)
    assert got[1] is None
    assert [m.path for m in run.client.requests[0]] == ["/root/b"]


async def test_a_cancelled_leader_leaves_the_others_to_be_sent(tmp_path: Path) -> None:
    run = FakeExecutor(tmp_path)
    run.client.gate = asyncio.Event()
    nodes = {f"/f{i}": make(tmp_path, f"/f{i}", b"d") for i in range(3)}
    uploads = batcher(run)
    tasks = [asyncio.create_task(uploads.upload(rel, node)) for rel, node in nodes.items()]
    await run.client.sent.wait()
    tasks[0].cancel()  # the leader, waiting on the server
    run.client.gate.set()
    done: list[Any] = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[0], asyncio.CancelledError)
    assert done[1:] == [None, None]
    assert {"/f1", "/f2"} <= set(run.recorded) | set(run.single)
