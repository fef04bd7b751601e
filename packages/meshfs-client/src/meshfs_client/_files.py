"""Files and directories of :class:`~meshfs_client.MeshFSClient`: the namespace and content."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from pathlib import Path

from meshfs_client._base import ClientBase, where
from meshfs_client._download import DownloadInfo, DownloadStream, download_to_path
from meshfs_client._patch import commit_patch, plan_patch, touched_chunks
from meshfs_client._upload import FileSource, Progress, Uploader, UploadFailure
from meshfs_common import paths
from meshfs_common.errors import (
    AlreadyExistsError,
    BadRequestError,
    IsADirError,
    NotFoundError,
    PreconditionFailedError,
)
from meshfs_common.hashing import CHUNK_SIZE, ContentDigest
from meshfs_common.models import (
    CommitResult,
    CopyRequest,
    DeleteResult,
    DirectDownload,
    Entry,
    FsStats,
    LinkRequest,
    ListPage,
    MkdirRequest,
    RenameRequest,
    VersionChunks,
)

UploadSource = bytes | bytearray | memoryview | str | os.PathLike[str] | AsyncIterable[bytes]
"""What :meth:`MeshFSClient.upload` accepts: bytes, a local file path, or an async stream."""


class FileMethods(ClientBase):
    """``mkdir``, listings, ``meta``, ``rename``, ``delete``, ``statfs``; ``upload``,
    ``upload_ranges``, ``download``, ``copy``, ``clone``."""

    # --- namespace --------------------------------------------------------------------------

    async def mkdir(
        self,
        path: str,
        *,
        parents: bool = True,
        exist_ok: bool = True,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
    ) -> Entry:
        """Create a directory (and its parents with ``parents``); *mode*, *uid* and *gid*
        apply to the directory made at *path* (parents get the server's defaults)."""
        # Idempotent by contract: 200 when the directory already exists.
        reply = await self._t.request(
            "POST",
            "/files/mkdir",
            json=MkdirRequest(
                path=paths.normalise(path), parents=parents, mode=mode, uid=uid, gid=gid
            ),
            idempotent=True,
        )
        entry = reply.decode(Entry)
        if reply.status == 200 and not exist_ok:
            raise AlreadyExistsError(f"directory already exists: {entry.path}")
        return entry

    async def list_page(
        self,
        path: str = "/",
        *,
        limit: int = 1000,
        after: str | None = None,
        include_deleted: bool = False,
    ) -> ListPage:
        """One page of a directory listing, sorted by name (then node id).

        *after* is the previous page's ``next_after``, passed back unchanged.
        """
        return await self._t.call(
            "GET",
            "/files/list",
            ListPage,
            params={
                "path": paths.normalise(path),
                "limit": limit,
                "after": after,
                "include_deleted": include_deleted or None,
            },
            idempotent=True,
        )

    async def iterdir(
        self, path: str = "/", *, include_deleted: bool = False, page_size: int = 1000
    ) -> AsyncIterator[Entry]:
        """Every entry of a directory, fetching pages as needed."""
        after: str | None = None
        while True:
            page = await self.list_page(
                path, limit=page_size, after=after, include_deleted=include_deleted
            )
            for entry in page.entries:
                yield entry
            if not page.has_more or not page.entries:
                return
            after = page.next_after or page.entries[-1].name

    async def listdir(self, path: str = "/", *, include_deleted: bool = False) -> list[Entry]:
        """Every entry of a directory, as a list."""
        return [entry async for entry in self.iterdir(path, include_deleted=include_deleted)]

    async def walk(self, path: str = "/") -> AsyncIterator[Entry]:
        """Every entry below *path*, depth first, parents before children."""
        pending = [paths.normalise(path)]
        while pending:
            directory = pending.pop()
            children = [entry async for entry in self.iterdir(directory)]
            for entry in children:
                yield entry
            pending.extend(e.path for e in reversed(children) if e.kind == "dir")

    async def meta(self, path: str | None = None, *, node_id: str | None = None) -> Entry:
        """Metadata of a file or directory, by path or node id."""
        return await self._t.call(
            "GET", "/files/meta", Entry, params=where(path, node_id), idempotent=True
        )

    stat = meta

    async def exists(self, path: str) -> bool:
        """True when *path* names a live file or directory."""
        try:
            await self.meta(path)
        except NotFoundError:
            return False
        return True

    async def rename(
        self,
        path: str,
        new_path: str,
        *,
        overwrite: bool = False,
        exchange: bool = False,
        if_match: str | None = None,
    ) -> Entry:
        """Move or rename; ``overwrite`` replaces an existing file or empty directory.

        ``exchange`` swaps two existing paths atomically instead (RENAME_EXCHANGE); the answer
        is the entry now at *new_path*.
        """
        # Not idempotent: after a lost answer a resend would find the source gone.
        return await self._t.call(
            "POST",
            "/files/rename",
            Entry,
            json=RenameRequest(
                path=paths.normalise(path),
                new_path=paths.normalise(new_path),
                overwrite=overwrite,
                exchange=exchange,
            ),
            headers={"If-Match": if_match} if if_match else None,
            idempotent=False,
        )

    async def link(self, path: str, new_path: str) -> Entry:
        """Give the file at *path* the extra name *new_path* (a hard link: one file, one
        history, its ``nlink`` counts the names). A directory raises
        :class:`~meshfs_common.errors.NotPermittedError`; an existing *new_path*
        :class:`~meshfs_common.errors.AlreadyExistsError`."""
        return await self._t.call(
            "POST",
            "/files/link",
            Entry,
            json=LinkRequest(path=paths.normalise(path), new_path=paths.normalise(new_path)),
            idempotent=False,  # a resend after a lost answer would find new_path taken
        )

    async def statfs(self) -> FsStats:
        """The tenant's quota, usage and node counts (a token limited to a path prefix gets
        the quota and its prefix's counts, never the tenant's usage)."""
        return await self._t.call("GET", "/files/statfs", FsStats, idempotent=True)

    async def delete(
        self, path: str, *, recursive: bool = False, if_match: str | None = None
    ) -> DeleteResult:
        """Delete (tombstone) a file, or a directory with ``recursive``."""
        return await self._t.call(
            "DELETE",
            "/files",
            DeleteResult,
            params={"path": paths.normalise(path), "recursive": recursive or None},
            headers={"If-Match": if_match} if if_match else None,
            idempotent=False,  # a resend after a lost answer would report not_found
        )

    # --- content ----------------------------------------------------------------------------

    async def upload(
        self,
        path: str,
        source: UploadSource,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
        progress: Progress | None = None,
        mtime_ns: int | None = None,
    ) -> CommitResult:
        """Write *source* to *path* as a new version.

        *source* is content (``bytes``), a local file (``str`` or ``os.PathLike``), or an async
        iterable of ``bytes``. ``if_match`` (a version id) / ``if_none_match`` make the write
        conditional (412 ``precondition_failed`` otherwise). Memory use is constant.
        ``mtime_ns`` is the mtime the new version gives the file, in the same request, for
        content up to ``SMALL_UPLOAD_LIMIT`` (4 MiB); larger content gets the commit's time
        (set another with :meth:`set_attributes`), as does every write without it.
        """
        remote = paths.normalise(path)
        uploader = self._uploader(progress)
        if isinstance(source, bytes | bytearray | memoryview):
            return await uploader.put_bytes(
                remote, bytes(source), if_match=if_match, if_none_match=if_none_match,
                mtime_ns=mtime_ns,
            )  # fmt: skip
        if isinstance(source, str | os.PathLike):
            return await uploader.put_file(
                remote, Path(source), if_match=if_match, if_none_match=if_none_match,
                mtime_ns=mtime_ns,
            )  # fmt: skip
        return await uploader.put_stream(
            remote, source, if_match=if_match, if_none_match=if_none_match, mtime_ns=mtime_ns
        )

    def download(
        self,
        path: str | None = None,
        *,
        node_id: str | None = None,
        version_id: str | None = None,
        offset: int = 0,
        length: int | None = None,
    ) -> DownloadStream:
        """Stream a file (the head, or ``version_id``), optionally a byte range.

        ``async with client.download("/a") as stream: async for block in stream: ...``
        """
        return DownloadStream(
            self._t, where(path, node_id), version_id=version_id, offset=offset, length=length
        )

    async def read_bytes(
        self,
        path: str | None = None,
        *,
        node_id: str | None = None,
        version_id: str | None = None,
        offset: int = 0,
        length: int | None = None,
    ) -> bytes:
        """A file's content (or a range of it) in memory."""
        stream = self.download(
            path, node_id=node_id, version_id=version_id, offset=offset, length=length
        )
        async with stream:
            return b"".join([block async for block in stream])

    async def download_to(
        self,
        path: str | None,
        local: str | os.PathLike[str],
        *,
        node_id: str | None = None,
        version_id: str | None = None,
        progress: Progress | None = None,
    ) -> DownloadInfo:
        """Download into a local file: verified, atomic, resumable."""
        return await download_to_path(
            self._t,
            where(path, node_id),
            Path(local),
            version_id=version_id,
            progress=progress,
        )

    async def copy(
        self,
        src: str,
        dst: str,
        *,
        version_id: str | None = None,
        if_none_match: bool = False,
    ) -> CommitResult:
        """Copy a file (its head, or ``version_id``) to *dst* as a new version there.

        The head is copied on the server (:meth:`clone`: no byte travels) when *dst*'s parent
        exists. Otherwise (an old version, a missing parent, a server without copies), when
        the server tells us the source's chunk names (servers with direct transfers) the copy
        is announced with those chunks and no byte travels; else the content streams down
        once and is announced again, so the chunks the server already holds are still not
        sent back up. Parent directories are made as for :meth:`upload`.
        """
        if version_id is None:
            try:
                return await self.clone(src, dst, overwrite=not if_none_match)
            except AlreadyExistsError as exc:  # only without overwrite: as If-None-Match: *
                raise PreconditionFailedError(str(exc), detail=exc.detail) from exc
            except NotFoundError:
                pass  # a missing parent (or source: reported below), or no copy route
        entry = await self.meta(src)
        if entry.kind == "dir":
            raise IsADirError(f"{entry.path} is a directory; copy copies files")
        target = paths.normalise(dst)
        if entry.size > CHUNK_SIZE:
            chunks = await self._chunk_names(entry.path, version_id)
            if chunks is not None:
                try:
                    return await self._uploader().put_known(
                        target, chunks, if_match=None, if_none_match=if_none_match
                    )
                except UploadFailure:
                    pass  # a chunk is missing after all: stream the content instead

        async def blocks() -> AsyncIterator[bytes]:
            stream = self.download(entry.path, version_id=version_id)
            async with stream:
                async for block in stream:
                    yield block

        return await self.upload(target, blocks(), if_none_match=if_none_match)

    async def clone(self, src: str, dst: str, *, overwrite: bool = False) -> CommitResult:
        """Copy a file on the server (``cp --reflink``): *dst* gets the head of *src* without
        any byte travelling and without being charged twice for its storage, and has its own
        history from then on. *dst*'s parent must exist; an existing file there is replaced
        (as a new version of it) only with ``overwrite``. Directories are refused."""
        return await self._t.call(
            "POST",
            "/files/copy",
            CommitResult,
            json=CopyRequest(
                path=paths.normalise(src), new_path=paths.normalise(dst), overwrite=overwrite
            ),
            idempotent=overwrite,  # without overwrite a resend would find dst existing
        )

    async def chunk_list(
        self, path: str | None = None, *, node_id: str | None = None, version_id: str | None = None
    ) -> VersionChunks:
        """The chunk names of a file's head (or of ``version_id``): what a partial write is
        based on."""
        params: dict[str, str | int | bool | None] = {**where(path, node_id),
                                                      "version_id": version_id}  # fmt: skip
        return await self._t.call("GET", "/files/chunks", VersionChunks, params=params,
                                  idempotent=True)  # fmt: skip

    async def upload_ranges(
        self,
        path: str,
        local: str | os.PathLike[str],
        *,
        base_version: str,
        ranges: Iterable[tuple[int, int]],
        size: int | None = None,
        progress: Progress | None = None,
    ) -> CommitResult:
        """Commit the local file *local* as a new version of *path* that differs from
        ``base_version`` only in the byte *ranges* (``(offset, length)`` pairs) and in its size
        (``size``, else the local file's).

        Only the chunks the ranges touch (and the one whose length a new size changes) are read,
        hashed and sent: a 4 KiB change in a 1 GiB file sends one 4 MiB chunk. Bytes past the
        base's end that no range covers are taken to be zeros (a file extended by truncate) and
        are never sent. If ``base_version`` is no longer the head, nothing is committed
        (:class:`~meshfs_common.errors.PreconditionFailedError`).
        """
        remote = paths.normalise(path)
        base = await self.chunk_list(remote, version_id=base_version)
        handle = await asyncio.to_thread(open, local, "rb")
        with handle:
            length = os.fstat(handle.fileno()).st_size if size is None else size
            source = FileSource(handle, length)
            patch = await plan_patch(base, source, length, touched_chunks(base, length, ranges))
            return await commit_patch(
                self._t, remote, base, source, patch, concurrency=self._upload_concurrency,
                progress=progress,
            )  # fmt: skip

    async def _chunk_names(self, path: str, version_id: str | None) -> ContentDigest | None:
        """The chunk list of a version, when the server exposes it (direct transfers)."""
        params: dict[str, str | int | bool | None] = {"path": path, "version_id": version_id}
        try:
            direct = await self._t.call(
                "GET", "/files/download/direct", DirectDownload, params=params, idempotent=True
            )
        except BadRequestError:
            return None  # direct transfers are off on this server
        if direct.chunk_size != CHUNK_SIZE:
            return None
        return ContentDigest(direct.size, direct.content_hash, tuple(direct.chunks))

    def _uploader(self, progress: Progress | None = None) -> Uploader:
        return Uploader(self._t, self._upload_concurrency, progress)
