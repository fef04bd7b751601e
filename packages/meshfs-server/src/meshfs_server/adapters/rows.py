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
    " content_hash, deleted_at"
)
VERSION_COLUMNS = (
    "version_id, node_id, seq, size, content_hash, chunks, created_at, writer, replaces,"
    " restored_from"
)
EVENT_COLUMNS = (
    "seq, type, node_id, kind, path, old_path, version_id, size, content_hash,"
    " replaced_node_id, at, writer"
)

_writer_encoder = msgspec.json.Encoder()
_writer_decoder = msgspec.json.Decoder(Writer)


def node_from(row: Iterable[Any]) -> NodeRow:
    return NodeRow(*row)


def pack_chunks(chunks: Iterable[str]) -> str:
    return "".join(chunks)


def unpack_chunks(packed: str) -> tuple[str, ...]:
    return tuple(packed[i : i + 64] for i in range(0, len(packed), 64))


def writer_json(writer: Writer | None) -> str | None:
    return None if writer is None else _writer_encoder.encode(writer).decode()


def writer_from(text: str | None) -> Writer | None:
    return None if text is None else _writer_decoder.decode(text)


def version_from(row: Iterable[Any]) -> VersionRow:
    (vid, node_id, seq, size, chash, chunks, created, writer, replaces, restored) = row
    return VersionRow(
        vid, node_id, seq, size, chash, unpack_chunks(chunks), created, writer_from(writer),
        replaces, restored,
    )  # fmt: skip


def event_from(row: Iterable[Any]) -> ChangeEvent:
    (seq, type_, node_id, kind, path, old, vid, size, chash, replaced, at, writer) = row
    return ChangeEvent(
        seq=seq, type=type_, node_id=node_id, kind=kind, path=path, old_path=old,
        version_id=vid, size=size, content_hash=chash, replaced_node_id=replaced,
        at=datetime.fromtimestamp(at, UTC), writer=writer_from(writer),
    )  # fmt: skip


def chunk_counts(chunks: Sequence[str]) -> dict[str, int]:
    """How many times each chunk occurs in a version (a reference per occurrence)."""
    counts: dict[str, int] = {}
    for name in chunks:
        counts[name] = counts.get(name, 0) + 1
    return counts
