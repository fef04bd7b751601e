"""How namespace rows are laid out and decoded, shared by the SQL adapters (SQLite, Postgres).

Chunk lists are stored as the concatenation of their 64-hex-digit names; writers as JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from meshfs_common.models import ChangeEvent, Writer
from meshfs_server.domain.ports import NodeRow, VersionRow

NODE_COLUMNS = (
    "node_id, parent_id, name, kind, created_at, modified_at, head_version_id, size,"
    " content_hash, deleted_at, mode, uid, gid, mtime_ns, atime_ns, ctime_ns, target, rdev"
)
VERSION_COLUMNS = (
    "version_id, node_id, seq, size, content_hash, chunks, created_at, writer, replaces,"
    " restored_from, mode"
)
EVENT_COLUMNS = (
    "seq, type, node_id, kind, path, old_path, version_id, size, content_hash,"
    " replaced_node_id, at, writer, attributes, old_attributes, target, exchanged_with,"
    " xattr_name, xattr_action, nlink"
)


def placeholders(columns: str) -> str:
    """``?`` for the tenant and for each of *columns* (an insert's ``VALUES``)."""
    return ",".join("?" * (columns.count(",") + 2))


_writer_encoder = msgspec.json.Encoder()
_writer_decoder = msgspec.json.Decoder(Writer)
_attributes_decoder = msgspec.json.Decoder(dict[str, int])


def node_from(row: Sequence[Any]) -> NodeRow:
    """A node read with :data:`meshfs_server.adapters.link_sql.NODE_READ`: the columns of
    :data:`NODE_COLUMNS`, the hard link's row id (or NULL), the name count."""
    node = NodeRow(*row[:-2])
    node.edge_id, node.nlink = row[-2], int(row[-1])
    return node


def node_values(node: NodeRow) -> tuple[Any, ...]:
    """*node*'s values in the order of :data:`NODE_COLUMNS`."""
    return (
        node.node_id, node.parent_id, node.name, node.kind, node.created_at, node.modified_at,
        node.head_version_id, node.size, node.content_hash, node.deleted_at, node.mode,
        node.uid, node.gid, node.mtime_ns, node.atime_ns, node.ctime_ns, node.target, node.rdev,
    )  # fmt: skip


def pack_chunks(chunks: Iterable[str]) -> str:
    return "".join(chunks)


def unpack_chunks(packed: str) -> tuple[str, ...]:
    return tuple(packed[i : i + 64] for i in range(0, len(packed), 64))


def writer_json(writer: Writer | None) -> str | None:
    return None if writer is None else _writer_encoder.encode(writer).decode()


def writer_from(text: str | None) -> Writer | None:
    return None if text is None else _writer_decoder.decode(text)


def attributes_json(attributes: dict[str, int] | None) -> str | None:
    return None if attributes is None else _writer_encoder.encode(attributes).decode()


def attributes_from(text: str | None) -> dict[str, int] | None:
    return None if text is None else _attributes_decoder.decode(text)


def version_from(row: Iterable[Any]) -> VersionRow:
    (vid, node_id, seq, size, chash, chunks, created, writer, replaces, restored, mode) = row
    return VersionRow(
        vid, node_id, seq, size, chash, unpack_chunks(chunks), created, writer_from(writer),
        replaces, restored, mode,
    )  # fmt: skip


def event_from(row: Iterable[Any]) -> ChangeEvent:
    (seq, type_, node_id, kind, path, old, vid, size, chash, replaced, at, writer, attrs,
     old_attrs, target, exchanged, xattr_name, xattr_action, nlink) = row  # fmt: skip
    return ChangeEvent(
        seq=seq, type=type_, node_id=node_id, kind=kind, path=path, old_path=old,
        version_id=vid, size=size, content_hash=chash, replaced_node_id=replaced,
        at=datetime.fromtimestamp(at, UTC), writer=writer_from(writer),
        attributes=attributes_from(attrs), old_attributes=attributes_from(old_attrs),
        target=target, exchanged_with=exchanged, xattr_name=xattr_name,
        xattr_action=xattr_action, nlink=nlink,
    )  # fmt: skip


def chunk_counts(chunks: Sequence[str]) -> dict[str, int]:
    """How many times each chunk occurs in a version (a reference per occurrence)."""
    counts: dict[str, int] = {}
    for name in chunks:
        counts[name] = counts.get(name, 0) + 1
    return counts
