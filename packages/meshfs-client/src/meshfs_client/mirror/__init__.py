"""Two-way mirror sync of a local folder with a MeshFS directory (``meshfs sync``).

Modules, one concept each:

* :mod:`._state` - the SQLite state database (cursor, remote tree, synced state);
* :mod:`._local` - scanning, hashing and watching the local folder;
* :mod:`._remote` - the remote tree kept current from the change feed;
* :mod:`._planner` - the pure per-path decision (the sync rules);
* :mod:`._conflicts` - the conflict policy and conflict-copy names;
* :mod:`._ignore` - ``.meshfsignore`` and built-in temporary names;
* :mod:`._transfers` - carrying out steps (atomic downloads, conditional uploads, ...);
* :mod:`._status` - the options, events and status of a mirror;
* :mod:`._bookkeeping` - marked and held paths, failures and the status the loops share;
* :mod:`._follower` - the remote follower (the change feed into the remote tree);
* :mod:`._steps` - carrying out one planned step on one path;
* :mod:`._reconciler` - the reconciler (marked paths to planned steps);
* :mod:`._engine` - :class:`MirrorSync`, the loops tied together.
"""

from __future__ import annotations

from meshfs_client.mirror._conflicts import ConflictPolicy
from meshfs_client.mirror._engine import MirrorSync
from meshfs_client.mirror._ignore import IgnoreRules
from meshfs_client.mirror._state import StateDB, default_state_dir, state_file
from meshfs_client.mirror._status import SyncEvent, SyncOptions, SyncStatus

__all__ = [
    "ConflictPolicy",
    "IgnoreRules",
    "MirrorSync",
    "StateDB",
    "SyncEvent",
    "SyncOptions",
    "SyncStatus",
    "default_state_dir",
    "state_file",
]
