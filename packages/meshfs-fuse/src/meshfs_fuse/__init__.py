"""MeshFS FUSE mount daemon (``meshfs-mount``).

This release holds the daemon's edges: the errno mapping every request handler goes through
(:mod:`meshfs_fuse.errno_map`) and the validated command line (:mod:`meshfs_fuse.cli`).
"""

from __future__ import annotations

from meshfs_fuse.errno_map import errno_for, fuse_error, fuse_errors

__version__ = "0.1.0"

__all__ = ["__version__", "errno_for", "fuse_error", "fuse_errors"]
