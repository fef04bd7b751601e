"""Conflict policy: what happens when a file changed on both sides since the last sync.

The rule (documented in the package README, "Mirror sync"):

* ``lww`` (default): the server's commit order decides. The local content is committed as a new
  version on top of the head this client knows (``If-Match``), so it is the last write and every
  mirror ends up with it; the other side's content stays in the file's version history.
* ``keep-both``: the local content is moved aside to a conflict copy next to the file (a new
  file, synced like any other) and the server's head is downloaded under the original name.

Either way no content is lost. An edit beats a delete on either side, and when a file and a
directory meet at one path the directory keeps the name and the file moves to a conflict copy.
"""

from __future__ import annotations

import enum
import os
import socket
import time

from meshfs_common import paths


class ConflictPolicy(enum.Enum):
    """How a file changed on both sides is resolved."""

    LWW = "lww"
    KEEP_BOTH = "keep-both"


def conflict_name(rel: str, *, host: str | None = None, now: float | None = None) -> str:
    """The conflict-copy path for *rel*: ``name (conflict host 2024-05-01 120000).ext``.

    The suffix goes before the extension so the copy still opens with the same application.
    """
    stamp = time.strftime("%Y-%m-%d %H%M%S", time.localtime(time.time() if now is None else now))
    who = (host or socket.gethostname() or "here").split(".")[0]
    name = paths.basename(rel)
    stem, ext = os.path.splitext(name)
    candidate = f"{stem} (conflict {who} {stamp}){ext}"
    # Keep within the 255-byte name limit by shortening the stem.
    while len(candidate.encode()) > paths.MAX_NAME_BYTES and stem:
        stem = stem[:-1]
        candidate = f"{stem} (conflict {who} {stamp}){ext}"
    parent = paths.parent(rel)
    return (parent.rstrip("/") or "") + "/" + candidate
