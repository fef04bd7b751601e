"""POSIX attributes of nodes: their defaults and bounds, and the times the server maintains.

The server stores what clients set - ``mode``, ``uid``, ``gid``, ``mtime_ns``, ``atime_ns`` -
and does not enforce permissions (tenants and tokens do; the kernel does in a mount). It keeps
``ctime_ns`` itself, as POSIX says: every change of a node (content, attributes, a new name)
sets it to now. A directory's ``mtime_ns`` and ``ctime_ns`` move when an entry is added to it,
removed from it or renamed in it. ``modified_at`` is ``mtime_ns`` in seconds.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from meshfs_common.errors import BadRequestError, NameTooLongError
from meshfs_common.models import AttributesRequest, NodeKind
from meshfs_server.domain.ports import NodeRow, WriteTx

#: Permission bits with setuid, setgid and sticky; file-type bits are the node's ``kind``.
MAX_MODE = 0o7777
FILE_MODE = 0o644
DIR_MODE = 0o755
SYMLINK_MODE = 0o777
#: A symbolic link's target: at most this many bytes of UTF-8 (Linux's PATH_MAX).
MAX_TARGET_BYTES = 4096
_MAX_OWNER = 2**32 - 1
_TIME_RANGE = 2**63  # integer nanoseconds fit a signed 64-bit column
_MAX_RDEV = 2**63 - 1


@dataclass(frozen=True, slots=True)
class FileAttributes:
    """What a writer may give a file with its content: the mode of a new file, the mtime of
    the new version (None: the defaults)."""

    mode: int | None = None
    mtime_ns: int | None = None


#: The attributes of :class:`~meshfs_common.models.AttributesRequest`, in wire order.
SETTABLE = ("mode", "uid", "gid", "mtime_ns", "atime_ns")


def now_ns() -> int:
    """The current time in integer nanoseconds since the epoch."""
    return time.time_ns()


def check_mode(mode: int) -> int:
    if not 0 <= mode <= MAX_MODE:
        raise BadRequestError(
            f"mode must be between 0 and 0o7777 (permission bits only), not {mode:#o}"
        )
    return mode


def check_owner(value: int, what: str) -> int:
    if not 0 <= value <= _MAX_OWNER:
        raise BadRequestError(f"{what} must be between 0 and {_MAX_OWNER}, not {value}")
    return value


def check_time(value: int, what: str) -> int:
    if not -_TIME_RANGE < value < _TIME_RANGE:
        raise BadRequestError(f"{what} must fit a signed 64-bit count of nanoseconds")
    return value


def check_target(target: str) -> str:
    """A symbolic link's target as given (never normalised: the server does not follow it)."""
    size = len(target.encode("utf-8", "surrogatepass"))
    if size == 0:
        raise BadRequestError("a symbolic link needs a non-empty target")
    if size > MAX_TARGET_BYTES:
        raise NameTooLongError(
            f"the symbolic link target is {size} bytes; at most {MAX_TARGET_BYTES} are allowed"
        )
    if "\0" in target:
        raise BadRequestError("a symbolic link target cannot contain NUL")
    return target


def check_rdev(rdev: int) -> int:
    if not 0 <= rdev <= _MAX_RDEV:
        raise BadRequestError(f"rdev must be between 0 and {_MAX_RDEV}, not {rdev}")
    return rdev


def default_mode(kind: NodeKind) -> int:
    if kind == "dir":
        return DIR_MODE
    return SYMLINK_MODE if kind == "symlink" else FILE_MODE


def new_node(
    node_id: str,
    parent: NodeRow,
    name: str,
    kind: NodeKind,
    at_ns: int,
    *,
    mode: int | None = None,
    uid: int | None = None,
    gid: int | None = None,
    target: str | None = None,
    rdev: int = 0,
) -> NodeRow:
    """A node about to be inserted under *parent*: the given attributes (checked) or the
    defaults - the kind's mode, the server process's uid and gid - with every time *at_ns*."""
    return NodeRow(
        node_id, parent.node_id, name, kind, at_ns / 1e9, at_ns / 1e9,
        mode=check_mode(default_mode(kind) if mode is None else mode),
        uid=os.getuid() if uid is None else check_owner(uid, "uid"),
        gid=os.getgid() if gid is None else check_owner(gid, "gid"),
        mtime_ns=at_ns, atime_ns=at_ns, ctime_ns=at_ns, target=target, rdev=check_rdev(rdev),
    )  # fmt: skip


def head_attributes(node: NodeRow) -> dict[str, int]:
    """What a ``write`` or ``restore`` event carries in ``attributes``: the file's mode and
    mtime with its new head, so a follower needs no second request for them."""
    return {"mode": node.mode, "mtime_ns": node.mtime_ns}


def set_mtime(node: NodeRow, mtime_ns: int) -> None:
    node.mtime_ns = mtime_ns
    node.modified_at = mtime_ns / 1e9


async def entries_changed(tx: WriteTx, directory: NodeRow, at_ns: int) -> None:
    """An entry of *directory* was added, removed or renamed: its mtime and ctime move."""
    set_mtime(directory, at_ns)
    directory.ctime_ns = at_ns
    await tx.save_attributes(directory)


async def changed(tx: WriteTx, node: NodeRow, at_ns: int) -> None:
    """*node* itself changed (a new name, a new head): its ctime moves."""
    node.ctime_ns = at_ns
    await tx.save_attributes(node)


def validated(request: AttributesRequest) -> dict[str, int]:
    """The attributes *request* sets, each checked."""
    wanted: dict[str, int] = {}
    if request.mode is not None:
        wanted["mode"] = check_mode(request.mode)
    if request.uid is not None:
        wanted["uid"] = check_owner(request.uid, "uid")
    if request.gid is not None:
        wanted["gid"] = check_owner(request.gid, "gid")
    if request.mtime_ns is not None:
        wanted["mtime_ns"] = check_time(request.mtime_ns, "mtime_ns")
    if request.atime_ns is not None:
        wanted["atime_ns"] = check_time(request.atime_ns, "atime_ns")
    if not wanted:
        raise BadRequestError(f"give at least one of {', '.join(SETTABLE)}")
    return wanted


Changes = tuple[dict[str, int], dict[str, int]]


def apply(node: NodeRow, wanted: dict[str, int], at_ns: int) -> Changes:
    """Set *wanted* on *node*; returns the attributes that changed, new values and old
    values. When something changed, ctime moves to *at_ns*; setting the values a node already
    has changes nothing (no event, like content identical to the head)."""
    new: dict[str, int] = {}
    old: dict[str, int] = {}
    for name, value in wanted.items():
        before = int(getattr(node, name))
        if before != value:
            new[name], old[name] = value, before
    if "mode" in new:
        node.mode = new["mode"]
    if "uid" in new:
        node.uid = new["uid"]
    if "gid" in new:
        node.gid = new["gid"]
    if "mtime_ns" in new:
        set_mtime(node, new["mtime_ns"])
    if "atime_ns" in new:
        node.atime_ns = new["atime_ns"]
    if new:
        node.ctime_ns = at_ns
    return new, old
