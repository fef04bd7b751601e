"""How a path-limited token sees hard links in the change feed."""

from __future__ import annotations

from datetime import UTC, datetime

from meshfs_common.models import ChangeEvent
from meshfs_server.domain.scope import Scope

AT = datetime(2026, 1, 1, tzinfo=UTC)


def link_event(path: str) -> ChangeEvent:
    return ChangeEvent(
        seq=7, type="link", node_id="N", kind="file", path=path, at=AT, version_id="V",
        size=3, content_hash="h" * 64,
    )  # fmt: skip


def test_a_new_name_inside_the_prefix_is_a_write_of_the_file_there() -> None:
    seen = Scope("/p/x").view(link_event("/p/x/b"))
    assert isinstance(seen, ChangeEvent)
    assert (seen.type, seen.path, seen.node_id, seen.version_id, seen.size) == (
        "write", "/p/x/b", "N", "V", 3,
    )  # fmt: skip


def test_a_new_name_outside_is_invisible_and_the_whole_tenant_sees_the_link() -> None:
    assert Scope("/p/x").view(link_event("/private/b")) is None
    seen = Scope().view(link_event("/private/b"))
    assert isinstance(seen, ChangeEvent)
    assert seen.type == "link"


def test_a_new_name_of_a_symbolic_link_inside_the_prefix_is_a_create_there() -> None:
    event = ChangeEvent(
        seq=8, type="link", node_id="L", kind="symlink", path="/p/x/l2", at=AT, target="../t",
    )  # fmt: skip
    seen = Scope("/p/x").view(event)
    assert isinstance(seen, ChangeEvent)
    assert (seen.type, seen.kind, seen.path, seen.node_id, seen.target) == (
        "create", "symlink", "/p/x/l2", "L", "../t",
    )  # fmt: skip
