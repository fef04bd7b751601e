"""`MeshFS`: a blocking facade over :class:`MeshFSClient` for scripts and notebooks.

The async client runs on a private :class:`~meshfs_client.LoopThread`; each method submits
one call there and waits for it. Because the loop is private, this works from plain scripts
and from inside an already running loop (Jupyter) alike.

No method is written twice: each one is derived from the async method of the same name
(same parameters, same docstring), so the two cannot drift. Coroutines become plain calls;
async iterators become blocking iterators; streams that are opened with ``async with``
(``download``, ``watch``) become blocking iterators that close when left, exhausted or
closed. ``tests/test_blocking_parity.py`` checks that every public member of the async client
has its blocking counterpart.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any, Concatenate, ParamSpec, TypeVar, Unpack

from meshfs_client._client import ClientOptions, MeshFSClient
from meshfs_client._credentials import Credentials, CredentialStore
from meshfs_client._loop import LoopThread, ThreadIterator

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")

_Method = Callable[Concatenate["MeshFS", P], T]


def _derived(
    method: Callable[Concatenate[MeshFSClient, P], R],
    adapt: Callable[[LoopThread, R], T],
    returns: str | None = None,
) -> _Method[P, T]:
    """A ``MeshFS`` method that calls the async *method* and hands its result to *adapt* (on
    the calling thread); it has the name, docstring and parameters of *method*."""

    def call(self: MeshFS, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return adapt(self.portal, method(self._client, *args, **kwargs))

    call.__name__ = method.__name__
    call.__qualname__ = f"MeshFS.{method.__name__}"
    call.__doc__ = method.__doc__
    signature = inspect.signature(method)
    if returns is not None:
        signature = signature.replace(return_annotation=returns)
    call.__signature__ = signature  # type: ignore[attr-defined]
    return call


def _blocking(
    method: Callable[Concatenate[MeshFSClient, P], Coroutine[Any, Any, T]],
) -> _Method[P, T]:
    """The coroutine method, run to completion."""
    return _derived(method, LoopThread.run)


def _iterating(
    method: Callable[Concatenate[MeshFSClient, P], AsyncIterator[T]],
) -> _Method[P, ThreadIterator[T]]:
    """The async iterator method, as a blocking iterator."""
    returns = str(inspect.signature(method).return_annotation).removeprefix("Async")
    return _derived(method, LoopThread.iterate, returns)


def _collecting(
    method: Callable[Concatenate[MeshFSClient, P], AsyncIterator[T]],
) -> _Method[P, list[T]]:
    """The async iterator method, collected into a list."""
    item = str(inspect.signature(method).return_annotation).removeprefix("AsyncIterator")
    return _derived(method, _collect, f"list{item}")


def _streaming(
    method: Callable[Concatenate[MeshFSClient, P], AbstractAsyncContextManager[AsyncIterable[T]]],
    returns: str,
) -> _Method[P, ThreadIterator[T]]:
    """The method returning an ``async with`` stream, as a blocking iterator over it."""
    return _derived(method, _opened, returns)


def _as_is(portal: LoopThread, value: T) -> T:
    return value


def _collect(portal: LoopThread, source: AsyncIterator[T]) -> list[T]:
    return list(portal.iterate(source))


def _opened(
    portal: LoopThread, stream: AbstractAsyncContextManager[AsyncIterable[T]]
) -> ThreadIterator[T]:
    return portal.iterate(_entered(stream))


async def _entered(stream: AbstractAsyncContextManager[AsyncIterable[T]]) -> AsyncIterator[T]:
    async with stream as opened:
        async for item in opened:
            yield item


class MeshFS:
    """Blocking MeshFS client; takes the arguments of :class:`MeshFSClient` but ``session``.

    ``with MeshFS() as fs: fs.upload("/notes.txt", b"hi")``. Close it (or use ``with``) to
    stop its background thread. Every method is the async method of the same name, run to
    completion; iterators and streams (``iterdir``, ``walk``, ``download``, ``watch``) are
    blocking iterators, closed when left, exhausted or closed.
    """

    def __init__(self, server: str | None = None, **options: Unpack[ClientOptions]) -> None:
        self._portal = LoopThread()
        try:
            self._client = MeshFSClient(server, **options)
            self._portal.run(self._client.__aenter__())
        except BaseException:
            self._portal.close()
            raise

    def __enter__(self) -> MeshFS:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client and stop the background loop."""
        try:
            self._portal.run(self._client.close())
        finally:
            self._portal.close()

    @property
    def client(self) -> MeshFSClient:
        """The underlying async client (use it only through :attr:`portal`)."""
        return self._client

    @property
    def portal(self) -> LoopThread:
        """The loop thread the client runs on."""
        return self._portal

    @property
    def server(self) -> str:
        """The server this client talks to."""
        return self._client.server

    @property
    def credentials(self) -> Credentials | None:
        """The stored login session in use, if any (``None`` with a fixed token)."""
        return self._client.credentials

    @property
    def store(self) -> CredentialStore:
        """Where login sessions are kept."""
        return self._client.store

    # The listener is called on the loop thread.
    on_retry = _derived(MeshFSClient.on_retry, _as_is)

    health = _blocking(MeshFSClient.health)
    whoami = _blocking(MeshFSClient.whoami)
    start_device_login = _blocking(MeshFSClient.start_device_login)
    poll_device_login = _blocking(MeshFSClient.poll_device_login)
    wait_for_device_login = _blocking(MeshFSClient.wait_for_device_login)
    adopt_tokens = _blocking(MeshFSClient.adopt_tokens)
    activate_device = _blocking(MeshFSClient.activate_device)
    refresh = _blocking(MeshFSClient.refresh)
    logout = _blocking(MeshFSClient.logout)

    mkdir = _blocking(MeshFSClient.mkdir)
    xattrs = _blocking(MeshFSClient.xattrs)
    listxattr = _blocking(MeshFSClient.listxattr)
    getxattr = _blocking(MeshFSClient.getxattr)
    setxattr = _blocking(MeshFSClient.setxattr)
    removexattr = _blocking(MeshFSClient.removexattr)
    set_attributes = _blocking(MeshFSClient.set_attributes)
    chmod = _blocking(MeshFSClient.chmod)
    chown = _blocking(MeshFSClient.chown)
    utime = _blocking(MeshFSClient.utime)
    symlink = _blocking(MeshFSClient.symlink)
    readlink = _blocking(MeshFSClient.readlink)
    mknod = _blocking(MeshFSClient.mknod)
    list_page = _blocking(MeshFSClient.list_page)
    iterdir = _iterating(MeshFSClient.iterdir)
    listdir = _blocking(MeshFSClient.listdir)
    walk = _iterating(MeshFSClient.walk)
    meta = _blocking(MeshFSClient.meta)
    stat = meta
    exists = _blocking(MeshFSClient.exists)
    rename = _blocking(MeshFSClient.rename)
    link = _blocking(MeshFSClient.link)
    delete = _blocking(MeshFSClient.delete)

    upload = _blocking(MeshFSClient.upload)
    download = _streaming(MeshFSClient.download, "Iterator[bytes]")
    iter_bytes = download
    read_bytes = _blocking(MeshFSClient.read_bytes)
    download_to = _blocking(MeshFSClient.download_to)
    copy = _blocking(MeshFSClient.copy)
    clone = _blocking(MeshFSClient.clone)
    chunk_list = _blocking(MeshFSClient.chunk_list)
    upload_ranges = _blocking(MeshFSClient.upload_ranges)
    statfs = _blocking(MeshFSClient.statfs)
    write_many = _blocking(MeshFSClient.write_many)
    read_many = _iterating(MeshFSClient.read_many)
    download_many = _blocking(MeshFSClient.download_many)

    plan = _blocking(MeshFSClient.plan)
    create_agent_token = _blocking(MeshFSClient.create_agent_token)
    sessions = _blocking(MeshFSClient.sessions)
    revoke_session = _blocking(MeshFSClient.revoke_session)
    record_tool_call = _blocking(MeshFSClient.record_tool_call)
    audit_page = _blocking(MeshFSClient.audit_page)

    node_id_of = _blocking(MeshFSClient.node_id_of)
    versions_page = _blocking(MeshFSClient.versions_page)
    # A list rather than an iterator: a file's history is short and usually wanted whole.
    versions = _collecting(MeshFSClient.versions)
    restore = _blocking(MeshFSClient.restore)

    diff = _blocking(MeshFSClient.diff)
    changes = _blocking(MeshFSClient.changes)
    snapshot_create = _blocking(MeshFSClient.snapshot_create)
    snapshots = _blocking(MeshFSClient.snapshots)
    snapshot = _blocking(MeshFSClient.snapshot)
    snapshot_diff = _blocking(MeshFSClient.snapshot_diff)
    snapshot_restore = _blocking(MeshFSClient.snapshot_restore)
    snapshot_delete = _blocking(MeshFSClient.snapshot_delete)

    pull = _blocking(MeshFSClient.pull)
    current_cursor = _blocking(MeshFSClient.current_cursor)
    watch = _streaming(MeshFSClient.watch, "Iterator[FeedItem]")
