"""Three mirrors and the API changing one tree at once (seeded), then: every folder equals the
server tree and every content ever committed is still in the server's history."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
from pathlib import Path

import pytest
from meshfs_client_testkit import Account
from mirror_testkit import local_tree, remote_tree, running_mirrors, wait_for

from meshfs_client import MeshFSClient
from meshfs_common.errors import MeshFSError, NotFoundError
from meshfs_common.hashing import hash_bytes

pytestmark = pytest.mark.live

SEED = int(os.environ.get("MIRROR_TEST_SEED", "20240501"))
OPS_PER_ACTOR = 25
DIRS = ["", "d1", "d2", "d1/e"]
NAMES = [f"f{i}.txt" for i in range(5)]


class Committed:
    """Content hashes the server has committed, from the feed (a test-side observer)."""

    def __init__(self) -> None:
        self.hashes: set[str] = set()
        self.node_ids: set[str] = set()

    async def follow(self, client: MeshFSClient) -> None:
        async with client.watch(0) as feed:
            async for item in feed:
                content_hash = getattr(item, "content_hash", None)
                if content_hash:
                    self.hashes.add(content_hash)
                    self.node_ids.add(item.node_id)  # type: ignore[union-attr]


class LocalActor:
    """Edits one mirror's folder like a user would, with plain os calls.

    Before touching a path it wrote itself, it waits until that content was committed (seen in
    the feed): a user overwriting their own unsynced edit is not a loss the sync could prevent.
    """

    def __init__(self, name: str, root: Path, rng: random.Random, committed: Committed) -> None:
        self.name, self.root, self.rng, self.committed = name, root, rng, committed
        self.unconfirmed: dict[str, str] = {}
        self.written: list[bytes] = []

    async def confirm(self, rel: str) -> None:
        waiting = {p: h for p, h in self.unconfirmed.items() if p == rel or p.startswith(rel + "/")}
        for p, h in waiting.items():
            await wait_for(
                lambda h=h: _value(h in self.committed.hashes), deadline=60, what=f"commit of {p}"
            )
            self.unconfirmed.pop(p, None)

    def files(self) -> list[str]:
        return [p for p, v in local_tree(self.root).items() if v is not None]

    def dirs(self) -> list[str]:
        return [p for p, v in local_tree(self.root).items() if v is None]

    async def run(self, count: int) -> None:
        for i in range(count):
            op = self.rng.choice(["write", "write", "write", "delete", "rename", "rmdir", "mvdir"])
            with contextlib.suppress(OSError):
                await getattr(self, op)(i)
            await asyncio.sleep(self.rng.random() * 0.05)  # pacing between edits

    async def write(self, i: int) -> None:
        rel = "/" + "/".join(p for p in (self.rng.choice(DIRS), self.rng.choice(NAMES)) if p)
        await self.confirm(rel)
        data = f"{self.name}-{i}-{self.rng.random()}\n".encode() * self.rng.randint(1, 200)
        path = self.root / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.unconfirmed[rel] = hash_bytes(data).content_hash
        self.written.append(data)

    async def delete(self, i: int) -> None:
        files = self.files()
        if files:
            rel = self.rng.choice(files)
            await self.confirm(rel)
            (self.root / rel.lstrip("/")).unlink()

    async def rename(self, i: int) -> None:
        files = self.files()
        if files:
            rel = self.rng.choice(files)
            await self.confirm(rel)
            new = self.root / self.rng.choice(DIRS) / f"r{self.name}{i}.txt"
            new.parent.mkdir(parents=True, exist_ok=True)
            os.rename(self.root / rel.lstrip("/"), new)

    async def rmdir(self, i: int) -> None:
        dirs = self.dirs()
        if dirs and self.rng.random() < 0.5:
            rel = self.rng.choice(dirs)
            await self.confirm(rel)
            shutil.rmtree(self.root / rel.lstrip("/"))

    async def mvdir(self, i: int) -> None:
        dirs = self.dirs()
        if dirs:
            rel = self.rng.choice(dirs)
            await self.confirm(rel)
            new = self.root / f"m{self.name}{i}"
            if not new.exists():
                os.rename(self.root / rel.lstrip("/"), new)


async def api_actor(client: MeshFSClient, rng: random.Random, written: list[bytes]) -> None:
    for i in range(OPS_PER_ACTOR):
        op = rng.choice(["write", "write", "delete", "rename", "mkdir"])
        try:
            if op == "write":
                rel = "/" + "/".join(p for p in (rng.choice(DIRS), rng.choice(NAMES)) if p)
                data = f"api-{i}-{rng.random()}\n".encode() * rng.randint(1, 200)
                await client.upload(rel, data)
                written.append(data)
            else:
                files = [p for p, v in (await remote_tree(client)).items() if v is not None]
                if op == "mkdir":
                    await client.mkdir(f"/{rng.choice(DIRS)}/api{i}".replace("//", "/"))
                elif files and op == "delete":
                    await client.delete(rng.choice(files))
                elif files:
                    await client.rename(rng.choice(files), f"/api-moved-{i}.txt")
        except MeshFSError:
            pass  # raced with a mirror: that is the point
        await asyncio.sleep(rng.random() * 0.05)


async def test_three_mirrors_and_the_api_converge_without_loss(
    account: Account, client: MeshFSClient, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    roots = [tmp_path / name for name in ("a", "b", "c")]
    committed = Committed()
    actors = [
        LocalActor(name, root, random.Random(rng.random()), committed)
        for name, root in zip("abc", roots, strict=True)
    ]
    api_written: list[bytes] = []
    async with (
        account.client() as observer,
        running_mirrors(account, roots, tmp_path / "st") as mirrors,
    ):
        follower = asyncio.create_task(committed.follow(observer))
        try:
            async with asyncio.TaskGroup() as group:
                for actor in actors:
                    group.create_task(actor.run(OPS_PER_ACTOR))
                group.create_task(api_actor(client, random.Random(rng.random()), api_written))

            async def converged() -> bool:
                try:
                    remote = await remote_tree(client)
                except NotFoundError:
                    return False  # a directory went away while being listed: still changing
                return all(local_tree(root) == remote for root in roots)

            try:
                await wait_for(converged, deadline=120, what="all mirrors equal the server")
            except AssertionError as exc:
                remote = await remote_tree(client)
                report = []
                for mirror in mirrors:
                    tree = local_tree(mirror.target)
                    diff = sorted(
                        (p, tree.get(p, "-")[:20] if tree.get(p) else tree.get(p, "-"),
                         remote.get(p, "-")[:20] if remote.get(p) else remote.get(p, "-"))
                        for p in set(tree) | set(remote) if tree.get(p, "-") != remote.get(p, "-")
                    )  # fmt: skip
                    report.append(f"{mirror.target.name}: {diff} {mirror.engine.status}")
                raise AssertionError("\n".join(report)) from exc
            for actor in actors:  # every local write reached the server
                for rel in list(actor.unconfirmed):
                    await actor.confirm(rel)
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
    # Every content ever written is a version on the server.
    history: set[str] = set()
    for node_id in committed.node_ids:
        history.update([v.content_hash async for v in client.versions(node_id=node_id)])
    written = [d for actor in actors for d in actor.written] + api_written
    missing = [d[:40] for d in written if hash_bytes(d).content_hash not in history]
    assert not missing, f"{len(missing)} contents are not in history: {missing[:5]}"
    assert len(written) > 25


async def _value(value: bool) -> bool:
    return value
