"""Hard links through the HTTP API, on each backend: what ln, git, rsync -H and tar rely on - one
file under several names, one history, exact nlink - and every refusal with its error code."""

from __future__ import annotations

import httpx
import pytest
from conftest import Harness


async def write(client: httpx.AsyncClient, path: str, data: bytes) -> dict:
    r = await client.put("/files/content", params={"path": path}, content=data)
    assert r.status_code in (200, 201), r.text
    return r.json()


async def link(client: httpx.AsyncClient, path: str, new_path: str) -> httpx.Response:
    return await client.post("/files/link", json={"path": path, "new_path": new_path})


async def meta(client: httpx.AsyncClient, path: str) -> dict:
    r = await client.get("/files/meta", params={"path": path})
    assert r.status_code == 200, r.text
    return r.json()


async def read(client: httpx.AsyncClient, path: str) -> bytes:
    r = await client.get("/files/download", params={"path": path})
    assert r.status_code == 200, r.text
    return r.content


async def events(client: httpx.AsyncClient) -> list[dict]:
    return (await client.get("/sync/pull", params={"cursor": 0})).json()["events"]


def error(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]


async def test_a_link_is_the_same_file_under_another_name(client: httpx.AsyncClient) -> None:
    first = await write(client, "/a.txt", b"one")
    await client.post("/files/mkdir", json={"path": "/d"})
    r = await link(client, "/a.txt", "/d/b.txt")
    assert r.status_code == 201
    assert r.json()["path"] == "/d/b.txt"
    assert r.json()["node_id"] == first["entry"]["node_id"]
    assert r.json()["nlink"] == 2
    a, b = await meta(client, "/a.txt"), await meta(client, "/d/b.txt")
    assert a["node_id"] == b["node_id"]
    assert a["nlink"] == b["nlink"] == 2
    listed = (await client.get("/files/list", params={"path": "/d"})).json()["entries"]
    assert [(e["name"], e["node_id"], e["nlink"]) for e in listed] == [("b.txt", a["node_id"], 2)]
    link_events = [e for e in await events(client) if e["type"] == "link"]
    assert [(e["path"], e["node_id"], e["version_id"]) for e in link_events] == [
        ("/d/b.txt", a["node_id"], first["version"]["version_id"])
    ]


async def test_a_write_through_any_name_is_one_history(client: httpx.AsyncClient) -> None:
    first = await write(client, "/a", b"one")
    await link(client, "/a", "/b")
    second = await write(client, "/b", b"two")
    assert second["entry"]["node_id"] == first["entry"]["node_id"]
    assert await read(client, "/a") == b"two"
    assert (await meta(client, "/a"))["version_id"] == second["version"]["version_id"]
    versions = (await client.get(f"/files/{first['entry']['node_id']}/versions")).json()
    assert [v["version_id"] for v in versions["versions"]] == [
        second["version"]["version_id"],
        first["version"]["version_id"],
    ]


async def test_refusals(client: httpx.AsyncClient) -> None:
    await write(client, "/a", b"one")
    await write(client, "/taken", b"x")
    await client.post("/files/mkdir", json={"path": "/dir"})
    assert error(await link(client, "/a", "/taken")) == (409, "already_exists")
    assert error(await link(client, "/dir", "/dir2")) == (403, "not_permitted")
    assert error(await link(client, "/missing", "/x")) == (404, "not_found")
    assert error(await link(client, "/a", "/nowhere/x")) == (404, "not_found")
    assert error(await link(client, "/a", "/taken/x")) == (409, "not_a_directory")
    assert error(await link(client, "/a", "/")) == (409, "already_exists")
    assert error(await link(client, "/a", "/bad/../x")) == (400, "invalid_path")
    assert (await meta(client, "/a"))["nlink"] == 1
    assert (await client.get("/files/meta", params={"path": "/dir2"})).status_code == 404


@pytest.mark.parametrize(
    ("kind", "make"),
    [
        ("symlink", {"url": "/files/symlink", "json": {"target": "../some/where"}}),
        ("fifo", {"url": "/files/mknod", "json": {"kind": "fifo", "mode": 0o640}}),
        ("socket", {"url": "/files/mknod", "json": {"kind": "socket"}}),
        ("chardev", {"url": "/files/mknod", "json": {"kind": "chardev", "rdev": 0x0103}}),
        ("blockdev", {"url": "/files/mknod", "json": {"kind": "blockdev", "rdev": 0x0801}}),
    ],
)
async def test_every_kind_but_a_directory_is_linked(
    client: httpx.AsyncClient, kind: str, make: dict
) -> None:
    """ln of a symbolic link, FIFO, socket or device: one node under two names, exact nlink,
    and removing or renaming over one name keeps the node at the other (as link(2))."""
    made = await client.post(make["url"], json={"path": "/a", **make["json"]})
    assert made.status_code == 201, made.text
    r = await link(client, "/a", "/b")
    assert r.status_code == 201, r.text
    a, b = await meta(client, "/a"), await meta(client, "/b")
    assert (b["kind"], b["node_id"], b["nlink"]) == (kind, a["node_id"], 2)
    assert (b["mode"], b["rdev"], b["target"]) == (a["mode"], a["rdev"], a["target"])
    assert a["nlink"] == 2
    assert (await events(client))[-1]["kind"] == kind
    await client.post("/files/attributes", json={"path": "/b", "mode": 0o600})
    assert (await meta(client, "/a"))["mode"] == 0o600
    await write(client, "/other", b"x")
    over = await client.post(
        "/files/rename", json={"path": "/other", "new_path": "/a", "overwrite": True}
    )
    assert over.status_code == 200, over.text
    kept = await meta(client, "/b")
    assert (kept["kind"], kept["node_id"], kept["nlink"]) == (kind, a["node_id"], 1)
    assert (await meta(client, "/a"))["kind"] == "file"
    await link(client, "/b", "/c")
    assert (await client.delete("/files", params={"path": "/b"})).status_code == 200
    last = await meta(client, "/c")
    assert (last["kind"], last["node_id"], last["nlink"]) == (kind, a["node_id"], 1)
    assert (await client.get("/files/meta", params={"path": "/b"})).status_code == 404


async def test_deleting_one_name_keeps_the_others(client: httpx.AsyncClient) -> None:
    first = await write(client, "/a", b"one")
    node_id = first["entry"]["node_id"]
    await link(client, "/a", "/b")
    await link(client, "/a", "/c")
    r = await client.delete("/files", params={"path": "/b"})
    assert r.status_code == 200
    assert (await meta(client, "/a"))["nlink"] == 2
    # The file's first name goes too: the file lives on under its last name.
    await client.delete("/files", params={"path": "/a"})
    assert await read(client, "/c") == b"one"
    by_id = (await client.get("/files/meta", params={"node_id": node_id})).json()
    assert by_id["path"] == "/c"
    assert by_id["nlink"] == 1
    assert by_id["deleted_at"] is None
    assert [
        e["name"] for e in (await client.get("/files/list", params={"path": "/"})).json()["entries"]
    ] == ["c"]
    deletes = [e for e in await events(client) if e["type"] == "delete"]
    assert [(e["path"], e["nlink"]) for e in deletes] == [("/b", 2), ("/a", 1)]
    await client.delete("/files", params={"path": "/c"})
    gone = (await client.get("/files/meta", params={"node_id": node_id})).json()
    assert gone["deleted_at"] is not None
    last = [e for e in await events(client) if e["type"] == "delete"][-1]
    assert last["path"] == "/c"
    assert last["nlink"] is None
    restored = await client.post(
        f"/files/{node_id}/versions/{first['version']['version_id']}/restore"
    )
    assert restored.status_code == 200
    assert restored.json()["entry"]["path"] == "/c"
    assert await read(client, "/c") == b"one"


async def test_recursive_delete_keeps_names_outside(client: httpx.AsyncClient) -> None:
    await write(client, "/d/inner", b"kept")
    await link(client, "/d/inner", "/outside")
    await write(client, "/d/sub/other", b"other")
    await link(client, "/d/sub/other", "/d/twin")
    r = await client.delete("/files", params={"path": "/d", "recursive": "true"})
    assert r.status_code == 200
    assert await read(client, "/outside") == b"kept"
    assert (await meta(client, "/outside"))["nlink"] == 1


async def test_rename_of_a_link_and_over_a_link(client: httpx.AsyncClient) -> None:
    first = await write(client, "/a", b"one")
    await link(client, "/a", "/b")
    moved = await client.post("/files/rename", json={"path": "/b", "new_path": "/c"})
    assert moved.status_code == 200
    assert moved.json()["node_id"] == first["entry"]["node_id"]
    assert (await meta(client, "/c"))["nlink"] == 2
    # Renaming one name over another name of the same file does nothing (rename(2)).
    same = await client.post(
        "/files/rename", json={"path": "/a", "new_path": "/c", "overwrite": True}
    )
    assert same.status_code == 200
    assert (await meta(client, "/a"))["nlink"] == 2
    # Another file renamed over a name (echo one > a; ln a c; mv new c): the name changes
    # hands, the other name keeps its file and content (rename(2) never changes another
    # name's data).
    replacement = await write(client, "/new", b"replacement")
    over = await client.post(
        "/files/rename", json={"path": "/new", "new_path": "/c", "overwrite": True}
    )
    assert over.status_code == 200
    assert over.json()["node_id"] == replacement["entry"]["node_id"]
    assert await read(client, "/c") == b"replacement"
    assert await read(client, "/a") == b"one"
    assert (await meta(client, "/a"))["nlink"] == 1
    assert (await meta(client, "/c"))["nlink"] == 1
    tail = (await events(client))[-2:]
    assert [(e["type"], e["path"]) for e in tail] == [("delete", "/c"), ("rename", "/c")]
    assert tail[0]["node_id"] == first["entry"]["node_id"]
    assert tail[0]["nlink"] == 1
    # A linked file renamed over another: it leaves that name and keeps its others.
    await link(client, "/a", "/a2")
    await write(client, "/other", b"other")
    await client.post(
        "/files/rename", json={"path": "/a2", "new_path": "/other", "overwrite": True}
    )
    assert await read(client, "/a") == b"one"
    assert await read(client, "/other") == b"one"
    assert (await meta(client, "/a"))["nlink"] == 1
    tail = (await events(client))[-2:]
    assert [(e["type"], e["path"]) for e in tail] == [("delete", "/a2"), ("write", "/other")]
    assert tail[0]["nlink"] == 1


async def test_xattrs_and_attributes_belong_to_the_file(client: httpx.AsyncClient) -> None:
    await write(client, "/a", b"one")
    await link(client, "/a", "/b")
    await client.put("/files/xattr", params={"path": "/b", "name": "user.k"}, content=b"v")
    got = await client.get("/files/xattr", params={"path": "/a", "name": "user.k"})
    assert got.content == b"v"


async def test_directory_nlink_counts_subdirectories(client: httpx.AsyncClient) -> None:
    await client.post("/files/mkdir", json={"path": "/p/x"})
    await client.post("/files/mkdir", json={"path": "/p/y"})
    await write(client, "/p/file", b"f")
    assert (await meta(client, "/p"))["nlink"] == 4
    assert (await meta(client, "/p/x"))["nlink"] == 2
    await client.delete("/files", params={"path": "/p/y"})
    assert (await meta(client, "/p"))["nlink"] == 3


async def test_linked_content_is_stored_and_counted_once(
    harness: Harness, client: httpx.AsyncClient
) -> None:
    await write(client, "/a", b"x" * 10_000)
    async with harness.services.store.read(harness.tenant_id) as tx:
        before = (await tx.storage_usage()).committed
    await link(client, "/a", "/b")
    await link(client, "/a", "/c")
    async with harness.services.store.read(harness.tenant_id) as tx:
        assert (await tx.storage_usage()).committed == before


async def test_a_snapshot_restore_brings_every_name_back(client: httpx.AsyncClient) -> None:
    await write(client, "/s/a", b"one")
    await link(client, "/s/a", "/s/b")
    assert (await client.post("/snapshots", json={"path": "/s", "name": "two"})).status_code == 201
    await client.delete("/files", params={"path": "/s/a"})
    await write(client, "/s/b", b"changed")
    await link(client, "/s/b", "/s/c")
    r = await client.post("/snapshots/two/restore")
    assert r.status_code == 200, r.text
    names = [
        e["name"]
        for e in (await client.get("/files/list", params={"path": "/s"})).json()["entries"]
    ]
    assert names == ["a", "b"]
    assert await read(client, "/s/a") == await read(client, "/s/b") == b"one"
    assert (await meta(client, "/s/a"))["nlink"] == 2


async def test_a_snapshot_takes_every_name_once_also_of_files_outside(
    client: httpx.AsyncClient,
) -> None:
    await write(client, "/outside", b"one")
    await client.post("/files/mkdir", json={"path": "/t"})
    await link(client, "/outside", "/t/g")
    await link(client, "/outside", "/t/h")
    r = await client.post("/snapshots", json={"path": "/t", "name": "links"})
    assert r.status_code == 201, r.text
    assert r.json()["files"] == 2


async def test_retention_keeps_a_file_while_a_snapshot_lists_one_of_its_names(
    harness: Harness, client: httpx.AsyncClient
) -> None:
    first = await write(client, "/outside", b"kept")
    await client.post("/files/mkdir", json={"path": "/t"})
    await link(client, "/outside", "/t/name")
    assert (await client.post("/snapshots", json={"path": "/t", "name": "t"})).status_code == 201
    await client.delete("/files", params={"path": "/t/name"})
    await client.delete("/files", params={"path": "/outside"})
    await harness.services.namespace.purge_tombstones(harness.tenant_id, 2e9)
    restored = await client.post("/snapshots/t/restore")
    assert restored.status_code == 200, restored.text
    assert await read(client, "/t/name") == b"kept"
    assert (await meta(client, "/t/name"))["node_id"] == first["entry"]["node_id"]
