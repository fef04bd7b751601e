"""Resolving a path, on each backend: what ``GET /files/meta`` and ``/files/list`` answer for
deep paths (several statements' worth of names), names any byte string may hold, links on the
way, and paths whose ancestors moved, went away or came back."""

from __future__ import annotations

import httpx
import pytest
from conftest import Harness

#: Deeper than one resolving statement walks (meshfs_server.adapters.path_sql.CHAIN_LIMIT).
DEPTHS = (1, 7, 8, 9, 16, 17, 25)


async def write(client: httpx.AsyncClient, path: str, data: bytes = b"x") -> dict:
    r = await client.put("/files/content", params={"path": path}, content=data)
    assert r.status_code in (200, 201), r.text
    entry: dict = r.json()["entry"]
    return entry


async def meta(client: httpx.AsyncClient, path: str) -> httpx.Response:
    return await client.get("/files/meta", params={"path": path})


def error(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]


@pytest.mark.parametrize("depth", DEPTHS)
async def test_a_deep_path_resolves_and_each_wrong_turn_is_told_apart(
    client: httpx.AsyncClient, depth: int
) -> None:
    names = [f"d{i}" for i in range(1, depth)]
    path = "/" + "/".join([*names, "f"])
    made = await write(client, path, b"deep")
    found = (await meta(client, path)).json()
    assert (found["node_id"], found["path"], found["kind"], found["size"]) == (
        made["node_id"], path, "file", 4,
    )  # fmt: skip
    for cut in range(depth):  # a missing name at every depth
        missing = "/" + "/".join([*names[:cut], "nope", *names[cut:]][: cut + 1])
        assert error(await meta(client, missing)) == (404, "not_found"), missing
    below_file = await meta(client, path + "/more/names")
    assert error(below_file) == (409, "not_a_directory")
    parent = "/" + "/".join(names) if names else "/"
    listed = (await client.get("/files/list", params={"path": parent})).json()["entries"]
    assert [(e["name"], e["node_id"]) for e in listed] == [("f", made["node_id"])]


@pytest.mark.parametrize("depth", DEPTHS)
async def test_a_file_in_the_middle_of_a_deep_path_is_not_a_directory(
    client: httpx.AsyncClient, depth: int
) -> None:
    names = [f"d{i}" for i in range(1, depth)]
    blocker = "/" + "/".join([*names, "file"])
    await write(client, blocker)
    for tail in ("x", "x/y", "x/y/z/w/v/u/t/s/r"):
        r = await meta(client, f"{blocker}/{tail}")
        assert error(r) == (409, "not_a_directory"), (blocker, tail)
        assert blocker in r.json()["error_description"]


async def test_a_symlink_on_the_way_is_never_followed(client: httpx.AsyncClient) -> None:
    await write(client, "/real/f", b"data")
    await client.post("/files/mkdir", json={"path": "/a/b"})
    r = await client.post("/files/symlink", json={"path": "/a/b/link", "target": "/real"})
    assert r.status_code == 201, r.text
    for through in ("/a/b/link/f", "/a/b/link/f/g", "/a/b/link/missing"):
        r = await meta(client, through)
        assert error(r) == (409, "not_a_directory"), through
        assert "symbolic link" in r.json()["error_description"]
        assert r.json()["detail"] == {"path": "/a/b/link", "kind": "symlink"}
    itself = (await meta(client, "/a/b/link")).json()
    assert (itself["kind"], itself["target"]) == ("symlink", "/real")
    # Another name of the same link is no way through either.
    r = await client.post("/files/link", json={"path": "/a/b/link", "new_path": "/a/alias"})
    assert r.status_code == 201, r.text
    r = await meta(client, "/a/alias/f")
    assert error(r) == (409, "not_a_directory")
    assert r.json()["detail"] == {"path": "/a/alias", "kind": "symlink"}


async def test_a_hard_link_resolves_to_its_file_and_is_no_directory(
    client: httpx.AsyncClient,
) -> None:
    original = await write(client, "/one/a.txt", b"shared")
    await client.post("/files/mkdir", json={"path": "/two"})
    r = await client.post("/files/link", json={"path": "/one/a.txt", "new_path": "/two/b.txt"})
    assert r.status_code == 201, r.text
    by_link = (await meta(client, "/two/b.txt")).json()
    assert (by_link["node_id"], by_link["path"], by_link["name"], by_link["nlink"]) == (
        original["node_id"], "/two/b.txt", "b.txt", 2,
    )  # fmt: skip
    assert error(await meta(client, "/two/b.txt/x")) == (409, "not_a_directory")
    await client.delete("/files", params={"path": "/one/a.txt"})
    assert error(await meta(client, "/one/a.txt")) == (404, "not_found")
    left = (await meta(client, "/two/b.txt")).json()
    assert (left["node_id"], left["nlink"]) == (original["node_id"], 1)


ODD_NAMES = (
    "with space", "ünïcødé", "日本語", "emoji 🚀", "100%", "a?b", "a#b", "a&b=c", "'quote'",
    '"double"', "' OR '1'='1", "semi;colon", "back\\slash", "..dots", ".hidden", "-dash",
    "%2Fslash", "long " + "n" * 200,
)  # fmt: skip


@pytest.mark.parametrize("name", ODD_NAMES)
async def test_names_with_odd_characters_resolve_exactly(
    client: httpx.AsyncClient, name: str
) -> None:
    path = f"/{name}/{name}/{name}"
    made = await write(client, path)
    found = (await meta(client, path)).json()
    assert (found["node_id"], found["path"], found["name"]) == (made["node_id"], path, name)
    # Case and neighbouring spellings are other names.
    for other in {name.upper(), name + " ", name[:-1]} - {name}:
        assert error(await meta(client, f"/{name}/{other}/{name}")) == (404, "not_found")


async def test_after_an_ancestor_moves_only_the_new_path_resolves(
    client: httpx.AsyncClient,
) -> None:
    made = await write(client, "/p/q/r/s/t/u/v/w/x/file")
    r = await client.post("/files/rename", json={"path": "/p/q", "new_path": "/moved"})
    assert r.status_code == 200, r.text
    assert error(await meta(client, "/p/q/r/s/t/u/v/w/x/file")) == (404, "not_found")
    found = (await meta(client, "/moved/r/s/t/u/v/w/x/file")).json()
    assert (found["node_id"], found["path"]) == (made["node_id"], "/moved/r/s/t/u/v/w/x/file")


async def test_after_an_ancestor_is_deleted_and_made_again_the_new_one_resolves(
    client: httpx.AsyncClient,
) -> None:
    old = await write(client, "/gone/a/b/c/d/e/f/g/h/i/file", b"old")
    r = await client.delete("/files", params={"path": "/gone", "recursive": "true"})
    assert r.status_code == 200, r.text
    assert error(await meta(client, "/gone/a/b/c/d/e/f/g/h/i/file")) == (404, "not_found")
    assert error(await meta(client, "/gone")) == (404, "not_found")
    new = await write(client, "/gone/a/b/c/d/e/f/g/h/i/file", b"new!")
    found = (await meta(client, "/gone/a/b/c/d/e/f/g/h/i/file")).json()
    assert found["node_id"] == new["node_id"] != old["node_id"]
    assert found["size"] == 4
    by_id = (await client.get("/files/meta", params={"node_id": old["node_id"]})).json()
    assert by_id["deleted_at"] is not None


async def test_a_path_resolves_only_in_its_own_tenant(harness: Harness) -> None:
    mine = await write(harness.client, "/shared/name/f", b"mine")
    other = harness.as_other_tenant()
    for path in ("/shared", "/shared/name", "/shared/name/f"):
        assert error(await meta(other, path)) == (404, "not_found"), path
    theirs = await write(other, "/shared/name/f", b"theirs")
    assert (await meta(other, "/shared/name/f")).json()["node_id"] == theirs["node_id"]
    assert (await meta(harness.client, "/shared/name/f")).json()["node_id"] == mine["node_id"]


async def test_the_root_resolves_before_and_after_the_first_write(harness: Harness) -> None:
    fresh = harness.as_other_tenant()
    root = await meta(fresh, "/")
    assert (root.status_code, root.json()["kind"], root.json()["path"]) == (200, "dir", "/")
    assert error(await meta(fresh, "/anything")) == (404, "not_found")
    await write(fresh, "/a/b")
    assert (await meta(fresh, "/")).json()["nlink"] == 3
