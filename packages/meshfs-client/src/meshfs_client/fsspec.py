"""``meshfs://`` for fsspec: pandas, pyarrow, dask, xarray... read and write MeshFS paths.

Registered through the ``fsspec.specs`` entry point, so ``fsspec.filesystem("meshfs")``,
``fsspec.open("meshfs:///data/a.csv")`` and ``pandas.read_csv("meshfs:///data/a.csv")`` work
once ``meshfs-client`` is installed. ``meshfs:///a/b`` and ``meshfs://a/b`` both name ``/a/b``;
the server is not part of the URL.

Server and identity: the ``server=`` and ``token=`` storage options, else ``MESHFS_SERVER`` /
``MESHFS_TOKEN``, else the saved login (see :class:`~meshfs_client.MeshFSClient`).

Versions follow the s3fs convention: with ``version_aware=True`` (implied by a URL that carries
``?versionId=``), ``/a/b?versionId=<version id>`` names that version of ``/a/b`` for reads,
``info`` reports ``VersionId`` and :meth:`MeshFSFileSystem.object_version_info` lists them.
Without it, ``?`` is an ordinary character of a MeshFS name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import time
import weakref
from datetime import datetime
from glob import has_magic
from pathlib import Path
from typing import Any

from fsspec.asyn import AsyncFileSystem, sync, sync_wrapper  # type: ignore[import-untyped]
from fsspec.implementations.local import (  # type: ignore[import-untyped]
    LocalFileSystem,
    make_path_posix,
    trailing_sep,
)
from fsspec.utils import other_paths, stringify_path  # type: ignore[import-untyped]

from meshfs_client import _fsspec_bulk as bulk
from meshfs_client._client import MeshFSClient
from meshfs_client._fsspec_file import MeshFSFile, os_errors
from meshfs_client._loop import LoopThread
from meshfs_common import paths
from meshfs_common.errors import NotADirError, NotFoundError, RangeNotSatisfiableError
from meshfs_common.models import Entry, Version

__all__ = ["MeshFSFileSystem"]

_VERSION_MARK = "?versionId="


def _local_target(local: Path, name: str) -> Path:
    """Where a download lands: into *local* when it is a directory; parents are created."""
    if local.is_dir():
        local = local / name
    local.parent.mkdir(parents=True, exist_ok=True)
    return local


def _stamp(when: datetime) -> float:
    return when.timestamp()


#: fsspec's ``type`` of each node kind (symbolic links are ``link``, FIFOs and such ``other``).
_FSSPEC_TYPES = {"file": "file", "dir": "directory", "symlink": "link"}


class MeshFSFileSystem(AsyncFileSystem):  # type: ignore[misc]
    """fsspec filesystem over :class:`~meshfs_client.MeshFSClient`.

    Storage options: ``server``, ``token``, ``version_aware`` (default False), and any other
    :class:`~meshfs_client.MeshFSClient` keyword in ``client_kwargs``. Works synchronously
    (the client runs on a :class:`~meshfs_client.LoopThread` of the filesystem's own, or on
    the ``loop=`` given) and with ``asynchronous=True`` inside a running
    loop (then call ``await fs.set_session()`` first, or let the first call do it).
    """

    protocol = "meshfs"
    root_marker = "/"
    cachable = True

    def __init__(
        self,
        server: str | None = None,
        token: str | None = None,
        *,
        version_aware: bool = False,
        client_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # Clients opened on the filesystem's own loop thread, closed when it stops.
        self._opened: list[MeshFSClient] | None = None
        if not kwargs.get("asynchronous") and kwargs.get("loop") is None:
            # Synchronous use: the client gets a loop thread of its own, stopped with the
            # filesystem, rather than fsspec's process-wide IO loop.
            portal = LoopThread(name="meshfs-fsspec")
            self._opened = []
            weakref.finalize(self, _stop, portal, self._opened)
            kwargs["loop"] = portal.loop
        super().__init__(**kwargs)
        self.server = server
        self.token = token
        self.version_aware = version_aware
        self.client_kwargs = dict(client_kwargs or {})
        self._client: MeshFSClient | None = None

    # --- session ----------------------------------------------------------------------------

    async def set_session(self) -> MeshFSClient:
        """Open the client (once); later calls return the same one."""
        if self._client is None:
            client = MeshFSClient(self.server, token=self.token, **self.client_kwargs)
            await client.__aenter__()
            self._client = client
            if self._opened is not None:
                self._opened.append(client)
            elif not self.asynchronous:
                weakref.finalize(self, self.close_session, self.loop, client)
        return self._client

    @staticmethod
    def close_session(loop: Any, client: MeshFSClient) -> None:
        """Close the client's HTTP session on its loop (used at garbage collection)."""
        if loop is not None and loop.is_running():
            with contextlib.suppress(Exception):
                sync(loop, client.close, timeout=5)

    # --- paths ------------------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        text = str(stringify_path(path))
        for prefix in ("meshfs://", "meshfs::"):
            if text.startswith(prefix):
                text = text[len(prefix) :]
        head, mark, version = text.partition(_VERSION_MARK)
        head = "/" + head.strip("/")
        while "//" in head:
            head = head.replace("//", "/")
        return head + mark + version

    @staticmethod
    def _get_kwargs_from_urls(urlpath: str) -> dict[str, Any]:
        return {"version_aware": True} if _VERSION_MARK in urlpath else {}

    def split_path(self, path: str) -> tuple[str, str | None]:
        """``(path, version_id)``; the version only when the filesystem is version aware."""
        stripped: str = self._strip_protocol(path)
        if self.version_aware and _VERSION_MARK in stripped:
            head, _, version = stripped.partition(_VERSION_MARK)
            return head or "/", version or None
        return stripped, None

    # --- metadata ---------------------------------------------------------------------------

    def _entry_info(self, entry: Entry) -> dict[str, Any]:
        info: dict[str, Any] = {
            "name": entry.path,
            "size": entry.size if entry.kind == "file" else 0,
            "type": _FSSPEC_TYPES.get(entry.kind, "other"),
            "kind": entry.kind,
            "mode": entry.mode,
            "uid": entry.uid,
            "gid": entry.gid,
            "nlink": entry.nlink,
            "islink": entry.kind == "symlink",
            "node_id": entry.node_id,
            "version_id": entry.version_id,
            "content_hash": entry.content_hash,
            "created": _stamp(entry.created_at),
            "mtime": _stamp(entry.modified_at),
        }
        if entry.target is not None:
            info["destination"] = entry.target  # fsspec's name for a link's target
        if self.version_aware and entry.kind == "file":
            info["VersionId"] = entry.version_id
        return info

    async def _info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return await self._info_at(*self.split_path(path))

    async def _info_at(self, where: str, version_id: str | None) -> dict[str, Any]:
        client = await self.set_session()
        with os_errors(where):
            entry = await client.meta(where)
            info = self._entry_info(entry)
            if version_id is None or version_id == entry.version_id:
                return info
            version = await self._find_version(client, entry, version_id)
        info |= {
            "size": version.size,
            "version_id": version.version_id,
            "content_hash": version.content_hash,
            "mtime": _stamp(version.created_at),
            "VersionId": version.version_id,
        }
        return info

    async def _find_version(self, client: MeshFSClient, entry: Entry, version_id: str) -> Version:
        async for version in client.versions(node_id=entry.node_id):
            if version.version_id == version_id:
                return version
        raise FileNotFoundError(os.strerror(2), f"{entry.path}?versionId={version_id}")

    async def _ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        where, _ = self.split_path(path)
        client = await self.set_session()
        with os_errors(where):
            try:
                found = [self._entry_info(e) async for e in client.iterdir(where)]
            except NotADirError:
                found = [self._entry_info(await client.meta(where))]  # ls of a file: itself
        return found if detail else [info["name"] for info in found]

    async def _object_version_info(self, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        where, _ = self.split_path(path)
        client = await self.set_session()
        with os_errors(where):
            entry = await client.meta(where)
            listed = [v async for v in client.versions(node_id=entry.node_id)]
        return [
            {
                "Key": entry.path,
                "VersionId": v.version_id,
                "IsLatest": v.version_id == entry.version_id,
                "LastModified": v.created_at,
                "Size": v.size,
                "ContentHash": v.content_hash,
                "RestoredFrom": v.restored_from,
            }
            for v in listed
        ]

    object_version_info = sync_wrapper(_object_version_info)
    """Every version of a file, newest first (s3fs's ``object_version_info``)."""

    def modified(self, path: str) -> datetime:
        """When the file (or the version named in the path) was last written."""
        return datetime.fromtimestamp(self.info(path)["mtime"]).astimezone()

    def created(self, path: str) -> datetime:
        """When the file or directory was created."""
        return datetime.fromtimestamp(self.info(path)["created"]).astimezone()

    def checksum(self, path: str) -> int:
        """Derived from the content hash (identical content gives the same checksum)."""
        info = self.info(path)
        digest = info.get("content_hash") or info["name"]
        return int(str(digest)[:16], 16) if info.get("content_hash") else hash(digest)

    # --- content ----------------------------------------------------------------------------

    async def _cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        where, version_id = self.split_path(path)
        client = await self.set_session()
        with os_errors(where):
            if (start is not None and start < 0) or (end is not None and end < 0):
                size = (await self._info(path))["size"]
                start = max(0, size + start) if start is not None and start < 0 else start
                end = max(0, size + end) if end is not None and end < 0 else end
            offset = start or 0
            if end is None:
                length = None
            elif end <= offset:
                return b""
            else:
                length = end - offset
            if offset == 0 and length is None:
                return await client.read_bytes(where, version_id=version_id)
            try:
                return await client.read_bytes(
                    where, version_id=version_id, offset=offset, length=length
                )
            except RangeNotSatisfiableError:
                return b""  # starts at or beyond the end, as a local file would answer

    async def _pipe_file(
        self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any
    ) -> None:
        where, _ = self.split_path(path)
        client = await self.set_session()
        exclusive = mode == "create"
        with os_errors(where, exclusive=exclusive):
            await client.upload(where, bytes(value), if_none_match=exclusive)

    async def _put(
        self,
        lpath: Any,
        rpath: Any,
        recursive: bool = False,
        *args: Any,
        follow_symlinks: bool = False,
        **kwargs: Any,
    ) -> Any:
        """fsspec's ``put``, with the rule of ``meshfs put -r`` and ``meshfs sync``: symbolic
        links inside a local tree are skipped unless ``follow_symlinks=True`` (then fsspec's
        own expansion applies: links to files are followed)."""
        # Files are collected by _put_file and sent in bulk requests at the end.
        async with bulk.collecting() as batch:
            if (
                recursive
                and not follow_symlinks
                and isinstance(lpath, str)
                and not has_magic(lpath)
            ):
                maxdepth = kwargs.pop("maxdepth", None)
                kept = await asyncio.to_thread(_expand_without_links, lpath, maxdepth)
                if not kept:
                    return None
                target = self._strip_protocol(rpath)
                into = trailing_sep(rpath) or await self._isdir(target)
                targets = other_paths(kept, target, exists=into and not trailing_sep(lpath))
                result = await super()._put(kept, targets, recursive, *args, **kwargs)
            else:
                result = await super()._put(lpath, rpath, recursive, *args, **kwargs)
        client = await self.set_session()
        await bulk.send_puts(client, batch.puts)
        await bulk.send_puts(client, batch.creates, if_absent=True)
        return result

    async def _put_file(
        self, lpath: str, rpath: str, mode: str = "overwrite", **kwargs: Any
    ) -> None:
        where, _ = self.split_path(rpath)
        client = await self.set_session()
        exclusive = mode == "create"
        with os_errors(where, exclusive=exclusive):
            if await asyncio.to_thread(os.path.isdir, lpath):
                await client.mkdir(where, parents=True)
                return
            batch = bulk.current()
            if batch is not None:  # part of a put: sent in bulk
                (batch.creates if exclusive else batch.puts).append((lpath, where))
                return
            await client.upload(where, Path(lpath), if_none_match=exclusive)

    async def _get(self, rpath: Any, lpath: Any, *args: Any, **kwargs: Any) -> Any:
        """fsspec's ``get``; the files it names are fetched in bulk requests at the end."""
        async with bulk.collecting() as batch:
            result = await super()._get(rpath, lpath, *args, **kwargs)
        await bulk.fetch_gets(await self.set_session(), batch.gets, _local_target)
        return result

    async def _get_file(self, rpath: str, lpath: str, **kwargs: Any) -> None:
        where, version_id = self.split_path(rpath)
        batch = bulk.current()
        if batch is not None and version_id is None:  # part of a get: fetched in bulk
            batch.gets.append((where, lpath))
            return
        client = await self.set_session()
        with os_errors(where):
            if version_id is None and (await client.meta(where)).kind == "dir":
                await asyncio.to_thread(os.makedirs, lpath, exist_ok=True)
                return
            local = await asyncio.to_thread(_local_target, Path(lpath), paths.basename(where))
            await client.download_to(where, local, version_id=version_id)

    async def _cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        src, version_id = self.split_path(path1)
        dst, _ = self.split_path(path2)
        client = await self.set_session()
        with os_errors(src):
            if version_id is None and (await client.meta(src)).kind == "dir":
                await client.mkdir(dst, parents=True)  # fsspec copies directories as mkdir
                return
            await client.copy(src, dst, version_id=version_id)

    # --- namespace --------------------------------------------------------------------------

    async def _mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        where, _ = self.split_path(path)
        client = await self.set_session()
        with os_errors(where):
            await client.mkdir(where, parents=create_parents, exist_ok=False)

    async def _makedirs(self, path: str, exist_ok: bool = False) -> None:
        where, _ = self.split_path(path)
        client = await self.set_session()
        with os_errors(where):
            await client.mkdir(where, parents=True, exist_ok=exist_ok)

    async def _rm_file(self, path: str, **kwargs: Any) -> None:
        where, _ = self.split_path(path)
        client = await self.set_session()
        with os_errors(where):
            await client.delete(where)

    async def _rm(
        self, path: Any, recursive: bool = False, maxdepth: int | None = None, **kwargs: Any
    ) -> None:
        client = await self.set_session()
        if recursive and maxdepth is None:
            # One server call per top-level path deletes a whole subtree at once.
            expanded = await self._expand_path(path, recursive=False)
            tops: list[str] = []
            for candidate in sorted(expanded):
                if not any(paths.is_within(candidate, top) for top in tops):
                    tops.append(candidate)
            for top in tops:
                with os_errors(top):
                    await client.delete(top, recursive=True)
            return
        expanded = await self._expand_path(path, recursive=recursive, maxdepth=maxdepth)
        for where in reversed(expanded):  # children before their parents
            with os_errors(where):
                await client.delete(where)

    async def _mv(
        self,
        path1: Any,
        path2: Any,
        recursive: bool = False,
        maxdepth: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Move with one server-side rename (a directory moves as a whole, history kept)."""
        single = (
            isinstance(path1, str)
            and isinstance(path2, str)
            and not any(c in self.split_path(path1)[0] for c in "*?[")
        )
        if not single:
            # Globs and lists: fsspec's generic copy-then-delete.
            await self._copy(path1, path2, recursive=recursive, maxdepth=maxdepth)
            await self._rm(path1, recursive=recursive)
            return
        src, _ = self.split_path(path1)
        dst, _ = self.split_path(path2)
        if src == dst:
            return
        client = await self.set_session()
        with os_errors(src):
            entry = await client.meta(src)
            if entry.kind == "dir" and not recursive:
                raise IsADirectoryError(21, "use recursive=True to move a directory", src)
            try:
                target = await client.meta(dst)
            except NotFoundError:
                target = None
            if target is not None and target.kind == "dir" and entry.kind == "file":
                dst = posixpath.join(dst, entry.name)
            elif target is None and paths.parent(dst) != "/":
                await client.mkdir(paths.parent(dst), parents=True)
            await client.rename(src, dst, overwrite=entry.kind == "file")

    def mv(self, path1: Any, path2: Any, recursive: bool = False, **kwargs: Any) -> None:
        """Move or rename (server-side: no content is copied)."""
        sync(self.loop, self._mv, path1, path2, recursive=recursive, **kwargs)

    # --- POSIX attributes and links (the names LocalFileSystem uses) --------------------------

    async def _chmod(self, path: str, mode: int) -> None:
        """Set the permission bits of *path* (0..0o7777); no new version is made."""
        where = self._strip_protocol(path)
        with os_errors(where):
            await (await self.set_session()).chmod(where, mode & 0o7777)
        self.invalidate_cache(where)

    async def _touch(self, path: str, truncate: bool = True, **kwargs: Any) -> None:
        """Create an empty file (``truncate=True`` empties an existing one), or set an
        existing file's modification and access time to now (``truncate=False``)."""
        where = self._strip_protocol(path)
        client = await self.set_session()
        with os_errors(where):
            if truncate or not await client.exists(where):
                await client.upload(where, b"")
            else:
                now = time.time_ns()
                await client.utime(where, mtime_ns=now, atime_ns=now)
        self.invalidate_cache(where)

    async def _symlink(self, src: str, dst: str, **kwargs: Any) -> None:
        """Make *dst* a symbolic link whose target is *src*, stored verbatim."""
        where = self._strip_protocol(dst)
        with os_errors(where):
            await (await self.set_session()).symlink(where, src)
        self.invalidate_cache(where)

    async def _link(self, src: str, dst: str, **kwargs: Any) -> None:
        """Make *dst* a hard link to the file *src* (one file, two names)."""
        source, where = self._strip_protocol(src), self._strip_protocol(dst)
        with os_errors(source):
            await (await self.set_session()).link(source, where)
        self.invalidate_cache(where)

    async def _islink(self, path: str) -> bool:
        """True when *path* is a symbolic link (False when nothing is there)."""
        try:
            return bool((await self._info(path))["islink"])
        except FileNotFoundError:
            return False

    chmod = sync_wrapper(_chmod)
    touch = sync_wrapper(_touch)
    symlink = sync_wrapper(_symlink)
    link = sync_wrapper(_link)
    islink = sync_wrapper(_islink)

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> MeshFSFile:
        where, version_id = self.split_path(path)
        if version_id is not None and mode != "rb":
            raise ValueError("a version can only be opened for reading")
        return MeshFSFile(
            self,
            where,
            mode,
            block_size=block_size or MeshFSFile.DEFAULT_BLOCK_SIZE,
            autocommit=autocommit,
            cache_options=cache_options,
            version_id=version_id,
            **kwargs,
        )

    def invalidate_cache(self, path: str | None = None) -> None:
        """Nothing is cached: every call asks the server."""

    def __repr__(self) -> str:
        return f"MeshFSFileSystem(server={self.server!r})"


def _through_link(path: str, root: str) -> bool:
    """True when *path* is, or lies below, a symbolic link found under *root*."""
    if not path.startswith(root + "/"):
        return False
    current = root
    for name in path[len(root) + 1 :].split("/"):
        current = f"{current}/{name}"
        if os.path.islink(current):
            return True
    return False


def _expand_without_links(lpath: str, maxdepth: int | None) -> list[str]:
    """The local paths ``put`` copies for *lpath* (fsspec's expansion), links left out."""
    root = make_path_posix(lpath)
    found = LocalFileSystem().expand_path(root, recursive=True, maxdepth=maxdepth)
    kept = [p for p in found if not _through_link(p, root.rstrip("/"))]
    if maxdepth is not None:  # as fsspec does: a depth-limited put copies files only
        kept = [p for p in kept if not (trailing_sep(p) or os.path.isdir(p))]
    return kept


def _stop(portal: LoopThread, clients: list[MeshFSClient]) -> None:
    """Close the clients opened on *portal*, then stop it (at garbage collection or exit)."""
    for client in clients:
        with contextlib.suppress(Exception):
            portal.run(client.close())
    portal.close()
