"""File objects of the ``meshfs://`` filesystem: ranged reads, chunked writes.

Reading pins the version that was the head when the file was opened (or the one named with
``?versionId=``) and fetches blocks with ``Range`` requests, so a concurrent writer never mixes
two versions into one read.

Writing: the upload protocol announces the whole file (its size, chunk names and content hash)
before any chunk is sent, so the bytes written are spooled to an anonymous temporary file in
4 MiB blocks while they are hashed; on close the content is announced, only the chunks the
server lacks are sent (in parallel), and the version is committed. Memory stays constant, and
nothing becomes visible before close. ``xb`` fails if the file exists (checked at open and
enforced at commit with ``If-None-Match: *``); ``ab`` starts from the current head and commits
with ``If-Match`` on it, so a concurrent write is refused instead of lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from fsspec.asyn import sync  # type: ignore[import-untyped]
from fsspec.spec import AbstractBufferedFile  # type: ignore[import-untyped]

from meshfs_client._upload import SMALL_UPLOAD_LIMIT, FileSource
from meshfs_common.errors import (
    ConflictError,
    ForbiddenError,
    InvalidPathError,
    NotFoundError,
    PreconditionFailedError,
)
from meshfs_common.hashing import CHUNK_SIZE, ContentHasher

if TYPE_CHECKING:
    from meshfs_client._client import MeshFSClient
    from meshfs_client.fsspec import MeshFSFileSystem


@contextlib.contextmanager
def os_errors(path: str, *, exclusive: bool = False) -> Iterator[None]:
    """Raise the builtin ``OSError`` subclasses fsspec callers expect for filesystem errors.

    Not found -> ``FileNotFoundError``, exists -> ``FileExistsError``, not a directory, is a
    directory, permission... (the errno column of the error table). Other failures (not logged
    in, server down) stay :mod:`meshfs_common.errors` exceptions. ``exclusive``: a failed
    ``If-None-Match: *`` means the file exists.
    """
    try:
        yield
    except PreconditionFailedError as exc:
        if exclusive:
            raise FileExistsError(exc.errno, exc.message, path) from exc
        raise
    except (NotFoundError, ConflictError, ForbiddenError, InvalidPathError) as exc:
        raise OSError(exc.errno, exc.message, path) from exc


class MeshFSFile(AbstractBufferedFile):  # type: ignore[misc]
    """A file of a :class:`~meshfs_client.fsspec.MeshFSFileSystem` (modes rb, wb, xb, ab)."""

    DEFAULT_BLOCK_SIZE = CHUNK_SIZE

    def __init__(
        self,
        fs: MeshFSFileSystem,
        path: str,
        mode: str = "rb",
        block_size: int = CHUNK_SIZE,
        autocommit: bool = True,
        cache_type: str = "readahead",
        cache_options: dict[str, Any] | None = None,
        version_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.version_id = version_id
        self._spool: IO[bytes] | None = None
        self._hasher: ContentHasher | None = None
        self._if_match: str | None = None
        if mode == "rb":
            # Pin the version now: every block read later comes from this one.
            self.details = sync(fs.loop, fs._info_at, path, version_id)
            if self.details["type"] != "file":
                raise IsADirectoryError(21, "is a directory", path)
            self.version_id = self.details["version_id"]
        elif mode == "xb" and fs.exists(path):
            raise FileExistsError(17, "file exists", path)
        super().__init__(
            fs,
            path,
            mode,
            block_size,
            autocommit,
            cache_type=cache_type,
            cache_options=cache_options,
            **kwargs,
        )

    # --- reading ----------------------------------------------------------------------------

    def _fetch_range(self, start: int, end: int) -> bytes:
        end = min(end, self.size)
        if start >= end:
            return b""
        return bytes(sync(self.fs.loop, self._read_range, start, end - start))

    async def _read_range(self, offset: int, length: int) -> bytes:
        client: MeshFSClient = await self.fs.set_session()
        with os_errors(self.path):
            return await client.read_bytes(
                self.path, version_id=self.version_id, offset=offset, length=length
            )

    # --- writing ----------------------------------------------------------------------------

    def _initiate_upload(self) -> None:
        # Closed by commit() or discard().
        self._spool = tempfile.TemporaryFile(prefix="meshfs-write-")  # noqa: SIM115
        self._hasher = ContentHasher()
        if self.mode == "ab":
            sync(self.fs.loop, self._start_from_head)

    async def _start_from_head(self) -> None:
        client: MeshFSClient = await self.fs.set_session()
        try:
            head = await client.meta(self.path)
        except NotFoundError:
            return  # appending to a new file
        if head.kind != "file":
            raise IsADirectoryError(21, "is a directory", self.path)
        stream = client.download(self.path, version_id=head.version_id)
        async with stream:
            async for block in stream:
                await asyncio.to_thread(self._spool_write, block)
        self._if_match = head.version_id

    def _spool_write(self, data: bytes) -> None:
        assert self._spool is not None
        assert self._hasher is not None
        self._spool.write(data)
        self._hasher.update(data)

    def _upload_chunk(self, final: bool = False) -> bool:
        self._spool_write(self.buffer.getvalue())
        if final and self.autocommit:
            self.commit()
        return True

    def commit(self) -> None:
        """Send the spooled content and commit it as the file's new version."""
        if self._spool is None:
            return
        try:
            sync(self.fs.loop, self._commit)
        finally:
            self.discard()

    async def _commit(self) -> None:
        assert self._spool is not None
        assert self._hasher is not None
        client: MeshFSClient = await self.fs.set_session()
        uploader = client._uploader()
        digest = self._hasher.finish()
        exclusive = self.mode == "xb"
        spool = self._spool
        with os_errors(self.path, exclusive=exclusive):
            await asyncio.to_thread(spool.flush)
            if digest.size <= SMALL_UPLOAD_LIMIT:
                await asyncio.to_thread(spool.seek, 0)
                data = await asyncio.to_thread(spool.read)
                await uploader.put_small(
                    self.path, data, if_match=self._if_match, if_none_match=exclusive
                )
            else:
                await uploader.put_chunked(
                    self.path,
                    FileSource(spool, digest.size),
                    digest,
                    if_match=self._if_match,
                    if_none_match=exclusive,
                )

    def discard(self) -> None:
        """Drop the spooled content without writing anything."""
        if self._spool is not None:
            self._spool.close()
            self._spool = None
