"""Shared MeshFS protocol: wire models, the error table, path rules and content hashing."""

from __future__ import annotations

from meshfs_common import errors, hashing, models, paths
from meshfs_common.errors import ERROR_TABLE, ErrorSpec, MeshFSError, error_from_envelope
from meshfs_common.hashing import CHUNK_SIZE, ContentDigest, ContentHasher, hash_bytes, hash_file
from meshfs_common.ids import NodeId, TenantId, UploadId, UserId, VersionId, new_id

__version__ = "0.1.0"

__all__ = [
    "CHUNK_SIZE",
    "ERROR_TABLE",
    "ContentDigest",
    "ContentHasher",
    "ErrorSpec",
    "MeshFSError",
    "NodeId",
    "TenantId",
    "UploadId",
    "UserId",
    "VersionId",
    "__version__",
    "error_from_envelope",
    "errors",
    "hash_bytes",
    "hash_file",
    "hashing",
    "models",
    "new_id",
    "paths",
]
