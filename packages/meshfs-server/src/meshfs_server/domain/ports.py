"""Ports: what the domain needs from storage, as Protocols, and the rows that cross them.

Adapters implement these for SQLite + a local directory (the embedded default) and for Postgres +
S3 (production). The domain never sees SQL or object-store calls; every metadata query goes
through a transaction that is bound to exactly one tenant, so no query can cross tenants.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Literal, Protocol

from meshfs_common.models import ChangeEvent, EventType, NodeKind, Writer, XattrAction
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.paging import ChildKey

# --- rows ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class NodeRow:
    """A node of the tree. ``parent_id`` is None only for a tenant's root (whose name is '').

    POSIX attributes: ``mode`` (permission bits, 0..0o7777), ``uid``/``gid``, times in integer
    nanoseconds (``modified_at`` is ``mtime_ns`` in seconds, kept equal by the domain),
    ``target`` (symbolic links) and ``rdev`` (device nodes).
    """

    node_id: str
    parent_id: str | None
    name: str
    kind: NodeKind
    created_at: float
    modified_at: float
    head_version_id: str | None = None
    size: int = 0
    content_hash: str | None = None
    deleted_at: float | None = None
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime_ns: int = 0
    atime_ns: int = 0
    ctime_ns: int = 0
    target: str | None = None
    rdev: int = 0
    edge_id: str | None = None
    """Set when this is an extra name of the file ``node_id`` (a hard link): the id of that
    name's own row, which ``parent_id``, ``name`` and ``deleted_at`` describe. Operations on
    the name (move, tombstone, revive) take :attr:`row_id`; everything else ``node_id``."""
    nlink: int = 0
    """How many names a file has (a directory: 2 plus its subdirectories), as the store
    counted when it read the row; 0 for a row not read from the store."""

    @property
    def row_id(self) -> str:
        """The id of the row that holds this name (``node_id`` unless a hard link)."""
        return self.edge_id or self.node_id

    @classmethod
    def empty_root(cls, tenant_id: str) -> NodeRow:
        """The root of a tenant never written to (its row is created by the first write)."""
        return cls(tenant_id, None, "", "dir", 0.0, 0.0, mode=0o755)

    @classmethod
    def new_root(cls, tenant_id: str) -> NodeRow:
        """The root a tenant's first write creates: 0o755, owned by the server's user."""
        now = time.time_ns()
        return cls(
            tenant_id, None, "", "dir", now / 1e9, now / 1e9, mode=0o755, uid=os.getuid(),
            gid=os.getgid(), mtime_ns=now, atime_ns=now, ctime_ns=now,
        )  # fmt: skip

    @property
    def is_dir(self) -> bool:
        return self.kind == "dir"

    @property
    def is_live(self) -> bool:
        return self.deleted_at is None


@dataclass(slots=True)
class VersionRow:
    """One immutable committed content. ``seq`` is the feed sequence of the commit that made it."""

    version_id: str
    node_id: str
    seq: int
    size: int
    content_hash: str
    chunks: tuple[str, ...]
    created_at: float
    writer: Writer | None = None
    replaces: str | None = None
    restored_from: str | None = None
    mode: int = 0o644


@dataclass(slots=True)
class UploadRow:
    """A chunked upload in progress. Its chunks are *held*: garbage collection will not touch
    them until the upload is committed, abandoned or expired."""

    upload_id: str
    path: str
    size: int
    content_hash: str
    chunks: tuple[str, ...]
    created_at: float
    expires_at: float
    user_id: str
    base_version: str | None = None
    """A partial write: the head version the upload was based on (its commit requires it is
    still the head)."""
    reserved: int | None = None
    """Bytes the upload may add to the tenant's storage (its new chunks); None: ``size``."""

    @property
    def reservation(self) -> int:
        """What the upload reserves against the quota while it is in progress."""
        return self.size if self.reserved is None else self.reserved


@dataclass(slots=True)
class NewEvent:
    """An event as the domain records it; the store assigns ``seq`` and ``at``."""

    type: EventType
    node_id: str
    kind: NodeKind
    path: str
    old_path: str | None = None
    version_id: str | None = None
    size: int | None = None
    content_hash: str | None = None
    replaced_node_id: str | None = None
    writer: Writer | None = None
    exchanged_with: str | None = None
    attributes: dict[str, int] | None = None
    old_attributes: dict[str, int] | None = None
    target: str | None = None
    xattr_name: str | None = None
    xattr_action: XattrAction | None = None
    nlink: int | None = None
    """On a ``delete`` of one name of a file that keeps others: how many it has left."""


@dataclass(slots=True)
class SnapshotRow:
    """A named point of the change feed for the subtree at ``path`` (rooted at ``node_id``);
    ``cursor`` is the last sequence number committed when it was taken."""

    snapshot_id: str
    name: str
    path: str
    node_id: str
    cursor: int
    created_at: float
    created_by: Writer | None = None
    files: int = 0
    directories: int = 0
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class SnapshotItem:
    """One node live under a snapshot's root when it was taken: where it was (``parent_id``,
    ``name``, ``path``) and, for a file, its head version then."""

    node_id: str
    parent_id: str | None
    name: str
    kind: NodeKind
    path: str
    version_id: str | None = None
    size: int = 0
    content_hash: str | None = None


@dataclass(slots=True)
class FeedBounds:
    """``first`` is the oldest retained sequence number, ``last`` the newest (0 if none)."""

    first: int
    last: int


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A chunk object as the content store lists it."""

    tenant_id: str
    chunk_hash: str
    modified_at: float


@dataclass(slots=True)
class GarbageBatch:
    """Chunks a collector has claimed for deletion, per tenant."""

    chunks: list[tuple[str, str]] = field(default_factory=list)  # (tenant_id, chunk_hash)


@dataclass(slots=True)
class StorageUsage:
    """A tenant's storage for quota accounting (bytes).

    ``committed``: the sizes of the chunks that versions reference, each chunk counted once
    (deduplicated). ``pending``: the declared sizes of unexpired uploads (reservations), each
    distinct content counted once.
    """

    committed: int
    pending: int


# --- metadata -----------------------------------------------------------------------------------


class ReadTx(Protocol):
    """A consistent read-only snapshot of one tenant's metadata."""

    tenant_id: str

    async def root(self) -> NodeRow:
        """The tenant's root directory (created on first use by a write transaction)."""

    async def get_node(self, node_id: str) -> NodeRow | None:
        """The node with this id, live or tombstoned, or None (the id of a hard link's row:
        that name, read as its file)."""

    async def child(self, parent_id: str, name: str) -> NodeRow | None:
        """The live child called *name* of *parent_id*, or None."""

    async def walk(self, names: tuple[str, ...]) -> tuple[int, NodeRow]:
        """The deepest live node on the way from the root down *names*, and how many names it
        took to get there: ``len(names)`` when the path is there; fewer when a name is missing
        from a directory or the walk met a node that is not a directory (which it never
        enters, a symbolic link included). ``(0, root)`` for no names."""

    async def children(
        self, parent_id: str, *, after: ChildKey | None, limit: int, include_deleted: bool = False
    ) -> list[NodeRow]:
        """Children of *parent_id* ordered by name, then node id (a unique order, also with
        tombstones), after *after*."""

    async def has_live_children(self, node_id: str) -> bool:
        """True when the directory has at least one live child."""

    async def live_descendants(self, node_id: str) -> list[NodeRow]:
        """Every live node below *node_id* (not including it)."""

    async def get_version(self, version_id: str) -> VersionRow | None:
        """The version with this id, or None."""

    async def versions(
        self, node_id: str, *, before_seq: int | None, limit: int
    ) -> list[VersionRow]:
        """Versions of *node_id*, newest first, with ``seq < before_seq`` when given."""

    async def events_after(self, cursor: int, limit: int) -> list[ChangeEvent]:
        """Events with ``seq > cursor`` in sequence order."""

    async def feed_bounds(self) -> FeedBounds:
        """The retained range of the change sequence."""

    async def cursor_before(self, at: float) -> int | None:
        """The sequence number of the last retained event recorded before *at* (epoch
        seconds), or None when no retained event is that old."""

    async def last_event_of(self, node_id: str, before_seq: int) -> ChangeEvent | None:
        """The newest retained event about *node_id* with ``seq < before_seq``, or None."""

    async def snapshot(self, ref: str) -> SnapshotRow | None:
        """The snapshot with this id, else the one with this name, or None."""

    async def snapshots(self) -> list[SnapshotRow]:
        """Every snapshot of the tenant, newest first."""

    async def snapshot_items(self, snapshot_id: str) -> list[SnapshotItem]:
        """The nodes a snapshot recorded, in path order."""

    async def present_chunks(self, hashes: Sequence[str]) -> set[str]:
        """The subset of *hashes* whose content is stored and not being collected."""

    async def chunk_state(self, chunk_hash: str) -> ChunkState:
        """Whether a chunk is absent, stored, or claimed by a garbage collector right now."""

    async def chunk_data(self, chunk_hash: str) -> bytes | None:
        """The content of a stored chunk kept in the metadata database (see
        :mod:`meshfs_server.domain.placement`); None when the content store holds it (or the
        chunk is not stored)."""

    async def collection_epoch(self) -> int:
        """A number that grows whenever a collector deleted some of this tenant's content.

        A writer that saw a chunk absent and stored it without holding it compares the epoch
        at commit: if it moved, the content may have been swept meanwhile and is stored again.
        """

    async def chunk_sizes(self, hashes: Sequence[str]) -> dict[str, int]:
        """Sizes of the stored chunks among *hashes*."""

    async def held_chunks(self, hold_id: str) -> set[str]:
        """The chunks held under *hold_id* (and not expired)."""

    async def get_upload(self, upload_id: str) -> UploadRow | None:
        """The upload in progress with this id, or None."""

    async def unreferenced_bytes(self, hashes: Sequence[str]) -> int:
        """Total size of the distinct stored chunks among *hashes* that no version references:
        what a commit of them would add to the tenant's deduplicated storage."""

    async def storage_usage(self, *, excluding_content: str | None = None) -> StorageUsage:
        """Deduplicated committed bytes and reserved (pending upload) bytes of the tenant;
        uploads of *excluding_content* (a content hash) are left out of ``pending``."""

    async def committed_bytes(self) -> int:
        """The tenant's deduplicated committed bytes (``storage_usage().committed`` alone,
        without summing pending uploads: what a commit's quota check needs)."""

    async def live_counts(self) -> dict[str, int]:
        """How many live nodes of each kind the tenant has (its root included; kinds with
        none are left out)."""

    async def live_links(self, node_id: str) -> list[NodeRow]:
        """The live extra names (hard links) of file *node_id*, each read as the file (with its
        ``edge_id``), in a stable order; N's own name is not among them."""

    async def xattr_sizes(self, node_id: str) -> dict[str, int]:
        """The extended attributes of *node_id*: name -> size of the value in bytes."""

    async def xattr(self, node_id: str, name: str) -> bytes | None:
        """The value of *node_id*'s extended attribute *name*, or None."""


class WriteTx(ReadTx, Protocol):
    """A read-write transaction on one tenant. Changes become visible together at commit."""

    async def insert_node(self, node: NodeRow) -> None:
        """Add a node; a live sibling with the same name violates the tree invariant."""

    async def move_node(self, node_id: str, parent_id: str, name: str, at: float) -> None:
        """Re-parent and/or rename the row *node_id* (a node, or a hard link's row: see
        :attr:`NodeRow.row_id`); a directory's subtree follows, being linked by id."""

    async def save_attributes(self, node: NodeRow) -> None:
        """Store *node*'s ``mode``, ``uid``, ``gid``, ``mtime_ns``, ``atime_ns``, ``ctime_ns``
        and ``modified_at`` as they are on the row (its other columns are left alone)."""

    async def insert_link(
        self, edge_id: str, node_id: str, parent_id: str, name: str, at: float
    ) -> None:
        """Add *name* in *parent_id* as an extra name of file *node_id*, in a row of its own
        called *edge_id*; a live sibling with the same name violates the tree invariant."""

    async def set_head(self, node_id: str, version: VersionRow) -> None:
        """Point a file at a new head version."""

    async def tombstone(self, node_ids: Sequence[str], at: float) -> None:
        """Mark rows deleted (nodes or hard links' rows); they keep parent and name for
        history and restore."""

    async def revive(self, node_id: str, parent_id: str, name: str, at: float) -> None:
        """Bring a tombstoned node back at (parent_id, name)."""

    async def insert_version(self, version: VersionRow) -> None:
        """Record a committed version and take a reference on each of its chunks."""

    async def set_xattr(self, node_id: str, name: str, value: bytes) -> None:
        """Create or replace *node_id*'s extended attribute *name*."""

    async def remove_xattr(self, node_id: str, name: str) -> bool:
        """Remove *node_id*'s extended attribute *name*; False when it had none."""

    async def append_event(self, event: NewEvent) -> ChangeEvent:
        """Allocate the next sequence number and record *event*; gap-free per tenant."""

    async def next_seq(self) -> int:
        """The sequence number the next appended event will get."""

    async def prune_events(self, before: float) -> int:
        """Forget events recorded before *before* (epoch seconds) and advance the retained
        log's start past them; returns how many went. Cursors older than the new start get a
        reset answer from then on."""

    async def mark_stored(self, chunk_hash: str, size: int, data: bytes | None = None) -> None:
        """Record that a chunk's content is now durably stored (idempotent).

        With *data* the content itself is kept in the metadata database, in this transaction
        (a small chunk; see :mod:`meshfs_server.domain.placement`): it is stored when the
        transaction commits. Content once kept there stays there.

        The caller holds the chunk (see :meth:`hold_chunks`) and has seen it was not being
        collected, so no collector can have claimed it since.
        """

    async def hold_chunks(self, hold_id: str, hashes: Sequence[str], expires_at: float) -> None:
        """Protect chunks from garbage collection until released or expired."""

    async def release_holds(self, hold_id: str) -> None:
        """Drop the holds taken under *hold_id*."""

    async def insert_upload(self, upload: UploadRow) -> None:
        """Record an upload and hold its chunks (under its upload id) until it expires."""

    async def delete_upload(self, upload_id: str) -> None:
        """Forget an upload and release its holds."""

    async def prunable_versions(self, *, keep: int, created_before: float, limit: int) -> list[str]:
        """Ids of versions that retention may delete: never a node's head version nor a version
        a snapshot references; among the rest, those beyond the newest *keep* of their node or
        created before *created_before*."""

    async def delete_versions(self, version_ids: Sequence[str]) -> int:
        """Delete versions (never a head nor a snapshot's: those are skipped) and drop their
        chunk references; returns how many were deleted. Unreferenced chunks are left to the
        collector."""

    async def purge_tombstones(self, deleted_before: float, limit: int) -> int:
        """Hard-delete nodes tombstoned before *deleted_before* (files with all their versions;
        directories once they have no children left) with their extended attributes and the
        rows of their hard links, except nodes a snapshot references; returns how many went."""

    async def insert_snapshot(self, snapshot: SnapshotRow, items: Sequence[SnapshotItem]) -> None:
        """Record a snapshot and the nodes it references (which retention then keeps); a name
        already taken in the tenant violates uniqueness."""

    async def delete_snapshot(self, snapshot_id: str) -> None:
        """Forget a snapshot; retention may prune what only it kept."""


class MetadataStore(Protocol):
    """Transactional metadata storage."""

    def read(self, tenant_id: str) -> AbstractAsyncContextManager[ReadTx]:
        """A read-only snapshot of one tenant."""

    def write(
        self, tenant_id: str, *, durable: bool = True
    ) -> AbstractAsyncContextManager[WriteTx]:
        """A short read-write transaction on one tenant; commits on normal exit.

        ``durable=False`` is for bookkeeping that may be lost in a crash (holds, chunk marks):
        such a commit need not reach the disk by itself, but it must become durable no later
        than the next durable commit (true of a WAL, and of Postgres ``synchronous_commit``).
        """

    async def claim_garbage(self, *, older_than: float, limit: int) -> GarbageBatch:
        """Claim unreferenced, unheld chunks and expired uploads for deletion (one transaction).

        A claimed chunk is reported absent by :meth:`ReadTx.present_chunks` until
        :meth:`release_garbage` forgets it, so no upload can start relying on it meanwhile.
        """

    async def claim_orphans(self, candidates: Sequence[tuple[str, str]]) -> GarbageBatch:
        """Claim stored objects that no chunk row knows (left by a crash between storing content
        and recording it), except held ones and those of tenants this database does not know:
        they become *collecting*, like claimed garbage."""

    async def release_garbage(self, batch: GarbageBatch) -> None:
        """Forget chunks whose stored content has been deleted (and advance the tenants'
        collection epochs)."""

    async def check(self) -> None:
        """Raise if the database cannot serve requests (used by /readyz)."""

    async def close(self) -> None:
        """Release connections."""


# --- content ------------------------------------------------------------------------------------


class QuotaPolicy(Protocol):
    """How much a tenant may store: asked by the content flow inside its metadata transactions,
    so concurrent uploads cannot together exceed it (the server's is
    :class:`meshfs_server.policy.quota.Quota`)."""

    async def limit(self, tenant_id: str) -> int:
        """The tenant's quota in bytes."""
        ...

    async def reserve(self, tx: WriteTx, actor: Actor, upload: UploadRow) -> None:
        """At upload init, before the upload is recorded: raise
        :class:`~meshfs_common.errors.QuotaExceededError` when its declared size cannot fit."""
        ...

    async def commit(
        self, tx: WriteTx, actor: Actor, chunks: tuple[str, ...], *, reused: Sequence[str] = ()
    ) -> None:
        """Inside the commit transaction, with the chunks the version references: raise
        :class:`~meshfs_common.errors.QuotaExceededError` when they cannot fit. *reused* are
        chunks of the file's own head version that the new one keeps (a partial write): they
        are never charged again."""
        ...


class ContentStore(Protocol):
    """Immutable chunk storage, addressed by (tenant, chunk hash)."""

    async def put_bytes(self, tenant_id: str, chunk_hash: str, data: bytes) -> None:
        """Durably store a verified chunk (at most one chunk size, so it fits in memory)."""

    def open(
        self, tenant_id: str, chunk_hash: str, *, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """Stream bytes ``[start, end)`` of a chunk."""

    async def delete(self, tenant_id: str, chunk_hash: str) -> None:
        """Delete a chunk's content; deleting a missing chunk is not an error."""

    def list_chunks(self) -> AsyncIterator[StoredChunk]:
        """Every stored chunk of every tenant, in no particular order (for the orphan sweep)."""

    async def check(self) -> None:
        """Raise if the store cannot serve requests (used by /readyz)."""

    async def close(self) -> None:
        """Release resources."""


StoreKind = Literal["sqlite", "postgres"]
ChunkState = Literal["absent", "stored", "collecting"]
