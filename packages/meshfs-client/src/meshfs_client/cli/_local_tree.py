"""What ``meshfs put -r`` sends: a local tree, checked in full before anything is created.

The rules (the mirror sync follows the same ones):

* Symbolic links are not followed unless asked (``--follow-symlinks``); a link is skipped
  with a notice. When following, a directory reached twice (a link loop) is visited once.
* A name MeshFS cannot store (a control character such as a newline, invalid UTF-8, too
  long) is skipped and reported; the rest of the tree is still sent.
* FIFOs, sockets and devices are skipped with a notice: they have no content to upload.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from meshfs_common import paths
from meshfs_common.errors import InvalidPathError


@dataclass(frozen=True, slots=True)
class Skipped:
    """A local entry left out, and why. ``failed`` entries make the command exit non-zero."""

    local: Path
    reason: str
    failed: bool


@dataclass(slots=True)
class LocalTree:
    """Remote directories to create (parents first), files to send, their size, what was
    left out."""

    directories: list[str] = field(default_factory=list)
    files: list[tuple[Path, str]] = field(default_factory=list)
    total: int = 0
    skipped: list[Skipped] = field(default_factory=list)

    def skip(self, local: Path, reason: str, *, failed: bool) -> None:
        """Leave *local* out."""
        self.skipped.append(Skipped(local, reason, failed))

    @property
    def failures(self) -> list[Skipped]:
        """The entries that could not be sent (as opposed to ones left out by rule)."""
        return [s for s in self.skipped if s.failed]


def scan_tree(root: Path, target: str, *, follow_symlinks: bool) -> LocalTree:
    """Walk *root* (whose remote copy is *target*) and decide what to send."""
    tree = LocalTree(directories=[target])
    top = root.stat()
    seen = {(top.st_dev, top.st_ino)}  # directories already in the tree (link loops)
    pending = [(root, target)]
    while pending:
        directory, remote_dir = pending.pop()
        try:
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            tree.skip(directory, (exc.strerror or str(exc)).lower(), failed=True)
            continue
        below: list[tuple[Path, str]] = []
        for entry in entries:
            local = Path(entry.path)
            try:
                remote = paths.normalise(f"{remote_dir}/{paths.validate_name(entry.name)}")
            except InvalidPathError as exc:
                tree.skip(local, exc.message, failed=True)
                continue
            if entry.is_symlink() and not follow_symlinks:
                tree.skip(local, "symbolic link not followed (--follow-symlinks)", failed=False)
                continue
            try:
                found = entry.stat(follow_symlinks=follow_symlinks)
            except OSError as exc:
                tree.skip(local, (exc.strerror or str(exc)).lower(), failed=True)
                continue
            if stat.S_ISDIR(found.st_mode):
                if (found.st_dev, found.st_ino) in seen:
                    tree.skip(local, "directory already sent (a symbolic link loop)", failed=False)
                    continue
                seen.add((found.st_dev, found.st_ino))
                tree.directories.append(remote)
                below.append((local, remote))
            elif stat.S_ISREG(found.st_mode):
                tree.files.append((local, remote))
                tree.total += found.st_size
            else:
                tree.skip(local, "not a regular file or directory", failed=False)
        pending.extend(reversed(below))
    return tree
