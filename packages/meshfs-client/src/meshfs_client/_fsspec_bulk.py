"""fsspec ``put`` and ``get`` of many files through bulk transfers.

fsspec's ``put``/``get`` expand their arguments and then call ``put_file``/``get_file`` once
per file. While a :func:`collecting` block runs, the filesystem's ``put_file``/``get_file``
only note the file in the current :class:`Batch` (a context variable, so concurrent calls
each have their own); at the end of the block the batch is sent in bulk requests (see
:mod:`meshfs_client._bulk`): small files many to a request, large ones one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from meshfs_client._client import MeshFSClient
from meshfs_client._fsspec_file import os_errors
from meshfs_common import paths
from meshfs_common.errors import NotFoundError, error_from_envelope
from meshfs_common.models import Entry


@dataclass(slots=True)
class Batch:
    """Files noted by ``put_file`` (local, remote) or ``get_file`` (remote, local);
    ``creates`` are puts in fsspec's ``mode="create"`` (never overwrite)."""

    puts: list[tuple[str, str]] = field(default_factory=list)
    creates: list[tuple[str, str]] = field(default_factory=list)
    gets: list[tuple[str, str]] = field(default_factory=list)


_CURRENT: ContextVar[Batch | None] = ContextVar("meshfs_fsspec_batch", default=None)


def current() -> Batch | None:
    """The batch being collected, if any."""
    return _CURRENT.get()


@contextlib.asynccontextmanager
async def collecting() -> AsyncIterator[Batch]:
    """Collect the files of one ``put`` or ``get`` (send them with :func:`send_puts` or
    :func:`fetch_gets` afterwards)."""
    batch = Batch()
    token = _CURRENT.set(batch)
    try:
        yield batch
    finally:
        _CURRENT.reset(token)


async def send_puts(
    client: MeshFSClient, puts: list[tuple[str, str]], *, if_absent: bool = False
) -> None:
    """Upload (local, remote) pairs in bulk; the first file refused raises its OSError. With
    *if_absent* an existing remote file is not overwritten (``FileExistsError``)."""
    if not puts:
        return
    done = await client.write_many(
        [(remote, Path(local)) for local, remote in puts], if_absent=if_absent
    )
    if done.failed:
        first = done.failed[0]
        with os_errors(first.path or first.name):
            raise error_from_envelope(
                400, {"error": first.error, "error_description": first.message}
            )


async def fetch_gets(
    client: MeshFSClient, gets: list[tuple[str, str]], target: Callable[[Path, str], Path]
) -> None:
    """Download (remote, local) pairs: directories are created, files fetched in bulk (their
    entries from one listing per directory). *target* places a file at a local path (fsspec's
    rule for a local directory)."""
    if not gets:
        return
    listed: dict[str, Entry] = {}
    for parent in sorted({paths.parent(remote) for remote, _ in gets}):
        with os_errors(parent):
            async for found in client.iterdir(parent):
                listed[found.path] = found
    pairs: list[tuple[Entry, Path]] = []
    for remote, local in gets:
        entry = listed.get(remote)
        if entry is None:
            with os_errors(remote):
                raise NotFoundError(f"no such file or directory: {remote}")
        assert entry is not None
        if entry.kind == "dir":
            await asyncio.to_thread(Path(local).mkdir, parents=True, exist_ok=True)
            continue
        place = await asyncio.to_thread(target, Path(local), entry.name)
        pairs.append((entry, place))
    for got in await client.download_many(pairs):
        if got.error is not None:
            with os_errors(got.path):
                raise got.error
