"""The FUSE request handlers of the mount: files and directories over MeshFS.

Every handler goes through :func:`~meshfs_fuse.errno_map.fuse_errors`, so whatever goes wrong
becomes the errno of the error table; ``forget`` never raises.

Semantics (what a program sees):

* Names and attributes: see :mod:`meshfs_fuse.attributes` and
  :mod:`meshfs_fuse.attribute_handlers`. Modes, owners, times, symbolic links, hard links,
  special nodes and ``user.*`` extended attributes are the server's POSIX model.
* Writes go to a local spool and become one version at ``close`` (flush), ``fsync`` or a
  ``truncate`` by path. ``close`` returns once the version is committed. A file created here
  is committed at its first flush, empty if nothing was written; opening without writing
  commits nothing.
* ``rename`` over an existing file replaces it atomically (the editor's save);
  ``RENAME_NOREPLACE`` is honoured; ``RENAME_EXCHANGE`` swaps two names on the server.
* An unlinked open file stays readable and writable until its last close; its writes are not
  committed (it has no name any more), as on a local disk.
* ``.meshfs`` at the root (looked up, never listed) shows every file's versions and the
  control file (:mod:`meshfs_fuse.history_view`); nothing inside it can be changed.
"""

from __future__ import annotations

from meshfs_fuse.attribute_handlers import AttributeHandlers
from meshfs_fuse.history_handlers import HistoryHandlers
from meshfs_fuse.mount_state import MAX_NAME
from meshfs_fuse.namespace_handlers import NamespaceHandlers

__all__ = ["MAX_NAME", "MeshFSOperations"]


class MeshFSOperations(HistoryHandlers, AttributeHandlers, NamespaceHandlers):
    """pyfuse3 operations over the inode table, the content store and the server.

    The handlers live by concern in :mod:`~meshfs_fuse.history_handlers` (``.meshfs``, asked
    first), :mod:`~meshfs_fuse.file_handlers`,
    :mod:`~meshfs_fuse.namespace_handlers` and :mod:`~meshfs_fuse.attribute_handlers`, over
    the state of :class:`~meshfs_fuse.mount_state.MountState`.
    """
