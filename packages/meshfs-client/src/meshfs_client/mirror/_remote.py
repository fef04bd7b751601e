"""The remote side: the server's tree under the mirrored root, kept current from the feed.

:class:`RemoteTree` owns the ``remote`` table of the state database. It is filled by a listing
(:meth:`relist`, on the first run and after the feed answers ``reset``) and then changed only by
:meth:`apply`, one change event at a time, in feed order. Each application reports which paths
it touched, so the engine knows what to reconcile, and recognises renames so they can be
mirrored as renames.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from meshfs_client._client import MeshFSClient
from meshfs_client.mirror._model import RemoteNode, link_hash
from meshfs_client.mirror._state import StateDB
from meshfs_common import paths
from meshfs_common.errors import NotFoundError
from meshfs_common.models import ChangeEvent, Entry


@dataclass(slots=True)
class Applied:
    """What one change event did to the remote tree."""

    touched: set[str] = field(default_factory=set)
    renamed: tuple[str, str] | None = None
    """``(old, new)`` mirror paths when the event moved something within the mirror."""
    walk: str | None = None
    """A directory that moved into the mirror from outside: its contents must be listed."""
    exchanged: tuple[str, str] | None = None
    """``(one, other)`` mirror paths whose nodes the event swapped (a rename with exchange)."""


def node_of(entry: Entry) -> RemoteNode | None:
    """The mirror's record of *entry*; None for kinds the mirror leaves alone (FIFOs, sockets,
    devices), as it leaves local ones alone."""
    if entry.kind == "file":
        return RemoteNode(
            "file",
            entry.node_id,
            entry.version_id,
            entry.content_hash,
            entry.size,
            entry.mode,
            entry.mtime_ns,
        )
    if entry.kind == "dir":
        return RemoteNode("dir", entry.node_id, entry.version_id, entry.content_hash, entry.size)
    if entry.kind == "symlink" and entry.target is not None:
        return RemoteNode("symlink", entry.node_id, content_hash=link_hash(entry.target))
    return None


class RemoteTree:
    """The server's tree below *root* (a canonical remote path), in mirror paths."""

    def __init__(self, state: StateDB, root: str) -> None:
        self.state = state
        self.root = paths.normalise(root)

    def rel(self, remote_path: str | None) -> str | None:
        """The mirror path of a remote path (``None`` when outside the mirrored root)."""
        if remote_path is None or not paths.is_within(remote_path, self.root):
            return None
        return paths.relative_to(remote_path, self.root)

    def remote_path(self, rel: str) -> str:
        """The remote path of a mirror path."""
        if rel == "/":
            return self.root
        return (self.root if self.root != "/" else "") + rel

    async def relist(self, client: MeshFSClient, below: str = "/") -> set[str]:
        """Replace the subtree *below* with a fresh listing; returns every path it touched."""
        fresh: dict[str, RemoteNode] = {}
        start = self.remote_path(below)
        try:
            top = await client.meta(start)
        except NotFoundError:
            top = None
        if top is not None and top.kind == "dir":
            async for entry in client.walk(start):
                rel = self.rel(entry.path)
                node = node_of(entry)
                if rel is not None and node is not None:
                    fresh[rel] = node
        touched = set(self.state.remote_below(below)) | set(fresh)
        if below != "/":
            touched.add(below)
            self.state.drop_remote(below)
            if top is not None and (node := node_of(top)) is not None:
                self.state.set_remote(below, node)
        else:
            self.state.clear_remote()
            if top is not None and (node := node_of(top)) is not None:
                self.state.set_remote("/", node)
        for rel, node in fresh.items():
            self.state.set_remote(rel, node)
        return touched

    def apply(self, event: ChangeEvent) -> Applied:
        """Apply one event (in feed order)."""
        done = Applied()
        new = self.rel(event.path)
        old = self.rel(event.old_path) if event.type == "rename" else None
        if event.type == "rename":
            # Applying a rename must be idempotent: the tree may already show it (our own
            # rename, or an event replayed after a restart), and the old path may already hold
            # something else.
            if event.exchanged_with is not None and old is not None and new is not None:
                return self._exchange(event, old, new)
            moving = {event.node_id, event.replaced_node_id}
            here = self.state.remote.get(old) if old is not None else None
            if old is not None:
                done.touched.update(p for p in self.state.remote if _within(p, old))
            if old is not None and here is not None and here.node_id in moving:
                if new is not None:
                    self.state.move_remote(old, new)
                    done.renamed = (old, new)
                else:
                    self.state.drop_remote(old)
            if new is not None:
                there = self.state.remote.get(new)
                if event.kind == "file":
                    if event.exchanged_with is not None:
                        self.state.drop_remote(new)  # the other node's subtree left this name
                    self.state.set_remote(new, _from_event(event, self.state.remote.get(new)))
                elif event.kind == "symlink":
                    if there is None or there.node_id != event.node_id:
                        self.state.drop_remote(new)
                        done.walk = new  # the event does not carry the target: look it up
                elif event.kind != "dir":  # a special node took the name: not mirrored
                    self.state.drop_remote(new)
                elif there is None or there.node_id != event.node_id:
                    self.state.drop_remote(new)
                    self.state.set_remote(new, RemoteNode("dir", event.node_id))
                    done.walk = new
                done.touched.update(p for p in self.state.remote if _within(p, new))
                done.touched.add(new)
            return done
        if new is None or event.type == "xattr":
            return done  # extended attributes are not mirrored
        if event.type == "attributes":
            return self._attributes(event, new)
        done.touched.add(new)
        if event.type == "create":  # a symbolic link (special nodes are not mirrored)
            if event.kind == "symlink" and event.target is not None:
                self.state.drop_remote(new)
                self.state.set_remote(
                    new, RemoteNode("symlink", event.node_id, content_hash=link_hash(event.target))
                )
            return done
        if event.type == "delete":
            done.touched.update(self.state.drop_remote(new))
        elif event.type == "mkdir":
            self.state.set_remote(new, RemoteNode("dir", event.node_id))
        else:  # write, restore
            self.state.set_remote(new, _from_event(event))
        return done

    def _exchange(self, event: ChangeEvent, old: str, new: str) -> Applied:
        """Both sides of an exchange lie in the mirror: swap the two subtrees on the first of
        its two events; the second finds the swap already made."""
        done = Applied()
        here, there = self.state.remote.get(old), self.state.remote.get(new)
        done.touched.update(p for p in self.state.remote if _within(p, old) or _within(p, new))
        done.touched.update((old, new))
        if here is not None and here.node_id == event.node_id:
            if there is not None and there.node_id == event.exchanged_with:
                self.state.swap_remote(old, new)
                done.exchanged = (old, new)
            else:  # the tree did not hold the other node there: take the event as it says
                self.state.move_remote(old, new)
        elif there is None or there.node_id != event.node_id:
            # Neither side as expected (events replayed after a relist): the next listing or
            # events settle it; record the node where the event puts it.
            self.state.drop_remote(new)
            if event.kind == "file":
                self.state.set_remote(new, _from_event(event))
            elif event.kind == "dir":
                self.state.set_remote(new, RemoteNode("dir", event.node_id))
                done.walk = new
        if event.kind == "file":  # refresh the head the event names
            self.state.set_remote(new, _from_event(event, self.state.remote.get(new)))
        done.touched.update(p for p in self.state.remote if _within(p, new) or _within(p, old))
        return done

    def _attributes(self, event: ChangeEvent, rel: str) -> Applied:
        """A file's mode or mtime changed (chmod, utimens): record the new values."""
        done = Applied()
        here = self.state.remote.get(rel)
        changed = event.attributes or {}
        if here is None or here.kind != "file" or here.node_id != event.node_id:
            return done
        mode = changed.get("mode", here.mode)
        mtime_ns = changed.get("mtime_ns", here.mtime_ns)
        if (mode, mtime_ns) != (here.mode, here.mtime_ns):
            self.state.set_remote(rel, dataclasses.replace(here, mode=mode, mtime_ns=mtime_ns))
            done.touched.add(rel)
        return done

    def set_from_entry(self, rel: str, entry: Entry | None) -> None:
        """Overwrite one path with what the server just said about it (``None``: gone)."""
        current = self.state.remote.get(rel)
        if entry is None or current is None or current.kind != entry.kind or node_of(entry) is None:
            self.state.drop_remote(rel)
        node = None if entry is None else node_of(entry)
        if node is not None:
            self.state.set_remote(rel, node)


def _from_event(event: ChangeEvent, previous: RemoteNode | None = None) -> RemoteNode:
    """The file an event names. Its mode and mtime are the ones a write or restore event
    carries with the new head, else kept from *previous* when that is the same version (a
    rename), otherwise unknown until a listing or download says."""
    given = event.attributes if event.type in ("write", "restore") else None
    mode: int | None
    mtime_ns: int | None
    if given is not None and "mode" in given and "mtime_ns" in given:
        mode, mtime_ns = given["mode"], given["mtime_ns"]
    elif (
        previous is not None
        and previous.node_id == event.node_id
        and previous.version_id == event.version_id
    ):
        mode, mtime_ns = previous.mode, previous.mtime_ns
    else:
        mode = mtime_ns = None
    return RemoteNode(
        "file", event.node_id, event.version_id, event.content_hash, event.size or 0, mode,
        mtime_ns,
    )  # fmt: skip


def _within(path: str, rel: str) -> bool:
    return rel == "/" or path == rel or path.startswith(rel + "/")
