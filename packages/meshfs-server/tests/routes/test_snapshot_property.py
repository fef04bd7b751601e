"""Property: whatever happens to a folder after a snapshot, restoring the snapshot gives back
exactly the snapshot's tree, and restoring the automatic undo snapshot gives back the tree as it
was before the restore; the change summary accounts for every path that differs."""

from __future__ import annotations

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshfs_common.ids import new_id

NAMES = ("a", "b", "c")
DIRS = ("", "/d", "/d/e", "/f")
PATHS = [f"{d}/{n}" for d in DIRS for n in NAMES]

OPS = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(PATHS), st.binary(max_size=12)),
    st.tuples(st.just("mkdir"), st.sampled_from([d for d in DIRS if d] + PATHS), st.none()),
    st.tuples(st.just("delete"), st.sampled_from([d for d in DIRS if d] + PATHS), st.none()),
    st.tuples(st.just("rename"), st.sampled_from([d for d in DIRS if d] + PATHS),
              st.sampled_from([d for d in DIRS if d] + PATHS)),
)  # fmt: skip


async def apply(client: httpx.AsyncClient, root: str, op: tuple) -> None:
    """One operation; refusals (a path in the way, a missing source) are part of the game."""
    kind, path, arg = op
    where = root + path
    if kind == "write":
        await client.put("/files/content", params={"path": where}, content=arg)
    elif kind == "mkdir":
        await client.post("/files/mkdir", json={"path": where})
    elif kind == "delete":
        await client.delete("/files", params={"path": where, "recursive": "true"})
    else:
        await client.post("/files/rename", json={"path": where, "new_path": root + arg,
                                                 "overwrite": True})  # fmt: skip


async def tree(client: httpx.AsyncClient, root: str) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    pending = [root]
    while pending:
        listing = await client.get("/files/list", params={"path": pending.pop()})
        if listing.status_code == 404:
            continue
        for entry in listing.json()["entries"]:
            if entry["kind"] == "dir":
                out[entry["path"]] = None
                pending.append(entry["path"])
            else:
                got = await client.get("/files/download", params={"path": entry["path"]})
                out[entry["path"]] = got.content
    return out


@settings(
    max_examples=25, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
@given(before=st.lists(OPS, max_size=8), after=st.lists(OPS, min_size=1, max_size=10))
async def test_restore_gives_back_the_snapshot_and_undo_gives_back_the_rest(
    client: httpx.AsyncClient, before: list[tuple], after: list[tuple]
) -> None:
    root = f"/t{new_id()}"
    await client.post("/files/mkdir", json={"path": root})
    for op in before:
        await apply(client, root, op)
    snapshot_tree = await tree(client, root)
    made = await client.post("/snapshots", json={"path": root, "name": root[1:]})
    assert made.status_code == 201, made.text
    for op in after:
        await apply(client, root, op)
    changed_tree = await tree(client, root)

    diff = (await client.get(f"/snapshots/{root[1:]}/diff")).json()["changes"]
    mentioned = {c["path"] for c in diff} | {c["old_path"] for c in diff if c["old_path"]}
    differing = {
        p for p in snapshot_tree.keys() | changed_tree.keys()
        if snapshot_tree.get(p, "absent") != changed_tree.get(p, "absent")
    }  # fmt: skip
    # Every path whose content or existence differs is accounted for (a path may also appear
    # because the node at it changed identity, e.g. a file replaced by another).
    assert differing <= mentioned | {p for p in differing if any(
        p.startswith(m + "/") for m in mentioned)}  # fmt: skip

    restored = await client.post(f"/snapshots/{root[1:]}/restore")
    assert restored.status_code == 200, restored.text
    assert await tree(client, root) == snapshot_tree
    assert (await client.get(f"/snapshots/{root[1:]}/diff")).json()["changes"] == []

    undo = restored.json()["undo"]["snapshot_id"]
    assert (await client.post(f"/snapshots/{undo}/restore")).status_code == 200
    assert await tree(client, root) == changed_tree


def accounted(
    before: dict[str, bytes | None], after: dict[str, bytes | None], changes: list[dict]
) -> set[str]:
    """Paths that differ between two trees and that no change entry mentions (by its path or
    old path, or as a directory above them)."""
    mentioned = {c["path"] for c in changes} | {c["old_path"] for c in changes if c["old_path"]}
    differing = {
        p for p in before.keys() | after.keys() if before.get(p, "absent") != after.get(p, "absent")
    }
    return {p for p in differing if not any(p == m or p.startswith(m + "/") for m in mentioned)}


@settings(
    max_examples=25, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
@given(before=st.lists(OPS, max_size=8), after=st.lists(OPS, min_size=1, max_size=10))
async def test_change_summary_accounts_for_every_difference(
    client: httpx.AsyncClient, before: list[tuple], after: list[tuple]
) -> None:
    root = f"/t{new_id()}"
    await client.post("/files/mkdir", json={"path": root})
    for op in before:
        await apply(client, root, op)
    start_tree = await tree(client, root)
    cursor = (await client.get("/sync/pull", params={"cursor": 2**62})).json()["cursor"]
    for op in after:
        await apply(client, root, op)
    end_tree = await tree(client, root)
    reply = await client.get("/files/changes", params={"path": root, "since_cursor": cursor})
    changes = reply.json()["changes"]
    assert accounted(start_tree, end_tree, changes) == set()
    for change in changes:
        if change["status"] == "modified":  # same file, same path, other content
            assert start_tree[change["path"]] != end_tree[change["path"]]
        if change["status"] in ("created", "modified", "renamed"):
            assert change["path"] in end_tree
