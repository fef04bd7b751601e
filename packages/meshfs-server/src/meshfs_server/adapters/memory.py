"""The storage ports in memory: a metadata store and a content store held in Python objects.

Nothing survives the process. They serve embedders that want a throwaway server and the
domain's unit tests, and they keep the same contract as the SQL and object-store adapters
(the backend tests run on all of them):

- Every transaction is bound to one tenant and sees only that tenant's state.
- Among live nodes, (parent, name) is unique; tombstones keep their parent and name, never
  block a new node of the same name, and can be revived.
- Sequence numbers are allocated inside the writing transaction, so the feed is gap-free per
  tenant and in commit order.
- Chunks carry a reference count (one per occurrence in a version) and holds; the collector
  only claims unreferenced, unheld chunks past their grace period, and a claimed chunk reads
  as absent until its deletion is released.
- Snapshots pin the versions and tombstones they list against retention.

Write transactions are serialised by one lock (like SQLite's single writer) and work on a copy
of the tenant's state that replaces it on commit; an exception discards the copy, so a failed
transaction leaves nothing behind. Readers take the state as it was when they started.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from meshfs_common.errors import InternalError, UnavailableError
from meshfs_common.ids import is_id
from meshfs_common.models import ChangeEvent
from meshfs_server.adapters.rows import chunk_counts
from meshfs_server.domain.paging import ChildKey
from meshfs_server.domain.ports import (
    ChunkState,
    FeedBounds,
    GarbageBatch,
    NewEvent,
    NodeRow,
    SnapshotItem,
    SnapshotRow,
    StorageUsage,
    StoredChunk,
    UploadRow,
    VersionRow,
)


class IntegrityError(Exception):
    """A write broke an invariant the SQL schemas enforce with constraints (a bug in the
    caller: the domain checks before it writes)."""


@dataclass(frozen=True, slots=True)
class _Chunk:
    size: int
    refs: int = 0
    stored: bool = True
    collecting: bool = False
    touched_at: float = 0.0
    data: bytes | None = None  # content kept with the metadata (small chunks)


@dataclass(slots=True)
class _Event:
    event: ChangeEvent
    at: float


@dataclass(slots=True)
class _Tenant:
    """One tenant's metadata. Rows inside are replaced, never mutated, so a shallow copy of
    the containers is an independent snapshot."""

    next_seq: int = 1
    log_start: int = 1
    gc_epoch: int = 0
    nodes: dict[str, NodeRow] = field(default_factory=dict)
    versions: dict[str, VersionRow] = field(default_factory=dict)
    chunks: dict[str, _Chunk] = field(default_factory=dict)
    uploads: dict[str, UploadRow] = field(default_factory=dict)
    holds: dict[tuple[str, str], float] = field(default_factory=dict)  # (hold, chunk) -> expiry
    events: dict[int, _Event] = field(default_factory=dict)
    snapshots: dict[str, SnapshotRow] = field(default_factory=dict)
    snapshot_items: dict[str, tuple[SnapshotItem, ...]] = field(default_factory=dict)
    xattrs: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (node, name) -> value
    links: dict[str, str] = field(default_factory=dict)  # a hard link's row -> its file

    def copy(self) -> _Tenant:
        return _Tenant(
            self.next_seq, self.log_start, self.gc_epoch, dict(self.nodes), dict(self.versions),
            dict(self.chunks), dict(self.uploads), dict(self.holds), dict(self.events),
            dict(self.snapshots), dict(self.snapshot_items), dict(self.xattrs), dict(self.links),
        )  # fmt: skip

    def pinned_versions(self) -> set[str]:
        return {
            i.version_id
            for items in self.snapshot_items.values()
            for i in items
            if i.version_id is not None
        }

    def pinned_nodes(self) -> set[str]:
        return {i.node_id for items in self.snapshot_items.values() for i in items}


class MemoryReadTx:
    """Reads of one tenant's state as it was when the transaction began."""

    def __init__(self, tenant_id: str, state: _Tenant | None) -> None:
        self.tenant_id = tenant_id
        self._exists = state is not None
        self.state = state if state is not None else _Tenant()

    async def root(self) -> NodeRow:
        node = await self.get_node(self.tenant_id)
        return NodeRow.empty_root(self.tenant_id) if node is None else node

    async def get_node(self, node_id: str) -> NodeRow | None:
        node = self.state.nodes.get(node_id)
        return None if node is None else self._view(node)

    async def child(self, parent_id: str, name: str) -> NodeRow | None:
        for node in self.state.nodes.values():
            if node.parent_id == parent_id and node.name == name and node.is_live:
                return self._view(node)
        return None

    async def walk(self, names: tuple[str, ...]) -> tuple[int, NodeRow]:
        node = await self.root()
        for depth, name in enumerate(names):
            found = await self.child(node.node_id, name) if node.is_dir else None
            if found is None:
                return depth, node
            node = found
        return len(names), node

    async def children(
        self, parent_id: str, *, after: ChildKey | None, limit: int, include_deleted: bool = False
    ) -> list[NodeRow]:
        found = [
            n
            for n in self.state.nodes.values()
            if n.parent_id == parent_id and (include_deleted or n.is_live)
        ]
        if after is not None and after.node_id is not None:
            start = (after.name, after.node_id)
            found = [n for n in found if (n.name, n.node_id) > start]
        elif after is not None:
            found = [n for n in found if n.name > after.name]
        found.sort(key=lambda n: (n.name, n.node_id))
        return [self._view(n) for n in found[:limit]]

    async def has_live_children(self, node_id: str) -> bool:
        return any(n.parent_id == node_id and n.is_live for n in self.state.nodes.values())

    async def live_descendants(self, node_id: str) -> list[NodeRow]:
        below: dict[str, list[NodeRow]] = {}
        for node in self.state.nodes.values():
            if node.is_live and node.parent_id is not None:
                below.setdefault(node.parent_id, []).append(node)
        out: list[NodeRow] = []
        pending = [node_id]
        while pending:
            for node in below.get(pending.pop(), []):
                out.append(self._view(node))
                pending.append(node.node_id)
        return out

    async def get_version(self, version_id: str) -> VersionRow | None:
        version = self.state.versions.get(version_id)
        return None if version is None else replace(version)

    async def versions(
        self, node_id: str, *, before_seq: int | None, limit: int
    ) -> list[VersionRow]:
        found = [
            v
            for v in self.state.versions.values()
            if v.node_id == node_id and (before_seq is None or v.seq < before_seq)
        ]
        found.sort(key=lambda v: v.seq, reverse=True)
        return [replace(v) for v in found[:limit]]

    async def events_after(self, cursor: int, limit: int) -> list[ChangeEvent]:
        events = self.state.events
        start = max(cursor + 1, self.state.log_start)
        found = (events[s].event for s in range(start, self.state.next_seq) if s in events)
        return [e for _, e in zip(range(limit), found, strict=False)]

    async def feed_bounds(self) -> FeedBounds:
        if not self._exists:
            return FeedBounds(first=1, last=0)
        return FeedBounds(first=self.state.log_start, last=self.state.next_seq - 1)

    async def cursor_before(self, at: float) -> int | None:
        seqs = [s for s, e in self.state.events.items() if e.at < at]
        return max(seqs) if seqs else None

    async def last_event_of(self, node_id: str, before_seq: int) -> ChangeEvent | None:
        found = [
            e.event
            for seq, e in self.state.events.items()
            if e.event.node_id == node_id and seq < before_seq
        ]
        return max(found, key=lambda e: e.seq) if found else None

    async def snapshot(self, ref: str) -> SnapshotRow | None:
        found = self.state.snapshots.get(ref)
        if found is None:
            found = next((s for s in self.state.snapshots.values() if s.name == ref), None)
        return None if found is None else replace(found)

    async def snapshots(self) -> list[SnapshotRow]:
        rows = sorted(
            self.state.snapshots.values(),
            key=lambda s: (s.created_at, s.snapshot_id),
            reverse=True,
        )
        return [replace(s) for s in rows]

    async def snapshot_items(self, snapshot_id: str) -> list[SnapshotItem]:
        return sorted(self.state.snapshot_items.get(snapshot_id, ()), key=lambda i: i.path)

    def _readable(self, chunk_hash: str) -> _Chunk | None:
        chunk = self.state.chunks.get(chunk_hash)
        if chunk is None or not chunk.stored or chunk.collecting:
            return None
        return chunk

    async def present_chunks(self, hashes: Sequence[str]) -> set[str]:
        return {h for h in set(hashes) if self._readable(h) is not None}

    async def chunk_state(self, chunk_hash: str) -> ChunkState:
        chunk = self.state.chunks.get(chunk_hash)
        if chunk is None:
            return "absent"
        if chunk.collecting:
            return "collecting"
        return "stored" if chunk.stored else "absent"

    async def chunk_data(self, chunk_hash: str) -> bytes | None:
        chunk = self.state.chunks.get(chunk_hash)
        if chunk is None or chunk.collecting or not chunk.stored:
            return None
        return chunk.data

    async def collection_epoch(self) -> int:
        return self.state.gc_epoch

    async def chunk_sizes(self, hashes: Sequence[str]) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for name in set(hashes):
            chunk = self._readable(name)
            if chunk is not None:
                sizes[name] = chunk.size
        return sizes

    async def held_chunks(self, hold_id: str) -> set[str]:
        now = time.time()
        return {c for (h, c), expires in self.state.holds.items() if h == hold_id and expires > now}

    async def get_upload(self, upload_id: str) -> UploadRow | None:
        upload = self.state.uploads.get(upload_id)
        return None if upload is None else replace(upload)

    async def unreferenced_bytes(self, hashes: Sequence[str]) -> int:
        total = 0
        for name in set(hashes):
            chunk = self.state.chunks.get(name)
            if chunk is not None and chunk.refs == 0:
                total += chunk.size
        return total

    async def committed_bytes(self) -> int:
        return sum(c.size for c in self.state.chunks.values() if c.refs > 0)

    async def storage_usage(self, *, excluding_content: str | None = None) -> StorageUsage:
        committed = await self.committed_bytes()
        now = time.time()
        pending: dict[str, int] = {}
        for upload in self.state.uploads.values():
            if upload.expires_at > now and upload.content_hash != excluding_content:
                pending[upload.content_hash] = max(
                    pending.get(upload.content_hash, 0), upload.reservation
                )
        return StorageUsage(committed=committed, pending=sum(pending.values()))

    def _view(self, row: NodeRow) -> NodeRow:
        """*row* as reads answer it: a hard link's row as its file (see ``link_sql``)."""
        target = self.state.links.get(row.node_id)
        node = row if target is None else self.state.nodes[target]
        if node.is_dir:
            nlink = 2 + sum(
                1
                for n in self.state.nodes.values()
                if n.parent_id == node.node_id and n.is_dir and n.is_live
            )
        else:
            nlink = 1 + sum(
                1
                for link, of in self.state.links.items()
                if of == node.node_id and self.state.nodes[link].is_live
            )
        if target is None:
            return replace(row, nlink=nlink)
        return replace(
            node, parent_id=row.parent_id, name=row.name, deleted_at=row.deleted_at,
            edge_id=row.node_id, nlink=nlink,
        )  # fmt: skip

    async def live_links(self, node_id: str) -> list[NodeRow]:
        rows = sorted(
            link for link, of in self.state.links.items()
            if of == node_id and self.state.nodes[link].is_live
        )  # fmt: skip
        return [self._view(self.state.nodes[link]) for link in rows]

    async def xattr_sizes(self, node_id: str) -> dict[str, int]:
        found = {n: len(v) for (node, n), v in self.state.xattrs.items() if node == node_id}
        return dict(sorted(found.items()))

    async def xattr(self, node_id: str, name: str) -> bytes | None:
        return self.state.xattrs.get((node_id, name))

    async def live_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.state.nodes.values():
            if node.is_live:
                counts[node.kind] = counts.get(node.kind, 0) + 1
        return counts


class MemoryWriteTx(MemoryReadTx):
    """Writes to a private copy of one tenant's state, installed by the store on commit."""

    def __init__(self, tenant_id: str, state: _Tenant | None) -> None:
        super().__init__(tenant_id, None if state is None else state.copy())
        self._exists = True
        if state is None:  # first write: the tenant's feed and root directory begin
            self.state.nodes[tenant_id] = NodeRow.new_root(tenant_id)

    def _update(self, node_id: str, **changes: object) -> None:
        node = self.state.nodes.get(node_id)
        if node is not None:
            self.state.nodes[node_id] = replace(node, **changes)  # type: ignore[arg-type]

    def _check_free(self, node_id: str, parent_id: str | None, name: str) -> None:
        for other in self.state.nodes.values():
            if (
                other.node_id != node_id
                and other.is_live
                and other.parent_id == parent_id
                and other.name == name
            ):
                raise IntegrityError(f"a live node is already called {name!r} there")

    async def insert_node(self, node: NodeRow) -> None:
        if node.node_id in self.state.nodes:
            raise IntegrityError(f"node {node.node_id} exists")
        if node.is_live:
            self._check_free(node.node_id, node.parent_id, node.name)
        self.state.nodes[node.node_id] = replace(node)

    async def move_node(self, node_id: str, parent_id: str, name: str, at: float) -> None:
        node = self.state.nodes.get(node_id)
        if node is not None and node.is_live:
            self._check_free(node_id, parent_id, name)
        self._update(node_id, parent_id=parent_id, name=name, modified_at=at)

    async def save_attributes(self, node: NodeRow) -> None:
        self._update(
            node.node_id, mode=node.mode, uid=node.uid, gid=node.gid, mtime_ns=node.mtime_ns,
            atime_ns=node.atime_ns, ctime_ns=node.ctime_ns, modified_at=node.modified_at,
        )  # fmt: skip

    async def insert_link(
        self, edge_id: str, node_id: str, parent_id: str, name: str, at: float
    ) -> None:
        await self.insert_node(NodeRow(edge_id, parent_id, name, "file", at, at))
        self.state.links[edge_id] = node_id

    async def set_head(self, node_id: str, version: VersionRow) -> None:
        self._update(
            node_id, head_version_id=version.version_id, size=version.size,
            content_hash=version.content_hash, modified_at=version.created_at,
        )  # fmt: skip

    async def tombstone(self, node_ids: Sequence[str], at: float) -> None:
        for node_id in node_ids:
            self._update(node_id, deleted_at=at)

    async def revive(self, node_id: str, parent_id: str, name: str, at: float) -> None:
        self._check_free(node_id, parent_id, name)
        self._update(node_id, deleted_at=None, parent_id=parent_id, name=name, modified_at=at)

    async def set_xattr(self, node_id: str, name: str, value: bytes) -> None:
        self.state.xattrs[(node_id, name)] = bytes(value)

    async def remove_xattr(self, node_id: str, name: str) -> bool:
        return self.state.xattrs.pop((node_id, name), None) is not None

    async def insert_version(self, version: VersionRow) -> None:
        if version.version_id in self.state.versions:
            raise IntegrityError(f"version {version.version_id} exists")
        self.state.versions[version.version_id] = replace(version)
        chunks = self.state.chunks
        for name, n in chunk_counts(version.chunks).items():
            if name in chunks:
                chunks[name] = replace(chunks[name], refs=chunks[name].refs + n)

    async def next_seq(self) -> int:
        return self.state.next_seq

    async def prune_events(self, before: float) -> int:
        last = await self.cursor_before(before)
        if last is None:
            return 0
        gone = [s for s in self.state.events if s <= last]
        for seq in gone:
            del self.state.events[seq]
        self.state.log_start = max(self.state.log_start, last + 1)
        return len(gone)

    async def append_event(self, event: NewEvent) -> ChangeEvent:
        seq = self.state.next_seq
        self.state.next_seq += 1
        at = time.time()
        recorded = ChangeEvent(
            seq=seq, type=event.type, node_id=event.node_id, kind=event.kind, path=event.path,
            old_path=event.old_path, version_id=event.version_id, size=event.size,
            content_hash=event.content_hash, replaced_node_id=event.replaced_node_id,
            at=datetime.fromtimestamp(at, UTC), writer=event.writer,
            attributes=None if event.attributes is None else dict(event.attributes),
            old_attributes=None if event.old_attributes is None else dict(event.old_attributes),
            target=event.target, exchanged_with=event.exchanged_with,
            xattr_name=event.xattr_name, xattr_action=event.xattr_action, nlink=event.nlink,
        )  # fmt: skip
        self.state.events[seq] = _Event(recorded, at)
        return recorded

    async def mark_stored(self, chunk_hash: str, size: int, data: bytes | None = None) -> None:
        now = time.time()
        chunk = self.state.chunks.get(chunk_hash)
        if chunk is None:
            self.state.chunks[chunk_hash] = _Chunk(size=size, touched_at=now, data=data)
        else:
            kept = chunk.data if chunk.data is not None else data
            self.state.chunks[chunk_hash] = replace(chunk, stored=True, touched_at=now, data=kept)

    async def hold_chunks(self, hold_id: str, hashes: Sequence[str], expires_at: float) -> None:
        for name in set(hashes):
            self.state.holds.setdefault((hold_id, name), expires_at)

    async def release_holds(self, hold_id: str) -> None:
        for key in [k for k in self.state.holds if k[0] == hold_id]:
            del self.state.holds[key]

    async def insert_upload(self, upload: UploadRow) -> None:
        if upload.upload_id in self.state.uploads:
            raise IntegrityError(f"upload {upload.upload_id} exists")
        self.state.uploads[upload.upload_id] = replace(upload)
        await self.hold_chunks(upload.upload_id, upload.chunks, upload.expires_at)

    async def delete_upload(self, upload_id: str) -> None:
        self.state.uploads.pop(upload_id, None)
        await self.release_holds(upload_id)

    def _deletable(self, version: VersionRow, pinned: set[str]) -> bool:
        node = self.state.nodes.get(version.node_id)
        return (
            node is not None
            and node.head_version_id != version.version_id
            and version.version_id not in pinned
        )

    async def prunable_versions(self, *, keep: int, created_before: float, limit: int) -> list[str]:
        by_node: dict[str, list[VersionRow]] = {}
        for version in self.state.versions.values():
            by_node.setdefault(version.node_id, []).append(version)
        pinned = self.state.pinned_versions()
        found: list[str] = []
        for versions in by_node.values():
            versions.sort(key=lambda v: v.seq, reverse=True)
            for rank, version in enumerate(versions, start=1):
                old = rank > keep or version.created_at < created_before
                if old and self._deletable(version, pinned):
                    found.append(version.version_id)
        return found[:limit]

    async def delete_versions(self, version_ids: Sequence[str]) -> int:
        pinned = self.state.pinned_versions()
        deleted = 0
        for version_id in version_ids:
            version = self.state.versions.get(version_id)
            if version is None or not self._deletable(version, pinned):
                continue
            self._drop_refs(version.chunks)
            del self.state.versions[version_id]
            deleted += 1
        return deleted

    def _drop_refs(self, names: Iterable[str]) -> None:
        now = time.time()  # restarts the collector's grace period for unreferenced chunks
        for name, n in chunk_counts(list(names)).items():
            chunk = self.state.chunks.get(name)
            if chunk is not None:
                self.state.chunks[name] = replace(
                    chunk, refs=max(chunk.refs - n, 0), touched_at=now
                )

    async def purge_tombstones(self, deleted_before: float, limit: int) -> int:
        pinned = self.state.pinned_nodes()
        purged = 0
        while purged < limit:
            parents = {n.parent_id for n in self.state.nodes.values()}
            ready = [
                n.node_id
                for n in self.state.nodes.values()
                if n.deleted_at is not None
                and n.deleted_at < deleted_before
                and n.parent_id is not None
                and n.node_id not in parents
                and n.node_id not in pinned
                and not any(self.state.links.get(p) == n.node_id for p in pinned)
            ][: limit - purged]
            if not ready:
                break
            for node_id in ready:
                for version in [v for v in self.state.versions.values() if v.node_id == node_id]:
                    self._drop_refs(version.chunks)
                    del self.state.versions[version.version_id]
                self.state.nodes.pop(node_id, None)  # its link rows may have gone already
                for key in [k for k in self.state.xattrs if k[0] == node_id]:
                    del self.state.xattrs[key]
                for link in [k for k, of in self.state.links.items() if of == node_id]:
                    del self.state.links[link]
                    self.state.nodes.pop(link, None)
                self.state.links.pop(node_id, None)
            purged += len(ready)
        return purged

    async def insert_snapshot(self, snapshot: SnapshotRow, items: Sequence[SnapshotItem]) -> None:
        taken = any(s.name == snapshot.name for s in self.state.snapshots.values())
        if taken or snapshot.snapshot_id in self.state.snapshots:
            raise IntegrityError(f"snapshot {snapshot.name!r} exists")
        self.state.snapshots[snapshot.snapshot_id] = replace(snapshot)
        self.state.snapshot_items[snapshot.snapshot_id] = tuple(items)

    async def delete_snapshot(self, snapshot_id: str) -> None:
        self.state.snapshots.pop(snapshot_id, None)
        self.state.snapshot_items.pop(snapshot_id, None)


class MemoryMetadataStore:
    """The metadata port in memory (see the module docstring for its guarantees)."""

    def __init__(self) -> None:
        self._tenants: dict[str, _Tenant] = {}
        self._writer = asyncio.Lock()
        self._closed = False

    def _open(self) -> None:
        if self._closed:
            raise UnavailableError("the metadata store is closed")

    @asynccontextmanager
    async def read(self, tenant_id: str) -> AsyncIterator[MemoryReadTx]:
        self._open()
        yield MemoryReadTx(tenant_id, self._tenants.get(tenant_id))

    @asynccontextmanager
    async def write(self, tenant_id: str, *, durable: bool = True) -> AsyncIterator[MemoryWriteTx]:
        self._open()
        async with self._writer:
            tx = MemoryWriteTx(tenant_id, self._tenants.get(tenant_id))
            yield tx
            self._tenants[tenant_id] = tx.state  # commit: the copy becomes the state

    async def claim_garbage(self, *, older_than: float, limit: int) -> GarbageBatch:
        self._open()
        now = time.time()
        claimed: list[tuple[str, str]] = []
        async with self._writer:
            for tenant_id, old in list(self._tenants.items()):
                state = old.copy()
                state.uploads = {k: u for k, u in state.uploads.items() if u.expires_at >= now}
                state.holds = {k: e for k, e in state.holds.items() if e >= now}
                held = {c for _, c in state.holds}
                for name, chunk in state.chunks.items():
                    if len(claimed) >= limit:
                        break
                    # Earlier claims whose deletion did not finish are claimed again.
                    unused = chunk.refs == 0 and chunk.touched_at < older_than
                    if chunk.collecting or (unused and name not in held):
                        state.chunks[name] = replace(chunk, collecting=True)
                        claimed.append((tenant_id, name))
                self._tenants[tenant_id] = state
        return GarbageBatch(chunks=claimed)

    async def claim_orphans(self, candidates: Sequence[tuple[str, str]]) -> GarbageBatch:
        self._open()
        claimed: list[tuple[str, str]] = []
        now = time.time()
        async with self._writer:
            for tenant_id, name in candidates:
                old = self._tenants.get(tenant_id)
                # Only tenants of this store: the content store may hold others' (never touch).
                if old is None or name in old.chunks or any(c == name for _, c in old.holds):
                    continue
                state = old.copy()
                state.chunks[name] = _Chunk(size=0, stored=False, collecting=True, touched_at=now)
                self._tenants[tenant_id] = state
                claimed.append((tenant_id, name))
        return GarbageBatch(chunks=claimed)

    async def release_garbage(self, batch: GarbageBatch) -> None:
        self._open()
        async with self._writer:
            for tenant_id in sorted({t for t, _ in batch.chunks}):
                old = self._tenants.get(tenant_id)
                if old is None:
                    continue
                state = old.copy()
                for t, name in batch.chunks:
                    chunk = state.chunks.get(name)
                    if t == tenant_id and chunk is not None and chunk.collecting:
                        del state.chunks[name]
                state.gc_epoch += 1
                self._tenants[tenant_id] = state

    async def check(self) -> None:
        self._open()

    async def close(self) -> None:
        self._closed = True


class MemoryContentStore:
    """The content port in memory: chunk bytes per (tenant, chunk hash)."""

    def __init__(self) -> None:
        self._chunks: dict[tuple[str, str], tuple[bytes, float]] = {}

    @staticmethod
    def _key(tenant_id: str, chunk_hash: str) -> tuple[str, str]:
        if not is_id(tenant_id) or len(chunk_hash) != 64 or not chunk_hash.isalnum():
            raise InternalError("refusing a malformed content key")
        return tenant_id, chunk_hash

    async def put_bytes(self, tenant_id: str, chunk_hash: str, data: bytes) -> None:
        key = self._key(tenant_id, chunk_hash)
        if key not in self._chunks:  # content is immutable: a stored chunk is left alone
            self._chunks[key] = (bytes(data), time.time())

    async def open(
        self, tenant_id: str, chunk_hash: str, *, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        stored = self._chunks.get(self._key(tenant_id, chunk_hash))
        if stored is None:
            raise UnavailableError(f"content {chunk_hash[:12]} is missing from the store")
        block = stored[0][start:end]
        if block:
            yield block

    async def delete(self, tenant_id: str, chunk_hash: str) -> None:
        self._chunks.pop(self._key(tenant_id, chunk_hash), None)

    async def list_chunks(self) -> AsyncIterator[StoredChunk]:
        for (tenant_id, name), (_, at) in list(self._chunks.items()):
            yield StoredChunk(tenant_id, name, at)

    async def check(self) -> None:
        """Always ready: memory does not go away."""

    async def close(self) -> None:
        """Nothing to release (the chunks go with the object)."""
