"""The ``.meshfs`` directory at the mount root: file history and the mount's control file.

``.meshfs`` is not listed by ``readdir`` of the root (as ``.snapshot`` on NetApp), so ``ls -a``,
``cp -a``, ``rsync`` and ``du`` do not descend into it, but a lookup of it works
(``cd ~/MeshFS/.meshfs``). Inside it:

* ``versions/<path>/`` - for a directory of the tree, its names; for a file, a directory
  listing every version of that file as ``<created_at>_<version_id>`` (UTC ISO 8601 with
  microseconds, so names sort oldest first). Each is a read-only file whose content is that
  version's bytes, read through the chunk cache (keyed by content hash). Listings are asked of
  the server at each ``opendir`` and lookup, so a new version, from anywhere, shows at once.
* ``control`` - an empty file whose extended attributes show statistics
  (``meshfs.stats.*``) and set runtime options (``meshfs.option.*``), see :data:`STATS` and
  :data:`OPTIONS`.

Every change inside ``.meshfs`` is ``EROFS``. Virtual inodes are numbered from
:data:`FIRST_VIRTUAL` up, far from the inodes of nodes (counted from 2), and are freed when
the kernel forgets them, as node inodes are.
"""

from __future__ import annotations

import errno
import itertools
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC

import msgspec
import pyfuse3

from meshfs_common.errors import NotFoundError
from meshfs_common.models import Entry, Version
from meshfs_fuse.attributes import BLOCK_SIZE, Owner
from meshfs_fuse.content import ContentStore
from meshfs_fuse.inodes import ROOT, InodeTable
from meshfs_fuse.mount_state import MountState, fail

__all__ = [
    "FIRST_VIRTUAL",
    "META_DIR",
    "OPTIONS",
    "STATS",
    "VirtualNode",
    "VirtualTree",
    "parse_size",
    "version_name",
]

META_DIR = ".meshfs"
FIRST_VIRTUAL = 1 << 62
"""The first virtual inode number; node inodes count up from 2 and never get near it."""

STATS = (
    "meshfs.stats.cache_hits",
    "meshfs.stats.cache_misses",
    "meshfs.stats.cache_bytes",
    "meshfs.stats.spool_files",
    "meshfs.stats.spool_bytes",
    "meshfs.stats.uncommitted",
    "meshfs.stats.feed_cursor",
    "meshfs.stats.feed_state",
    "meshfs.stats.commits",
    "meshfs.stats.partial_commits",
)
OPTIONS = ("meshfs.option.cache_size", "meshfs.option.entry_ttl", "meshfs.option.attr_ttl")

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str) -> int:
    """A byte count from ``4096``, ``512M``, ``4G`` (``ValueError`` otherwise)."""
    text = text.strip().upper().removesuffix("B")
    unit = text[-1:] if text[-1:] in _UNITS and text[-1:] else ""
    number = int(text[: len(text) - len(unit)])
    if number < 0:
        raise ValueError("a size cannot be negative")
    return number * _UNITS[unit]


def version_name(version: Version) -> str:
    """The name of *version* in its file's versions directory (sorts oldest first)."""
    moment = version.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{moment}_{version.version_id}"


@dataclass(eq=False, slots=True)
class VirtualNode:
    """One inode of ``.meshfs``: a directory (``path`` of the tree mirrored, or a file's
    versions when ``file`` is set), the control file, or one version of a file."""

    ino: int
    kind: str  # "meta", "versions", "tree", "history", "version", "control"
    path: str = "/"
    file: Entry | None = None
    version: Version | None = None
    lookups: int = 0

    @property
    def is_dir(self) -> bool:
        return self.kind in ("meta", "versions", "tree", "history")

    @property
    def permanent(self) -> bool:
        return self.kind in ("meta", "versions", "control")


class VirtualTree:
    """The virtual inodes of ``.meshfs``, each stable for as long as the kernel holds it."""

    def __init__(self) -> None:
        self._next = itertools.count(FIRST_VIRTUAL + 3)
        self.meta = VirtualNode(FIRST_VIRTUAL, "meta")
        self.versions = VirtualNode(FIRST_VIRTUAL + 1, "versions")
        self.control = VirtualNode(FIRST_VIRTUAL + 2, "control")
        self._nodes = {n.ino: n for n in (self.meta, self.versions, self.control)}
        self._keys: dict[tuple[str, str], int] = {}

    @staticmethod
    def owns(ino: int) -> bool:
        """Whether *ino* is a virtual inode."""
        return ino >= FIRST_VIRTUAL

    def get(self, ino: int) -> VirtualNode:
        node = self._nodes.get(ino)
        if node is None:
            raise NotFoundError(f"inode {ino} is not known")
        return node

    def __len__(self) -> int:
        return len(self._nodes)

    def node(
        self, kind: str, path: str, file: Entry | None = None, version: Version | None = None
    ) -> VirtualNode:
        """The inode for *kind* at *path* (one version: its id), made if not held now."""
        key = (kind, version.version_id if version is not None else path)
        ino = self._keys.get(key)
        found = self._nodes.get(ino) if ino is not None else None
        if found is not None:
            found.file, found.version = file or found.file, version or found.version
            return found
        made = VirtualNode(next(self._next), kind, path, file, version)
        self._nodes[made.ino] = made
        self._keys[key] = made.ino
        return made

    def forget(self, ino: int, count: int) -> None:
        """The kernel dropped *count* references; never raises."""
        node = self._nodes.get(ino)
        if node is None:
            return
        node.lookups = max(0, node.lookups - count)
        if node.lookups == 0 and not node.permanent:
            del self._nodes[ino]
            key = (node.kind, node.version.version_id if node.version else node.path)
            if self._keys.get(key) == ino:
                del self._keys[key]


class HistoryView(MountState):
    """Answers for the virtual inodes; the handlers ask :meth:`_virtual_*` first."""

    def __init__(
        self,
        table: InodeTable,
        store: ContentStore,
        owner: Owner,
        *,
        read_only: bool = False,
        ttl: float = 60.0,
    ) -> None:
        super().__init__(table, store, owner, read_only=read_only, ttl=ttl)
        self.virtual = VirtualTree()
        self.feed_state: Callable[[], str] = lambda: "online"
        """Whether the change feed is connected (set by the daemon)."""
        self._virtual_dirs: dict[int, list[tuple[str, VirtualNode]]] = {}
        self._virtual_files: dict[int, VirtualNode] = {}

    def _virtual_reply(self, node: VirtualNode) -> pyfuse3.EntryAttributes:
        result = pyfuse3.EntryAttributes()
        result.st_ino = node.ino
        result.generation = self.table.generation
        immutable = node.kind == "version"
        result.entry_timeout = self.entry_ttl if immutable else 0
        result.attr_timeout = self.attr_ttl if immutable else 0
        size = node.version.size if node.version is not None else 0
        moment = node.version.created_at if node.version is not None else None
        ns = int(moment.timestamp() * 1e9) if moment is not None else self.table.generation * 1000
        if node.is_dir:
            result.st_mode = stat.S_IFDIR | 0o555
            result.st_nlink = 2
        else:
            result.st_mode = stat.S_IFREG | 0o444
            result.st_nlink = 1
        result.st_uid = self.owner.uid
        result.st_gid = self.owner.gid
        result.st_size = size
        result.st_blksize = BLOCK_SIZE
        result.st_blocks = (size + 511) // 512
        result.st_atime_ns = result.st_mtime_ns = result.st_ctime_ns = ns
        return result

    def _hold(self, node: VirtualNode) -> pyfuse3.EntryAttributes:
        node.lookups += 1
        return self._virtual_reply(node)

    async def _history(self, file: Entry) -> list[Version]:
        versions = await self.remote.versions(file.node_id)
        return sorted(versions, key=lambda v: (v.created_at, v.version_id))

    async def _virtual_children(self, node: VirtualNode) -> list[tuple[str, VirtualNode]]:
        """The names in virtual directory *node*, asked of the server now."""
        if node.kind == "meta":
            return [("control", self.control_node), ("versions", self.virtual.versions)]
        if node.kind in ("versions", "tree"):
            path = node.path
            children = []
            for entry in await self.remote.listdir(path):
                child_path = f"{path.rstrip('/')}/{entry.name}"
                kind = "tree" if entry.kind == "dir" else "history"
                children.append((entry.name, self.virtual.node(kind, child_path, entry)))
            return sorted(children, key=lambda item: item[0])
        if node.kind == "history" and node.file is not None:
            return [
                (version_name(v), self.virtual.node("version", node.path, node.file, v))
                for v in await self._history(node.file)
            ]
        raise fail(errno.ENOTDIR)

    @property
    def control_node(self) -> VirtualNode:
        return self.virtual.control

    async def _virtual_lookup(self, parent: VirtualNode, name: str) -> VirtualNode:
        if parent.kind == "meta":
            for child_name, child in await self._virtual_children(parent):
                if child_name == name:
                    return child
            raise NotFoundError(f"no such file: {name}")
        if parent.kind in ("versions", "tree"):
            path = f"{parent.path.rstrip('/')}/{name}"
            entry = await self.remote.meta(path)
            return self.virtual.node("tree" if entry.kind == "dir" else "history", path, entry)
        if parent.kind == "history":
            for child_name, child in await self._virtual_children(parent):
                if child_name == name:
                    return child
            raise NotFoundError(f"no such version: {name}")
        raise fail(errno.ENOTDIR)

    def _is_meta_name(self, parent_inode: int, name: bytes) -> bool:
        return parent_inode == ROOT and name == META_DIR.encode()

    def _refuse_virtual(self, *inodes: int) -> None:
        """``EROFS`` when any of *inodes* is in ``.meshfs``."""
        if any(self.virtual.owns(ino) for ino in inodes):
            raise fail(errno.EROFS)

    async def _virtual_read(self, node: VirtualNode, offset: int, size: int) -> bytes:
        version, file = node.version, node.file
        if version is None or file is None:
            return b""
        entry = msgspec.structs.replace(
            file,
            version_id=version.version_id,
            size=version.size,
            content_hash=version.content_hash,
        )
        return await self.store.read(entry, offset, size)

    # --- the control file ---------------------------------------------------------------------

    def _stats(self) -> dict[str, str]:
        spools = [c.spool for c in self._contents.values() if c.dirty and c.spool is not None]
        chunks = self.store.chunks
        values = (
            chunks.hits,
            chunks.misses,
            chunks.size,
            len(spools),
            sum(s.size for s in spools if s is not None),
            len(self._unsent) + len(spools),
            self.feed_position(),
            self.feed_state(),
            self.store.commits,
            self.store.partial_commits,
        )
        return {name: str(value) for name, value in zip(STATS, values, strict=True)}

    def _options(self) -> dict[str, str]:
        return {
            OPTIONS[0]: str(self.store.chunks.capacity),
            OPTIONS[1]: f"{self.entry_ttl:g}",
            OPTIONS[2]: f"{self.attr_ttl:g}",
        }

    def _control_get(self, name: str) -> bytes:
        values = self._stats() | self._options()
        if name not in values:
            raise fail(pyfuse3.ENOATTR)
        return values[name].encode()

    def _control_set(self, name: str, raw: bytes) -> None:
        if name not in OPTIONS:
            raise fail(errno.ENOTSUP)  # a statistic, or no such option
        try:
            text = raw.decode()
            if name == OPTIONS[0]:
                size = parse_size(text)
                if size < 1024 * 1024:
                    raise ValueError("the cache needs at least 1M")
                self.store.chunks.resize(size)
                return
            seconds = float(text)
        except (UnicodeDecodeError, ValueError):
            raise fail(errno.EINVAL) from None
        if not 0 <= seconds <= 86400:
            raise fail(errno.EINVAL)
        if name == OPTIONS[1]:
            self.entry_ttl = seconds
        else:
            self.attr_ttl = seconds
