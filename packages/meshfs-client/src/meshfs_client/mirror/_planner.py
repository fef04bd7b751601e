"""The planner: one pure decision per path from its local, remote and synced states.

It is the whole sync rule set in one function with no I/O, so it can be tested exhaustively
(see ``tests/test_mirror_planner.py``). The engine calls it again after every step it takes,
so a step only has to move the path closer to agreement: e.g. a file replaced by a directory
remotely is first deleted locally (one step), then created as a directory (the next).

"Changed" means changed since the last sync (the synced state is the merge base):

* a local file changed when its stat (size, mtime, inode) differs and its content hash differs;
* a remote file changed when its content hash differs (a new version with identical content
  is not a change, but the synced version id is refreshed so preconditions stay exact).

A file whose content agrees may still differ in its *attributes*, the executable bits and the
mtime: one side's attribute-only change (chmod, touch, utimens) is applied to the other side
without moving content (``attributes_remote`` / ``attributes_local``; when both sides changed
them, the local ones win). Attributes are compared only once a file has been transferred with
them (a synced row with ``exec_bits``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from meshfs_client.mirror._conflicts import ConflictPolicy
from meshfs_client.mirror._model import EXEC_BITS, LocalNode, RemoteNode, SyncedNode

ActionKind = Literal[
    "nothing",  # both sides agree with the synced state
    "record",  # both sides agree with each other: record that as synced (or forget the path)
    "upload",  # send the local file (If-Match remote version, or If-None-Match: *)
    "download",  # fetch the remote version into place (atomically, unless the file moved on)
    "mkdir_local",
    "mkdir_remote",
    "delete_local",  # remove the local file or directory (only what is unchanged)
    "delete_remote",  # delete on the server (If-Match the synced version / directory id)
    "keep_both",  # move the local file to a conflict copy (then the remote one is downloaded)
    "move_local_aside",  # a local file stands where the remote has a directory
    "move_remote_aside",  # a remote file stands where the local side has a directory
    "attributes_remote",  # send the local executable bits and mtime (no content)
    "attributes_local",  # apply the server's executable bits and mtime to the local file
    "link_local",  # make (or replace) the local symbolic link with the server's target
    "link_remote",  # make the server's symbolic link (replacing what is there: If-Match)
]


@dataclass(frozen=True, slots=True)
class Action:
    """One step for one path."""

    kind: ActionKind
    if_match: str | None = None
    """Upload/delete_remote precondition: the version id (file) or node id (directory)."""
    if_none_match: bool = False
    """Upload precondition: the path must not exist on the server."""


NOTHING = Action("nothing")
RECORD = Action("record")


def local_changed(local: LocalNode | None, synced: SyncedNode | None) -> bool:
    """Has the local side moved away from the synced state?"""
    if local is None or synced is None:
        return (local is None) != (synced is None)
    if local.kind != synced.kind:
        return True
    if local.kind == "dir" or local.same_stat(synced):
        return False
    return local.content_hash != synced.content_hash


def remote_changed(remote: RemoteNode | None, synced: SyncedNode | None) -> bool:
    """Has the server side moved away from the synced state?"""
    if remote is None or synced is None:
        return (remote is None) != (synced is None)
    if remote.kind != synced.kind:
        return True
    if remote.kind == "dir":
        return False
    return remote.content_hash != synced.content_hash


def agree(local: LocalNode | None, remote: RemoteNode | None) -> bool:
    """Do both sides hold the same thing (nothing, a directory, or the same content)?"""
    if local is None or remote is None:
        return local is None and remote is None
    if local.kind != remote.kind:
        return False
    return local.kind == "dir" or (
        local.content_hash is not None and local.content_hash == remote.content_hash
    )


def needs_record(
    local: LocalNode | None, remote: RemoteNode | None, synced: SyncedNode | None
) -> bool:
    """Unchanged on both sides, but the synced row is stale (new stat or version id)."""
    if synced is None or local is None or remote is None:
        return False
    if local.kind != "dir" and not local.same_stat(synced):
        return True
    if local.kind == "dir" and local.inode != synced.inode:
        return True  # another directory now stands here (the engine looked below it)
    if remote.kind == "file" and remote.version_id != synced.version_id:
        return True
    return remote.node_id != synced.node_id


def attributes_action(
    local: LocalNode | None, remote: RemoteNode | None, synced: SyncedNode | None
) -> Action | None:
    """For a file whose content agrees: the step that brings the executable bits and mtime of
    one side to the other (``None``: they agree, or are not compared for this file)."""
    if (
        local is None or remote is None or synced is None or synced.exec_bits is None
        or local.kind != "file" or remote.kind != "file" or synced.kind != "file"
    ):  # fmt: skip
        return None
    local_moved = local.mode & EXEC_BITS != synced.exec_bits or local.mtime_ns != synced.mtime_ns
    remote_moved = (remote.mode is not None and remote.mode & EXEC_BITS != synced.exec_bits) or (
        remote.mtime_ns is not None and remote.mtime_ns != synced.mtime_ns
    )
    if not local_moved and not remote_moved:
        return None
    if remote_attributes_equal(remote, local):
        return RECORD  # both sides made the same change
    if local_moved:
        return Action("attributes_remote", if_match=remote.version_id)
    return Action("attributes_local")


def remote_attributes_equal(remote: RemoteNode, local: LocalNode) -> bool:
    """The server's executable bits and mtime are known and equal the local file's."""
    return (
        remote.mode is not None
        and remote.mtime_ns is not None
        and remote.mode & EXEC_BITS == local.mode & EXEC_BITS
        and remote.mtime_ns == local.mtime_ns
    )


def plan(
    local: LocalNode | None,
    remote: RemoteNode | None,
    synced: SyncedNode | None,
    policy: ConflictPolicy = ConflictPolicy.LWW,
) -> Action:
    """The next step for one path.

    *local* must carry its ``content_hash`` whenever it is a file whose stat differs from
    *synced* (or when there is no synced file), otherwise a changed file looks unchanged.
    """
    lc = local_changed(local, synced)
    rc = remote_changed(remote, synced)
    if not lc and not rc:
        attributes = attributes_action(local, remote, synced)
        if attributes is not None:
            return attributes
        return RECORD if needs_record(local, remote, synced) else NOTHING
    if agree(local, remote):
        return RECORD
    if not lc:
        return _remote_only(local, remote)
    if not rc:
        return _local_only(local, remote, synced)
    return _both(local, remote, policy)


def _remote_only(local: LocalNode | None, remote: RemoteNode | None) -> Action:
    # The local side still equals the synced state: follow the server.
    if remote is None:
        return Action("delete_local")
    if local is not None and local.kind != remote.kind:
        return Action("delete_local")  # then create the new kind on the next step
    if remote.kind == "dir":
        return Action("mkdir_local")
    return Action("link_local") if remote.kind == "symlink" else Action("download")


def _tag(remote: RemoteNode) -> str | None:
    """The If-Match of a change to *remote*: a file's version, a directory's or link's node."""
    return remote.version_id if remote.kind == "file" else remote.node_id


def _local_only(
    local: LocalNode | None, remote: RemoteNode | None, synced: SyncedNode | None
) -> Action:
    # The server still equals the synced state: send the local change.
    if local is None or (remote is not None and remote.kind != local.kind):
        # The precondition names the head we know (a same-content newer version counts).
        assert remote is not None  # unchanged remote with a synced entry
        return Action("delete_remote", if_match=_tag(remote))
    if local.kind == "dir":
        return Action("mkdir_remote")
    if local.kind == "symlink":
        return Action("link_remote", if_match=None if remote is None else _tag(remote))
    if remote is None:
        return Action("upload", if_none_match=True)
    return Action("upload", if_match=remote.version_id)


def _both(local: LocalNode | None, remote: RemoteNode | None, policy: ConflictPolicy) -> Action:
    # Both sides changed and disagree.
    if local is None:
        assert remote is not None
        # An edit (or a new directory) on the server beats a local delete.
        return _remote_only(None, remote)
    if remote is None:
        # A local edit beats a remote delete: the file comes back as a new node.
        if local.kind == "symlink":
            return Action("link_remote")
        return (
            Action("mkdir_remote") if local.kind == "dir" else Action("upload", if_none_match=True)
        )
    if "dir" not in (local.kind, remote.kind) and "symlink" in (local.kind, remote.kind):
        # A link on one side, a file or another link on the other: the local one wins (a
        # local file goes up as a new node once the server's link is gone).
        if local.kind == "symlink":
            return Action("link_remote", if_match=_tag(remote))
        return Action("delete_remote", if_match=_tag(remote))
    if local.kind == "file" and remote.kind == "file":
        if policy is ConflictPolicy.KEEP_BOTH:
            return Action("keep_both")
        # Last writer wins by commit order: commit the local content on top of the head we
        # know; the remote content stays in history as the version it replaces.
        return Action("upload", if_match=remote.version_id)
    if local.kind != "dir":
        return Action("move_local_aside")  # the directory keeps the name
    return Action("move_remote_aside")
