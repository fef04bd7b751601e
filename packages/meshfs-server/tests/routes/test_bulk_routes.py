"""Bulk transfers through the HTTP API: tar archives in (POST /files/bulk) and out (GET
/files/bulk, POST /files/bulk/read), per-member failures, all-or-nothing, quota and rate limit."""

from __future__ import annotations

import io
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from conftest import AuthHarness, Harness
from meshfs_server_backends import STARTUP_SECONDS

from meshfs_common.bulk import BULK_MAX_FILE, PAX_ERROR, PAX_VERSION_ID
from meshfs_common.hashing import hash_bytes
from meshfs_common.tarstream import END, file_member, member_header, padding
from meshfs_server.app import create_app
from meshfs_server.domain import bulk as bulk_domain
from meshfs_server.settings import Settings

TAR = {"Content-Type": "application/x-tar"}


def archive(*members: tuple[str, bytes | None] | tarfile.TarInfo) -> bytes:
    """A tar as users' tools make it: (name, data) files, (name, None) directories."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
                continue
            name, data = member
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def members_of(body: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes | None]]:
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        out: dict[str, tuple[tarfile.TarInfo, bytes | None]] = {}
        for info in tar.getmembers():
            handle = tar.extractfile(info) if info.isfile() else None
            out[info.name] = (info, handle.read() if handle else None)
        return out


async def bulk_write(client: httpx.AsyncClient, root: str, body: bytes, **params: Any) -> Any:
    return await client.post("/files/bulk", params={"path": root, **params}, content=body,
                             headers=TAR)  # fmt: skip


async def events(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    return (await client.get("/sync/pull", params={"cursor": 0, "limit": 1000})).json()["events"]


async def test_bulk_write_lands_every_file_as_its_own_version(client: httpx.AsyncClient) -> None:
    files = {f"proj/src/m{i}.py": f"print({i})\n".encode() for i in range(30)}
    body = archive(("./", None), ("proj", None), ("proj/empty", None), *files.items(),
                   ("proj/zero.bin", b""))  # fmt: skip
    reply = await bulk_write(client, "/in", body)
    assert reply.status_code == 200, reply.text
    result = reply.json()
    assert result["failed"] == []
    assert result["stopped"] is None
    assert result["files"] == 31
    written = {w["path"]: w for w in result["written"]}
    assert written["/in/proj/empty"]["kind"] == "dir"
    for name, data in files.items():
        got = await client.get("/files/download", params={"path": f"/in/{name}"})
        assert got.content == data
        assert written[f"/in/{name}"]["content_hash"] == hash_bytes(data).content_hash
    assert (await client.get("/files/meta", params={"path": "/in/proj/zero.bin"})).json()[
        "size"
    ] == 0
    writes = [e for e in await events(client) if e["type"] == "write"]
    assert sorted(e["path"] for e in writes) == sorted(
        [f"/in/{n}" for n in files] + ["/in/proj/zero.bin"]
    )
    # The same archive again: identical content is no new version and no event.
    again = (await bulk_write(client, "/in", body)).json()
    assert not any(w["created_version"] for w in again["written"])
    assert len([e for e in await events(client) if e["type"] == "write"]) == len(writes)


async def test_bulk_write_commits_in_batches(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk_domain, "BATCH_FILES", 7)
    body = archive(*((f"f{i}", bytes([i])) for i in range(40)))
    result = (await bulk_write(client, "/b", body)).json()
    assert result["files"] == 40
    seqs = [e["seq"] for e in await events(client) if e["type"] == "write"]
    assert seqs == sorted(seqs)
    assert len(seqs) == 40


async def test_bad_members_are_reported_by_name_and_the_rest_land(
    client: httpx.AsyncClient,
) -> None:
    await client.put("/files/content", params={"path": "/t/taken"}, content=b"a file")
    link = tarfile.TarInfo("link")
    link.type, link.linkname = tarfile.SYMTYPE, "good1"
    body = archive(
        ("good1", b"one"), ("../escape", b"x"), link, ("big.bin", b"x" * (BULK_MAX_FILE + 1)),
        ("taken/below", b"under a file"), ("bad\x01name", b"x"), ("good2", b"two"),
    )  # fmt: skip
    reply = await bulk_write(client, "/t", body)
    assert reply.status_code == 200, reply.text
    result = reply.json()
    assert [w["name"] for w in result["written"]] == ["good1", "good2"]
    failed = {f["name"]: f["error"] for f in result["failed"]}
    assert failed == {
        "../escape": "invalid_path", "link": "bad_request", "big.bin": "payload_too_large",
        "taken/below": "not_a_directory", "bad\x01name": "invalid_path",
    }  # fmt: skip
    assert all(f["message"] for f in result["failed"])
    assert (await client.get("/files/download", params={"path": "/t/good2"})).content == b"two"
    assert (await client.get("/files/meta", params={"path": "/t/big.bin"})).status_code == 404


async def test_atomic_bulk_write_is_all_or_nothing(client: httpx.AsyncClient) -> None:
    await client.put("/files/content", params={"path": "/a/taken"}, content=b"a file")
    before = await events(client)
    body = archive(("ok1", b"1"), ("dir", None), ("taken/below", b"x"), ("ok2", b"2"))
    reply = await bulk_write(client, "/a", body, atomic="true")
    assert reply.status_code == 409, reply.text
    assert reply.json()["error"] == "not_a_directory"
    assert reply.json()["detail"]["name"] == "taken/below"
    assert "taken/below" in reply.json()["error_description"]
    assert await events(client) == before
    assert (await client.get("/files/meta", params={"path": "/a/ok1"})).status_code == 404
    good = await bulk_write(client, "/a", archive(("ok1", b"1"), ("ok2", b"2")), atomic="true")
    assert good.status_code == 200
    assert good.json()["files"] == 2


async def test_if_absent_writes_only_paths_that_do_not_exist(client: httpx.AsyncClient) -> None:
    await client.put("/files/content", params={"path": "/n/file"}, content=b"mine")
    made = await client.post("/files/mkdir", json={"path": "/n/dir"})
    assert made.status_code == 201, made.text
    before = (await client.get("/files/meta", params={"path": "/n/file"})).json()
    body = archive(("./", None), ("new1", b"1"), ("file", b"theirs"), ("dir", b"over a dir"),
                   ("sub", None), ("sub/new2", b"2"))  # fmt: skip
    reply = await bulk_write(client, "/n", body, if_absent="true")
    assert reply.status_code == 200, reply.text
    result = reply.json()
    assert sorted(w["name"] for w in result["written"] if w["kind"] == "file") == [
        "new1", "sub/new2",
    ]  # fmt: skip
    assert [(f["name"], f["path"], f["error"]) for f in result["failed"]] == [
        ("file", "/n/file", "already_exists"), ("dir", "/n/dir", "already_exists"),
    ]  # fmt: skip
    assert all("already exists" in f["message"] for f in result["failed"])
    assert (await client.get("/files/download", params={"path": "/n/file"})).content == b"mine"
    after = (await client.get("/files/meta", params={"path": "/n/file"})).json()
    assert after["version_id"] == before["version_id"]
    assert (await client.get("/files/meta", params={"path": "/n/dir"})).json()["kind"] == "dir"
    assert (await client.get("/files/download", params={"path": "/n/sub/new2"})).content == b"2"
    # Without if_absent the same member overwrites, as before.
    plain = await bulk_write(client, "/n", archive(("file", b"theirs")))
    assert plain.json()["failed"] == []
    assert (await client.get("/files/download", params={"path": "/n/file"})).content == b"theirs"


async def test_a_create_only_batch_sent_again_reports_its_files_written(
    client: httpx.AsyncClient,
) -> None:
    """A client re-sends a batch whose answer it lost: the files it already created hold exactly
    that content, so they are reported written (no new version), not refused as existing."""
    body = archive(("a", b"one"), ("b", b"two"))
    first = await bulk_write(client, "/again", body, if_absent="true")
    assert first.status_code == 200, first.text
    again = await bulk_write(client, "/again", body, if_absent="true")
    assert again.status_code == 200, again.text
    result = again.json()
    assert result["failed"] == []
    by_name = {w["name"]: w for w in first.json()["written"]}
    for written in result["written"]:
        assert written["version_id"] == by_name[written["name"]]["version_id"]
        assert written["created_version"] is False
    # Other content at a taken path is still refused and the file kept.
    other = await bulk_write(client, "/again", archive(("a", b"ONE")), if_absent="true")
    assert [f["error"] for f in other.json()["failed"]] == ["already_exists"]
    assert (await client.get("/files/download", params={"path": "/again/a"})).content == b"one"


async def test_atomic_if_absent_write_fails_whole_on_an_existing_path(
    client: httpx.AsyncClient,
) -> None:
    await client.put("/files/content", params={"path": "/na/taken"}, content=b"mine")
    before = await events(client)
    body = archive(("ok1", b"1"), ("taken", b"theirs"), ("ok2", b"2"))
    reply = await bulk_write(client, "/na", body, atomic="true", if_absent="true")
    assert reply.status_code == 409, reply.text
    assert reply.json()["error"] == "already_exists"
    assert reply.json()["detail"]["name"] == "taken"
    assert await events(client) == before
    assert (await client.get("/files/meta", params={"path": "/na/ok1"})).status_code == 404
    assert (await client.get("/files/download", params={"path": "/na/taken"})).content == b"mine"


async def test_if_absent_is_decided_when_the_batch_commits(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another writer creates a member's path after the request has read and stored the batch,
    # just before its commit: the commit sees it and leaves it alone.
    store = bulk_domain.BulkWrites._store

    async def store_then_race(self: Any, run: Any, files: Any) -> None:
        await store(self, run, files)
        created = await client.put("/files/content", params={"path": "/race/b"}, content=b"won")
        assert created.status_code in (200, 201), created.text

    monkeypatch.setattr(bulk_domain.BulkWrites, "_store", store_then_race)
    body = archive(("a", b"1"), ("b", b"lost"), ("c", b"3"))
    reply = await bulk_write(client, "/race", body, if_absent="true")
    assert reply.status_code == 200, reply.text
    assert [w["name"] for w in reply.json()["written"]] == ["a", "c"]
    assert [(f["name"], f["error"]) for f in reply.json()["failed"]] == [("b", "already_exists")]
    assert (await client.get("/files/download", params={"path": "/race/b"})).content == b"won"
    writes = [e["path"] for e in await events(client) if e["type"] == "write"]
    assert writes.count("/race/b") == 1


async def test_malformed_archives_and_media(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    junk = await bulk_write(client, "/j", b"this is not a tar archive" * 40)
    assert (junk.status_code, junk.json()["error"]) == (400, "bad_request")
    cut = archive(("a", b"x" * 2000))[:1024]
    short = await bulk_write(client, "/j", cut)
    assert short.status_code == 400
    assert "ends early" in short.json()["error_description"]
    wrong = await client.post("/files/bulk", params={"path": "/j"}, content=b"{}",
                              headers={"Content-Type": "application/json"})  # fmt: skip
    assert wrong.status_code == 415
    nopath = await client.post("/files/bulk", content=archive(("a", b"1")), headers=TAR)
    assert nopath.status_code == 400
    # Good members, then garbage: the batch committed stays, the one in hand does not land,
    # and the answer says where it stopped.
    monkeypatch.setattr(bulk_domain, "BATCH_FILES", 2)
    mixed = archive(("one", b"1"), ("two", b"2"), ("three", b"3"))[: 3 * 1024] + b"junk" * 128
    reply = await bulk_write(client, "/j", mixed)
    assert reply.status_code == 200
    assert reply.json()["stopped"]["error"] == "bad_request"
    assert [w["name"] for w in reply.json()["written"]] == ["one", "two"]
    assert [(f["name"], f["error"]) for f in reply.json()["failed"]] == [("three", "bad_request")]
    assert (await client.get("/files/meta", params={"path": "/j/three"})).status_code == 404


async def test_read_subtree_as_tar(client: httpx.AsyncClient) -> None:
    files = {"a.txt": b"A", "sub/b.txt": b"B" * 5000, "sub/deeper/c.txt": b""}
    await bulk_write(client, "/tree", archive(("empty", None), *files.items()))
    await client.put("/files/content", params={"path": "/outside"}, content=b"no")
    reply = await client.get("/files/bulk", params={"path": "/tree"})
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/x-tar")
    got = members_of(reply.content)
    assert {n: d for n, (_, d) in got.items() if d is not None} == files
    assert got["empty"][0].isdir()
    assert got["sub"][0].isdir()
    assert got["sub"][0].mode & 0o700 == 0o700
    tagged = members_of(
        (await client.get("/files/bulk", params={"path": "/tree", "meta": "true"})).content
    )
    meta = (await client.get("/files/meta", params={"path": "/tree/a.txt"})).json()
    assert tagged["a.txt"][0].pax_headers[PAX_VERSION_ID] == meta["version_id"]
    missing = await client.get("/files/bulk", params={"path": "/nope"})
    assert missing.status_code == 404


async def test_read_list_of_files(client: httpx.AsyncClient) -> None:
    await bulk_write(client, "/l", archive(("x", b"X"), ("y", b"Y"), ("d", None)))
    wanted = {"paths": ["/l/x", "/l/missing", "/l/y", "/l/d"]}
    strict = await client.post("/files/bulk/read", json=wanted)
    assert (strict.status_code, strict.json()["error"]) == (404, "not_found")
    assert strict.json()["detail"]["path"] == "/l/missing"
    reply = await client.post("/files/bulk/read", params={"meta": "true"}, json=wanted)
    assert reply.status_code == 200
    got = members_of(reply.content)
    assert got["l/x"][1] == b"X"
    assert got["l/y"][1] == b"Y"
    assert got["l/missing"][0].pax_headers[PAX_ERROR] == "not_found"
    assert got["l/d"][0].pax_headers[PAX_ERROR] == "is_a_directory"
    ok = await client.post("/files/bulk/read", json={"paths": ["/l/x", "/l/y"]})
    assert [i.name for i, _ in members_of(ok.content).values()] == ["l/x", "l/y"]


async def test_read_many_files_of_one_directory(client: httpx.AsyncClient) -> None:
    # Many names wanted in one directory (it is listed once), in a directory larger than what
    # is listed (looked up by name), and the ways a path can fail, all in the order given.
    files = [(f"m/f{i}", f"m{i}".encode()) for i in range(30)]
    files += [(f"big/g{i:03}", f"g{i}".encode()) for i in range(200)]
    assert (await bulk_write(client, "/", archive(*files))).status_code == 200
    gone = await client.delete("/files", params={"path": "/m/f3"})
    assert gone.status_code == 200, gone.text
    wanted = [f"/m/f{i}" for i in (29, 0, 7, 12, 1, 2, 4, 5, 6, 8, 9)]
    wanted += ["/m/nope", "/m/f3", "/m/f1/x", "/m", "/big/g150", "/big/nope"]
    wanted += [f"/big/g{i:03}" for i in range(0, 200, 20)]
    reply = await client.post("/files/bulk/read", params={"meta": "true"},
                              json={"paths": wanted})  # fmt: skip
    assert reply.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(reply.content)) as tar:
        members = tar.getmembers()
        assert ["/" + m.name for m in members] == wanted
        errors = {"/" + m.name: m.pax_headers.get(PAX_ERROR) for m in members}
        for m in members:
            if errors["/" + m.name] is None:
                handle = tar.extractfile(m)
                assert handle is not None
                assert handle.read() == dict(files)[m.name]
    assert {p: e for p, e in errors.items() if e} == {
        "/m/nope": "not_found", "/m/f3": "not_found", "/m/f1/x": "not_a_directory",
        "/m": "is_a_directory", "/big/nope": "not_found",
    }  # fmt: skip
    strict = await client.post("/files/bulk/read", json={"paths": wanted})
    assert (strict.status_code, strict.json()["detail"]["path"]) == (404, "/m/nope")


async def test_bulk_write_under_a_limited_scope(harness: Harness) -> None:
    from meshfs_server.domain.actor import Actor

    token = harness.tokens.add(
        Actor(tenant_id=harness.tenant_id, user_id="agent", path_prefix="/p")
    )
    async with httpx.AsyncClient(
        transport=harness.client._transport, base_url="http://meshfs.test",
        headers={"Authorization": f"Bearer {token}"},
    ) as agent:  # fmt: skip
        reply = await bulk_write(agent, "/", archive(("p/in", b"1"), ("q/out", b"2")))
        assert reply.status_code == 200
        assert [w["path"] for w in reply.json()["written"]] == ["/p/in"]
        assert [(f["name"], f["error"]) for f in reply.json()["failed"]] == [("q/out", "forbidden")]
        outside = await agent.get("/files/bulk", params={"path": "/"})
        assert outside.status_code == 403


# --- quota and rate limits (real identity) ------------------------------------------------------


@pytest.fixture
async def limited(tmp_path: Path, backend: dict[str, Any]) -> AsyncIterator[AuthHarness]:
    settings = Settings(
        data_dir=tmp_path / "limited", gc_grace_seconds=0, tenant_storage_quota_bytes=1000,
        rate_limit_per_minute=30, **backend,
    )  # fmt: skip
    app = create_app(settings, background=False)
    async with LifespanManager(app, startup_timeout=STARTUP_SECONDS) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://meshfs.test") as client:
            yield AuthHarness(app, transport, client, app.state.services, settings)


async def test_quota_is_counted_per_file_mid_batch(limited: AuthHarness) -> None:
    owner = await limited.login("alice")
    async with limited.client_for(owner.access_token) as alice:
        body = archive(*((f"f{i}", bytes([i]) * 300) for i in range(5)))
        reply = await bulk_write(alice, "/q", body)
        result = reply.json()
        assert [w["name"] for w in result["written"]] == ["f0", "f1", "f2"]
        assert [(f["name"], f["error"]) for f in result["failed"]] == [
            ("f3", "quota_exceeded"), ("f4", "quota_exceeded"),
        ]  # fmt: skip
        usage = (await alice.get("/plans/current")).json()["storage"]
        assert usage["used"] == 900
        atomic = await bulk_write(alice, "/q2", archive(("g", b"g" * 50), ("h", b"h" * 80)),
                                  atomic="true")  # fmt: skip
        assert (atomic.status_code, atomic.json()["error"]) == (507, "quota_exceeded")
        assert (await alice.get("/files/meta", params={"path": "/q2/g"})).status_code == 404


async def test_bulk_counts_files_against_the_rate_limit(
    tmp_path: Path, backend: dict[str, Any]
) -> None:
    # 6 requests a minute: a token comes back every 10 s, longer than a bulk write waits for
    # one, so the write stops where the budget runs out.
    settings = Settings(data_dir=tmp_path / "rl", rate_limit_per_minute=6, **backend)
    app = create_app(settings, background=False)
    async with LifespanManager(app, startup_timeout=STARTUP_SECONDS) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            harness = AuthHarness(app, transport, client, app.state.services, settings)
            owner = await harness.login("alice")
            async with harness.client_for(owner.access_token) as alice:
                body = archive(*((f"f{i}", b"") for i in range(2000)))
                reply = await bulk_write(alice, "/r", body)
                after = await alice.get("/files/list", params={"path": "/"})
                read = await alice.get("/files/bulk", params={"path": "/r"})
    assert reply.status_code == 200, reply.text
    result = reply.json()
    assert result["stopped"]["error"] == "rate_limited"
    # What the rest of the refused batch and the next request need, at a token per 10 s.
    assert result["stopped"]["retry_after"] > 10
    # The request costs 1 token and each batch of 500 files 5 of the 6: the second batch is
    # refused (a token may come back meanwhile: never 5), and the rest is not read.
    assert result["files"] == 500
    assert [f["name"] for f in result["failed"]] == [f"f{i}" for i in range(500, 1000)]
    assert {f["error"] for f in result["failed"]} == {"rate_limited"}
    # The budget is spent for everything else too.
    assert after.status_code == 429
    assert read.status_code == 429


async def test_attributes_keep_each_members_mode_and_exact_mtime(
    client: httpx.AsyncClient,
) -> None:
    await client.put("/files/content", params={"path": "/p/old"}, content=b"before")
    await client.put("/files/content", params={"path": "/p/same"}, content=b"same")
    same_before = (await client.get("/files/meta", params={"path": "/p/same"})).json()
    odd = 1_600_000_000_123_456_789
    body = b"".join((
        file_member("run.sh", b"#!/bin/sh\n", mode=0o755, mtime_ns=odd),
        file_member("sub/secret", b"s", mode=0o600, mtime_ns=999_999_999),
        file_member("old", b"after", mode=0o700, mtime_ns=odd + 1),
        file_member("same", b"same", mode=0o640, mtime_ns=odd + 2),
        file_member("whole", b"w", mode=0o644, mtime_ns=1_500_000_000 * 10**9),
    )) + END  # fmt: skip
    reply = await bulk_write(client, "/p", body, attributes="true")
    assert reply.status_code == 200, reply.text
    assert reply.json()["failed"] == []

    async def meta(path: str) -> dict[str, Any]:
        return (await client.get("/files/meta", params={"path": path})).json()  # type: ignore[no-any-return]

    got = {p: await meta(f"/p/{p}") for p in ("run.sh", "sub/secret", "old", "same", "whole")}
    assert {p: (m["mode"], m["mtime_ns"]) for p, m in got.items()} == {
        "run.sh": (0o755, odd), "sub/secret": (0o600, 999_999_999), "old": (0o700, odd + 1),
        "same": (0o640, odd + 2), "whole": (0o644, 1_500_000_000 * 10**9),
    }  # fmt: skip
    # The existing file changed content (a new version) and mode; the one already holding the
    # member's content got no new version, only its attributes.
    assert (await client.get("/files/download", params={"path": "/p/old"})).content == b"after"
    assert got["same"]["version_id"] == same_before["version_id"]
    kinds = [(e["type"], e["path"]) for e in await events(client) if e["path"] == "/p/same"]
    assert kinds[-1] == ("attributes", "/p/same")


async def test_without_attributes_members_modes_and_times_are_not_taken(
    client: httpx.AsyncClient,
) -> None:
    body = file_member("x", b"x", mode=0o755, mtime_ns=1_000_000_000_123) + END
    reply = await bulk_write(client, "/q", body)
    assert reply.status_code == 200, reply.text
    entry = (await client.get("/files/meta", params={"path": "/q/x"})).json()
    assert entry["mode"] == 0o644
    assert entry["mtime_ns"] != 1_000_000_000_123


async def test_attributes_a_time_out_of_range_fails_that_member_by_name(
    client: httpx.AsyncClient,
) -> None:
    far = member_header("far", size=1, pax={"mtime": "99999999999999999999"}) + b"f"
    body = far + bytes(padding(1)) + file_member("near", b"n", mtime_ns=5) + END
    reply = await bulk_write(client, "/r", body, attributes="true")
    assert reply.status_code == 200, reply.text
    [failure] = reply.json()["failed"]
    assert (failure["name"], failure["error"]) == ("far", "bad_request")
    assert "mtime" in failure["message"]
    assert (await client.get("/files/meta", params={"path": "/r/near"})).json()["mtime_ns"] == 5
