"""Extended attributes through the HTTP API, on each backend: what setfattr/getfattr, cp -a and
rsync -X rely on, and every refusal with the error code the mount turns into an errno."""

from __future__ import annotations

import httpx
import pytest
from conftest import Harness

XATTR = "/files/xattr"


async def write(client: httpx.AsyncClient, path: str, data: bytes = b"x") -> dict:
    r = await client.put("/files/content", params={"path": path}, content=data)
    assert r.status_code in (200, 201), r.text
    return r.json()


async def setx(
    client: httpx.AsyncClient, path: str, name: str, value: bytes, **params: str
) -> httpx.Response:
    return await client.put(XATTR, params={"path": path, "name": name, **params}, content=value)


async def getx(client: httpx.AsyncClient, path: str, name: str) -> httpx.Response:
    return await client.get(XATTR, params={"path": path, "name": name})


async def names(client: httpx.AsyncClient, path: str) -> list[tuple[str, int]]:
    r = await client.get("/files/xattrs", params={"path": path})
    assert r.status_code == 200, r.text
    return [(x["name"], x["size"]) for x in r.json()["xattrs"]]


async def events(client: httpx.AsyncClient) -> list[dict]:
    r = await client.get("/sync/pull", params={"cursor": 0})
    return r.json()["events"]


def error(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]


async def test_set_get_list_remove_round_trip_bytes(client: httpx.AsyncClient) -> None:
    await write(client, "/f")
    value = bytes(range(256)) * 3
    r = await setx(client, "/f", "user.blob", value)
    assert r.status_code == 200
    assert r.json()["path"] == "/f"
    await setx(client, "/f", "user.a", b"")
    got = await getx(client, "/f", "user.blob")
    assert got.status_code == 200
    assert got.content == value
    assert got.headers["content-type"] == "application/octet-stream"
    assert (await getx(client, "/f", "user.a")).content == b""
    assert await names(client, "/f") == [("user.a", 0), ("user.blob", 768)]
    r = await client.delete(XATTR, params={"path": "/f", "name": "user.blob"})
    assert r.status_code == 200
    assert await names(client, "/f") == [("user.a", 0)]
    assert error(await getx(client, "/f", "user.blob")) == (404, "xattr_not_found")


async def test_directories_carry_xattrs_too(client: httpx.AsyncClient) -> None:
    await client.post("/files/mkdir", json={"path": "/d"})
    assert (await setx(client, "/d", "user.tag", b"blue")).status_code == 200
    assert (await getx(client, "/d", "user.tag")).content == b"blue"


async def test_a_change_is_a_feed_event_without_the_value_and_no_version(
    client: httpx.AsyncClient,
) -> None:
    written = await write(client, "/f", b"content")
    before = (await client.get("/files/meta", params={"path": "/f"})).json()
    await setx(client, "/f", "user.secret", b"do not broadcast")
    await client.delete(XATTR, params={"path": "/f", "name": "user.secret"})
    xattr_events = [e for e in await events(client) if e["type"] == "xattr"]
    assert [(e["path"], e["xattr_name"], e["xattr_action"]) for e in xattr_events] == [
        ("/f", "user.secret", "set"),
        ("/f", "user.secret", "removed"),
    ]
    assert all(e["node_id"] == written["entry"]["node_id"] for e in xattr_events)
    assert all("do not broadcast" not in str(e) for e in xattr_events)
    after = (await client.get("/files/meta", params={"path": "/f"})).json()
    assert after["version_id"] == before["version_id"]
    versions = await client.get(f"/files/{after['node_id']}/versions")
    assert len(versions.json()["versions"]) == 1
    assert after["ctime_ns"] > before["ctime_ns"]


async def test_create_and_replace_flags(client: httpx.AsyncClient) -> None:
    await write(client, "/f")
    assert error(await setx(client, "/f", "user.k", b"1", flag="replace")) == (
        404,
        "xattr_not_found",
    )
    assert (await setx(client, "/f", "user.k", b"1", flag="create")).status_code == 200
    assert error(await setx(client, "/f", "user.k", b"2", flag="create")) == (
        409,
        "already_exists",
    )
    assert (await getx(client, "/f", "user.k")).content == b"1"
    assert (await setx(client, "/f", "user.k", b"2", flag="replace")).status_code == 200
    assert (await getx(client, "/f", "user.k")).content == b"2"
    assert error(await setx(client, "/f", "user.k", b"3", flag="sometimes")) == (
        400,
        "bad_request",
    )


async def test_if_match_guards_a_change(client: httpx.AsyncClient) -> None:
    written = await write(client, "/f")
    stale = await client.put(
        XATTR, params={"path": "/f", "name": "user.k"}, content=b"v",
        headers={"If-Match": '"not-the-head"'},
    )  # fmt: skip
    assert error(stale) == (412, "precondition_failed")
    assert await names(client, "/f") == []
    fresh = await client.put(
        XATTR, params={"path": "/f", "name": "user.k"}, content=b"v",
        headers={"If-Match": f'"{written["version"]["version_id"]}"'},
    )  # fmt: skip
    assert fresh.status_code == 200
    gone = await client.request(
        "DELETE", XATTR, params={"path": "/f", "name": "user.k"},
        headers={"If-Match": '"not-the-head"'},
    )  # fmt: skip
    assert error(gone) == (412, "precondition_failed")


async def test_value_size_limit_is_e2big(client: httpx.AsyncClient) -> None:
    await write(client, "/f")
    assert (await setx(client, "/f", "user.max", b"v" * 65536)).status_code == 200
    assert error(await setx(client, "/f", "user.big", b"v" * 65537)) == (413, "xattr_too_large")
    assert error(await setx(client, "/f", "user.huge", b"v" * 300_000))[0] == 413
    assert await names(client, "/f") == [("user.max", 65536)]


async def test_name_count_and_total_bytes_limits_are_enospc(client: httpx.AsyncClient) -> None:
    await write(client, "/many")
    for i in range(256):
        assert (await setx(client, "/many", f"user.n{i:03}", b"")).status_code == 200
    assert error(await setx(client, "/many", "user.one-more", b"")) == (409, "xattr_space_full")
    assert (await setx(client, "/many", "user.n000", b"replacing is fine")).status_code == 200
    await write(client, "/full")
    for i in range(15):
        assert (await setx(client, "/full", f"user.v{i:02}", b"v" * 65536)).status_code == 200
    r = await setx(client, "/full", "user.v15", b"v" * 65536)
    assert error(r) == (409, "xattr_space_full")
    assert len(await names(client, "/full")) == 15


async def test_meshfs_identity_attributes_are_read_only(client: httpx.AsyncClient) -> None:
    written = await write(client, "/f", b"hello")
    entry = written["entry"]
    assert (await getx(client, "/f", "meshfs.node_id")).content == entry["node_id"].encode()
    assert (await getx(client, "/f", "meshfs.version_id")).content == entry["version_id"].encode()
    hashed = (await getx(client, "/f", "meshfs.content_hash")).content
    assert hashed == entry["content_hash"].encode()
    for name in ("meshfs.node_id", "meshfs.version_id", "meshfs.content_hash", "meshfs.other"):
        assert error(await setx(client, "/f", name, b"x")) == (403, "not_permitted")
        r = await client.delete(XATTR, params={"path": "/f", "name": name})
        assert error(r) == (403, "not_permitted")
    assert await names(client, "/f") == []  # identity is readable by name, never listed
    await client.post("/files/mkdir", json={"path": "/d"})
    assert error(await getx(client, "/d", "meshfs.version_id")) == (404, "xattr_not_found")


async def test_posix_acls_and_other_namespaces_are_not_supported(
    client: httpx.AsyncClient,
) -> None:
    await write(client, "/f")
    for name in ("system.posix_acl_access", "system.posix_acl_default"):
        assert error(await getx(client, "/f", name)) == (400, "not_supported")
        assert error(await setx(client, "/f", name, b"\x02\x00")) == (400, "not_supported")
    for name in ("trusted.x", "security.selinux", "noprefix"):
        assert error(await setx(client, "/f", name, b"v")) == (400, "not_supported")
        assert error(await getx(client, "/f", name)) == (404, "xattr_not_found")


@pytest.mark.parametrize("name", ["", "user.", "user.a\x00b", "user." + "n" * 251])
async def test_bad_names_are_refused(client: httpx.AsyncClient, name: str) -> None:
    await write(client, "/f")
    assert error(await setx(client, "/f", name, b"v")) == (400, "bad_request")
    assert await names(client, "/f") == []


async def test_a_name_of_255_bytes_is_fine(client: httpx.AsyncClient) -> None:
    await write(client, "/f")
    name = "user." + "é" * 125  # 5 + 250 bytes
    assert (await setx(client, "/f", name, b"v")).status_code == 200
    assert await names(client, "/f") == [(name, 1)]


async def test_missing_node_and_missing_attribute(client: httpx.AsyncClient) -> None:
    assert error(await getx(client, "/nope", "user.k")) == (404, "not_found")
    assert error(await setx(client, "/nope", "user.k", b"v")) == (404, "not_found")
    await write(client, "/f")
    r = await client.delete(XATTR, params={"path": "/f", "name": "user.absent"})
    assert error(r) == (404, "xattr_not_found")
    assert error(await client.get(XATTR, params={"path": "/f"})) == (400, "bad_request")


async def test_deleting_a_file_forgets_nothing_the_new_file_at_its_path_shows(
    client: httpx.AsyncClient,
) -> None:
    await write(client, "/f")
    await setx(client, "/f", "user.k", b"old file")
    await client.delete("/files", params={"path": "/f"})
    await write(client, "/f")
    assert await names(client, "/f") == []


async def test_other_tenants_see_nothing(harness: Harness, client: httpx.AsyncClient) -> None:
    await write(client, "/f")
    await setx(client, "/f", "user.k", b"mine")
    other = harness.as_other_tenant()
    assert error(await getx(other, "/f", "user.k")) == (404, "not_found")


async def test_symlinks_and_special_nodes_carry_their_own(client: httpx.AsyncClient) -> None:
    await write(client, "/target")
    r = await client.post("/files/symlink", json={"path": "/ln", "target": "target"})
    assert r.status_code in (200, 201), r.text
    r = await client.post("/files/mknod", json={"path": "/fifo", "kind": "fifo"})
    assert r.status_code in (200, 201), r.text
    for path in ("/ln", "/fifo"):
        assert (await setx(client, path, "user.k", path.encode())).status_code == 200
        assert (await getx(client, path, "user.k")).content == path.encode()
    assert await names(client, "/target") == []  # the link is never followed
