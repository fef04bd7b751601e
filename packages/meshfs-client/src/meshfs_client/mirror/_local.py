"""The local side: stat and hash one path, scan the whole folder, watch it for changes.

Regular files, directories and symbolic links are mirrored (a link as a link: it is never
followed, and nothing below a link is looked at); sockets, FIFOs and devices stay local (as do
names MeshFS cannot hold, such as ones with control characters). A scan at start
catches what changed while the mirror was not running; the watcher reports changes live
(:mod:`._inotify` on Linux; elsewhere :mod:`watchfiles`, i.e. FSEvents/ReadDirectoryChangesW
through the Rust ``notify`` crate).
"""

from __future__ import annotations

import logging
import os
import stat
import sys
import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path

import watchfiles

from meshfs_client.mirror._ignore import IgnoreRules, is_temp_name
from meshfs_client.mirror._model import LocalNode, link_hash
from meshfs_common import paths
from meshfs_common.errors import InvalidPathError
from meshfs_common.hashing import ContentHasher

_READ_BLOCK = 1024 * 1024
log = logging.getLogger("meshfs.sync")


class Unsupported:
    """A path holding something the mirror leaves alone (symlink, device, bad name)."""


UNSUPPORTED = Unsupported()


def to_os(target: Path, rel: str) -> Path:
    """The OS path of mirror path *rel*."""
    return target / rel.lstrip("/") if rel != "/" else target


def to_rel(target: Path, os_path: str) -> str | None:
    """The mirror path of an OS path inside *target* (``None`` outside or for a bad name)."""
    try:
        relative = os.path.relpath(os_path, target)
    except ValueError:
        return None
    if relative == ".":
        return "/"
    if relative.startswith(".."):
        return None
    names = relative.split(os.sep)
    try:
        checked = [paths.validate_name(n) for n in names]
    except InvalidPathError:
        return None
    if checked != names:
        return None  # not NFC on disk: two spellings of one name cannot be mirrored faithfully
    return paths.join(checked)


def node_from_stat(st: os.stat_result, path: str | Path) -> LocalNode | Unsupported:
    """The node an ``lstat`` of *path* describes (a link's target is read, never followed)."""
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(path)
        except OSError:
            return UNSUPPORTED
        return LocalNode("symlink", st.st_size, st.st_mtime_ns, st.st_ino, link_hash(target))
    if stat.S_ISDIR(st.st_mode):
        return LocalNode("dir", inode=st.st_ino)
    if stat.S_ISREG(st.st_mode):
        return LocalNode(
            "file", st.st_size, st.st_mtime_ns, st.st_ino, mode=stat.S_IMODE(st.st_mode)
        )
    return UNSUPPORTED


def stat_node(path: Path) -> LocalNode | Unsupported | None:
    """What is at *path* (not following symlinks), without hashing."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return node_from_stat(st, path)


def under_link(target: Path, rel: str) -> bool:
    """True when a directory above *rel* (inside *target*) is a symbolic link or not a
    directory: the path then is not in the folder, and is never looked at or written."""
    parts = rel.strip("/").split("/")[:-1]
    current = target
    for name in parts:
        current = current / name
        try:
            if not stat.S_ISDIR(os.lstat(current).st_mode):
                return True
        except FileNotFoundError:
            return False
    return False


def hash_node(path: Path, node: LocalNode) -> LocalNode | None:
    """*node* with its content hash, or ``None`` when the file changed while being read."""
    hasher = ContentHasher()
    try:
        with open(path, "rb") as handle:
            before = os.fstat(handle.fileno())
            while block := handle.read(_READ_BLOCK):
                hasher.update(block)
            after = os.fstat(handle.fileno())
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        return None
    if (after.st_size, after.st_mtime_ns, after.st_ino) != (node.size, node.mtime_ns, node.inode):
        return None
    return LocalNode(
        "file",
        after.st_size,
        after.st_mtime_ns,
        after.st_ino,
        hasher.finish().content_hash,
        stat.S_IMODE(after.st_mode),
    )


def scan(target: Path, rules: IgnoreRules, below: str = "/") -> dict[str, LocalNode]:
    """Every mirrored file and directory under *below* (itself excluded), without hashes."""
    found: dict[str, LocalNode] = {}
    if below != "/" and (under_link(target, below + "/x") or not _is_dir(to_os(target, below))):
        return found  # a link (or a file) now stands there: never list what it points to
    stack = [below]
    while stack:
        rel = stack.pop()
        try:
            entries = list(os.scandir(to_os(target, rel)))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            try:
                name = paths.validate_name(entry.name)
            except InvalidPathError:
                continue
            if name != entry.name or is_temp_name(name):
                continue
            child = ("" if rel == "/" else rel) + "/" + name
            try:
                node = node_from_stat(entry.stat(follow_symlinks=False), entry.path)
            except FileNotFoundError:
                continue
            if isinstance(node, Unsupported) or rules.ignored(child, is_dir=node.kind == "dir"):
                continue
            found[child] = node
            if node.kind == "dir":
                stack.append(child)
    return found


def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def is_nfc(name: str) -> bool:
    return unicodedata.is_normalized("NFC", name)


class _Filter(watchfiles.DefaultFilter):
    """Drop the mirror's own temporary files before they reach Python."""

    def __init__(self) -> None:
        super().__init__(ignore_dirs=(), ignore_entity_patterns=())

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        return not is_temp_name(os.path.basename(path))


async def watch(
    target: Path, *, step_ms: int = 10, writing: set[str] | None = None
) -> AsyncIterator[set[str]]:
    """Batches of changed mirror paths (ignore rules are applied by the caller).

    On Linux the kernel's inotify events are read directly (:mod:`._inotify`): each change is
    reported as it happens, files still open for writing are held back (and kept in
    *writing*), and nothing runs while the folder is quiet. Elsewhere, or when inotify cannot
    be used, :mod:`watchfiles` reports batches; ``step_ms`` is how long it waits for more
    changes before yielding one, which is the floor of local-to-remote latency there.
    ``"/"`` in a batch asks for a full rescan.
    """
    if sys.platform == "linux":
        from meshfs_client.mirror import _inotify

        try:
            async for changed in _inotify.watch(target, set() if writing is None else writing):
                yield changed
            return
        except _inotify.InotifyUnavailableError as exc:
            log.warning("inotify unavailable (%s): watching %s by polling", exc, target)
    async for changes in watchfiles.awatch(
        target,
        watch_filter=_Filter(),
        debounce=400,
        step=step_ms,
        recursive=True,
        ignore_permission_denied=True,
    ):
        batch: set[str] = set()
        for _change, os_path in changes:
            rel = to_rel(target, os_path)
            if rel is not None:
                batch.add(rel)
        if batch:
            yield batch
