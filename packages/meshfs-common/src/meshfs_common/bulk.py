"""Wire models of bulk transfers: many small files written or read in one request.

The bytes travel as a tar archive (see :mod:`meshfs_common.tarstream`); these are the JSON
answers and requests around it. Reads tag each member with ``MESHFS.*`` pax keywords when
asked (``meta=true``); their names are here so that server and client cannot drift.
"""

from __future__ import annotations

from typing import Literal

from meshfs_common._model import Model

#: Bulk writes take regular files of at most this many bytes (one chunk); larger files go
#: through the chunked upload.
BULK_MAX_FILE = 4 * 1024 * 1024
#: Pax keywords of a bulk read with ``meta=true``.
PAX_NODE_ID = "MESHFS.node_id"
PAX_VERSION_ID = "MESHFS.version_id"
PAX_CONTENT_HASH = "MESHFS.content_hash"
PAX_ERROR = "MESHFS.error"
PAX_MESSAGE = "MESHFS.message"


class BulkWritten(Model):
    """A member of a bulk write that landed: a file's head version or a directory."""

    name: str
    """The member's name in the archive."""
    path: str
    kind: Literal["file", "dir"]
    node_id: str
    version_id: str | None = None
    size: int = 0
    content_hash: str | None = None
    created_version: bool = False
    """False when the content equalled the head already (no new version) or the directory
    existed."""


class BulkFailure(Model):
    """A member (or path) that did not land, by name, with its error."""

    name: str
    error: str
    """An error code of :data:`meshfs_common.errors.ERROR_TABLE`."""
    message: str
    path: str | None = None
    """The MeshFS path the name stands for (None when the name itself is invalid)."""
    retry_after: float | None = None


class BulkStop(Model):
    """Why a bulk write stopped before the end of its archive (the rest was not read)."""

    error: str
    message: str
    retry_after: float | None = None


class BulkWriteResult(Model):
    """The answer of a bulk write: what landed and what did not, in archive order."""

    written: list[BulkWritten]
    failed: list[BulkFailure]
    stopped: BulkStop | None = None
    """Set when the archive was not read to its end (a rate limit, a malformed archive): the
    members after the last one named in ``written`` or ``failed`` were not looked at."""
    files: int = 0
    """Files that landed (including unchanged ones)."""
    bytes: int = 0
    """Their bytes."""


class BulkReadRequest(Model):
    """``POST /files/bulk/read``: the files to read, as one tar stream."""

    paths: list[str]
