"""MeshFS FUSE mount daemon (``meshfs-mount``, ``mount.meshfs``).

The command line is :mod:`meshfs_fuse.cli`; the daemon :mod:`meshfs_fuse.daemon` wires the
asyncio bridge to the client (:mod:`~meshfs_fuse.bridge`), the inode table
(:mod:`~meshfs_fuse.inodes`), the write spool and read cache (:mod:`~meshfs_fuse.spool`,
:mod:`~meshfs_fuse.chunk_cache`, :mod:`~meshfs_fuse.content`), the FUSE handlers
(:mod:`~meshfs_fuse.operations`) and the change-feed coherence (:mod:`~meshfs_fuse.coherence`).
Every handler answers errors through :mod:`meshfs_fuse.errno_map`.
"""

from __future__ import annotations

from meshfs_fuse.errno_map import errno_for, fuse_error, fuse_errors

__version__ = "0.1.0"

__all__ = ["__version__", "errno_for", "fuse_error", "fuse_errors"]
