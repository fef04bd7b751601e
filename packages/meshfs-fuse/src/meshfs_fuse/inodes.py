"""The inode table: which kernel inode stands for which MeshFS node, and where it sits.

Invariants (kept by every method here):

* An inode number stands for one node within one mount: a node the kernel forgot gets its
  number back at its next lookup (a bounded LRU remembers node id -> number), and a number is
  never given to another node (new ones come from a 64-bit counter). So the generation is the
  same for all of them: the time the mount started, which tells an NFS re-export apart from
  an earlier mount. A file renamed over another keeps its number although it then stands
  for the target's node (the server keeps the target's identity and history): ``stat`` shows
  what rename(2) promises, the moved file's inode at the new name.
* ``by_node`` maps a node id to the one *attached* inode that stands for it. A node id appears
  once: a node that moves keeps its inode.
* An attached inode has ``parent`` and ``name`` and is in its parent's ``children``; a
  *detached* inode (unlinked, or replaced by a rename) has ``parent is None`` and stays only
  while the kernel still holds it (lookup count) or a file handle has it open.
* An inode is freed when its lookup count and open count are both zero - never earlier, so an
  unlinked open file stays readable until its last release.
* A *pending* inode is a file created here whose first version is not committed yet: it has
  no node id and no entry.

A directory may carry ``listing``: every name the server holds in it, kept current by this
mount's own operations and the change feed, so a lookup of a missing name is answered without
a request. Negative entries (names known not to exist) for other directories live in a small
bounded LRU, and so do the names the change feed removed (an entry fetched before the removal
is not attached again).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyfuse3

from meshfs_common.errors import NameTooLongError, NotFoundError
from meshfs_common.models import Entry
from meshfs_common.paths import MAX_PATH_BYTES

__all__ = ["ROOT", "Inode", "InodeTable", "NegativeEntries", "RemovedNames"]

ROOT = pyfuse3.ROOT_INODE


@dataclass(eq=False, slots=True)
class Inode:
    """One inode of the mount."""

    ino: int
    is_dir: bool
    parent: int | None
    name: str
    entry: Entry | None = None
    lookups: int = 0
    opens: int = 0
    children: dict[str, int] = field(default_factory=dict)
    listing: dict[str, Entry] | None = None
    cached_version: str | None = None
    """The version whose pages the kernel may still cache (``keep_cache`` at open)."""
    stale: bool = False
    """The change feed said the entry changed in a way it does not describe (a link count):
    the next ``getattr`` asks the server."""
    created_with: dict[str, int] | None = None
    """``mode``/``uid``/``gid`` of a file created here, until its first commit sets them."""

    @property
    def node_id(self) -> str | None:
        """The MeshFS node this inode stands for (``None`` while pending)."""
        return self.entry.node_id if self.entry is not None else None

    @property
    def attached(self) -> bool:
        return self.parent is not None or self.ino == ROOT


class NegativeEntries:
    """A bounded LRU of ``(directory inode, name)`` pairs known not to exist."""

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._names: OrderedDict[tuple[int, str], None] = OrderedDict()

    def __contains__(self, key: tuple[int, str]) -> bool:
        if key in self._names:
            self._names.move_to_end(key)
            return True
        return False

    def __len__(self) -> int:
        return len(self._names)

    def add(self, parent: int, name: str) -> None:
        self._names[(parent, name)] = None
        self._names.move_to_end((parent, name))
        while len(self._names) > self._capacity:
            self._names.popitem(last=False)

    def discard(self, parent: int, name: str) -> None:
        self._names.pop((parent, name), None)

    def clear(self) -> None:
        self._names.clear()


class RemovedNames:
    """A bounded LRU of names the change feed removed: ``(directory inode, name)`` -> node id.

    An entry fetched from the server before such a removal (a listing behind an open directory
    handle, a lookup answered while the delete was being applied) still shows the node there;
    attaching it would bring the removed name back, and no later event would remove it again.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._names: OrderedDict[tuple[int, str], str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._names)

    def add(self, parent: int, name: str, node_id: str) -> None:
        self._names[(parent, name)] = node_id
        self._names.move_to_end((parent, name))
        while len(self._names) > self._capacity:
            self._names.popitem(last=False)

    def discard(self, parent: int, name: str) -> None:
        self._names.pop((parent, name), None)

    def gone(self, parent: int, name: str, node_id: str) -> bool:
        """Whether the feed removed *node_id* from *name* in *parent* (and nothing came since)."""
        return self._names.get((parent, name)) == node_id

    def clear(self) -> None:
        self._names.clear()


class InodeTable:
    """node id <-> inode, the tree of known names, lookup and open counts."""

    def __init__(
        self, root: Entry, *, generation: int | None = None, numbers_capacity: int = 1 << 18
    ) -> None:
        self.generation = generation if generation is not None else time.time_ns() // 1000
        self._inodes: dict[int, Inode] = {ROOT: Inode(ROOT, True, None, "", root, lookups=1)}
        self._by_node: dict[str, int] = {root.node_id: ROOT}
        self._next = ROOT + 1
        self._numbers: OrderedDict[str, int] = OrderedDict()
        self._numbers_capacity = numbers_capacity
        self.negative = NegativeEntries()
        self.removed = RemovedNames()

    def __len__(self) -> int:
        return len(self._inodes)

    def __iter__(self) -> Iterator[Inode]:
        return iter(list(self._inodes.values()))

    def get(self, ino: int) -> Inode:
        """The inode *ino*; :class:`NotFoundError` (``ENOENT``) if it was freed."""
        try:
            return self._inodes[ino]
        except KeyError:
            raise NotFoundError(f"inode {ino} is not known") from None

    def find(self, ino: int) -> Inode | None:
        return self._inodes.get(ino)

    def by_node(self, node_id: str) -> Inode | None:
        """The attached inode standing for *node_id*, if any."""
        ino = self._by_node.get(node_id)
        return self._inodes.get(ino) if ino is not None else None

    def child(self, parent: int, name: str) -> Inode | None:
        """The known inode named *name* in directory *parent*."""
        directory = self._inodes.get(parent)
        if directory is None:
            return None
        ino = directory.children.get(name)
        return self._inodes.get(ino) if ino is not None else None

    # --- paths --------------------------------------------------------------------------------

    def path_of(self, ino: int) -> str | None:
        """The MeshFS path of *ino*, or ``None`` if it (or a parent) is detached."""
        names: list[str] = []
        node = self._inodes.get(ino)
        while node is not None and node.ino != ROOT:
            if node.parent is None:
                return None
            names.append(node.name)
            node = self._inodes.get(node.parent)
        if node is None:
            return None
        return "/" + "/".join(reversed(names))

    def child_path(self, parent: int, name: str) -> str:
        """The path of *name* in directory *parent* (:class:`NotFoundError` if detached).

        Every name the mount sends to the server is built here, so a path the server cannot
        hold (over :data:`~meshfs_common.paths.MAX_PATH_BYTES` from the root) is refused at
        once with :class:`NameTooLongError` (``ENAMETOOLONG``), before anything is created.
        """
        base = self.path_of(parent)
        if base is None:
            raise NotFoundError("the directory was removed")
        path = f"{base.rstrip('/')}/{name}"
        if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
            raise NameTooLongError(f"path is longer than {MAX_PATH_BYTES} bytes")
        return path

    def resolve(self, path: str) -> Inode | None:
        """The known inode at *path*, walking known names from the root."""
        node = self._inodes[ROOT]
        for name in (part for part in path.split("/") if part):
            found = self.child(node.ino, name)
            if found is None:
                return None
            node = found
        return node

    # --- changes ------------------------------------------------------------------------------

    def attach(self, parent: int, name: str, entry: Entry) -> Inode:
        """Record that *entry* is at *name* in *parent*; return its inode (new or moved).

        Whatever else was known at that name is detached. An entry the change feed has removed
        from that name since it was fetched raises :class:`NotFoundError` (``ENOENT``).
        """
        if self.removed.gone(parent, name, entry.node_id):
            raise NotFoundError(f"no such file: {name} (removed)")
        node = self.by_node(entry.node_id)
        if node is None:
            node = Inode(self._number_for(entry.node_id), entry.kind == "dir", None, name, entry)
            self._inodes[node.ino] = node
            self._by_node[entry.node_id] = node.ino
        else:
            node.entry = entry
        self.place(node, parent, name)
        return node

    def add_pending(self, parent: int, name: str) -> Inode:
        """A new file at *name* in *parent* that has no node on the server yet (refused like
        :meth:`child_path` when the server could not hold its path)."""
        self.child_path(parent, name)
        node = Inode(self._number_for(None), False, None, name)
        self._inodes[node.ino] = node
        self.place(node, parent, name)
        return node

    def set_entry(self, node: Inode, entry: Entry) -> None:
        """*node* now stands for *entry* (after a commit, or a rename over another file)."""
        old = node.node_id
        if old is not None and self._by_node.get(old) == node.ino:
            del self._by_node[old]
        if old is not None and old != entry.node_id and self._numbers.get(old) == node.ino:
            del self._numbers[old]
        other = self.by_node(entry.node_id)
        if other is not None and other is not node:
            self.detach(other)
        node.entry = entry
        if node.attached:
            self._by_node[entry.node_id] = node.ino
            self._number(entry.node_id, node.ino)

    def place(self, node: Inode, parent: int, name: str) -> None:
        """Put *node* at *name* in *parent*, detaching whatever was there."""
        directory = self.get(parent)
        current = directory.children.get(name)
        if current is not None and current != node.ino:
            displaced = self._inodes.get(current)
            if displaced is not None:
                self.detach(displaced)
        if node.parent is not None:
            old_dir = self._inodes.get(node.parent)
            if old_dir is not None and old_dir.children.get(node.name) == node.ino:
                del old_dir.children[node.name]
        node.parent, node.name = parent, name
        directory.children[name] = node.ino
        if node.node_id is not None:
            self._by_node[node.node_id] = node.ino
            self._number(node.node_id, node.ino)
        self.negative.discard(parent, name)
        self.removed.discard(parent, name)

    def _number_for(self, node_id: str | None) -> int:
        """The inode number for a new inode of *node_id*: the one it had, if still free."""
        if node_id is not None:
            number = self._numbers.get(node_id)
            if number is not None and number not in self._inodes:
                return number
        number = self._next
        self._next += 1
        return number

    def _number(self, node_id: str, ino: int) -> None:
        self._numbers[node_id] = ino
        self._numbers.move_to_end(node_id)
        while len(self._numbers) > self._numbers_capacity:
            self._numbers.popitem(last=False)

    def exchange(self, a: Inode, b: Inode) -> None:
        """Swap the names of two attached inodes (``RENAME_EXCHANGE``)."""
        if a.parent is None or b.parent is None:
            raise NotFoundError("an exchanged name was removed")
        self.get(a.parent).children[a.name] = b.ino
        self.get(b.parent).children[b.name] = a.ino
        a.parent, a.name, b.parent, b.name = b.parent, b.name, a.parent, a.name

    def detach(self, node: Inode) -> None:
        """*node* no longer has a name (unlinked or replaced); free it if nobody holds it."""
        if node.ino == ROOT:
            return
        if node.parent is not None:
            directory = self._inodes.get(node.parent)
            if directory is not None and directory.children.get(node.name) == node.ino:
                del directory.children[node.name]
        node.parent = None
        if node.node_id is not None and self._by_node.get(node.node_id) == node.ino:
            del self._by_node[node.node_id]
        self._free_if_unused(node)

    def remember(self, node: Inode, count: int = 1) -> None:
        """The kernel now holds *count* more references (lookup, create, readdirplus)."""
        node.lookups += count

    def forget(self, ino: int, count: int) -> None:
        """The kernel dropped *count* references; never raises."""
        node = self._inodes.get(ino)
        if node is None or ino == ROOT:
            return
        node.lookups = max(0, node.lookups - count)
        self._free_if_unused(node)

    def opened(self, node: Inode) -> None:
        node.opens += 1

    def released(self, node: Inode) -> None:
        node.opens = max(0, node.opens - 1)
        self._free_if_unused(node)

    def _free_if_unused(self, node: Inode) -> None:
        if node.lookups > 0 or node.opens > 0 or node.ino == ROOT:
            return
        if node.children:
            # A directory the kernel forgot while it still knows children: they hold it.
            return
        self.detach_quietly(node)
        del self._inodes[node.ino]
        parent = self._inodes.get(node.parent) if node.parent is not None else None
        if parent is not None:
            self._free_if_unused(parent)

    def detach_quietly(self, node: Inode) -> None:
        """Remove *node* from its parent and from ``by_node`` without freeing anything."""
        if node.parent is not None:
            directory = self._inodes.get(node.parent)
            if directory is not None and directory.children.get(node.name) == node.ino:
                del directory.children[node.name]
        if node.node_id is not None and self._by_node.get(node.node_id) == node.ino:
            del self._by_node[node.node_id]
