"""Wire models for every MeshFS request, response and change event.

The models are :mod:`msgspec` Structs: decoding a 10,000-entry listing is several times faster
than with the alternatives (see the package README for the measurement), and the same classes
give JSON Schema for the server's OpenAPI document. Times are UTC ``datetime`` values (RFC 3339
on the wire). Field names are the wire names.
"""

from __future__ import annotations

import stat
from datetime import datetime
from typing import Any, Literal

import msgspec

# Re-exported: every wire model is reachable from here.
from meshfs_common._model import Model as Model
from meshfs_common.admin import AdminModel as AdminModel
from meshfs_common.admin import AgentToken as AgentToken
from meshfs_common.admin import AgentTokenRequest as AgentTokenRequest
from meshfs_common.admin import AuditEntry as AuditEntry
from meshfs_common.admin import AuditPage as AuditPage
from meshfs_common.admin import DeviceActivateResponse as DeviceActivateResponse
from meshfs_common.admin import PlanInfo as PlanInfo
from meshfs_common.admin import RetentionPolicy as RetentionPolicy
from meshfs_common.admin import RetentionReport as RetentionReport
from meshfs_common.admin import SessionInfo as SessionInfo
from meshfs_common.admin import SessionList as SessionList
from meshfs_common.admin import StorageInfo as StorageInfo

NodeKind = Literal["file", "dir", "symlink", "fifo", "socket", "chardev", "blockdev"]
#: The file-type bits of ``st_mode`` for each kind of node (``ls -l``, the mount's ``stat``).
KIND_TYPE_BITS: dict[NodeKind, int] = {
    "file": stat.S_IFREG,
    "dir": stat.S_IFDIR,
    "symlink": stat.S_IFLNK,
    "fifo": stat.S_IFIFO,
    "socket": stat.S_IFSOCK,
    "chardev": stat.S_IFCHR,
    "blockdev": stat.S_IFBLK,
}
#: The node kinds ``POST /files/mknod`` makes (no content; devices carry ``rdev``).
SpecialKind = Literal["fifo", "socket", "chardev", "blockdev"]
EventType = Literal[
    "mkdir", "write", "rename", "delete", "restore", "attributes", "create", "xattr", "link"
]
#: The attributes a client sets with ``POST /files/attributes`` (and the keys of an
#: ``attributes`` event's ``attributes``/``old_attributes``).
AttributeName = Literal["mode", "uid", "gid", "mtime_ns", "atime_ns"]
#: What an ``xattr`` event did to the attribute it names.
XattrAction = Literal["set", "removed"]


# --- errors -------------------------------------------------------------------------------------


class ErrorBody(Model):
    """The error envelope every endpoint uses (RFC 6749 section 5.2 shape)."""

    error: str
    error_description: str
    detail: dict[str, Any] | None = None


# --- namespace ----------------------------------------------------------------------------------


class Writer(Model):
    """Who made a change: the user and the device session or agent token they used."""

    user_id: str
    session_id: str | None = None
    device_name: str | None = None
    agent_name: str | None = None


class Entry(Model):
    """A file, directory, symbolic link or special node as seen by a client.

    ``version_id``, ``size`` and ``content_hash`` describe the head version of a file (they are
    ``None``/0 for other kinds). ``deleted_at`` is set only for tombstones.

    POSIX attributes: ``mode`` holds the permission bits (with setuid, setgid and sticky:
    0..0o7777, never the file-type bits, which ``kind`` gives), ``uid``/``gid`` the owner as a
    client set them (the server does not enforce them), ``mtime_ns``/``atime_ns``/``ctime_ns``
    integer nanoseconds since the epoch (``ctime_ns`` is maintained by the server on every
    change; ``modified_at`` is ``mtime_ns`` as a datetime). ``target`` is a symbolic link's
    target, verbatim; ``rdev`` a device node's device number (0 otherwise). ``nlink`` counts
    the node's names as POSIX does: a file's hard links (1 without extra links), for a
    directory 2 plus its subdirectories.
    """

    node_id: str
    path: str
    name: str
    kind: NodeKind
    created_at: datetime
    modified_at: datetime
    size: int = 0
    version_id: str | None = None
    content_hash: str | None = None
    deleted_at: datetime | None = None
    mode: int = 0
    uid: int = 0
    gid: int = 0
    mtime_ns: int = 0
    atime_ns: int = 0
    ctime_ns: int = 0
    target: str | None = None
    rdev: int = 0
    nlink: int = 1


class ListPage(Model):
    """One page of a directory listing, sorted by name (code point order), then node id.

    ``next_after`` (set when ``has_more``) is an opaque position: pass it back unchanged as
    ``after`` for the next page.
    """

    path: str
    entries: list[Entry]
    has_more: bool = False
    next_after: str | None = None


class MkdirRequest(Model):
    """Create a directory; ``mode``/``uid``/``gid`` apply to the directory created at ``path``
    (parents made on the way get 0o755 and the server's defaults)."""

    path: str
    parents: bool = True
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None


class AttributesRequest(Model):
    """chmod, chown and utimens in one atomic change: only the given attributes change.

    ``mode`` is 0..0o7777 (permission bits with setuid/setgid/sticky); times are integer
    nanoseconds since the epoch, as the client wants them stored.
    """

    path: str
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    mtime_ns: int | None = None
    atime_ns: int | None = None


class SymlinkRequest(Model):
    """Make a symbolic link at ``path`` whose target is ``target`` (stored verbatim, at most
    4,096 bytes of UTF-8; the server never follows it)."""

    path: str
    target: str
    uid: int | None = None
    gid: int | None = None


class MknodRequest(Model):
    """Make a FIFO, socket or device node at ``path``; ``rdev`` is a device's number."""

    path: str
    kind: SpecialKind
    mode: int | None = None
    rdev: int = 0
    uid: int | None = None
    gid: int | None = None


class LinkRequest(Model):
    """Give the existing file at ``path`` the new name ``new_path`` (a hard link): both names
    are the same node, with one content, one version history and one set of attributes."""

    path: str
    new_path: str


class XattrInfo(Model):
    """One extended attribute of a node: its name and the size of its value in bytes."""

    name: str
    size: int


class XattrList(Model):
    """The extended attributes stored on the node at ``path`` (``user.*`` names, sorted)."""

    path: str
    node_id: str
    xattrs: list[XattrInfo]


class RenameRequest(Model):
    """Move ``path`` to ``new_path``.

    ``overwrite`` allows replacing an existing file (which then keeps its history: the moved
    content becomes its new head version) or an empty directory. ``exchange`` swaps two
    existing paths atomically instead (RENAME_EXCHANGE): both must exist, neither may lie
    inside the other, and it cannot be combined with ``overwrite``.
    """

    path: str
    new_path: str
    overwrite: bool = False
    exchange: bool = False


class CopyRequest(Model):
    """Copy the file at ``path`` to ``new_path`` on the server (copy_file_range, ``cp
    --reflink``): the new file's head shares the source's content, so no bytes travel and no
    storage is charged twice. ``new_path``'s parent must exist; an existing file there is
    replaced (as a new version of it) only with ``overwrite``. Directories are refused."""

    path: str
    new_path: str
    overwrite: bool = False


class DeleteResult(Model):
    entry: Entry
    deleted_nodes: int


class RestoreRequest(Model):
    """Restore a version as the new head; ``path`` relocates a deleted file."""

    path: str | None = None


# --- versions -----------------------------------------------------------------------------------


class Version(Model):
    """One immutable committed content of a file."""

    version_id: str
    node_id: str
    size: int
    content_hash: str
    created_at: datetime
    writer: Writer | None = None
    replaces: str | None = None
    restored_from: str | None = None
    mode: int = 0o644


class VersionPage(Model):
    """Versions newest first."""

    node_id: str
    versions: list[Version]
    has_more: bool = False
    next_before: str | None = None


class CommitResult(Model):
    """Result of a write: the entry as it now is, and whether a new version was made.

    Writing content identical to the head makes no version (``created_version`` is false).
    """

    entry: Entry
    version: Version
    created_version: bool


# --- uploads ------------------------------------------------------------------------------------


class UploadInitRequest(Model):
    """Begin (or resume) a chunked upload of ``size`` bytes to ``path``.

    ``chunks`` are the chunk names of the content in order (see :mod:`meshfs_common.hashing`).

    A *partial write* names ``base_version`` (the file's head version) instead of ``chunks``:
    the new content is the base's chunks, cut or extended to ``size``, with the chunks at the
    indexes of ``replace`` (index -> chunk name) replaced. A reused chunk must keep its length
    (so the chunk holding the new end of a truncated file, or the old end of an extended one,
    is given in ``replace``); chunks past the base's end that ``replace`` does not name are
    zeros (:func:`meshfs_common.hashing.zero_chunk_hash`; never uploaded). ``content_hash``
    is that of the whole new content. Only replaced chunks are asked for, only new content is
    charged to the quota, and the commit succeeds only while ``base_version`` is still the
    file's head (else ``412 precondition_failed``).
    """

    path: str
    size: int
    content_hash: str
    chunks: list[str] = []
    base_version: str | None = None
    replace: dict[int, str] | None = None


class UploadInitResponse(Model):
    """``missing`` lists the chunk indexes the server still needs; empty means commit now.

    Direct transfers (a server on S3 with them enabled): ``part_urls`` maps missing chunk
    indexes to presigned URLs. PUT the chunk's bytes there with every header of
    ``part_headers[index]`` (the chunk's SHA-256, which the store verifies), instead of sending
    them to ``/files/upload/part``; then commit as usual. A missing chunk without a URL goes
    through ``/files/upload/part``.
    """

    upload_id: str
    chunk_size: int
    missing: list[int]
    expires_at: datetime
    part_urls: dict[int, str] | None = None
    part_headers: dict[int, dict[str, str]] | None = None


class UploadPartResponse(Model):
    upload_id: str
    index: int
    chunk: str
    missing: list[int]


class UploadCommitRequest(Model):
    upload_id: str


class VersionChunks(Model):
    """A version's chunk list (``GET /files/chunks``): what a partial write is based on.

    ``chunks[i]`` names bytes ``[i * chunk_size, min((i + 1) * chunk_size, size))``.
    """

    node_id: str
    version_id: str
    size: int
    content_hash: str
    chunk_size: int
    chunks: list[str]


class FsStats(Model):
    """What ``statfs`` reports for a tenant (``GET /files/statfs``).

    ``total_bytes`` is the tenant's storage quota (None: the server sets none).
    ``used_bytes`` (deduplicated stored bytes, as the quota counts them) and ``free_bytes``
    (quota minus stored and reserved bytes) are given only to callers who see the whole
    tenant, else None. ``files`` (every node that is not a directory) and ``directories``
    count the live nodes the caller can see (a path-limited token: those within its prefix,
    its root included). ``name_max`` is the longest name in bytes.
    """

    total_bytes: int | None
    files: int
    directories: int
    used_bytes: int | None = None
    free_bytes: int | None = None
    name_max: int = 255
    chunk_size: int = 0


class DirectDownload(Model):
    """Where to GET a version's bytes straight from the object store (direct transfers).

    ``urls[i]`` serves chunk ``chunks[i]`` (``chunk_size`` bytes, the last one shorter) and
    honours Range; the URLs stop working ``expires_in`` seconds after the answer.
    """

    version_id: str
    node_id: str
    size: int
    content_hash: str
    chunk_size: int
    chunks: list[str]
    urls: list[str]
    expires_in: int


# --- change feed --------------------------------------------------------------------------------


class ChangeEvent(Model):
    """One mutation, numbered by a per-tenant gap-free sequence (the cursor).

    ``rename`` carries ``old_path``; ``write`` and ``restore`` carry the new head version and,
    in ``attributes``, the file's ``mode`` and ``mtime_ns`` with that head (absent on events
    recorded by older servers, and on the write a token limited to a subtree sees for a file
    moved or linked into it: ask ``GET /files/meta`` then).
    A rename *over an existing file* keeps that file: ``node_id`` is the file now at ``path``
    (same id and history as before, with the moved content as its new head version) and
    ``replaced_node_id`` is the node that was moved onto it, which is now a tombstone.
    ``attributes`` (chmod, chown, utimens) carries the changed attributes' new values in
    ``attributes`` and their values before in ``old_attributes`` (only the keys that changed).
    ``create`` announces a symbolic link (with its ``target``) or special node.
    ``xattr`` says that the extended attribute ``xattr_name`` was ``set`` or ``removed``
    (``xattr_action``; the value itself never travels in the feed). ``link`` announces a new
    name ``path`` for the existing file ``node_id`` (a hard link): a ``write``, ``restore`` or
    rename over one name of a node changes what every name of that node shows. A ``delete`` of
    one name of a file that keeps other names carries ``nlink``, how many names it has left.
    An exchange (``rename`` with ``exchange``) is two ``rename`` events in one commit, one per
    side, each naming the other side's node in ``exchanged_with``: a follower swaps the two
    nodes on the first and finds the second already applied.
    """

    seq: int
    type: EventType
    node_id: str
    kind: NodeKind
    path: str
    at: datetime
    old_path: str | None = None
    version_id: str | None = None
    size: int | None = None
    content_hash: str | None = None
    replaced_node_id: str | None = None
    writer: Writer | None = None
    attributes: dict[str, int] | None = None
    old_attributes: dict[str, int] | None = None
    target: str | None = None
    xattr_name: str | None = None
    xattr_action: XattrAction | None = None
    nlink: int | None = None
    exchanged_with: str | None = None


class PullResponse(Model):
    """A page of the feed after a cursor.

    ``reset`` means the cursor is older than the retained log (or unknown): the client must
    reconcile its whole state with a listing and continue from ``cursor``.
    """

    events: list[ChangeEvent]
    cursor: int
    has_more: bool = False
    reset: bool = False


class StreamMessage(Model):
    """A message on the ``/sync/ws`` WebSocket (both directions).

    Client to server: ``{"type": "ping"}``. Server to client: ``hello`` (with the current
    ``cursor``), ``event``, ``caught_up`` (backlog replayed up to ``cursor``), ``reset``
    (the cursor is too old; reconcile then continue from ``cursor``), ``pong``, ``error``.
    """

    type: Literal["hello", "event", "caught_up", "reset", "ping", "pong", "error"]
    cursor: int | None = None
    event: ChangeEvent | None = None
    error: ErrorBody | None = None


# --- diffs and history --------------------------------------------------------------------------

ChangeStatus = Literal["created", "modified", "deleted", "renamed"]
NoTextReason = Literal["binary", "too_large"]


class DiffSide(Model):
    """One side of a diff: a version of the file, or no content (``version_id`` None: the file
    did not exist yet). ``media_type`` is a guess from the name and the bytes."""

    version_id: str | None = None
    size: int = 0
    content_hash: str | None = None
    media_type: str | None = None
    created_at: datetime | None = None
    writer: Writer | None = None


class FileDiff(Model):
    """The difference between two versions of one file (``old`` -> ``new``).

    ``unified`` is a unified diff (``---``/``+++`` headers, 3 lines of context) when both sides
    are UTF-8 text of at most ``text_limit`` bytes; otherwise it is None and ``no_text`` says
    why (``binary`` or ``too_large``): compare the sides' size, media type and hash instead.
    ``added``/``removed`` count changed lines (0 without a text diff); ``identical`` is true
    when both sides have the same content.
    """

    path: str
    node_id: str
    old: DiffSide
    new: DiffSide
    identical: bool
    unified: str | None = None
    added: int = 0
    removed: int = 0
    no_text: NoTextReason | None = None
    text_limit: int = 0


class FileChange(Model):
    """What happened to one file or directory over a stretch of history (its net effect).

    ``status``: ``created`` (did not exist before, exists now), ``deleted``, ``modified`` (new
    content at the same path) or ``renamed`` (at a new path, ``old_path``; ``content_changed``
    says whether its content changed too). ``old_version_id``/``version_id`` are the content
    before and after (files). ``added``/``removed`` are the changed lines of text content
    (None when not computed: binary, too large, or not a text modification). ``writers`` are
    everyone who changed it - a person's device or an agent token - in order of first change;
    ``first_seq``/``last_seq`` the feed range of those changes (None for a snapshot diff whose
    feed history was trimmed).
    """

    path: str
    node_id: str
    kind: NodeKind
    status: ChangeStatus
    old_path: str | None = None
    old_version_id: str | None = None
    version_id: str | None = None
    size: int | None = None
    content_changed: bool = False
    added: int | None = None
    removed: int | None = None
    writers: list[Writer] = []
    first_seq: int | None = None
    last_seq: int | None = None


class ChangeSummary(Model):
    """Everything that changed under ``path`` in the feed range ``(from_cursor, to_cursor]``,
    one entry per file or directory, sorted by path.

    ``history_trimmed`` is true when retention had already dropped part of the asked range
    (the summary then starts at the oldest retained change). ``has_more``: the range held more
    events than one answer covers; ask again with ``since_cursor = to_cursor`` for the rest.
    """

    path: str
    from_cursor: int
    to_cursor: int
    changes: list[FileChange]
    history_trimmed: bool = False
    has_more: bool = False


class SnapshotCreateRequest(Model):
    """Name the current state of the subtree at ``path``; names are unique per tenant."""

    path: str
    name: str


class Snapshot(Model):
    """A named point of the change feed for a subtree: the exact files, directories and
    versions live under ``path`` when it was taken (``cursor``), kept from retention."""

    snapshot_id: str
    name: str
    path: str
    node_id: str
    cursor: int
    created_at: datetime
    created_by: Writer | None = None
    files: int = 0
    directories: int = 0
    bytes: int = 0


class SnapshotList(Model):
    """Snapshots, newest first."""

    snapshots: list[Snapshot]


class SnapshotDiff(Model):
    """How the subtree differs now from a snapshot (snapshot -> now), one entry per file or
    directory, sorted by path; ``cursor`` is the feed position of "now"."""

    snapshot: Snapshot
    cursor: int
    changes: list[FileChange]


class SnapshotRestoreResult(Model):
    """What a restore did, in one atomic commit.

    ``undo`` is the snapshot taken automatically just before (``before-restore-<name>-<seq>``):
    restoring it undoes this restore. ``changes`` is what the restore changed (as a diff from
    the state before it); ``cursor`` the feed position after it.
    """

    snapshot: Snapshot
    undo: Snapshot
    cursor: int
    changes: list[FileChange]


# --- auth ---------------------------------------------------------------------------------------


class DeviceStartRequest(Model):
    client_name: str = "meshfs"
    scope: str | None = None


class DeviceStartResponse(Model):
    """RFC 8628 section 3.2 device authorization response."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int


class DevicePollRequest(Model):
    device_code: str


class DeviceActivateRequest(Model):
    user_code: str
    approve: bool = True


class TokenResponse(Model):
    """RFC 6749 section 5.1 token response, plus who the token speaks for."""

    access_token: str
    expires_in: int
    user_id: str
    tenant_id: str
    session_id: str
    token_type: str = "Bearer"
    refresh_token: str | None = None
    scope: str | None = None


class RefreshRequest(Model):
    refresh_token: str


class LogoutRequest(Model):
    refresh_token: str | None = None


class Whoami(Model):
    """Who a token speaks for, and through what: a signed-in device or an agent token.

    ``session_name`` is the device's client name or the agent token's name; an agent token is
    confined to ``path_prefix`` with ``access`` and ends at ``expires_at``.
    """

    user_id: str
    username: str
    tenant_id: str
    tenant_name: str
    scope: str
    session_id: str | None = None
    kind: Literal["device", "agent"] = "device"
    session_name: str | None = None
    path_prefix: str = "/"
    access: Literal["read", "write"] = "write"
    expires_at: datetime | None = None


# --- agents (MCP) -------------------------------------------------------------------------------


class ToolCallRecord(Model):
    """One MCP tool call, for the audit log (``POST /audit/tool-calls``): the tool's name,
    the path it was called on, and ``ok`` or ``error:<code>``."""

    tool: str
    target: str | None = None
    outcome: str = "ok"


# --- service ------------------------------------------------------------------------------------


class Health(Model):
    status: Literal["ok", "degraded", "unavailable"]
    version: str
    checks: dict[str, str] = {}


json_encoder = msgspec.json.Encoder()


def encode(value: Any) -> bytes:
    """Encode a model (or plain data) as JSON bytes."""
    return json_encoder.encode(value)


def decode(data: bytes | str, model: type[Any]) -> Any:
    """Decode JSON *data* into *model*; raises :class:`msgspec.ValidationError` on bad input."""
    return msgspec.json.decode(data, type=model)
