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

from meshfs_client._blocking import MeshFS
from meshfs_client._client import MeshFSClient, UploadSource
from meshfs_client._credentials import Credentials, CredentialStore
from meshfs_client._download import DownloadInfo, DownloadStream
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

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_SERVER",
    "AlreadyExistsError",
    "AuthError",
    "ChangeFeed",
    "ConflictError",
    "CredentialStore",
    "Credentials",
    "DeviceFlowError",
    "DownloadInfo",
    "DownloadStream",
    "FeedItem",
    "FeedReset",
    "ForbiddenError",
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
    "Timeouts",
    "UnavailableError",
    "UploadSource",
    "__version__",
]
