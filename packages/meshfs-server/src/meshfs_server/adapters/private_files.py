"""Files and directories only the server's user may read: the data directory, the SQLite
metadata (password hashes, every file name, client addresses) and the content store.

New ones are created 0700 (directories) and 0600 (files), whatever the umask. Existing ones
that other users can reach (an older server made them 0755/0644) are tightened, with a
warning naming the path, so an upgrade closes the hole without a manual step.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from meshfs_server.settings import Settings

log = logging.getLogger("meshfs_server")

DIR_MODE = 0o700
FILE_MODE = 0o600
_OTHERS = stat.S_IRWXG | stat.S_IRWXO


def private_dir(path: Path, *, tighten: bool = True) -> None:
    """Make *path* (and missing parents) a directory with mode 0700.

    An existing directory is tightened to 0700 when group or others have any access, unless
    *tighten* is false (a directory the administrator chose that may hold other things).
    """
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # created meanwhile by another process; checked below
        os.chmod(directory, DIR_MODE)  # mkdir's mode is filtered by the umask
    if tighten and path not in missing:
        _tighten(path, DIR_MODE)


def private_file(path: Path) -> None:
    """Create *path* empty with mode 0600 if missing; tighten it if others can read it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        _tighten(path, FILE_MODE)
        return
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def tighten_if_present(path: Path) -> None:
    """Tighten an existing file (such as SQLite's ``-wal`` and ``-shm``) to 0600."""
    if path.exists():
        _tighten(path, FILE_MODE)


def _tighten(path: Path, mode: int) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if current & _OTHERS:
        os.chmod(path, mode)
        log.warning(
            "%s was readable by other users (mode %04o); changed it to %04o", path, current, mode
        )


def prepare_data_dir(settings: Settings) -> None:
    """Create the data directory (and the SQLite file's directory in it) 0700, or tighten
    them with a warning if other users can read them: they hold password hashes, every file
    name and client addresses."""
    private_dir(settings.resolved_data_dir)
    if settings.metadata_sqlite_path is None:
        private_dir(settings.sqlite_path.parent)
