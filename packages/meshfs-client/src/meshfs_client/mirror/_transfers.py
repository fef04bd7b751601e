"""Carrying out planned steps: transfers, deletes, directories, renames, conflict copies.

Every step re-checks the local state it was planned on right before it changes anything, and
records the new synced state only after both sides agree, so a crash at any point leaves either
the old synced row (the step is redone) or the new one (it is done).

Local writes are atomic: content is downloaded into a temporary file in the destination
directory (``.<name>.<random>.meshfs-tmp``, which the watcher and the scan ignore), verified
against the server's content hash, fsynced, and only then renamed into place (a new file is
hard-linked into place, so a file created meanwhile is never replaced), followed by an fsync
of the directory. If the destination changed while the download was in flight, the download is
discarded and the path is re-planned, which uploads the local edit instead.

A file's executable bits and mtime travel with it: a download sets them on the temporary file
before it is put in place, an upload of a small file carries the mtime in its request (and
sends executable bits that differ from the server's as an attribute change of the new version;
a large file sends both that way), and
an attribute-only change on either side is applied to the other without moving content.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

from meshfs_client._client import MeshFSClient
from meshfs_client._upload import SMALL_UPLOAD_LIMIT, SourceChangedError
from meshfs_client.mirror._conflicts import conflict_name
from meshfs_client.mirror._ignore import TEMP_SUFFIX
from meshfs_client.mirror._local import stat_node, to_os
from meshfs_client.mirror._model import (
    EXEC_BITS,
    LocalNode,
    RemoteNode,
    SyncedNode,
    link_target,
)
from meshfs_client.mirror._remote import RemoteTree
from meshfs_client.mirror._state import StateDB
from meshfs_common import paths
from meshfs_common.errors import (
    AlreadyExistsError,
    ConflictError,
    HashMismatchError,
    NotFoundError,
    PreconditionFailedError,
    error_from_envelope,
)
from meshfs_common.hashing import ContentHasher, hash_bytes
from meshfs_common.models import CommitResult, Entry

Attributes = tuple[int, int]
"""``(executable bits, mtime_ns)`` a download gives the local file."""

_WRITE_BATCH = 1024 * 1024
_First = TypeVar("_First")
_Second = TypeVar("_Second")
_INLINE_READ = 64 * 1024

Echo = Callable[[str, str, str | None, list[str]], None]
"""``expect_echo(event_type, node_id, version_id, rels)``: our own change will come back in the
feed as this event; hold the paths until it does."""


class LocalChangedError(Exception):
    """The local file changed after the step was planned; re-plan the path."""


@dataclass(slots=True)
class Executor:
    """Performs steps for the engine; owns no state of its own."""

    client: MeshFSClient
    target: Path
    tree: RemoteTree
    state: StateDB
    expect_echo: Echo

    def os_path(self, rel: str) -> Path:
        return to_os(self.target, rel)

    # --- remote -> local ------------------------------------------------------------------------

    async def download(self, rel: str, remote: RemoteNode, expected: LocalNode | None) -> None:
        """Fetch *remote* into place atomically, unless the local file moved away from
        *expected* meanwhile (then :class:`LocalChangedError`)."""
        dest = self.os_path(rel)
        temp = dest.with_name(f".{_short(dest.name)}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        if remote.size <= _WRITE_BATCH:
            # A small file is fetched into memory (its attributes asked for at the same time),
            # then checked, written, synced and put in place in one hand-off to a thread
            # (streaming takes one per step).
            attrs, data = await _together(
                self.attributes_of(remote),
                self.client.read_bytes(node_id=remote.node_id, version_id=remote.version_id),
            )
            placed, content_hash = await asyncio.to_thread(
                _write_and_place, rel, data, remote.content_hash, temp, dest, expected, attrs
            )
            if placed is None:
                raise LocalChangedError(rel)
            self._record_download(rel, remote, placed, content_hash, attrs)
            return
        attrs = await self.attributes_of(remote)
        await asyncio.to_thread(dest.parent.mkdir, parents=True, exist_ok=True)
        hasher = ContentHasher()
        try:
            out = await asyncio.to_thread(open, temp, "xb")
            with out:
                stream = self.client.download(node_id=remote.node_id, version_id=remote.version_id)
                async with stream:
                    batch = bytearray()
                    async for block in stream:
                        batch += block
                        if len(batch) >= _WRITE_BATCH:
                            await asyncio.to_thread(out.write, bytes(batch))
                            hasher.update(batch)
                            batch.clear()
                    if batch:
                        await asyncio.to_thread(out.write, bytes(batch))
                        hasher.update(batch)
                await asyncio.to_thread(_flush_and_sync, out)
            digest = hasher.finish()
            if remote.content_hash is not None and digest.content_hash != remote.content_hash:
                raise HashMismatchError(f"downloaded content of {rel} does not match its hash")
            placed = await asyncio.to_thread(_place, temp, dest, expected, attrs)
        finally:
            await asyncio.to_thread(_unlink, temp)
        if placed is None:
            raise LocalChangedError(rel)
        self._record_download(rel, remote, placed, digest.content_hash, attrs)

    async def attributes_of(self, remote: RemoteNode) -> Attributes | None:
        """The executable bits and mtime of *remote*'s version (asked of the server when the
        feed did not say; ``None`` when the server has moved on to another version)."""
        if remote.mode is not None and remote.mtime_ns is not None:
            return remote.mode & EXEC_BITS, remote.mtime_ns
        try:
            entry = await self.client.meta(node_id=remote.node_id)
        except NotFoundError:
            return None
        if entry.version_id != remote.version_id:
            return None
        return entry.mode & EXEC_BITS, entry.mtime_ns

    def _record_download(
        self,
        rel: str,
        remote: RemoteNode,
        placed: LocalNode,
        content_hash: str,
        attrs: Attributes | None,
    ) -> None:
        self.state.set_synced(
            rel,
            SyncedNode(
                "file",
                remote.node_id,
                remote.version_id,
                content_hash,
                placed.size,
                placed.mtime_ns,
                placed.inode,
                _exec_bits_if_taken(placed, attrs),
            ),
        )

    async def mkdir_local(self, rel: str, remote: RemoteNode) -> None:
        path = self.os_path(rel)
        await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
        node = stat_node(path)
        if not isinstance(node, LocalNode) or node.kind != "dir":
            raise LocalChangedError(rel)
        self.state.set_synced(rel, SyncedNode("dir", remote.node_id, inode=node.inode))

    async def delete_local_file(self, rel: str, expected: LocalNode) -> None:
        path = self.os_path(rel)
        if not await asyncio.to_thread(_unlink_if_same, path, expected):
            raise LocalChangedError(rel)
        self.state.drop_synced(rel)

    async def delete_local_dir(self, rel: str) -> list[str]:
        """Remove what is unchanged below *rel* (and *rel* when that empties it).

        Returns the paths kept because they changed locally or are new (they are uploaded
        again as new files once their synced rows are gone).
        """
        synced = {p: self.state.synced[p] for p in self.state.synced_below(rel)}
        kept = await asyncio.to_thread(_prune_dir, self.target, rel, synced)
        self.state.drop_synced(rel, subtree=True)
        return kept

    # --- local -> remote ------------------------------------------------------------------------

    async def upload(
        self, rel: str, local: LocalNode, *, if_match: str | None, if_none_match: bool
    ) -> None:
        """Commit the local file (with the given precondition) and record it as synced."""
        path = self.os_path(rel)
        remote_path = self.tree.remote_path(rel)
        if local.size <= SMALL_UPLOAD_LIMIT:
            # A tiny file is read on the event loop: cheaper than a hand-off to a thread.
            data = (
                _read_if_same(path, local)
                if local.size <= _INLINE_READ
                else await asyncio.to_thread(_read_if_same, path, local)
            )
            if data is None:
                raise LocalChangedError(rel)
            content_hash = hash_bytes(data).content_hash
            # The local mtime travels with the content: no second request (and commit, and
            # event for every follower) to set it afterwards.
            result = await self.client.upload(
                remote_path, data, if_match=if_match, if_none_match=if_none_match,
                mtime_ns=local.mtime_ns,
            )  # fmt: skip
        else:
            try:
                result = await self.client.upload(
                    remote_path, path, if_match=if_match, if_none_match=if_none_match
                )
            except (SourceChangedError, FileNotFoundError) as exc:
                raise LocalChangedError(rel) from exc
            content_hash = result.version.content_hash
        entry = await self._send_attributes(rel, result.entry, local)
        self._record_commit(rel, result, local, content_hash, entry)

    async def _send_attributes(self, rel: str, entry: Entry, local: LocalNode) -> Entry | None:
        """Give the server's version *entry* the local file's executable bits and mtime;
        returns the entry as it now is (``None``: the server moved on meanwhile)."""
        mode = (entry.mode & ~EXEC_BITS) | (local.mode & EXEC_BITS)
        if (entry.mode, entry.mtime_ns) == (mode, local.mtime_ns):
            return entry
        tag = entry.version_id if entry.kind == "file" else entry.node_id
        try:
            return await self.client.set_attributes(
                self.tree.remote_path(rel), mode=mode, mtime_ns=local.mtime_ns, if_match=tag
            )
        except (PreconditionFailedError, NotFoundError):
            return None

    async def attributes_remote(self, rel: str, local: LocalNode, remote: RemoteNode) -> None:
        """Send a local attribute-only change (chmod, touch): no content moves."""
        current = stat_node(self.os_path(rel))
        if not _same(current if isinstance(current, LocalNode) else None, local):
            raise LocalChangedError(rel)
        base = remote.mode  # the server's other permission bits are kept
        if base is None:
            base = (await self.client.meta(node_id=remote.node_id)).mode
        entry = await self.client.set_attributes(
            self.tree.remote_path(rel),
            mode=(base & ~EXEC_BITS) | (local.mode & EXEC_BITS),
            mtime_ns=local.mtime_ns,
            if_match=remote.version_id,
        )
        self.state.set_remote(
            rel, dataclasses.replace(remote, mode=entry.mode, mtime_ns=entry.mtime_ns)
        )
        self._record_attributes(rel, local)

    async def link_local(self, rel: str, remote: RemoteNode, expected: LocalNode | None) -> None:
        """Make the local symbolic link *remote* is (replacing *expected*, if it is unchanged)."""
        dest = self.os_path(rel)
        placed = await asyncio.to_thread(_place_link, link_target(remote), dest, expected)
        if placed is None:
            raise LocalChangedError(rel)
        self.state.set_synced(
            rel,
            SyncedNode(
                "symlink",
                remote.node_id,
                None,
                remote.content_hash,
                placed.size,
                placed.mtime_ns,
                placed.inode,
            ),
        )

    async def link_remote(
        self, rel: str, local: LocalNode, remote: RemoteNode | None, if_match: str | None
    ) -> None:
        """Make the server's symbolic link at *rel* point where the local one does, replacing
        *remote* (with *if_match*) when something is there."""
        current = stat_node(self.os_path(rel))
        if not _same(current if isinstance(current, LocalNode) else None, local):
            raise LocalChangedError(rel)
        remote_path = self.tree.remote_path(rel)
        held = [rel]
        if remote is not None:
            await self.client.delete(remote_path, if_match=if_match)
            self.expect_echo("delete", remote.node_id, None, held)
        try:
            entry = await self.client.symlink(remote_path, link_target(local))
        except AlreadyExistsError:
            raise LocalChangedError(rel) from None  # the server has news: re-plan
        self.state.set_synced(
            rel,
            SyncedNode(
                "symlink",
                entry.node_id,
                None,
                local.content_hash,
                local.size,
                local.mtime_ns,
                local.inode,
            ),
        )
        self.expect_echo("create", entry.node_id, None, held)

    async def attributes_local(self, rel: str, local: LocalNode, remote: RemoteNode) -> None:
        """Apply a server attribute-only change (chmod, utimens) to the local file."""
        attrs = (
            (remote.mode if remote.mode is not None else local.mode) & EXEC_BITS,
            remote.mtime_ns if remote.mtime_ns is not None else local.mtime_ns,
        )
        placed = await asyncio.to_thread(_set_attributes, self.os_path(rel), local, attrs)
        if placed is None:
            raise LocalChangedError(rel)
        self._record_attributes(rel, placed, attrs)

    def _record_attributes(
        self, rel: str, local: LocalNode, attrs: Attributes | None = None
    ) -> None:
        synced = self.state.synced[rel]
        exec_bits = local.mode & EXEC_BITS if attrs is None else _exec_bits_if_taken(local, attrs)
        self.state.set_synced(
            rel,
            dataclasses.replace(
                synced, mtime_ns=local.mtime_ns, inode=local.inode, exec_bits=exec_bits
            ),
        )

    def _record_commit(
        self,
        rel: str,
        result: CommitResult,
        local: LocalNode,
        content_hash: str,
        attributed: Entry | None,
    ) -> None:
        entry = result.entry
        # The remote tree changes only through the feed (in commit order); until the echo of
        # this commit arrives, the engine holds the path.
        self.state.set_synced(
            rel,
            SyncedNode(
                "file",
                entry.node_id,
                entry.version_id,
                content_hash,
                local.size,
                local.mtime_ns,
                local.inode,
                None if attributed is None else local.mode & EXEC_BITS,
            ),
        )
        # The path is held until the feed has brought our change back, unless it already has
        # (its events can beat the answers: a hold for an echo gone by lasts its whole timeout).
        shown = self.state.remote.get(rel)
        if attributed is not None and (attributed.mode, attributed.mtime_ns) != (
            entry.mode,
            entry.mtime_ns,
        ):
            # The attributes went as a change of their own: its event follows the write's,
            # which shows the server's attributes from before (planned on, they would be put
            # back on the local file). The later event is the one waited for.
            if shown is None or (shown.version_id, shown.mode, shown.mtime_ns) != (
                attributed.version_id,
                attributed.mode,
                attributed.mtime_ns,
            ):
                self.expect_echo("attributes", entry.node_id, None, [rel])
        elif result.created_version and (shown is None or shown.version_id != entry.version_id):
            self.expect_echo("write", entry.node_id, entry.version_id, [rel])

    async def mkdir_remote(self, rel: str, local: LocalNode) -> None:
        try:
            entry = await self.client.mkdir(self.tree.remote_path(rel), exist_ok=False)
            self.expect_echo("mkdir", entry.node_id, None, [rel])
        except AlreadyExistsError:
            # It exists already (its event is on its way) or a file is there: re-plan.
            raise LocalChangedError(rel) from None
        if entry.kind == "dir":
            self.state.set_synced(rel, SyncedNode("dir", entry.node_id, inode=local.inode))

    async def mkdirs_remote(
        self, wanted: list[tuple[str, LocalNode]]
    ) -> dict[str, BaseException | None]:
        """:meth:`mkdir_remote` of several new directories in one bulk write; the outcome of
        each (None: made and recorded; :class:`LocalChangedError`: something is there already,
        re-plan; else the error)."""
        if len(wanted) == 1:
            rel, local = wanted[0]
            try:
                await self.mkdir_remote(rel, local)
            except Exception as exc:
                return {rel: exc}
            return {rel: None}
        where = {paths.normalise(self.tree.remote_path(rel)): (rel, local) for rel, local in wanted}
        try:
            result = await self.client.write_many([], directories=list(where))
        except Exception as exc:
            return {rel: exc for rel, _ in wanted}
        outcome: dict[str, BaseException | None] = {}
        for made in result.written:
            if made.path not in where or made.kind != "dir":
                continue  # a parent made on the way: its event is recorded as it arrives
            rel, local = where[made.path]
            if not made.created_version:
                # It existed already (its event is on its way): re-plan, as a single mkdir does.
                outcome[rel] = LocalChangedError(rel)
                continue
            self.expect_echo("mkdir", made.node_id, None, [rel])
            self.state.set_synced(rel, SyncedNode("dir", made.node_id, inode=local.inode))
            outcome[rel] = None
        for failed in result.failed:
            if failed.path in where:
                rel, _ = where[failed.path]
                refused = error_from_envelope(
                    400, {"error": failed.error, "error_description": failed.message}
                )
                # A file where the directory goes: re-plan, as a single mkdir does.
                outcome[rel] = (
                    LocalChangedError(rel) if isinstance(refused, ConflictError) else refused
                )
        for rel, _ in wanted:
            outcome.setdefault(rel, LocalChangedError(rel))
        return outcome

    async def delete_remote(self, rel: str, remote: RemoteNode, if_match: str | None) -> None:
        """Delete on the server (a directory recursively: the engine checked it is clean)."""
        gone = [rel, *self.state.remote_below(rel)]
        await self.client.delete(
            self.tree.remote_path(rel), recursive=remote.kind == "dir", if_match=if_match
        )
        self.state.drop_synced(rel, subtree=True)
        self.expect_echo("delete", remote.node_id, None, gone)

    async def rename_remote(self, old: str, new: str, synced: SyncedNode) -> None:
        """Mirror a local rename (detected by inode) on the server."""
        overwrite = new in self.state.remote and self.state.remote[new].kind == "file"
        tag = synced.version_id if synced.kind == "file" else synced.node_id
        entry = await self.client.rename(
            self.tree.remote_path(old),
            self.tree.remote_path(new),
            overwrite=overwrite,
            if_match=tag,
        )
        moved = [old, *self.state.remote_below(old), *self.state.synced_below(old)]
        self.state.move_synced(old, new)
        row = self.state.synced.get(new)
        if row is not None:
            self.state.set_synced(
                new,
                SyncedNode(
                    row.kind,
                    entry.node_id,
                    entry.version_id,
                    row.content_hash,
                    row.size,
                    row.mtime_ns,
                    row.inode,
                    row.exec_bits,
                ),
            )
        arrived = [new, *self.state.synced_below(new), *(new + p[len(old) :] for p in moved)]
        self.expect_echo("rename", entry.node_id, None, [*arrived, *moved])

    # --- both -----------------------------------------------------------------------------------

    async def rename_local(self, old: str, new: str) -> bool:
        """Mirror a remote rename locally when the local side still matches the synced state.

        Returns False (nothing done) when it does not; the planner then sorts both paths out.
        """
        synced = self.state.synced.get(old)
        remote = self.state.remote.get(new)
        if synced is None or remote is None or synced.kind != remote.kind:
            return False
        src, dst = self.os_path(old), self.os_path(new)
        here = stat_node(src)
        if not isinstance(here, LocalNode) or here.kind != synced.kind:
            return False
        if synced.kind != "dir" and not here.same_stat(synced):
            return False
        if synced.kind == "dir" and here.inode != synced.inode:
            return False
        there = stat_node(dst)
        target_row = self.state.synced.get(new)
        if there is not None and not (
            isinstance(there, LocalNode)
            and there.kind == "file"
            and synced.kind == "file"
            and target_row is not None
            and there.same_stat(target_row)
        ):
            return False
        await asyncio.to_thread(_rename, src, dst)
        self.state.move_synced(old, new)
        self.state.set_synced(
            new,
            SyncedNode(
                synced.kind,
                remote.node_id,
                remote.version_id,
                synced.content_hash,
                synced.size,
                synced.mtime_ns,
                synced.inode,
                synced.exec_bits,
            ),
        )
        return True

    async def exchange_local(self, one: str, other: str) -> bool:
        """Mirror a remote exchange (the nodes at *one* and *other* swapped names) as a swap
        on disk, when both local sides still match the synced state; the synced rows swap with
        them. Returns False (nothing done) otherwise; the planner then sorts both paths out."""
        if not (self._unchanged(one) and self._unchanged(other)):
            return False
        first, second = self.os_path(one), self.os_path(other)
        await asyncio.to_thread(_swap_names, first, second)
        self.state.swap_synced(one, other)
        return True

    def _unchanged(self, rel: str) -> bool:
        synced = self.state.synced.get(rel)
        here = stat_node(self.os_path(rel))
        if synced is None or not isinstance(here, LocalNode) or here.kind != synced.kind:
            return False
        if synced.kind != "dir":
            return here.same_stat(synced)
        return here.inode == synced.inode

    async def keep_both(self, rel: str, local: LocalNode) -> str:
        """Move the local file to a conflict copy; returns the copy's path."""
        copy = conflict_name(rel)
        if not await asyncio.to_thread(
            _rename_if_same, self.os_path(rel), self.os_path(copy), local
        ):
            raise LocalChangedError(rel)
        self.state.drop_synced(rel)
        return copy

    async def move_remote_aside(self, rel: str, remote: RemoteNode) -> str:
        """Rename a remote file that blocks a local directory to a conflict name."""
        copy = conflict_name(rel)
        entry = await self.client.rename(
            self.tree.remote_path(rel), self.tree.remote_path(copy), if_match=remote.version_id
        )
        self.state.drop_synced(rel)
        self.expect_echo("rename", entry.node_id, None, [rel, copy])
        return copy

    async def refresh(self, rel: str) -> set[str]:
        """Relist the directory holding *rel* (after repeated failed preconditions: a safety
        net should the remote tree ever disagree with the server)."""
        return await self.tree.relist(self.client, paths.parent(rel))


def _short(name: str, limit: int = 200) -> str:
    data = name.encode()
    if len(data) <= limit:
        return name
    return data[:limit].decode(errors="ignore")


async def _together(first: Awaitable[_First], second: Awaitable[_Second]) -> tuple[_First, _Second]:
    """Both results, awaited at the same time; when the first fails, the second is cancelled
    and the failure raised as it is (not wrapped in a group, as the callers catch it)."""
    other = asyncio.ensure_future(second)
    try:
        one = await first
    except BaseException:
        other.cancel()
        with contextlib.suppress(BaseException):
            await other
        raise
    return one, await other


def _flush_and_sync(handle: IO[bytes]) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _write_and_place(
    rel: str,
    data: bytes,
    content_hash: str | None,
    temp: Path,
    dest: Path,
    expected: LocalNode | None,
    attrs: Attributes | None = None,
) -> tuple[LocalNode | None, str]:
    """Check *data* against *content_hash*, write it to *temp* durably and move it into place
    (see :func:`_place`); returns what was placed and the content's hash."""
    digest = hash_bytes(data).content_hash
    if content_hash is not None and digest != content_hash:
        raise HashMismatchError(f"downloaded content of {rel} does not match its hash")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(temp, "xb") as out:
            out.write(data)
            _flush_and_sync(out)
        return _place(temp, dest, expected, attrs), digest
    finally:
        _unlink(temp)


def _same(node: LocalNode | None, expected: LocalNode | None) -> bool:
    if node is None or expected is None:
        return node is None and expected is None
    return (node.kind, node.size, node.mtime_ns, node.inode) == (
        expected.kind,
        expected.size,
        expected.mtime_ns,
        expected.inode,
    )


def _current(path: Path) -> LocalNode | None:
    node = stat_node(path)
    return node if isinstance(node, LocalNode) or node is None else LocalNode("file", -1)


def _apply_attributes(path: Path, attrs: Attributes) -> None:
    """Give the file at *path* the executable bits and mtime of *attrs*."""
    exec_bits, mtime_ns = attrs
    st = os.lstat(path)
    mode = (st.st_mode & 0o7777 & ~EXEC_BITS) | exec_bits
    if mode != st.st_mode & 0o7777:
        os.chmod(path, mode)
    os.utime(path, ns=(st.st_atime_ns, mtime_ns))


def _exec_bits_if_taken(placed: LocalNode, attrs: Attributes | None) -> int | None:
    """The executable bits to record as synced, when the local file took *attrs* exactly
    (a file system with coarser times cannot: its mtime is then not compared)."""
    if attrs is None or placed.mtime_ns != attrs[1] or placed.mode & EXEC_BITS != attrs[0]:
        return None
    return attrs[0]


def _set_attributes(path: Path, expected: LocalNode, attrs: Attributes) -> LocalNode | None:
    """Apply *attrs* to the file at *path* if it is still *expected*; returns its new stat."""
    if not _same(_current(path), expected):
        return None
    _apply_attributes(path, attrs)
    placed = stat_node(path)
    return placed if isinstance(placed, LocalNode) else None


def _place_link(target: str, dest: Path, expected: LocalNode | None) -> LocalNode | None:
    """Make *dest* a symbolic link to *target* if *dest* is still as planned (a new link never
    replaces a file that appeared meanwhile; a changed one replaces the old link atomically)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not _same(_current(dest), expected):
        return None
    if expected is None:
        try:
            os.symlink(target, dest)
        except FileExistsError:
            return None
    else:
        temp = dest.with_name(f".{_short(dest.name)}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        os.symlink(target, temp)
        try:
            os.replace(temp, dest)
        finally:
            _unlink(temp)
    _sync_dir(dest.parent)
    placed = stat_node(dest)
    return placed if isinstance(placed, LocalNode) and placed.kind == "symlink" else None


def _place(
    temp: Path, dest: Path, expected: LocalNode | None, attrs: Attributes | None = None
) -> LocalNode | None:
    """Move the finished download into place if *dest* is still as planned."""
    if attrs is not None:
        _apply_attributes(temp, attrs)
    if not _same(_current(dest), expected):
        return None
    if expected is None:
        try:
            os.link(temp, dest)  # fails if a file appeared meanwhile: never replace it
        except FileExistsError:
            return None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            os.rename(temp, dest)  # no hard links here: plain rename after the check
    else:
        os.replace(temp, dest)
    _sync_dir(dest.parent)
    placed = stat_node(dest)
    return placed if isinstance(placed, LocalNode) else None


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _unlink_if_same(path: Path, expected: LocalNode) -> bool:
    if not _same(_current(path), expected):
        return False
    _unlink(path)
    return True


def _read_if_same(path: Path, expected: LocalNode) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            before = os.fstat(handle.fileno())
            data = handle.read()
            after = os.fstat(handle.fileno())
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    stamp = (expected.size, expected.mtime_ns, expected.inode)
    if (before.st_size, before.st_mtime_ns, before.st_ino) != stamp:
        return None
    if (after.st_size, after.st_mtime_ns, after.st_ino) != stamp or len(data) != expected.size:
        return None
    return data


def _rename(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)


def _swap_names(first: Path, second: Path) -> None:
    """Give *first* and *second* each other's names (through a temporary name beside them)."""
    parking = first.with_name(f".{_short(first.name)}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    os.rename(first, parking)
    os.rename(second, first)
    os.rename(parking, second)


def _rename_if_same(src: Path, dst: Path, expected: LocalNode) -> bool:
    if not _same(_current(src), expected):
        return False
    os.rename(src, dst)
    return True


def _prune_dir(target: Path, rel: str, synced: dict[str, SyncedNode]) -> list[str]:
    """Delete unchanged synced files below *rel*, then the directories that became empty."""
    kept: list[str] = []
    root = to_os(target, rel)
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        base = "/" + os.path.relpath(dirpath, target).replace(os.sep, "/")
        base = "" if base == "/." else base
        for name in filenames:
            child = f"{base}/{name}"
            row = synced.get(child)
            node = stat_node(Path(dirpath) / name)
            if isinstance(node, LocalNode) and row is not None and node.same_stat(row):
                _unlink(Path(dirpath) / name)
            else:
                kept.append(child)
        for name in dirnames:
            if os.path.islink(Path(dirpath) / name):  # a link to a directory: not followed
                child = f"{base}/{name}"
                row = synced.get(child)
                node = stat_node(Path(dirpath) / name)
                if isinstance(node, LocalNode) and row is not None and node.same_stat(row):
                    _unlink(Path(dirpath) / name)
                else:
                    kept.append(child)
                continue
            with contextlib.suppress(OSError):
                os.rmdir(Path(dirpath) / name)
    with contextlib.suppress(OSError):
        os.rmdir(root)
    return kept


def remove_stale_temps(target: Path) -> int:
    """Delete temporary download files left by a killed run; returns how many."""
    removed = 0
    for dirpath, _dirs, files in os.walk(target):
        for name in files:
            if name.startswith(".") and name.endswith(TEMP_SUFFIX):
                _unlink(Path(dirpath) / name)
                removed += 1
    return removed
