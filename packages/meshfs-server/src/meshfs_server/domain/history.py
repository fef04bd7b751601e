"""History: diffs between versions of a file, and "what changed" under a path.

Both read committed metadata in one snapshot transaction, then the content they compare (never a
transaction across content reads). Text diffs are bounded (:data:`~textdiff.TEXT_LIMIT` per
side); line statistics of a change summary share one read budget per answer, so a summary of a
huge change stays cheap (entries beyond it carry no line counts).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from meshfs_common import paths
from meshfs_common.errors import BadRequestError, IsADirError, NotFoundError
from meshfs_common.models import (
    ChangeEvent,
    ChangeSummary,
    DiffSide,
    FileChange,
    FileDiff,
    NodeKind,
    Writer,
)
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.content import ByteRange, ContentService
from meshfs_server.domain.ports import MetadataStore, NodeRow, ReadTx, VersionRow
from meshfs_server.domain.textdiff import TEXT_LIMIT, compare, guess_media_type, line_stats
from meshfs_server.domain.tree import path_of, resolve, ts

MAX_SUMMARY_EVENTS = 20_000
STATS_BUDGET = 32 * 1024 * 1024
_SNIFF = 8192
_PAGE = 1000


def writer_key(writer: Writer | None) -> tuple[str | None, ...]:
    if writer is None:
        return (None,)
    return (writer.user_id, writer.session_id, writer.device_name, writer.agent_name)


@dataclass(slots=True)
class _Step:
    """One event as it concerns one node (a rename over a file is two steps)."""

    seq: int
    type: str
    kind: NodeKind
    path: str
    old_path: str | None
    version_id: str | None
    writer: Writer | None


@dataclass(slots=True)
class NodeHistory:
    """The steps of one node within a feed range, oldest first."""

    node_id: str
    steps: list[_Step] = field(default_factory=list)

    @property
    def writers(self) -> list[Writer]:
        seen: dict[tuple[str | None, ...], Writer] = {}
        for step in self.steps:
            if step.writer is not None:
                seen.setdefault(writer_key(step.writer), step.writer)
        return list(seen.values())


def _steps_of(event: ChangeEvent) -> list[tuple[str, _Step]]:
    if event.type == "rename" and event.replaced_node_id is not None:
        # The file at `path` keeps its id and takes the moved content; the moved node is gone.
        return [
            (event.node_id, _Step(event.seq, "write", event.kind, event.path, None,
                                  event.version_id, event.writer)),
            (event.replaced_node_id, _Step(event.seq, "delete", event.kind,
                                           event.old_path or event.path, None, None,
                                           event.writer)),
        ]  # fmt: skip
    step = _Step(
        event.seq, event.type, event.kind, event.path, event.old_path, event.version_id,
        event.writer,
    )  # fmt: skip
    return [(event.node_id, step)]


class History:
    """Diffs and change summaries for authenticated actors."""

    def __init__(self, store: MetadataStore, content: ContentService) -> None:
        self.store = store
        self.content = content

    # --- diffs ----------------------------------------------------------------------------------

    async def diff(
        self,
        actor: Actor,
        *,
        path: str | None = None,
        node_id: str | None = None,
        v1: str | None = None,
        v2: str | None = None,
    ) -> FileDiff:
        """Diff two versions of a file.

        No versions: the head against the version before it. *v1* alone: *v1* against the
        head. *v2* alone: the version before *v2* against *v2*. Both: *v1* against *v2*. A
        first version is compared with no content (everything added).
        """
        async with self.store.read(actor.tenant_id) as tx:
            node, where = await _locate(tx, path, node_id)
            actor.check_read(where)
            if node.is_dir:
                raise IsADirError(f"is a directory: {where}; diff compares versions of a file")
            new = await _version_of(tx, node, v2 or node.head_version_id)
            if v1 is not None:
                old: VersionRow | None = await _version_of(tx, node, v1)
            else:
                earlier = await tx.versions(node.node_id, before_seq=new.seq, limit=1)
                old = earlier[0] if earlier else None
        return await self.compare_versions(actor.tenant_id, where, node.node_id, old, new)

    async def compare_versions(
        self, tenant_id: str, where: str, node_id: str, old: VersionRow | None, new: VersionRow
    ) -> FileDiff:
        """Diff two versions of the file at *where* (``old`` None: no content before)."""
        too_large = new.size > TEXT_LIMIT or (old is not None and old.size > TEXT_LIMIT)
        identical = old is not None and old.content_hash == new.content_hash
        old_bytes = await self._read_side(tenant_id, old, whole=not too_large)
        new_bytes = await self._read_side(tenant_id, new, whole=not too_large)
        old_label = f"a{where}@{old.version_id}" if old is not None else "/dev/null"
        new_label = f"b{where}@{new.version_id}"
        result = await asyncio.to_thread(
            compare, old_bytes if old is not None else None, new_bytes, old_label, new_label,
            too_large=too_large,
        )  # fmt: skip
        return FileDiff(
            path=where,
            node_id=node_id,
            old=_side(where, old, old_bytes),
            new=_side(where, new, new_bytes),
            identical=identical,
            unified=result.unified,
            added=result.added,
            removed=result.removed,
            no_text=result.no_text,
            text_limit=TEXT_LIMIT,
        )

    async def _read_side(self, tenant_id: str, version: VersionRow | None, *, whole: bool) -> bytes:
        """A version's bytes (all when *whole*, else only enough to guess its type)."""
        if version is None or version.size == 0:
            return b""
        end = version.size if whole else min(version.size, _SNIFF)
        blocks = [b async for b in self.content.read(tenant_id, version, ByteRange(0, end))]
        return b"".join(blocks)

    async def line_stats(
        self, tenant_id: str, old: VersionRow | None, new: VersionRow | None
    ) -> tuple[int, int] | None:
        """(added, removed) lines between two text versions (None: binary or too large)."""
        if old is None or new is None:
            return None
        if old.size > TEXT_LIMIT or new.size > TEXT_LIMIT:
            return None
        if old.content_hash == new.content_hash:
            return (0, 0)
        old_bytes = await self._read_side(tenant_id, old, whole=True)
        new_bytes = await self._read_side(tenant_id, new, whole=True)
        return await asyncio.to_thread(line_stats, old_bytes, new_bytes)

    # --- what changed ---------------------------------------------------------------------------

    async def changes(
        self,
        actor: Actor,
        path: str | None = None,
        *,
        since_cursor: int | None = None,
        since_time: float | None = None,
        with_line_stats: bool = True,
    ) -> ChangeSummary:
        """Everything changed under *path* after a cursor or since a time, per file (see
        :class:`~meshfs_common.models.ChangeSummary`); *path* defaults to all the actor sees.
        *with_line_stats* False leaves out the changed-line counts (which read content)."""
        where = paths.normalise(path) if path is not None else actor.scope.prefix
        actor.check_read(where)
        if (since_cursor is None) == (since_time is None):
            raise BadRequestError("give exactly one of since_cursor and since_time")
        if since_cursor is not None and since_cursor < 0:
            raise BadRequestError("since_cursor must be >= 0")
        async with self.store.read(actor.tenant_id) as tx:
            bounds = await tx.feed_bounds()
            if since_cursor is not None:
                if since_cursor > bounds.last:
                    raise BadRequestError(
                        f"since_cursor {since_cursor} is ahead of the feed (now at {bounds.last})"
                    )
                start = since_cursor
            else:
                assert since_time is not None
                before = await tx.cursor_before(since_time)
                start = before if before is not None else bounds.first - 1
            trimmed = start < bounds.first - 1 or (
                since_time is not None and start == bounds.first - 1 and bounds.first > 1
            )
            start = max(start, bounds.first - 1)
            histories, end, more = await _collect(tx, start, where)
            # The answer reaches the present unless capped: then the state after each node's
            # last step is the present state (the same read snapshot), which also covers what
            # happened to it without an event of its own (its directory deleted or moved).
            changes = await _summarise(tx, actor, where, histories, present=not more)
        if with_line_stats:
            await self.add_line_stats(actor.tenant_id, changes)
        return ChangeSummary(
            path=where, from_cursor=start, to_cursor=end, changes=changes,
            history_trimmed=trimmed, has_more=more,
        )  # fmt: skip

    async def add_line_stats(self, tenant_id: str, changes: list[FileChange]) -> None:
        """Line counts for text modifications, within one read budget per answer."""
        budget = STATS_BUDGET
        wanted = [
            c for c in changes
            if c.kind == "file" and c.content_changed and c.status in ("modified", "renamed")
        ]  # fmt: skip
        pairs: list[tuple[FileChange, VersionRow | None, VersionRow | None]] = []
        async with self.store.read(tenant_id) as tx:
            for change in wanted:
                old = await tx.get_version(change.old_version_id or "")
                new = await tx.get_version(change.version_id or "")
                pairs.append((change, old, new))
        for change, old, new in pairs:
            if old is None or new is None or old.size + new.size > budget:
                continue
            stats = await self.line_stats(tenant_id, old, new)
            budget -= old.size + new.size
            if stats is not None:
                change.added, change.removed = stats


async def _collect(tx: ReadTx, start: int, where: str) -> tuple[list[NodeHistory], int, bool]:
    """The steps under *where* after *start*, per node in order of first appearance; the last
    sequence number read and whether the range held more than one answer covers."""
    histories: dict[str, NodeHistory] = {}
    cursor = start
    read = 0
    more = False
    while True:
        page = await tx.events_after(cursor, _PAGE)
        for event in page:
            if read >= MAX_SUMMARY_EVENTS:
                more = True
                break
            read += 1
            cursor = event.seq
            inside = paths.is_within(event.path, where) or (
                event.old_path is not None and paths.is_within(event.old_path, where)
            )
            if not inside:
                continue
            for node_id, step in _steps_of(event):
                histories.setdefault(node_id, NodeHistory(node_id)).steps.append(step)
        if more or len(page) < _PAGE:
            break
    return list(histories.values()), cursor, more


async def _summarise(
    tx: ReadTx, actor: Actor, where: str, histories: list[NodeHistory], *, present: bool
) -> list[FileChange]:
    out: list[FileChange] = []
    ancestry = _Ancestry(tx)
    for history in histories:
        change = await _net_change(tx, actor, where, history, ancestry, present=present)
        if change is not None:
            out.append(change)
    out.sort(key=lambda c: (c.path, c.node_id))
    return out


class _Ancestry:
    """Where nodes are now and whether they are reachable, for one summary: each ancestor is
    read once, however many changed nodes lie below it (a summary of a deep tree would
    otherwise walk every changed node's whole chain of parents again)."""

    def __init__(self, tx: ReadTx) -> None:
        self._tx = tx
        self._known: dict[str, tuple[str, bool]] = {}

    async def of(self, node: NodeRow) -> tuple[str, bool]:
        """The path of *node* through its parent links and whether it and all its ancestors
        are live (as :func:`.tree.path_of` and :func:`.tree.is_reachable` answer)."""
        chain: list[NodeRow] = []
        current: NodeRow | None = node
        below = ("/", False)  # where a chain with a missing ancestor starts
        while current is not None:
            known = self._known.get(current.node_id)
            if known is not None:
                below = known
                break
            chain.append(current)
            if current.parent_id is None:
                break
            if len(chain) > 4096:  # a cycle would be a corrupted tree: fail loudly
                raise RuntimeError(f"parent cycle at node {node.node_id}")
            current = await self._tx.get_node(current.parent_id)
        for row in reversed(chain):
            if row.parent_id is None:
                below = ("/", row.is_live)
            else:
                parent_path, parent_live = below
                below = (
                    ("" if parent_path == "/" else parent_path) + "/" + row.name,
                    parent_live and row.is_live,
                )
            self._known[row.node_id] = below
        return below


async def _existed_before(tx: ReadTx, node_id: str, first: _Step) -> bool:
    """Whether the node existed (live) just before its first step in the range."""
    if first.type in ("mkdir", "create"):  # a directory, a symbolic link or special node made
        return False
    if first.type == "write":
        version = await tx.get_version(first.version_id or "")
        return version is None or version.replaces is not None
    if first.type == "restore":
        # A restore may bring back a deleted file: then it did not exist before.
        previous = await tx.last_event_of(node_id, first.seq)
        return previous is None or previous.type != "delete"
    return True


async def _version_before(tx: ReadTx, first: _Step) -> str | None:
    if first.type in ("write", "restore"):
        version = await tx.get_version(first.version_id or "")
        return None if version is None else version.replaces
    if first.type == "mkdir":
        return None
    # rename, delete, and the changes that keep the content (attributes, xattrs, a new name)
    # carry the head version they saw.
    return first.version_id


async def _net_change(
    tx: ReadTx,
    actor: Actor,
    where: str,
    history: NodeHistory,
    ancestry: _Ancestry,
    *,
    present: bool,
) -> FileChange | None:
    """The net effect of one node's steps, as seen from the subtree *where*; with *present*
    the state after them is the node's present state."""
    steps = history.steps
    first, last = steps[0], steps[-1]
    existed = await _existed_before(tx, history.node_id, first)
    before_path = first.old_path if first.type == "rename" and first.old_path else first.path
    after_path = last.path
    exists_now = last.type != "delete"
    head = last.version_id
    if present:
        node = await tx.get_node(history.node_id)
        exists_now = False
        if node is not None and node.is_live:
            now_path, exists_now = await ancestry.of(node)
            if exists_now:
                after_path, head = now_path, node.head_version_id
    before_in = existed and paths.is_within(before_path, where)
    after_in = exists_now and paths.is_within(after_path, where)
    old_version = await _version_before(tx, first) if existed else None
    new_version = head if exists_now else None
    new_row = await tx.get_version(new_version) if new_version is not None else None
    old_row = await tx.get_version(old_version) if old_version is not None else None
    # Net content change: a file written and then written back has the content it had.
    content_changed = old_version != new_version and (
        old_row is None or new_row is None or old_row.content_hash != new_row.content_hash
    )

    def visible(path: str) -> bool:
        return actor.scope.contains(path)

    if before_in and after_in:
        if before_path != after_path:
            status, path, old_path = "renamed", after_path, before_path
        elif content_changed:
            status, path, old_path = "modified", after_path, None
        else:
            return None
    elif after_in:
        if existed and visible(before_path):
            status, path, old_path = "renamed", after_path, before_path
        else:
            status, path, old_path = "created", after_path, None
    elif before_in:
        if exists_now and visible(after_path):
            status, path, old_path = "renamed", after_path, before_path
        else:
            status, path, old_path = "deleted", before_path, None
    else:
        return None
    kind = last.kind
    size = new_row.size if kind == "file" and status != "deleted" and new_row else None
    return FileChange(
        path=path,
        node_id=history.node_id,
        kind=kind,
        status=status,  # type: ignore[arg-type]
        old_path=old_path,
        old_version_id=old_version if status != "created" else None,
        version_id=new_version if status != "deleted" else None,
        size=size,
        content_changed=kind == "file" and status != "deleted" and content_changed,
        writers=history.writers,
        first_seq=first.seq,
        last_seq=last.seq,
    )


async def _locate(tx: ReadTx, path: str | None, node_id: str | None) -> tuple[NodeRow, str]:
    if node_id is not None:
        node = await tx.get_node(node_id)
        if node is None:
            raise NotFoundError(f"no such node: {node_id}")
        return node, await path_of(tx, node)
    if path is None:
        raise BadRequestError("give a path or a node_id")
    where = paths.normalise(path)
    return await resolve(tx, where), where


async def _version_of(tx: ReadTx, node: NodeRow, version_id: str | None) -> VersionRow:
    version = await tx.get_version(version_id or "")
    if version is None or version.node_id != node.node_id:
        raise NotFoundError(f"no such version of {node.node_id}: {version_id}")
    return version


def _side(where: str, version: VersionRow | None, head: bytes) -> DiffSide:
    if version is None:
        return DiffSide()
    return DiffSide(
        version_id=version.version_id,
        size=version.size,
        content_hash=version.content_hash,
        media_type=guess_media_type(where, head[:_SNIFF]),
        created_at=ts(version.created_at),
        writer=version.writer,
    )
