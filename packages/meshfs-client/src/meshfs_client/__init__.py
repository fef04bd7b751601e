"""MeshFS client library: an async client, a blocking facade, and the ``meshfs`` CLI.

Quick start::

    from meshfs_client import MeshFSClient

    async with MeshFSClient() as client:
        await client.upload("/notes/today.md", b"# hello")
        async for entry in client.iterdir("/notes"):
            print(entry.path, entry.size)

Errors are the typed exceptions of :mod:`meshfs_common.errors` (re-exported here).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meshfs_client._blocking import MeshFS
    from meshfs_client._bulk import BulkFile, BulkMember, BulkSource
    from meshfs_client._client import ClientOptions, MeshFSClient
    from meshfs_client._credentials import Credentials, CredentialStore
    from meshfs_client._download import DownloadInfo, DownloadStream
    from meshfs_client._files import UploadSource
    from meshfs_client._loop import LoopThread, ThreadIterator
    from meshfs_client._retry import RetryPolicy, ServerUnreachableError
    from meshfs_client._settings import DEFAULT_SERVER, Settings, Timeouts
    from meshfs_client._upload import SourceChangedError
    from meshfs_client._watch import ChangeFeed, FeedItem, FeedReset
    from meshfs_common.errors import (
        AlreadyExistsError,
        AuthError,
        ConflictError,
        DeviceFlowError,
        ForbiddenError,
        MeshFSError,
        NotFoundError,
        PreconditionFailedError,
        QuotaExceededError,
        RateLimitedError,
        UnavailableError,
    )

# Where each public name lives. They are imported on first use: the client pulls in aiohttp
# (a third of a second), which `meshfs --help` and the other CLI start-ups must not pay for.
_EXPORTS = {
    "MeshFS": "meshfs_client._blocking",
    "BulkFile": "meshfs_client._bulk",
    "BulkMember": "meshfs_client._bulk",
    "BulkSource": "meshfs_client._bulk",
    "ClientOptions": "meshfs_client._client",
    "MeshFSClient": "meshfs_client._client",
    "UploadSource": "meshfs_client._files",
    "Credentials": "meshfs_client._credentials",
    "CredentialStore": "meshfs_client._credentials",
    "DownloadInfo": "meshfs_client._download",
    "DownloadStream": "meshfs_client._download",
    "LoopThread": "meshfs_client._loop",
    "ThreadIterator": "meshfs_client._loop",
    "RetryPolicy": "meshfs_client._retry",
    "ServerUnreachableError": "meshfs_client._retry",
    "DEFAULT_SERVER": "meshfs_client._settings",
    "Settings": "meshfs_client._settings",
    "Timeouts": "meshfs_client._settings",
    "SourceChangedError": "meshfs_client._upload",
    "ChangeFeed": "meshfs_client._watch",
    "FeedItem": "meshfs_client._watch",
    "FeedReset": "meshfs_client._watch",
    **dict.fromkeys(
        (
            "AlreadyExistsError",
            "AuthError",
            "ConflictError",
            "DeviceFlowError",
            "ForbiddenError",
            "MeshFSError",
            "NotFoundError",
            "PreconditionFailedError",
            "QuotaExceededError",
            "RateLimitedError",
            "UnavailableError",
        ),
        "meshfs_common.errors",
    ),
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'meshfs_client' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__version__ = "0.1.0"

__all__ = [
    "DEFAULT_SERVER",
    "AlreadyExistsError",
    "AuthError",
    "BulkFile",
    "BulkMember",
    "BulkSource",
    "ChangeFeed",
    "ClientOptions",
    "ConflictError",
    "CredentialStore",
    "Credentials",
    "DeviceFlowError",
    "DownloadInfo",
    "DownloadStream",
    "FeedItem",
    "FeedReset",
    "ForbiddenError",
    "LoopThread",
    "MeshFS",
    "MeshFSClient",
    "MeshFSError",
    "NotFoundError",
    "PreconditionFailedError",
    "QuotaExceededError",
    "RateLimitedError",
    "RetryPolicy",
    "ServerUnreachableError",
    "Settings",
    "SourceChangedError",
    "ThreadIterator",
    "Timeouts",
    "UnavailableError",
    "UploadSource",
    "__version__",
]
