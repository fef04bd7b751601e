"""Bulk transfers against a REAL meshfs-server: the client's write_many / read_many /
download_many, `meshfs put -r` and `get -r`, partial failures, all-or-nothing, quota, and the
server's rate limit stopping and pacing a bulk write."""

from __future__ import annotations

import asyncio
import collections
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from meshfs_client_testkit import Account, device_login, own_server

from meshfs_client import BulkMember, MeshFS, MeshFSClient
from meshfs_common.bulk import BULK_MAX_FILE
from meshfs_common.errors import AlreadyExistsError, MeshFSError, NotADirError

pytestmark = pytest.mark.live
MESHFS = str(Path(sys.executable).with_name("meshfs"))


def meshfs(account: Account, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([MESHFS, *args], env=account.env(), capture_output=True, timeout=300,
                          check=False)  # fmt: skip


async def actions(client: MeshFSClient) -> list[str]:
    return [row.action for row in (await client.audit_page(limit=1000)).entries]


async def test_write_many_and_read_many_round_trip(client: MeshFSClient) -> None:
    files = {f"/many/f{i:03}.txt": f"file {i}\n".encode() for i in range(250)}
    big = os.urandom(BULK_MAX_FILE + 10)
    done = await client.write_many(
        [*files.items(), ("/many/big.bin", big)], directories=["/many/empty"]
    )
    assert done.failed == []
    assert done.files == 251
    assert {w.path for w in done.written if w.kind == "file"} == {*files, "/many/big.bin"}
    got = {f.path: f.data async for f in client.read_many(sorted(files))}
    assert got == files
    assert (await client.meta("/many/empty")).kind == "dir"
    assert await client.read_bytes("/many/big.bin") == big
    log = await actions(client)
    assert log.count("POST /files/bulk") == 1  # 250 small files in one request
    assert "PUT /files/content" not in log


async def test_a_bad_file_is_reported_and_the_rest_land(client: MeshFSClient) -> None:
    await client.upload("/p/taken", b"a file")
    done = await client.write_many([("/p/a", b"a"), ("/p/taken/below", b"x"), ("/p/b", b"b")])
    assert [w.path for w in done.written] == ["/p/a", "/p/b"]
    assert [(f.path, f.error) for f in done.failed] == [("/p/taken/below", "not_a_directory")]
    found = [f async for f in client.read_many(["/p/a", "/p/missing"])]
    assert found[0].data == b"a"
    assert found[1].error is not None
    assert found[1].error.code == "not_found"


async def test_atomic_write_many_is_all_or_nothing(client: MeshFSClient) -> None:
    await client.upload("/q/taken", b"a file")
    with pytest.raises(NotADirError) as raised:
        await client.write_many([("/q/a", b"a"), ("/q/taken/below", b"x")], atomic=True)
    assert "q/taken/below" in raised.value.message
    assert not await client.exists("/q/a")


async def test_write_many_if_absent_never_overwrites(client: MeshFSClient) -> None:
    mine = await client.upload("/n/small", b"mine")
    await client.upload("/n/big.bin", b"mine too")
    await client.mkdir("/n/dir")
    big = os.urandom(BULK_MAX_FILE + 10)
    done = await client.write_many(
        [("/n/a", b"a"), ("/n/small", b"theirs"), ("/n/dir", b"x"), ("/n/big.bin", big),
         ("/n/new.bin", big)],
        if_absent=True,
    )  # fmt: skip
    assert sorted(w.path for w in done.written) == ["/n/a", "/n/new.bin"]
    assert sorted((f.path, f.error) for f in done.failed) == [
        ("/n/big.bin", "already_exists"), ("/n/dir", "already_exists"),
        ("/n/small", "already_exists"),
    ]  # fmt: skip
    assert await client.read_bytes("/n/small") == b"mine"
    assert (await client.meta("/n/small")).version_id == mine.version.version_id
    assert await client.read_bytes("/n/big.bin") == b"mine too"
    assert await client.read_bytes("/n/new.bin") == big
    with pytest.raises(AlreadyExistsError) as raised:
        await client.write_many([("/n/b", b"b"), ("/n/small", b"x")], atomic=True, if_absent=True)
    assert "/n/small" in raised.value.message
    assert not await client.exists("/n/b")


async def test_write_many_members_carry_their_mode_and_exact_mtime(
    client: MeshFSClient, tmp_path: Path
) -> None:
    await client.upload("/attr/old.sh", b"echo old")
    odd = 1_600_000_000_123_456_789
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(BULK_MAX_FILE + 10))
    done = await client.write_many([
        BulkMember("/attr/run.sh", b"echo hi", mode=0o755, mtime_ns=odd),
        BulkMember("/attr/old.sh", b"echo new", mode=0o750, mtime_ns=odd + 1),
        BulkMember("/attr/big.bin", big, mode=0o600, mtime_ns=odd + 2),
        ("/attr/plain", b"no attributes"),
    ])  # fmt: skip
    assert done.failed == []
    got = {p: await client.meta(f"/attr/{p}") for p in ("run.sh", "old.sh", "big.bin", "plain")}
    assert {p: (e.mode, e.mtime_ns) for p, e in got.items() if p != "plain"} == {
        "run.sh": (0o755, odd), "old.sh": (0o750, odd + 1), "big.bin": (0o600, odd + 2),
    }  # fmt: skip
    assert await client.read_bytes("/attr/old.sh") == b"echo new"
    assert got["plain"].mode == 0o644
    assert got["plain"].mtime_ns > odd + 3600 * 10**9  # the time of the write


def test_blocking_client_bulk_methods(account: Account, tmp_path: Path) -> None:
    local = tmp_path / "in.txt"
    local.write_bytes(b"from disk")
    with MeshFS(account.server.url, settings=account.settings) as fs:
        done = fs.write_many([("/b/disk.txt", local), ("/b/mem.txt", b"from memory")])
        assert done.files == 2
        assert [f.data for f in fs.read_many(["/b/disk.txt", "/b/mem.txt"])] == [
            b"from disk", b"from memory",
        ]  # fmt: skip
        entries = [fs.meta("/b/disk.txt"), fs.meta("/b/mem.txt")]
        got = fs.download_many([(e, tmp_path / "out" / e.name) for e in entries])
    assert all(f.error is None for f in got)
    assert (tmp_path / "out" / "mem.txt").read_bytes() == b"from memory"


async def test_put_r_and_get_r_use_bulk_requests(account: Account, tmp_path: Path) -> None:
    src = tmp_path / "tree"
    for i in range(400):
        path = src / f"d{i % 7}" / f"f{i:03}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content {i}")
    (src / "big.bin").write_bytes(os.urandom(BULK_MAX_FILE + 1))
    (src / "empty-dir").mkdir()
    put = meshfs(account, "put", "-r", str(src), "/tree")
    assert put.returncode == 0, put.stderr.decode()
    assert "uploaded 401 files" in put.stderr.decode()
    back = tmp_path / "back"
    got = meshfs(account, "get", "-r", "/tree", str(back))
    assert got.returncode == 0, got.stderr.decode()
    for path in src.rglob("*"):
        mirrored = back / path.relative_to(src)
        if path.is_file():
            assert mirrored.read_bytes() == path.read_bytes()
        else:
            assert mirrored.is_dir()
    async with account.client() as client:
        log = await actions(client)
    assert log.count("POST /files/bulk") == 1  # 400 small files and the directories
    assert "PUT /files/content" not in log


async def test_put_r_no_clobber_skips_existing_files_in_bulk(
    account: Account, tmp_path: Path
) -> None:
    src = tmp_path / "tree"
    for i in range(50):
        path = src / f"d{i % 3}" / f"f{i:02}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"local {i}")
    async with account.client() as client:
        await client.upload("/nc/d1/f01.txt", b"remote one")
        await client.upload("/nc/d2/f02.txt", b"remote two")
        before = await actions(client)
    put = meshfs(account, "put", "-r", "-n", str(src), "/nc")
    err = put.stderr.decode()
    assert put.returncode == 5, err  # a conflict, as a single `put -n` onto a file
    assert "uploaded 48 files" in err
    assert f"skipped {src / 'd1' / 'f01.txt'}" in err
    assert f"skipped {src / 'd2' / 'f02.txt'}" in err
    assert "2 files already existed and not overwritten" in err
    async with account.client() as client:
        assert await client.read_bytes("/nc/d1/f01.txt") == b"remote one"
        assert await client.read_bytes("/nc/d2/f02.txt") == b"remote two"
        assert await client.read_bytes("/nc/d0/f03.txt") == b"local 3"
        log = await actions(client)
    assert log.count("POST /files/bulk") - before.count("POST /files/bulk") == 1
    assert log.count("PUT /files/content") == before.count("PUT /files/content")
    again = meshfs(account, "put", "-r", "-n", str(src), "/nc")
    assert again.returncode == 5
    # The 48 it wrote already hold that content; only the 2 others differ.
    assert "uploaded 0 files" in again.stderr.decode()
    assert "48 files already held the same content" in again.stderr.decode()
    assert "2 files already existed" in again.stderr.decode()


async def test_quota_fills_mid_batch(tmp_path: Path) -> None:
    with own_server(tmp_path, {"MESHFS_TENANT_STORAGE_QUOTA_BYTES": "1000"}) as server:
        suffix = uuid.uuid4().hex[:8]
        account = await device_login(server, tmp_path / "config", f"u{suffix}", f"t{suffix}")
        async with account.client() as client:
            done = await client.write_many([(f"/q/f{i}", bytes([i]) * 300) for i in range(5)])
    assert [w.path for w in done.written] == ["/q/f0", "/q/f1", "/q/f2"]
    assert [(f.path, f.error) for f in done.failed] == [
        ("/q/f3", "quota_exceeded"), ("/q/f4", "quota_exceeded"),
    ]  # fmt: skip


async def test_write_many_resumes_after_the_rate_limit_stops_it(tmp_path: Path) -> None:
    # 30 requests a minute (a token every 2 s): 3,200 files cost 32 tokens plus the requests,
    # more than the burst, so the server stops a batch part-way and the client sends the
    # rest after the wait it names. The server's worker processes (one per CPU) share the
    # bucket: a refused charge spends nothing, so each resume goes on as soon as its tokens are
    # back, whichever process takes it.
    limited = {"MESHFS_RATE_LIMIT_PER_MINUTE": "30"}
    with own_server(tmp_path, limited) as server:
        suffix = uuid.uuid4().hex[:8]
        account = await device_login(server, tmp_path / "config", f"u{suffix}", f"t{suffix}")
        waits: list[tuple[MeshFSError, float]] = []
        async with account.client() as client:
            with client.on_retry(lambda e, s: waits.append((e, s))):
                started = time.monotonic()
                done = await client.write_many([(f"/r/f{i:04}", b"") for i in range(3200)])
                took = time.monotonic() - started
    assert done.failed == []
    assert done.files == 3200
    assert waits
    assert {e.code for e, _ in waits} == {"rate_limited"}
    # About 40 tokens in all (32 for the files, one per request), 30 of them in the burst: the
    # rest come back in 20 s. Refused charges that lost their tokens, or tokens idling in one
    # process while the other refuses, would make the client wait longer (or run out of time).
    assert sum(wait for _, wait in waits) < 30
    assert took < 60


async def test_fsspec_put_and_get_of_many_files_use_bulk_requests(
    account: Account, tmp_path: Path
) -> None:
    from meshfs_client._credentials import CredentialStore
    from meshfs_client.fsspec import MeshFSFileSystem

    stored = CredentialStore(account.settings.credentials_path).load(account.server.url)
    assert stored is not None
    fs = MeshFSFileSystem(
        server=account.server.url, token=stored.access_token, skip_instance_cache=True
    )
    src = tmp_path / "src"
    for i in range(120):
        (src / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 3}" / f"f{i}.txt").write_text(f"fsspec {i}")
    (src / "big.bin").write_bytes(os.urandom(BULK_MAX_FILE + 5))
    await asyncio.to_thread(fs.put, str(src), "/fs", recursive=True)
    # fsspec's mode="create": nothing is overwritten, the rest still goes in bulk.
    (src / "d0" / "f0.txt").write_text("changed")
    (src / "d0" / "new.txt").write_text("new")
    with pytest.raises(FileExistsError):
        await asyncio.to_thread(fs.put, f"{src}/", "/fs", recursive=True, mode="create")
    (src / "d0" / "f0.txt").write_text("fsspec 0")
    assert await asyncio.to_thread(fs.cat, "/fs/d0/new.txt") == b"new"
    back = tmp_path / "back"
    await asyncio.to_thread(fs.get, "/fs", str(back), recursive=True)
    for path in src.rglob("*"):
        if path.is_file():
            assert (back / path.relative_to(src)).read_bytes() == path.read_bytes()
    async with account.client() as client:
        log = await actions(client)
    assert log.count("POST /files/bulk") == 2
    assert "PUT /files/content" not in log


async def test_mirror_first_pass_fetches_small_files_in_bulk(
    account: Account, client: MeshFSClient, tmp_path: Path
) -> None:
    import collections

    import aiohttp

    from meshfs_client.mirror import MirrorSync, SyncOptions

    files = {f"/m/d{i % 4}/f{i}.txt": f"mirror {i}".encode() for i in range(300)}
    files["/m/big.bin"] = os.urandom(BULK_MAX_FILE + 3)
    done = await client.write_many(list(files.items()))
    assert done.failed == []
    seen: collections.Counter[tuple[str, str]] = collections.Counter()

    async def count(session: object, context: object, params: Any) -> None:
        seen[(params.method, params.url.path)] += 1

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(count)
    target = tmp_path / "mirror"
    async with (
        aiohttp.ClientSession(trace_configs=[trace]) as session,
        MeshFSClient(account.server.url, settings=account.settings, session=session) as traced,
    ):
        options = SyncOptions(target=target, state_dir=tmp_path / "state", once=True)
        await MirrorSync(traced, options).run()
    for path, data in files.items():
        assert (target / path.lstrip("/")).read_bytes() == data
    assert seen[("POST", "/files/bulk/read")] <= 10  # 300 small files, a few bulk reads
    assert seen[("GET", "/files/download")] <= 1  # the large file only


def _counted() -> tuple[Any, collections.Counter[tuple[str, str]]]:
    """An aiohttp trace config counting requests by (method, path)."""
    import aiohttp

    seen: collections.Counter[tuple[str, str]] = collections.Counter()

    async def count(session: object, context: object, params: Any) -> None:
        seen[(params.method, params.url.path)] += 1

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(count)
    return trace, seen


async def test_mirror_first_pass_sends_small_files_in_bulk_with_modes_and_mtimes(
    account: Account, client: MeshFSClient, tmp_path: Path
) -> None:
    import aiohttp

    from meshfs_client.mirror import MirrorSync, SyncOptions

    source = tmp_path / "source"
    odd = 1_600_000_000_123_456_789
    files: dict[str, bytes] = {}
    for i in range(300):
        rel = f"up/d{i % 4}/f{i}.txt"
        files[rel] = f"local {i}".encode()
    files["up/run.sh"] = b"#!/bin/sh\necho hi\n"
    files["up/empty"] = b""
    for i, (rel, data) in enumerate(files.items()):
        path = source / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, ns=(odd, odd + i * 1_000_003))  # nanoseconds a float would round
    (source / "up/run.sh").chmod(0o755)
    mtimes = {rel: (source / rel).stat().st_mtime_ns for rel in files}
    trace, seen = _counted()
    async with (
        aiohttp.ClientSession(trace_configs=[trace]) as session,
        MeshFSClient(account.server.url, settings=account.settings, session=session) as traced,
    ):
        options = SyncOptions(target=source, state_dir=tmp_path / "state-a", once=True)
        await MirrorSync(traced, options).run()
    assert seen[("POST", "/files/bulk")] <= 3  # 302 new small files, a few bulk writes
    assert seen[("PUT", "/files/content")] == 0
    assert seen[("POST", "/files/attributes")] == 0
    for rel, data in files.items():
        entry = await client.meta(f"/{rel}")
        assert await client.read_bytes(f"/{rel}") == data
        assert (entry.mode, entry.mtime_ns) == (
            0o755 if rel == "up/run.sh" else 0o644,
            mtimes[rel],
        ), rel
    # A second mirror of the same folder gets every file with its exec bit and exact mtime.
    other = tmp_path / "other"
    options = SyncOptions(target=other, state_dir=tmp_path / "state-b", once=True)
    await MirrorSync(client, options).run()
    for rel, data in files.items():
        st = (other / rel).stat()
        assert (other / rel).read_bytes() == data
        assert st.st_mtime_ns == mtimes[rel], rel
        assert bool(st.st_mode & 0o111) == (rel == "up/run.sh"), rel


async def test_mirror_bulk_upload_never_overwrites_a_file_created_meanwhile(
    account: Account, client: MeshFSClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meshfs_client.mirror import ConflictPolicy, MirrorSync, SyncOptions

    source = tmp_path / "source"
    (source / "c").mkdir(parents=True)
    for i in range(20):
        (source / f"c/f{i}.txt").write_bytes(f"mine {i}".encode())
    real = MeshFSClient.write_many
    raced: list[str] = []

    async def racing(self: MeshFSClient, files: Any, **kwargs: Any) -> Any:
        if not raced:  # someone else creates f3 while the batch is on its way
            raced.append("/c/f3.txt")
            await client.upload("/c/f3.txt", b"theirs")
        return await real(self, files, **kwargs)

    monkeypatch.setattr(MeshFSClient, "write_many", racing)
    async with account.client() as mirror_client:
        # The bulk write refuses f3 (already_exists); the single upload finds it too and the
        # conflict is resolved as for any file changed on both sides (here: keep both).
        options = SyncOptions(target=source, state_dir=tmp_path / "state", once=True,
                              conflicts=ConflictPolicy.KEEP_BOTH)  # fmt: skip
        await MirrorSync(mirror_client, options).run()
    assert raced
    assert await client.read_bytes("/c/f3.txt") == b"theirs"  # not overwritten
    names = {e.name: e for e in [e async for e in client.iterdir("/c")]}
    copies = [n for n in names if n.startswith("f3 (conflict")]
    assert len(copies) == 1, sorted(names)  # the local file kept as a conflict copy
    assert await client.read_bytes(f"/c/{copies[0]}") == b"mine 3"
    for i in range(20):
        if i != 3:
            assert await client.read_bytes(f"/c/f{i}.txt") == f"mine {i}".encode()


async def test_mirror_first_pass_makes_many_directories_in_bulk(
    account: Account, client: MeshFSClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aiohttp

    from meshfs_client.mirror import MirrorSync, SyncOptions

    source = tmp_path / "source"
    rels = [f"tree/a{i}/b{j}/leaf.txt" for i in range(12) for j in range(5)]
    for rel in rels:
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_text(rel)
    (source / "tree/empty-dir").mkdir()
    real = MeshFSClient.write_many
    raced: list[str] = []

    async def racing(self: MeshFSClient, files: Any, **kwargs: Any) -> Any:
        if kwargs.get("directories") and not raced:
            # Someone else puts a file where one of the new directories goes meanwhile.
            raced.append("/tree/a7")
            await client.upload("/tree/a7", b"theirs")
        return await real(self, files, **kwargs)

    monkeypatch.setattr(MeshFSClient, "write_many", racing)
    trace, seen = _counted()
    async with (
        aiohttp.ClientSession(trace_configs=[trace]) as session,
        MeshFSClient(account.server.url, settings=account.settings, session=session) as traced,
    ):
        options = SyncOptions(target=source, state_dir=tmp_path / "state", once=True)
        await MirrorSync(traced, options).run()
    assert raced
    # 73 new directories on three levels: one mkdir (the top), then one bulk write per level.
    assert seen[("POST", "/files/mkdir")] <= 2
    # The file is not lost: as for any file meeting a local directory, it is moved aside.
    names = [e.name async for e in client.iterdir("/tree")]
    aside = [n for n in names if n.startswith("a7 (conflict")]
    assert len(aside) == 1, sorted(names)
    assert await client.read_bytes(f"/tree/{aside[0]}") == b"theirs"
    assert (await client.meta("/tree/empty-dir")).kind == "dir"
    for rel in rels:
        assert await client.read_bytes(f"/{rel}") == rel.encode()
