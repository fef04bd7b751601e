"""POSIX attributes and node kinds through the HTTP API: chmod/chown/utimens, the times the
server maintains, symbolic links (never followed) and special nodes, with every refusal."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


async def write(client: httpx.AsyncClient, path: str, data: bytes) -> httpx.Response:
    return await client.put("/files/content", params={"path": path}, content=data)


async def meta(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    r = await client.get("/files/meta", params={"path": path})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def events(client: httpx.AsyncClient, cursor: int = 0) -> list[dict[str, Any]]:
    r = await client.get("/sync/pull", params={"cursor": cursor})
    assert r.status_code == 200
    return list(r.json()["events"])


async def cursor(client: httpx.AsyncClient) -> int:
    r = await client.get("/sync/pull", params={"cursor": 0})
    return int(r.json()["cursor"])


async def attributes(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    headers = {"If-Match": body.pop("if_match")} if "if_match" in body else {}
    return await client.post("/files/attributes", json=body, headers=headers)


async def symlink(client: httpx.AsyncClient, path: str, target: str) -> httpx.Response:
    return await client.post("/files/symlink", json={"path": path, "target": target})


def refused(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    assert r.json()["error"] == code
    return str(r.json()["error_description"])


# --- attributes ---------------------------------------------------------------------------------


async def test_new_nodes_carry_default_attributes(client: httpx.AsyncClient) -> None:
    await write(client, "/d/f.txt", b"hello")
    f, d = await meta(client, "/d/f.txt"), await meta(client, "/d")
    assert (f["mode"], d["mode"]) == (0o644, 0o755)
    assert f["mtime_ns"] == f["ctime_ns"] == f["atime_ns"] > 0
    assert f["modified_at"]
    assert (f["target"], f["rdev"]) == (None, 0)
    versions = (await client.get(f"/files/{f['node_id']}/versions")).json()["versions"]
    assert versions[0]["mode"] == 0o644


async def test_chmod_chown_utimens_change_attributes_not_content(
    client: httpx.AsyncClient,
) -> None:
    await write(client, "/f", b"data")
    before = await meta(client, "/f")
    seen = await cursor(client)
    r = await attributes(
        client, path="/f", mode=0o4755, uid=1234, gid=99, mtime_ns=1_000_000_000_123,
        atime_ns=2_000_000_000_456,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    after = r.json()
    assert (after["mode"], after["uid"], after["gid"]) == (0o4755, 1234, 99)
    assert (after["mtime_ns"], after["atime_ns"]) == (1_000_000_000_123, 2_000_000_000_456)
    assert after["modified_at"].startswith("1970-01-01T00:16:40")
    assert after["ctime_ns"] > before["ctime_ns"]
    assert after["version_id"] == before["version_id"]
    assert await meta(client, "/f") == after
    versions = (await client.get(f"/files/{before['node_id']}/versions")).json()["versions"]
    assert len(versions) == 1
    [event] = await events(client, seen)
    assert event["type"] == "attributes"
    assert event["path"] == "/f"
    assert event["node_id"] == before["node_id"]
    assert event["attributes"] == {
        "mode": 0o4755, "uid": 1234, "gid": 99, "mtime_ns": 1_000_000_000_123,
        "atime_ns": 2_000_000_000_456,
    }  # fmt: skip
    assert event["old_attributes"]["mode"] == 0o644
    assert event["old_attributes"]["mtime_ns"] == before["mtime_ns"]


async def test_only_changed_attributes_are_in_the_event(client: httpx.AsyncClient) -> None:
    await client.post("/files/mkdir", json={"path": "/d"})
    seen = await cursor(client)
    r = await attributes(client, path="/d", mode=0o700, uid=(await meta(client, "/d"))["uid"])
    assert r.status_code == 200
    [event] = await events(client, seen)
    assert (event["attributes"], event["old_attributes"]) == ({"mode": 0o700}, {"mode": 0o755})
    again = await attributes(client, path="/d", mode=0o700)
    assert again.status_code == 200
    assert again.json()["ctime_ns"] == r.json()["ctime_ns"]
    assert await events(client, seen + 1) == []  # nothing changed: no event


async def test_attributes_honour_if_match(client: httpx.AsyncClient) -> None:
    head = (await write(client, "/f", b"one")).json()["version"]["version_id"]
    stale = await attributes(client, path="/f", mode=0o600, if_match="not-the-head")
    refused(stale, 412, "precondition_failed")
    assert (await meta(client, "/f"))["mode"] == 0o644
    ok = await attributes(client, path="/f", mode=0o600, if_match=head)
    assert ok.json()["mode"] == 0o600


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"mode": 0o10000}, "mode"),
        ({"mode": -1}, "mode"),
        ({"uid": -5}, "uid"),
        ({"gid": 2**32}, "gid"),
        ({"mtime_ns": 2**63}, "mtime_ns"),
        ({}, "at least one"),
    ],
)
async def test_bad_attributes_are_refused(
    client: httpx.AsyncClient, body: dict[str, int], message: str
) -> None:
    await write(client, "/f", b"x")
    seen = await cursor(client)
    r = await attributes(client, path="/f", **body)
    assert message in refused(r, 400, "bad_request")
    assert (await meta(client, "/f"))["mode"] == 0o644
    assert await events(client, seen) == []


async def test_attributes_of_a_missing_path(client: httpx.AsyncClient) -> None:
    refused(await attributes(client, path="/nope", mode=0o600), 404, "not_found")


async def test_writes_record_the_mode_and_move_mtime(client: httpx.AsyncClient) -> None:
    await write(client, "/run.sh", b"echo 1")
    await attributes(client, path="/run.sh", mode=0o755, mtime_ns=5)
    r = await write(client, "/run.sh", b"echo 2")
    entry = r.json()["entry"]
    assert entry["mode"] == 0o755
    assert entry["mtime_ns"] > 5
    assert entry["ctime_ns"] == entry["mtime_ns"]
    versions = (await client.get(f"/files/{entry['node_id']}/versions")).json()["versions"]
    assert [v["mode"] for v in versions] == [0o755, 0o644]


async def test_mkdir_takes_a_mode_and_owner(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/files/mkdir", json={"path": "/a/private", "mode": 0o1700, "uid": 7, "gid": 8}
    )
    assert r.status_code == 201
    assert (r.json()["mode"], r.json()["uid"], r.json()["gid"]) == (0o1700, 7, 8)
    assert (await meta(client, "/a"))["mode"] == 0o755  # a parent made on the way
    bad = await client.post("/files/mkdir", json={"path": "/b", "mode": 0o70000})
    refused(bad, 400, "bad_request")
    assert (await client.get("/files/meta", params={"path": "/b"})).status_code == 404


async def test_directory_times_move_with_its_entries(client: httpx.AsyncClient) -> None:
    await client.post("/files/mkdir", json={"path": "/src"})
    await client.post("/files/mkdir", json={"path": "/dst"})

    async def stamp(path: str) -> tuple[int, int]:
        found = await meta(client, path)
        return found["mtime_ns"], found["ctime_ns"]

    steps = [
        (lambda: write(client, "/src/f", b"x"), ["/src"]),
        (lambda: write(client, "/src/f", b"y"), []),  # content, not an entry, changed
        (
            lambda: client.post("/files/rename", json={"path": "/src/f", "new_path": "/dst/f"}),
            ["/src", "/dst"],
        ),
        (lambda: symlink(client, "/dst/l", "f"), ["/dst"]),
        (lambda: client.delete("/files", params={"path": "/dst/f"}), ["/dst"]),
    ]
    for step, moved in steps:
        before = {p: await stamp(p) for p in ("/src", "/dst")}
        r = await step()
        assert r.status_code in (200, 201), r.text
        for p in ("/src", "/dst"):
            now = await stamp(p)
            if p in moved:
                assert now[0] > before[p][0]
                assert now[0] == now[1]
            else:
                assert now == before[p]


async def test_rename_keeps_mtime_and_moves_ctime(client: httpx.AsyncClient) -> None:
    await write(client, "/f", b"x")
    await attributes(client, path="/f", mtime_ns=1_500_000_000_000_000_000)
    before = await meta(client, "/f")
    r = await client.post("/files/rename", json={"path": "/f", "new_path": "/g"})
    assert r.json()["mtime_ns"] == 1_500_000_000_000_000_000
    assert r.json()["ctime_ns"] > before["ctime_ns"]


# --- symbolic links -----------------------------------------------------------------------------


async def test_symlink_is_stored_verbatim_and_listed(client: httpx.AsyncClient) -> None:
    seen = await cursor(client)
    target = "../elsewhere//x/./y/"
    r = await symlink(client, "/link", target)
    assert r.status_code == 201, r.text
    entry = r.json()
    assert (entry["kind"], entry["target"], entry["mode"], entry["size"]) == (
        "symlink", target, 0o777, 0,
    )  # fmt: skip
    listing = (await client.get("/files/list", params={"path": "/"})).json()["entries"]
    assert [(e["name"], e["kind"], e["target"]) for e in listing] == [("link", "symlink", target)]
    [event] = await events(client, seen)
    assert (event["type"], event["kind"], event["target"]) == ("create", "symlink", target)


async def test_symlink_target_limits(client: httpx.AsyncClient) -> None:
    longest = "t" * 4096
    assert (await symlink(client, "/ok", longest)).json()["target"] == longest
    message = refused(await symlink(client, "/long", "t" * 4097), 400, "name_too_long")
    assert "4096" in message
    refused(await symlink(client, "/empty", ""), 400, "bad_request")
    refused(await symlink(client, "/ok", "other"), 409, "already_exists")
    refused(await symlink(client, "/no/parent", "x"), 404, "not_found")
    assert (await client.get("/files/meta", params={"path": "/long"})).status_code == 404


async def test_a_name_longer_than_255_bytes_is_name_too_long(client: httpx.AsyncClient) -> None:
    long_name = "/" + "n" * 256
    put = await client.put("/files/content", params={"path": long_name}, content=b"x")
    assert "255 bytes" in refused(put, 400, "name_too_long")
    mkdir = await client.post("/files/mkdir", json={"path": long_name})
    refused(mkdir, 400, "name_too_long")
    refused(await symlink(client, long_name, "t"), 400, "name_too_long")
    listing = (await client.get("/files/list", params={"path": "/"})).json()
    assert listing["entries"] == []  # nothing was made


async def test_paths_through_a_symlink_are_not_directories(client: httpx.AsyncClient) -> None:
    await write(client, "/real/f", b"inside")
    await symlink(client, "/link", "real")
    probes = [
        client.get("/files/meta", params={"path": "/link/f"}),
        client.get("/files/list", params={"path": "/link"}),
        client.get("/files/download", params={"path": "/link/f"}),
        write(client, "/link/g", b"x"),
        client.post("/files/mkdir", json={"path": "/link/sub"}),
        client.post("/files/mkdir", json={"path": "/link/sub", "parents": False}),
        client.post("/files/rename", json={"path": "/real/f", "new_path": "/link/f"}),
        client.delete("/files", params={"path": "/link/f"}),
        symlink(client, "/link/l2", "x"),
        client.post("/files/mknod", json={"path": "/link/p", "kind": "fifo"}),
        attributes(client, path="/link/f", mode=0o600),
    ]
    for probe in probes:
        r = await probe
        assert "symbolic link" in refused(r, 409, "not_a_directory"), r.request.url
    assert (await meta(client, "/real/f"))["size"] == 6


async def test_symlinks_have_no_content_or_versions(client: httpx.AsyncClient) -> None:
    link = (await symlink(client, "/l", "target")).json()
    refused(await client.get("/files/download", params={"path": "/l"}), 409, "not_a_file")
    refused(await write(client, "/l", b"x"), 409, "not_a_file")
    refused(await client.get(f"/files/{link['node_id']}/versions"), 409, "not_a_file")
    assert (await meta(client, "/l"))["target"] == "target"


async def test_symlinks_rename_replace_and_delete(client: httpx.AsyncClient) -> None:
    await write(client, "/f", b"x")
    link = (await symlink(client, "/l", "f")).json()
    moved = await client.post("/files/rename", json={"path": "/l", "new_path": "/m"})
    assert (moved.json()["kind"], moved.json()["target"]) == ("symlink", "f")
    refused(
        await client.post("/files/rename", json={"path": "/m", "new_path": "/f"}),
        409, "already_exists",
    )  # fmt: skip
    over = await client.post(
        "/files/rename", json={"path": "/m", "new_path": "/f", "overwrite": True}
    )
    assert (over.json()["node_id"], over.json()["kind"]) == (link["node_id"], "symlink")
    gone = await client.delete("/files", params={"path": "/f"})
    assert gone.status_code == 200
    assert (await client.get("/files/list", params={"path": "/"})).json()["entries"] == []
    restore = await client.post(f"/files/{link['node_id']}/versions/none/restore")
    assert "no versions" in refused(restore, 409, "not_a_file")


async def test_a_file_renamed_over_a_symlink_replaces_it(client: httpx.AsyncClient) -> None:
    await write(client, "/f", b"x")
    await symlink(client, "/l", "f")
    r = await client.post("/files/rename", json={"path": "/f", "new_path": "/l", "overwrite": True})
    assert r.json()["kind"] == "file"
    assert (await meta(client, "/l"))["size"] == 1


# --- special nodes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "rdev"), [("fifo", 0), ("socket", 0), ("chardev", 0x0103), ("blockdev", 0x0801)]
)
async def test_mknod_makes_special_nodes(client: httpx.AsyncClient, kind: str, rdev: int) -> None:
    seen = await cursor(client)
    r = await client.post(
        "/files/mknod", json={"path": "/n", "kind": kind, "mode": 0o600, "rdev": rdev}
    )
    assert r.status_code == 201, r.text
    assert (r.json()["kind"], r.json()["mode"], r.json()["rdev"]) == (kind, 0o600, rdev)
    [event] = await events(client, seen)
    assert (event["type"], event["kind"], event["path"]) == ("create", kind, "/n")
    refused(await client.get("/files/download", params={"path": "/n"}), 409, "not_a_file")
    chmod = await attributes(client, path="/n", mode=0o640)
    assert chmod.json()["mode"] == 0o640
    assert (await client.delete("/files", params={"path": "/n"})).status_code == 200


async def test_mknod_refusals(client: httpx.AsyncClient) -> None:
    await write(client, "/f", b"x")

    async def mknod(**body: Any) -> httpx.Response:
        return await client.post("/files/mknod", json=body)

    assert "rdev" in refused(await mknod(path="/p", kind="fifo", rdev=5), 400, "bad_request")
    refused(await mknod(path="/p", kind="file"), 400, "bad_request")
    refused(await mknod(path="/p", kind="fifo", mode=0o20000), 400, "bad_request")
    refused(await mknod(path="/f", kind="fifo"), 409, "already_exists")
    refused(await mknod(path="/f/p", kind="fifo"), 409, "not_a_directory")
    refused(await mknod(path="/", kind="fifo"), 409, "already_exists")
    listing = (await client.get("/files/list", params={"path": "/"})).json()["entries"]
    assert [e["name"] for e in listing] == ["f"]


async def test_a_file_renamed_over_another_brings_its_attributes(
    client: httpx.AsyncClient,
) -> None:
    """An editor's save (write a temporary file, rename it over the original): what stands at
    the name is the moved file, mode and mtime included, with the original's history."""
    original = (await write(client, "/doc", b"v1")).json()["entry"]
    await write(client, "/doc.tmp", b"v2")
    await attributes(client, path="/doc.tmp", mode=0o600, mtime_ns=42_000_000_000)
    r = await client.post(
        "/files/rename", json={"path": "/doc.tmp", "new_path": "/doc", "overwrite": True}
    )
    saved = r.json()
    assert saved["node_id"] == original["node_id"]
    assert (saved["mode"], saved["mtime_ns"]) == (0o600, 42_000_000_000)
    versions = (await client.get(f"/files/{original['node_id']}/versions")).json()["versions"]
    assert [v["mode"] for v in versions] == [0o600, 0o644]


async def test_a_snapshot_restore_brings_back_links_and_special_nodes(
    client: httpx.AsyncClient,
) -> None:
    await write(client, "/w/f", b"x")
    await symlink(client, "/w/l", "f")
    await client.post("/files/mknod", json={"path": "/w/p", "kind": "fifo"})
    taken = await client.post("/snapshots", json={"path": "/w", "name": "before"})
    assert taken.status_code in (200, 201), taken.text
    for path in ("/w/l", "/w/p"):
        assert (await client.delete("/files", params={"path": path})).status_code == 200
    seen = await cursor(client)
    r = await client.post("/snapshots/before/restore")
    assert r.status_code == 200, r.text
    assert (await meta(client, "/w/l"))["target"] == "f"
    assert (await meta(client, "/w/p"))["kind"] == "fifo"
    created = {(e["path"], e["kind"]) for e in await events(client, seen) if e["type"] == "create"}
    assert created == {("/w/l", "symlink"), ("/w/p", "fifo")}


@pytest.mark.parametrize("size", [3, 4 * 1024 * 1024 + 1])
async def test_a_write_can_give_mode_and_mtime(client: httpx.AsyncClient, size: int) -> None:
    params: dict[str, Any] = {"path": "/tool", "mode": 0o755, "mtime_ns": 1_600_000_000_000_000_001}
    r = await client.put("/files/content", params=params, content=b"x" * size)
    assert r.status_code == 201, r.text
    entry = r.json()["entry"]
    assert (entry["mode"], entry["mtime_ns"]) == (0o755, 1_600_000_000_000_000_001)
    assert r.json()["version"]["mode"] == 0o755
    again = await client.put(
        "/files/content", params={**params, "mode": 0o600, "mtime_ns": 7}, content=b"y" * size
    )
    assert (again.json()["entry"]["mode"], again.json()["entry"]["mtime_ns"]) == (0o755, 7)
    bad = await client.put("/files/content", params={"path": "/b", "mode": 0o10000}, content=b"x")
    assert "mode" in refused(bad, 400, "bad_request")
    assert (await client.get("/files/meta", params={"path": "/b"})).status_code == 404


async def test_what_changed_shows_links_created_and_attribute_changes_as_no_change(
    client: httpx.AsyncClient,
) -> None:
    await write(client, "/h/f", b"x")
    seen = await cursor(client)
    await symlink(client, "/h/l", "f")
    await attributes(client, path="/h/f", mode=0o600)
    r = await client.get("/files/changes", params={"path": "/h", "since_cursor": seen})
    assert r.status_code == 200, r.text
    changes = [(c["path"], c["kind"], c["status"]) for c in r.json()["changes"]]
    assert changes == [("/h/l", "symlink", "created")]
