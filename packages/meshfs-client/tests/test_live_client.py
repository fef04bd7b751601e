"""The library against a REAL meshfs-server process (see conftest.py)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from meshfs_client_testkit import Account, LiveServer, device_login

from meshfs_client import FeedReset, MeshFS, MeshFSClient
from meshfs_client._credentials import CredentialStore
from meshfs_client._upload import Uploader
from meshfs_common.errors import (
    AlreadyExistsError,
    AuthError,
    NotFoundError,
    PreconditionFailedError,
)
from meshfs_common.hashing import CHUNK_SIZE, hash_bytes
from meshfs_common.models import AgentToken, AuditPage, ChangeEvent, PlanInfo, SessionInfo

pytestmark = pytest.mark.live


async def test_health_and_whoami(client: MeshFSClient, account: Account) -> None:
    assert (await client.health()).status == "ok"
    me = await client.whoami()
    assert me.username == account.user
    assert me.tenant_name == account.tenant


async def test_mkdir_list_paging_meta_rename_delete(client: MeshFSClient) -> None:
    await client.mkdir("/docs/deep", parents=True)
    again = await client.mkdir("/docs")  # exists: fine by default
    assert again.kind == "dir"
    with pytest.raises(AlreadyExistsError):
        await client.mkdir("/docs", exist_ok=False)
    for name in ("c", "a", "e", "b", "d"):
        await client.upload(f"/docs/{name}.txt", name.encode())
    names = [e.name async for e in client.iterdir("/docs", page_size=2)]
    assert names == ["a.txt", "b.txt", "c.txt", "d.txt", "deep", "e.txt"]
    page = await client.list_page("/docs", limit=2)
    assert page.has_more
    assert len(page.entries) == 2

    entry = await client.meta("/docs/a.txt")
    assert entry.kind == "file"
    assert entry.size == 1
    moved = await client.rename("/docs/a.txt", "/docs/deep/z.txt")
    assert moved.path == "/docs/deep/z.txt"
    assert moved.node_id == entry.node_id
    assert not await client.exists("/docs/a.txt")

    walked = [e.path async for e in client.walk("/docs")]
    assert "/docs/deep/z.txt" in walked

    await client.delete("/docs/b.txt")
    with pytest.raises(NotFoundError):
        await client.meta("/docs/b.txt")
    result = await client.delete("/docs", recursive=True)
    assert result.deleted_nodes >= 5
    assert await client.listdir("/") == []


async def test_iterdir_pages_through_tombstones_sharing_a_name(client: MeshFSClient) -> None:
    """The server's next_after token, passed back as is, pages past entries of one name."""
    for round_ in range(2):
        await client.upload("/t/same.txt", f"v{round_}".encode())
        await client.delete("/t/same.txt")
    await client.upload("/t/same.txt", b"live")
    entries = [e async for e in client.iterdir("/t", include_deleted=True, page_size=1)]
    assert [e.name for e in entries] == ["same.txt"] * 3
    assert len({e.node_id for e in entries}) == 3
    assert sum(e.deleted_at is None for e in entries) == 1


async def test_large_upload_roundtrip_and_dedup(client: MeshFSClient, tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 4321)
    local = tmp_path / "big.bin"
    local.write_bytes(data)
    first = await client.upload("/big.bin", local)
    assert first.created_version
    assert first.entry.size == len(data)
    assert first.entry.content_hash == hash_bytes(data).content_hash

    # The same content again: no chunk travels and no version is made.
    sent: list[int] = []
    original = Uploader._send_part

    async def spy(self: Uploader, init: Any, source: Any, part: Any) -> None:
        sent.append(part.index)
        await original(self, init, source, part)

    Uploader._send_part = spy  # type: ignore[method-assign]
    try:
        again = await client.upload("/big.bin", local)
        assert sent == []
        assert not again.created_version
        # Only the changed last chunk travels for a copy with a different tail.
        changed = data[: 2 * CHUNK_SIZE] + b"different tail"
        await client.upload("/big2.bin", changed)
        assert sent == [2]
    finally:
        Uploader._send_part = original  # type: ignore[method-assign]

    target = tmp_path / "down.bin"
    info = await client.download_to("/big.bin", target)
    assert target.read_bytes() == data
    assert info.content_hash == first.entry.content_hash
    assert await client.read_bytes("/big2.bin") == changed


async def test_stream_upload_and_ranges(client: MeshFSClient) -> None:
    data = os.urandom(CHUNK_SIZE + 99_999)

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 65_536):
            yield data[start : start + 65_536]

    await client.upload("/stream.bin", pieces())
    assert await client.read_bytes("/stream.bin") == data
    assert await client.read_bytes("/stream.bin", offset=10, length=100) == data[10:110]
    tail = await client.read_bytes("/stream.bin", offset=CHUNK_SIZE)
    assert tail == data[CHUNK_SIZE:]
    async with client.download("/stream.bin", offset=5, length=0) as stream:
        assert stream.info.size == len(data)


async def test_resume_from_partial_and_restart_from_corrupt_partial(
    client: MeshFSClient, tmp_path: Path
) -> None:
    data = os.urandom(3 * 1024 * 1024)
    result = await client.upload("/r.bin", data)
    version = result.entry.version_id
    target = tmp_path / "r.bin"
    partial = tmp_path / f".r.bin.{version}.meshfs-part"
    partial.write_bytes(data[:1_000_000])
    await client.download_to("/r.bin", target)
    assert target.read_bytes() == data
    assert not partial.exists()

    target.unlink()
    partial.write_bytes(b"\0" * 1_000_000)  # wrong bytes: detected by the hash, redone
    await client.download_to("/r.bin", target)
    assert target.read_bytes() == data


async def test_preconditions(client: MeshFSClient) -> None:
    first = await client.upload("/p.txt", b"one")
    with pytest.raises(PreconditionFailedError):
        await client.upload("/p.txt", b"x", if_none_match=True)
    second = await client.upload("/p.txt", b"two", if_match=first.entry.version_id)
    with pytest.raises(PreconditionFailedError):
        await client.upload("/p.txt", b"three", if_match=first.entry.version_id)
    assert second.entry.version_id != first.entry.version_id
    assert await client.read_bytes("/p.txt") == b"two"


async def test_versions_and_restore_including_deleted_file(client: MeshFSClient) -> None:
    v1 = await client.upload("/v.txt", b"version one")
    v2 = await client.upload("/v.txt", b"version two")
    versions = [v async for v in client.versions("/v.txt")]
    assert [v.version_id for v in versions] == [v2.version.version_id, v1.version.version_id]
    old = await client.read_bytes("/v.txt", version_id=v1.version.version_id)
    assert old == b"version one"

    restored = await client.restore("/v.txt", v1.version.version_id)
    assert restored.created_version
    assert await client.read_bytes("/v.txt") == b"version one"

    await client.delete("/v.txt")
    assert not await client.exists("/v.txt")
    await client.restore("/v.txt", v2.version.version_id)
    assert await client.read_bytes("/v.txt") == b"version two"


async def test_pull_and_watch_over_websocket_and_pull(client: MeshFSClient) -> None:
    start = await client.current_cursor()
    for websocket in (True, False):
        prefix = f"/w{int(websocket)}"
        seen: list[ChangeEvent] = []

        async def consume(
            cursor: int, prefix: str = prefix, ws: bool = websocket, seen: list[ChangeEvent] = seen
        ) -> None:
            async with client.watch(cursor, websocket=ws, poll_interval=0.05) as feed:
                async for item in feed:
                    assert not isinstance(item, FeedReset)
                    if item.path.startswith(prefix):
                        seen.append(item)
                    if len(seen) == 3:
                        return

        cursor = await client.current_cursor()
        async with asyncio.timeout(20):
            async with asyncio.TaskGroup() as group:
                group.create_task(consume(cursor))
                await client.mkdir(prefix)
                await client.upload(f"{prefix}/f", b"x")
                await client.rename(f"{prefix}/f", f"{prefix}/g")
        assert [e.type for e in seen] == ["mkdir", "write", "rename"]
        assert seen[2].old_path == f"{prefix}/f"
        seqs = [e.seq for e in seen]
        assert seqs == sorted(seqs)
        assert seqs[0] > start

    page = await client.pull(start)
    assert [e.seq for e in page.events] == list(range(start + 1, start + 1 + len(page.events)))


async def test_watch_replays_backlog_from_cursor(client: MeshFSClient) -> None:
    cursor = await client.current_cursor()
    await client.mkdir("/backlog")
    await client.upload("/backlog/a", b"a")
    got: list[str] = []
    async with asyncio.timeout(20), client.watch(cursor) as feed:
        async for item in feed:
            assert isinstance(item, ChangeEvent)
            got.append(item.type)
            if len(got) == 2:
                break
    assert got == ["mkdir", "write"]


async def test_refresh_rotates_and_persists(account: Account) -> None:
    store = CredentialStore(account.settings.credentials_path)
    before = store.load(account.server.url)
    assert before is not None
    async with account.client() as client:
        after = await client.refresh()
        assert after.refresh_token != before.refresh_token
        assert (await client.whoami()).username == account.user
    on_disk = store.load(account.server.url)
    assert on_disk is not None
    assert on_disk.refresh_token == after.refresh_token


async def test_expired_token_refreshed_transparently_single_flight(account: Account) -> None:
    store = CredentialStore(account.settings.credentials_path)
    stored = store.load(account.server.url)
    assert stored is not None
    import msgspec

    store.save(msgspec.structs.replace(stored, access_token="garbage", expires_at=1.0))
    async with account.client() as client:
        answers = await asyncio.gather(*(client.whoami() for _ in range(10)))
        assert {a.username for a in answers} == {account.user}
        auth: Any = client._t.auth
        assert auth.refresh_count == 1


async def test_logout_ends_the_session(account: Account) -> None:
    async with account.client() as client:
        assert await client.logout()
        with pytest.raises(AuthError):
            await client.whoami()
    assert CredentialStore(account.settings.credentials_path).load(account.server.url) is None


async def test_tenants_are_isolated(live_server: LiveServer, tmp_path: Path) -> None:
    a = await device_login(live_server, tmp_path / "a", f"a{uuid.uuid4().hex[:8]}", "ta")
    b = await device_login(live_server, tmp_path / "b", f"b{uuid.uuid4().hex[:8]}", "tb")
    async with a.client() as ca, b.client() as cb:
        await ca.upload("/secret.txt", b"mine")
        assert not await cb.exists("/secret.txt")


async def test_administration_answers_are_typed(client: MeshFSClient) -> None:
    plan = await client.plan()
    assert isinstance(plan, PlanInfo)
    assert plan.storage.quota > 0
    assert plan.retention.max_versions > 0
    made = await client.create_agent_token("typed-bot", path_prefix="/typed", read_only=True)
    assert isinstance(made, AgentToken)
    assert (made.access, made.path_prefix) == ("read", "/typed")
    mine = [s for s in await client.sessions() if s.session_id == made.session_id]
    assert [(s.kind, s.name) for s in mine] == [("agent", "typed-bot")]
    assert isinstance(mine[0], SessionInfo)
    page = await client.audit_page(action="auth.agent_create", limit=1)
    assert isinstance(page, AuditPage)
    assert [row.action for row in page.entries] == ["auth.agent_create"]
    assert made["token"] == made.token  # code written against the old dicts still reads them


def test_blocking_facade(account: Account, tmp_path: Path) -> None:
    with MeshFS(account.server.url, settings=account.settings) as fs:
        fs.mkdir("/sync")
        fs.upload("/sync/a.txt", b"hello")
        assert [e.name for e in fs.iterdir("/sync")] == ["a.txt"]
        assert fs.read_bytes("/sync/a.txt") == b"hello"
        assert b"".join(fs.iter_bytes("/sync/a.txt")) == b"hello"
        fs.download_to("/sync/a.txt", tmp_path / "a.txt")
        assert (tmp_path / "a.txt").read_bytes() == b"hello"
        assert len(fs.versions("/sync/a.txt")) == 1


def test_blocking_facade_has_the_whole_client(account: Account) -> None:
    with MeshFS(account.server.url, settings=account.settings) as fs:
        made = fs.upload("/whole.txt", b"abc")
        assert fs.node_id_of("/whole.txt") == made.entry.node_id
        with fs.download("/whole.txt", offset=1) as blocks:
            assert b"".join(blocks) == b"bc"
        assert [v.version_id for v in fs.versions("/whole.txt", page_size=1)] == [
            made.version.version_id
        ]
        fs.delete("/whole.txt")
        assert fs.node_id_of("/whole.txt") == made.entry.node_id  # also once deleted
        with fs.watch(0, websocket=False, poll_interval=0.05) as feed:
            assert any(getattr(item, "path", None) == "/whole.txt" for item in feed)


async def test_blocking_facade_inside_a_running_loop(account: Account) -> None:
    # As in a Jupyter cell: a loop is running in this thread, yet blocking calls work.
    with MeshFS(account.server.url, settings=account.settings) as fs:
        assert fs.whoami().username == account.user
