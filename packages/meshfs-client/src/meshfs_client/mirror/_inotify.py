"""Linux: the mirrored folder watched through inotify itself, event by event.

A change is reported as soon as the kernel tells of it: no polling step, no debounce, and no
wake-ups at all while nothing happens (the descriptor sits in the event loop's selector). What
the kernel says beyond "something changed" is used too:

* A file open for writing is not reported until its writer closes it (``IN_CLOSE_WRITE``), so
  a file is not uploaded half-written. A writer that keeps the file open is reported once it
  has written nothing for :data:`WRITE_SETTLE` seconds, one that keeps writing (a log) every
  :data:`WRITE_HOLD_MAX` seconds. The paths waiting so are kept in the
  caller's ``writing`` set; the engine leaves them alone until they are reported.
* A name created without being written (a hard link, a symlink, a file created empty and not
  yet written) is reported after :data:`CREATE_SETTLE` unless its writer speaks first.
* inotify watches single directories: every directory is watched on its own, a directory that
  appears (created or moved in) is walked and watched at once and everything found below it is
  reported, a directory moved within the folder keeps its watches under its new name, one moved
  out loses them.
* Should the kernel queue overflow, the watcher re-walks the folder and reports ``"/"``: the
  caller rescans everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

from inotify_simple import INotify, flags  # type: ignore[import-untyped]

from meshfs_client.mirror._ignore import is_temp_name
from meshfs_common import paths
from meshfs_common.errors import InvalidPathError

log = logging.getLogger("meshfs.sync")

WRITE_SETTLE = 2.0
"""Seconds without a write after which a file its writer keeps open is reported anyway."""
WRITE_HOLD_MAX = 10.0
"""Seconds a file that keeps being written (a log) is held back at most."""
CREATE_SETTLE = 0.05
"""Seconds after which a name created without being written (a link, an empty file) is
reported."""

_WATCH_MASK = (
    flags.MODIFY
    | flags.ATTRIB
    | flags.CLOSE_WRITE
    | flags.MOVED_FROM
    | flags.MOVED_TO
    | flags.CREATE
    | flags.DELETE
    | flags.ONLYDIR
    | flags.DONT_FOLLOW
    | flags.EXCL_UNLINK
)


class InotifyUnavailableError(OSError):
    """inotify cannot be used here (not Linux, or no instance left)."""


class _Tree:
    """The watched directories of one folder and what the events on them mean."""

    def __init__(self, target: Path, writing: set[str]) -> None:
        self.target = target
        self.writing = writing
        try:
            self.inotify = INotify(nonblocking=True)
        except OSError as exc:
            raise InotifyUnavailableError(exc.errno, f"inotify_init1: {exc.strerror}") from exc
        self.fd = self.inotify.fileno()
        self.dirs: dict[int, str] = {}  # watch descriptor -> mirror path
        self.wds: dict[str, int] = {}
        self.write_due: dict[str, float] = {}  # path being written -> report at (monotonic)
        self.write_first: dict[str, float] = {}  # path being written -> first unreported write
        self.create_due: dict[str, float] = {}  # created, not written yet -> report at
        self._full_warned = False

    def close(self) -> None:
        self.inotify.close()
        for rel in self.write_due:
            self.writing.discard(rel)

    # --- watches --------------------------------------------------------------------------------

    def _watch(self, rel: str) -> bool:
        path = os.fsencode(self.target / rel.lstrip("/") if rel != "/" else self.target)
        try:
            wd = self.inotify.add_watch(path, _WATCH_MASK)
        except OSError as exc:
            if exc.errno == errno.ENOSPC and not self._full_warned:
                self._full_warned = True
                log.warning(
                    "inotify watch limit reached (fs.inotify.max_user_watches): changes below "
                    "%s and other directories are found by rescans only",
                    rel,
                )
            return False
        old = self.dirs.get(wd)
        if old is not None and old != rel and self.wds.get(old) == wd:
            del self.wds[old]  # the directory moved: its old name is another's now, or none
        self.dirs[wd] = rel
        self.wds[rel] = wd
        return True

    def add_tree(self, top: str) -> set[str]:
        """Watch *top* and every directory below it; returns the paths found below it."""
        found: set[str] = set()
        stack = [top]
        while stack:
            rel = stack.pop()
            if not self._watch(rel):
                continue
            try:
                entries = list(os.scandir(self.target / rel.lstrip("/")))
            except OSError:
                continue
            for entry in entries:
                child = _child(rel, entry.name)
                if child is None:
                    continue
                found.add(child)
                with contextlib.suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(child)
        return found

    def _below(self, top: str) -> list[str]:
        return [rel for rel in self.wds if rel == top or rel.startswith(top + "/")]

    def _moved(self, old: str, new: str) -> None:
        # Watches are named anew by walking the directory now at *new*: the kernel answers
        # with the watch of each directory found there, which stays right when two
        # directories swapped names (RENAME_EXCHANGE) or one replaced another.
        self.add_tree(new)
        for pending in (self.write_due, self.write_first, self.create_due):
            for rel in [r for r in pending if r.startswith(old + "/")]:
                pending[new + rel[len(old) :]] = pending.pop(rel)
        for rel in [r for r in self.writing if r.startswith(old + "/")]:
            self.writing.discard(rel)
            self.writing.add(new + rel[len(old) :])

    def _gone(self, top: str) -> None:
        for rel in self._below(top):
            wd = self.wds.pop(rel)
            self.dirs.pop(wd, None)
            self.inotify.rm_watch(wd)

    # --- events ---------------------------------------------------------------------------------

    def read(self) -> tuple[set[str], bool]:
        """Everything the kernel has queued: (changed paths, whether the queue overflowed)."""
        changed: set[str] = set()
        overflow = False
        moves: dict[int, str] = {}  # cookie -> directory moved away, not (yet) seen arriving
        now = time.monotonic()
        for wd, mask, cookie, name in self.inotify.read(timeout=0):
            if mask & flags.Q_OVERFLOW:
                overflow = True
                continue
            if mask & flags.IGNORED:
                rel = self.dirs.pop(wd, None)
                if rel is not None and self.wds.get(rel) == wd:
                    del self.wds[rel]
                continue
            base = self.dirs.get(wd)
            if base is None or not name:
                continue  # events on a watched directory itself are reported by its parent
            rel = _child(base, name)
            if rel is None:
                continue
            if mask & flags.ISDIR:
                if mask & flags.MOVED_FROM:
                    moves[cookie] = rel
                elif mask & flags.MOVED_TO and cookie in moves:
                    self._moved(moves.pop(cookie), rel)
                elif mask & (flags.CREATE | flags.MOVED_TO):
                    changed |= self.add_tree(rel)
                changed.add(rel)
                continue
            if mask & flags.MODIFY or (mask & flags.CREATE and rel in self.write_due):
                self.create_due.pop(rel, None)
                first = self.write_first.setdefault(rel, now)
                self.write_due[rel] = min(now + WRITE_SETTLE, first + WRITE_HOLD_MAX)
                self.writing.add(rel)
            elif mask & flags.CREATE:
                self.create_due[rel] = now + CREATE_SETTLE
            elif mask & flags.ATTRIB and (rel in self.write_due or rel in self.create_due):
                pass  # a writer setting times or modes: wait for it to close the file
            else:  # closed after writing, attributes, deleted, moved
                self._report(rel)
                changed.add(rel)
        for old in moves.values():
            self._gone(old)  # moved out of the folder
        if overflow:
            log.warning("inotify queue overflowed: rescanning %s", self.target)
            self.add_tree("/")
        return changed, overflow

    def _report(self, rel: str) -> None:
        self.write_due.pop(rel, None)
        self.write_first.pop(rel, None)
        self.create_due.pop(rel, None)
        self.writing.discard(rel)

    def settled(self) -> set[str]:
        """Paths whose writer went quiet, or created ones nobody wrote to."""
        now = time.monotonic()
        due = {r for p in (self.write_due, self.create_due) for r, t in p.items() if t <= now}
        for rel in due:
            self._report(rel)
        return due

    def next_due(self) -> float | None:
        """Seconds until the next settled path (``None``: nothing pending)."""
        times = [*self.write_due.values(), *self.create_due.values()]
        return max(0.0, min(times) - time.monotonic()) if times else None


def _child(base: str, name: str) -> str | None:
    try:
        checked = paths.validate_name(name)
    except InvalidPathError:
        return None
    if checked != name or is_temp_name(name):
        return None
    return ("" if base == "/" else base) + "/" + name


async def _readable(fd: int) -> None:
    """Until the kernel has events for *fd* (the descriptor waits in the loop's selector)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


async def watch(target: Path, writing: set[str]) -> AsyncIterator[set[str]]:
    """Batches of changed mirror paths under *target*, each as soon as the kernel reports it.

    ``"/"`` in a batch means changes may have been lost (queue overflow): rescan. *writing* is
    kept up to date with the files open for writing that are not reported yet.
    Raises :class:`InotifyUnavailableError` at the start when inotify cannot be used.
    """
    tree = _Tree(target, writing)
    try:
        await asyncio.to_thread(tree.add_tree, "/")
        while True:
            changed, overflow = tree.read()
            changed |= tree.settled()
            if overflow:
                changed.add("/")
            if changed:
                yield changed
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(tree.next_due()):
                    await _readable(tree.fd)
    finally:
        tree.close()


__all__ = ["CREATE_SETTLE", "WRITE_SETTLE", "InotifyUnavailableError", "watch"]
