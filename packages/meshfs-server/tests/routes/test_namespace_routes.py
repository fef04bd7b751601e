"""Namespace behaviour through the HTTP API (real app, real SQLite, real ASGI client)."""

from __future__ import annotations

import httpx
import pytest


async def write(
    client: httpx.AsyncClient, path: str, data: bytes, **headers: str
) -> httpx.Response:
    return await client.put("/files/content", params={"path": path}, content=data, headers=headers)


async def meta(client: httpx.AsyncClient, path: str) -> httpx.Response:
    return await client.get("/files/meta", params={"path": path})


async def events(client: httpx.AsyncClient, cursor: int = 0) -> list[dict]:
    r = await client.get("/sync/pull", params={"cursor": cursor})
    assert r.status_code == 200
    return r.json()["events"]


# --- mkdir --------------------------------------------------------------------------------------


async def test_mkdir_creates_parents_and_is_idempotent(client: httpx.AsyncClient) -> None:
    r = await client.post("/files/mkdir", json={"path": "/a/b/c"})
    assert r.status_code == 201
    assert r.json()["path"] == "/a/b/c"
    assert r.json()["kind"] == "dir"
    again = await client.post("/files/mkdir", json={"path": "/a/b/c/"})
    assert again.status_code == 200
    assert again.json()["node_id"] == r.json()["node_id"]
    assert [e["path"] for e in await events(client)] == ["/a", "/a/b", "/a/b/c"]


async def test_mkdir_over_file_conflicts(client: httpx.AsyncClient) -> None:
    await write(client, "/f", b"x")
    r = await client.post("/files/mkdir", json={"path": "/f"})
    assert r.status_code == 409
    assert r.json()["error"] == "already_exists"
    r = await client.post("/files/mkdir", json={"path": "/f/sub"})
    assert r.status_code == 409
    assert r.json()["error"] == "not_a_directory"


async def test_mkdir_without_parents_needs_parent(client: httpx.AsyncClient) -> None:
    r = await client.post("/files/mkdir", json={"path": "/x/y", "parents": False})
    assert r.status_code == 404
    assert "parent" in r.json()["error_description"]
    assert (await meta(client, "/x")).status_code == 404


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/a/../b", "invalid_path"),
        ("/a/./b", "invalid_path"),
        ("/a\x00b", "invalid_path"),
        ("/a\nb", "invalid_path"),
        ("", "invalid_path"),
        ("/" + "n" * 256, "name_too_long"),  # ENAMETOOLONG
        ("/a/" + "d/" * 2100, "name_too_long"),
    ],
)
async def test_invalid_paths_are_refused(client: httpx.AsyncClient, path: str, error: str) -> None:
    r = await client.post("/files/mkdir", json={"path": path})
    assert r.status_code == 400
    assert r.json()["error"] == error
    listing = await client.get("/files/list", params={"path": "/"})
    assert listing.json()["entries"] == []


async def test_unicode_names_are_nfc(client: httpx.AsyncClient) -> None:
    await client.post("/files/mkdir", json={"path": "/cafe\u0301"})
    r = await meta(client, "/caf\u00e9")
    assert r.status_code == 200
    assert r.json()["name"] == "caf\u00e9"
    assert (await meta(client, "/CAF\u00c9")).status_code == 404  # case-sensitive


# --- list / meta --------------------------------------------------------------------------------


async def test_list_is_sorted_and_paged(client: httpx.AsyncClient) -> None:
    names = [f"f{i:03d}" for i in range(25)]
    for name in reversed(names):
        await write(client, f"/d/{name}", name.encode())
    seen: list[str] = []
    after = None
    while True:
        params = {"path": "/d", "limit": "10"} | ({"after": after} if after else {})
        page = (await client.get("/files/list", params=params)).json()
        seen += [e["name"] for e in page["entries"]]
        assert all(e["version_id"] and e["size"] == 4 for e in page["entries"])
        if not page["has_more"]:
            break
        after = page["next_after"]
    assert seen == names


async def list_all(client: httpx.AsyncClient, path: str, limit: int, **params: str) -> list[dict]:
    """Every entry, one page of *limit* at a time, following next_after."""
    seen: list[dict] = []
    after = None
    for _ in range(1000):
        query = {"path": path, "limit": str(limit), **params} | ({"after": after} if after else {})
        r = await client.get("/files/list", params=query)
        assert r.status_code == 200, r.text
        page = r.json()
        seen += page["entries"]
        if not page["has_more"]:
            return seen
        after = page["next_after"]
    raise AssertionError("listing did not end")


async def test_paging_with_tombstones_sharing_a_name_skips_nothing(
    client: httpx.AsyncClient,
) -> None:
    """A name held by a live file and by tombstones: every page boundary falls between entries
    of the same name at some limit, and no entry is skipped or repeated."""
    for round_ in range(3):
        await write(client, "/d/same", f"gone {round_}".encode())
        assert (await client.delete("/files", params={"path": "/d/same"})).status_code == 200
    await write(client, "/d/same", b"live")
    await write(client, "/d/a", b"a")
    await write(client, "/d/z", b"z")
    whole = await list_all(client, "/d", 1000, include_deleted="true")
    assert [e["name"] for e in whole] == ["a", "same", "same", "same", "same", "z"]
    ids = [e["node_id"] for e in whole]
    assert len(set(ids)) == 6
    for limit in (1, 2, 3, 4, 5):
        paged = await list_all(client, "/d", limit, include_deleted="true")
        assert [e["node_id"] for e in paged] == ids, f"limit={limit}"
    live = await list_all(client, "/d", 1)
    assert [e["name"] for e in live] == ["a", "same", "z"]
    assert all(e["deleted_at"] is None for e in live)


async def test_list_after_a_plain_name_still_works(client: httpx.AsyncClient) -> None:
    for name in ("a", "b", "c"):
        await write(client, f"/d/{name}", b"x")
    page = (await client.get("/files/list", params={"path": "/d", "after": "a"})).json()
    assert [e["name"] for e in page["entries"]] == ["b", "c"]
    first = (await client.get("/files/list", params={"path": "/d", "limit": "1"})).json()
    assert first["next_after"] != "a"  # a token, not the name; opaque to clients


@pytest.mark.parametrize("after", ["n1/!!!", "n1/WyJhIl0", "x/y", "n1/" + "A" * 40])
async def test_list_refuses_a_forged_position(client: httpx.AsyncClient, after: str) -> None:
    await write(client, "/d/a", b"x")
    r = await client.get("/files/list", params={"path": "/d", "after": after})
    assert (r.status_code, r.json()["error"]) == (400, "bad_request")
    assert "next_after" in r.json()["error_description"]


async def test_list_errors(client: httpx.AsyncClient) -> None:
    await write(client, "/file", b"x")
    assert (await client.get("/files/list", params={"path": "/nope"})).status_code == 404
    r = await client.get("/files/list", params={"path": "/file"})
    assert (r.status_code, r.json()["error"]) == (409, "not_a_directory")
    r = await client.get("/files/list", params={"path": "/", "limit": "0"})
    assert r.status_code == 400
    r = await client.get("/files/list", params={"path": "/", "limit": "ten"})
    assert r.status_code == 400


async def test_meta_by_node_id_and_path(client: httpx.AsyncClient) -> None:
    created = (await write(client, "/a/b", b"data")).json()["entry"]
    by_id = (await client.get("/files/meta", params={"node_id": created["node_id"]})).json()
    assert by_id["path"] == "/a/b"
    assert by_id["size"] == 4
    assert (await client.get("/files/meta", params={"node_id": "nope"})).status_code == 404
    assert (await client.get("/files/meta")).status_code == 400


# --- rename -------------------------------------------------------------------------------------


async def test_directory_rename_moves_subtree(client: httpx.AsyncClient) -> None:
    await write(client, "/d/d/f", b"deep")
    r = await client.post("/files/rename", json={"path": "/d", "new_path": "/x"})
    assert r.status_code == 200, r.text
    assert (await client.get("/files/download", params={"path": "/x/d/f"})).content == b"deep"
    assert (await meta(client, "/x/f")).status_code == 404
    assert (await meta(client, "/d")).status_code == 404
    last = (await events(client))[-1]
    assert (last["type"], last["old_path"], last["path"]) == ("rename", "/d", "/x")


async def test_directory_cannot_move_into_itself(client: httpx.AsyncClient) -> None:
    await client.post("/files/mkdir", json={"path": "/d/sub"})
    for target in ("/d/sub/d", "/d/d"):
        r = await client.post("/files/rename", json={"path": "/d", "new_path": target})
        assert (r.status_code, r.json()["error"]) == (409, "invalid_move")
    assert (await meta(client, "/d/sub")).status_code == 200


async def test_rename_onto_existing_file_needs_overwrite_and_keeps_history(
    client: httpx.AsyncClient,
) -> None:
    target = (await write(client, "/report.txt", b"v1")).json()
    await write(client, "/.report.txt.tmp", b"v2")
    r = await client.post(
        "/files/rename", json={"path": "/.report.txt.tmp", "new_path": "/report.txt"}
    )
    assert (r.status_code, r.json()["error"]) == (409, "already_exists")
    r = await client.post(
        "/files/rename",
        json={"path": "/.report.txt.tmp", "new_path": "/report.txt", "overwrite": True},
    )
    assert r.status_code == 200, r.text
    node_id = target["entry"]["node_id"]
    assert r.json()["node_id"] == node_id
    assert (await client.get("/files/download", params={"path": "/report.txt"})).content == b"v2"
    history = (await client.get(f"/files/{node_id}/versions")).json()["versions"]
    assert [v["size"] for v in history] == [2, 2]
    old = await client.get(
        "/files/download", params={"node_id": node_id, "version_id": history[1]["version_id"]}
    )
    assert old.content == b"v1"
    assert (await meta(client, "/.report.txt.tmp")).status_code == 404


async def test_rename_refusals(client: httpx.AsyncClient) -> None:
    await write(client, "/file", b"x")
    await write(client, "/full/inner", b"y")
    await client.post("/files/mkdir", json={"path": "/empty"})
    await client.post("/files/mkdir", json={"path": "/dir2"})
    cases = [
        ({"path": "/dir2", "new_path": "/full", "overwrite": True}, 409, "directory_not_empty"),
        ({"path": "/dir2", "new_path": "/file", "overwrite": True}, 409, "not_a_directory"),
        ({"path": "/file", "new_path": "/empty", "overwrite": True}, 409, "is_a_directory"),
        ({"path": "/missing", "new_path": "/z"}, 404, "not_found"),
        ({"path": "/file", "new_path": "/nodir/file"}, 404, "not_found"),
        ({"path": "/file", "new_path": "/file/x"}, 409, "not_a_directory"),
        ({"path": "/", "new_path": "/root2"}, 409, "invalid_move"),
        ({"path": "/file", "new_path": "/"}, 409, "invalid_move"),
        ({"path": "/file", "new_path": "/../x"}, 400, "invalid_path"),
    ]
    before = await events(client)
    for body, status, code in cases:
        r = await client.post("/files/rename", json=body)
        assert (r.status_code, r.json()["error"]) == (status, code), body
    assert await events(client) == before  # nothing changed


async def test_rename_directory_over_empty_directory(client: httpx.AsyncClient) -> None:
    await write(client, "/src/f", b"1")
    await client.post("/files/mkdir", json={"path": "/dst"})
    r = await client.post(
        "/files/rename", json={"path": "/src", "new_path": "/dst", "overwrite": True}
    )
    assert r.status_code == 200
    assert (await client.get("/files/download", params={"path": "/dst/f"})).content == b"1"


# --- delete / restore ---------------------------------------------------------------------------


async def test_delete_then_recreate_same_path(client: httpx.AsyncClient) -> None:
    first = (await write(client, "/p", b"one")).json()["entry"]
    r = await client.delete("/files", params={"path": "/p"})
    assert r.status_code == 200
    assert r.json()["entry"]["deleted_at"] is not None
    assert (await meta(client, "/p")).status_code == 404
    second = (await write(client, "/p", b"two")).json()["entry"]
    assert second["node_id"] != first["node_id"]
    listing = await client.get("/files/list", params={"path": "/", "include_deleted": "true"})
    kinds = [(e["name"], e["deleted_at"] is None) for e in listing.json()["entries"]]
    assert sorted(kinds) == [("p", False), ("p", True)]


async def test_delete_directory_needs_recursive(client: httpx.AsyncClient) -> None:
    await write(client, "/d/a/b", b"x")
    r = await client.delete("/files", params={"path": "/d"})
    assert (r.status_code, r.json()["error"]) == (409, "directory_not_empty")
    assert (await meta(client, "/d/a/b")).status_code == 200
    r = await client.delete("/files", params={"path": "/d", "recursive": "true"})
    assert r.status_code == 200
    assert r.json()["deleted_nodes"] == 3
    assert (await meta(client, "/d")).status_code == 404
    r = await client.delete("/files", params={"path": "/"})
    assert (r.status_code, r.json()["error"]) == (409, "invalid_move")
    assert (await client.delete("/files")).status_code == 400


async def test_restore_deleted_file_recreates_parents(client: httpx.AsyncClient) -> None:
    entry = (await write(client, "/docs/notes.md", b"keep me")).json()["entry"]
    await client.delete("/files", params={"path": "/docs", "recursive": "true"})
    r = await client.post(f"/files/{entry['node_id']}/versions/{entry['version_id']}/restore")
    assert r.status_code == 200, r.text
    assert r.json()["entry"]["path"] == "/docs/notes.md"
    body = await client.get("/files/download", params={"path": "/docs/notes.md"})
    assert body.content == b"keep me"
    assert (await events(client))[-1]["type"] == "restore"


async def test_restore_old_version_makes_new_head(client: httpx.AsyncClient) -> None:
    v1 = (await write(client, "/f", b"one")).json()
    await write(client, "/f", b"two")
    node_id, old = v1["entry"]["node_id"], v1["version"]["version_id"]
    r = await client.post(f"/files/{node_id}/versions/{old}/restore")
    assert r.json()["created_version"] is True
    assert r.json()["version"]["restored_from"] == old
    assert (await client.get("/files/download", params={"path": "/f"})).content == b"one"
    versions = (await client.get(f"/files/{node_id}/versions")).json()["versions"]
    assert len(versions) == 3
    r = await client.post(f"/files/{node_id}/versions/nope/restore")
    assert r.status_code == 404


async def test_restore_into_occupied_path_needs_new_path(client: httpx.AsyncClient) -> None:
    old = (await write(client, "/f", b"old")).json()
    await client.delete("/files", params={"path": "/f"})
    await write(client, "/f", b"new")
    url = f"/files/{old['entry']['node_id']}/versions/{old['version']['version_id']}/restore"
    r = await client.post(url)
    assert (r.status_code, r.json()["error"]) == (409, "already_exists")
    r = await client.post(url, json={"path": "/f.restored"})
    assert r.status_code == 200
    assert (await client.get("/files/download", params={"path": "/f.restored"})).content == b"old"


async def test_versions_are_paged_newest_first(client: httpx.AsyncClient) -> None:
    for i in range(7):
        result = (await write(client, "/v", str(i).encode())).json()
    node_id = result["entry"]["node_id"]
    sizes: list[str] = []
    before = None
    while True:
        params = {"limit": "3"} | ({"before": before} if before else {})
        page = (await client.get(f"/files/{node_id}/versions", params=params)).json()
        for v in page["versions"]:
            data = await client.get(
                "/files/download", params={"node_id": node_id, "version_id": v["version_id"]}
            )
            sizes.append(data.text)
        if not page["has_more"]:
            break
        before = page["next_before"]
    assert sizes == [str(i) for i in reversed(range(7))]


# --- preconditions ------------------------------------------------------------------------------


async def test_if_match_on_write_rename_delete(client: httpx.AsyncClient) -> None:
    v1 = (await write(client, "/f", b"1")).json()["version"]["version_id"]
    v2 = (await write(client, "/f", b"2", **{"If-Match": f'"{v1}"'})).json()["version"][
        "version_id"
    ]
    stale = await write(client, "/f", b"3", **{"If-Match": v1})
    assert (stale.status_code, stale.json()["error"]) == (412, "precondition_failed")
    assert stale.json()["detail"]["current"] == v2
    r = await client.post(
        "/files/rename", json={"path": "/f", "new_path": "/g"}, headers={"If-Match": v1}
    )
    assert r.status_code == 412
    r = await client.delete("/files", params={"path": "/f"}, headers={"If-Match": v1})
    assert r.status_code == 412
    assert (await client.get("/files/download", params={"path": "/f"})).content == b"2"
    r = await client.delete("/files", params={"path": "/f"}, headers={"If-Match": v2})
    assert r.status_code == 200


async def test_if_none_match_creates_only(client: httpx.AsyncClient) -> None:
    assert (await write(client, "/new", b"a", **{"If-None-Match": "*"})).status_code == 201
    r = await write(client, "/new", b"b", **{"If-None-Match": "*"})
    assert r.status_code == 412
    assert (await client.get("/files/download", params={"path": "/new"})).content == b"a"


async def test_identical_content_makes_no_version(client: httpx.AsyncClient) -> None:
    first = (await write(client, "/same", b"content")).json()
    again = await write(client, "/same", b"content")
    assert again.status_code == 200
    assert again.json()["created_version"] is False
    assert again.json()["version"]["version_id"] == first["version"]["version_id"]
    node_id = first["entry"]["node_id"]
    assert len((await client.get(f"/files/{node_id}/versions")).json()["versions"]) == 1
    assert [e["type"] for e in await events(client)] == ["write"]


async def test_write_refusals_change_nothing(client: httpx.AsyncClient) -> None:
    await client.post("/files/mkdir", json={"path": "/dir"})
    await write(client, "/file", b"x")
    r = await write(client, "/dir", b"x")
    assert (r.status_code, r.json()["error"]) == (409, "is_a_directory")
    r = await write(client, "/file/child", b"x")
    assert (r.status_code, r.json()["error"]) == (409, "not_a_directory")
    r = await write(client, "/", b"x")
    assert r.status_code == 409
    r = await client.put("/files/content", content=b"x")
    assert r.status_code == 400
    assert len(await events(client)) == 2
