"""Namespace rules on the in-memory ports: what a user sees of mkdir, rename, delete, restore."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from meshfs_server_memory import MemoryDomain, body, new_actor

from meshfs_common.errors import (
    AlreadyExistsError,
    DirectoryNotEmptyError,
    InvalidMoveError,
    NotFoundError,
)
from meshfs_server.domain.actor import Actor


@pytest.fixture
async def domain() -> AsyncIterator[MemoryDomain]:
    built = MemoryDomain.create()
    yield built
    await built.close()


@pytest.fixture
def actor() -> Actor:
    return new_actor()


async def read(domain: MemoryDomain, actor: Actor, path: str) -> bytes:
    _, version = await domain.namespace.version_for_read(
        actor, path=path, node_id=None, version_id=None
    )
    return b"".join([b async for b in domain.content.read(actor.tenant_id, version)])


async def names(domain: MemoryDomain, actor: Actor, path: str) -> list[str]:
    page = await domain.namespace.list_directory(actor, path)
    return [e.name for e in page.entries]


async def test_moving_a_directory_into_its_own_subtree_is_refused(
    domain: MemoryDomain, actor: Actor
) -> None:
    await domain.namespace.mkdir(actor, "/a/b")
    with pytest.raises(InvalidMoveError):
        await domain.namespace.rename(actor, "/a", "/a/b/c")
    assert await names(domain, actor, "/") == ["a"]
    assert await names(domain, actor, "/a") == ["b"]
    assert await names(domain, actor, "/a/b") == []


async def test_rename_over_a_file_keeps_the_targets_identity_and_history(
    domain: MemoryDomain, actor: Actor
) -> None:
    old = await domain.content.write(actor, "/target", body(b"old"))
    await domain.content.write(actor, "/source", body(b"new"))
    with pytest.raises(AlreadyExistsError):
        await domain.namespace.rename(actor, "/source", "/target")
    await domain.namespace.rename(actor, "/source", "/target", overwrite=True)

    target = await domain.namespace.meta(actor, path="/target")
    assert target.node_id == old.entry.node_id
    assert await read(domain, actor, "/target") == b"new"
    history = await domain.namespace.versions(actor, target.node_id)
    assert [v.version_id for v in history.versions][-1] == old.version.version_id
    assert await names(domain, actor, "/") == ["target"]


async def test_deleting_a_non_empty_directory_needs_recursive(
    domain: MemoryDomain, actor: Actor
) -> None:
    await domain.content.write(actor, "/d/e/f.txt", body(b"x"))
    with pytest.raises(DirectoryNotEmptyError):
        await domain.namespace.delete(actor, "/d")
    assert await read(domain, actor, "/d/e/f.txt") == b"x"

    gone = await domain.namespace.delete(actor, "/d", recursive=True)
    assert gone.deleted_nodes == 3
    with pytest.raises(NotFoundError):
        await domain.namespace.meta(actor, path="/d/e/f.txt")


async def test_a_tombstone_does_not_block_creating_the_name_again(
    domain: MemoryDomain, actor: Actor
) -> None:
    first = await domain.content.write(actor, "/f", body(b"one"))
    await domain.namespace.delete(actor, "/f")
    second = await domain.content.write(actor, "/f", body(b"two"))

    assert second.entry.node_id != first.entry.node_id
    assert await read(domain, actor, "/f") == b"two"
    listed = await domain.namespace.list_directory(actor, "/", include_deleted=True)
    assert sorted((e.node_id, e.deleted_at is not None) for e in listed.entries) == sorted(
        [(first.entry.node_id, True), (second.entry.node_id, False)]
    )


async def test_a_deleted_file_is_restored_where_it_was(domain: MemoryDomain, actor: Actor) -> None:
    written = await domain.content.write(actor, "/docs/a.txt", body(b"keep me"))
    await domain.namespace.delete(actor, "/docs", recursive=True)
    with pytest.raises(NotFoundError):
        await domain.namespace.meta(actor, path="/docs/a.txt")

    restored = await domain.namespace.restore(
        actor, written.entry.node_id, written.version.version_id
    )
    assert restored.entry.node_id == written.entry.node_id
    assert restored.entry.path == "/docs/a.txt"
    assert await read(domain, actor, "/docs/a.txt") == b"keep me"


async def test_restore_does_not_overwrite_a_file_created_meanwhile(
    domain: MemoryDomain, actor: Actor
) -> None:
    written = await domain.content.write(actor, "/a.txt", body(b"old"))
    await domain.namespace.delete(actor, "/a.txt")
    await domain.content.write(actor, "/a.txt", body(b"newer"))
    with pytest.raises(AlreadyExistsError):
        await domain.namespace.restore(actor, written.entry.node_id, written.version.version_id)

    await domain.namespace.restore(
        actor, written.entry.node_id, written.version.version_id, path="/b.txt"
    )
    assert await read(domain, actor, "/a.txt") == b"newer"
    assert await read(domain, actor, "/b.txt") == b"old"


async def test_tenants_never_see_each_other(domain: MemoryDomain, actor: Actor) -> None:
    other = new_actor()
    await domain.content.write(actor, "/mine.txt", body(b"private"))
    assert await names(domain, other, "/") == []
    with pytest.raises(NotFoundError):
        await domain.namespace.meta(other, path="/mine.txt")
    assert (await domain.feed.pull(other.tenant_id, 0)).events == []


async def test_restoring_a_snapshot_gives_back_its_tree(domain: MemoryDomain, actor: Actor) -> None:
    await domain.content.write(actor, "/p/keep.txt", body(b"v1"))
    await domain.content.write(actor, "/p/sub/moved.txt", body(b"m"))
    await domain.snapshots.create(actor, "/p", "before")
    await domain.content.write(actor, "/p/keep.txt", body(b"v2"))
    await domain.namespace.rename(actor, "/p/sub/moved.txt", "/p/elsewhere.txt")
    await domain.content.write(actor, "/p/new.txt", body(b"n"))
    with pytest.raises(AlreadyExistsError):
        await domain.snapshots.create(actor, "/p", "before")

    await domain.snapshots.restore(actor, "before")
    assert await names(domain, actor, "/p") == ["keep.txt", "sub"]
    assert await names(domain, actor, "/p/sub") == ["moved.txt"]
    assert await read(domain, actor, "/p/keep.txt") == b"v1"
    assert await read(domain, actor, "/p/sub/moved.txt") == b"m"
