"""The doorbell between server processes on one machine: a unix datagram socket per process.

The embedded default (one SQLite file, one content directory) is served by several worker
processes of one machine (``meshfs-server serve --workers N``). Each binds a datagram socket
named after its instance in the database's ``doorbell`` directory (private to the server's
user). After a commit that appended events, the committing process sends the tenant id to
every other socket in the directory; each receiver rings its local subscribers of that tenant,
who read the new events from the feed - the truth. A datagram is a few microseconds on
loopback and needs no broker; sending never blocks (a receiver whose buffer is full misses a
ring, which costs latency, never an event: the next ring, or the subscriber's own reconnect,
reads everything after its cursor).

Besides tenant ids, the doorbell carries :data:`AUTH_CHANGED`: identity's records (sessions,
users, memberships) changed, so token caches must forget what they resolved.

A socket whose process died refuses datagrams (``ECONNREFUSED``) and is removed by the next
sender. Paths longer than a unix socket address allows are reached through the directory's
file descriptor (``/proc/self/fd/N/name``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path

from meshfs_server.adapters.private_files import private_dir

log = logging.getLogger("meshfs_server.doorbell")

#: What is sent when identity's records changed (tenant ids never start with ``!``).
AUTH_CHANGED = "!auth"
_SUFFIX = ".bell"
_MAX_DATAGRAM = 512
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes with the terminating NUL; keep a margin


class SocketDoorbell:
    """This process's socket in *directory*; rings ``ring(tenant_id)`` for other processes'
    commits and ``on_auth_changed()`` for their identity changes."""

    def __init__(
        self,
        directory: Path,
        instance: str,
        ring: Callable[[str], None],
        *,
        on_auth_changed: Callable[[], None] | None = None,
    ) -> None:
        self.directory = directory
        self.name = instance + _SUFFIX
        self.ring = ring
        self.on_auth_changed = on_auth_changed
        self._dir_fd: int | None = None
        self._sock: socket.socket | None = None
        self.listening = asyncio.Event()

    def _address(self, name: str) -> str:
        full = str(self.directory / name)
        if len(full) <= _MAX_SOCKET_PATH or self._dir_fd is None:
            return full
        return f"/proc/self/fd/{self._dir_fd}/{name}"

    def open(self) -> None:
        """Bind this process's socket (the sending side works without it too)."""
        private_dir(self.directory, tighten=False)
        self._dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(self._address(self.name))
        self._sock = sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._dir_fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.name, dir_fd=self._dir_fd)
            os.close(self._dir_fd)
            self._dir_fd = None

    async def run(self) -> None:
        """Listen until cancelled (the server's task group runs it)."""
        loop = asyncio.get_running_loop()
        self.open()
        assert self._sock is not None
        try:
            loop.add_reader(self._sock.fileno(), self._drain)
            self.listening.set()
            await asyncio.Event().wait()
        finally:
            self.listening.clear()
            if self._sock is not None:
                loop.remove_reader(self._sock.fileno())
            self.close()

    def _drain(self) -> None:
        """Read every waiting datagram; ring each tenant once."""
        assert self._sock is not None
        tenants: set[str] = set()
        auth = False
        while True:
            try:
                data = self._sock.recv(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            text = data.decode("utf-8", "replace")
            if text == AUTH_CHANGED:
                auth = True
            elif text:
                tenants.add(text)
        if auth and self.on_auth_changed is not None:
            self.on_auth_changed()
        for tenant_id in tenants:
            self.ring(tenant_id)

    def announce(self, message: str) -> None:
        """Send *message* (a tenant id, or :data:`AUTH_CHANGED`) to every other process."""
        announce_in(self.directory, message, skip=self.name, dir_fd=self._dir_fd)


def announce_in(
    directory: Path, message: str, *, skip: str = "", dir_fd: int | None = None
) -> None:
    """Send *message* to every doorbell socket in *directory* but *skip* (also usable by a
    process that has no socket of its own, such as ``meshfs-server admin``)."""
    own_fd = dir_fd is None
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY) if own_fd else dir_fd
    except FileNotFoundError:
        return  # no server has run here
    assert fd is not None
    try:
        names = [n for n in os.listdir(fd) if n.endswith(_SUFFIX) and n != skip]
        if not names:
            return
        data = message.encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.setblocking(False)
            for name in names:
                full = str(directory / name)
                address = full if len(full) <= _MAX_SOCKET_PATH else f"/proc/self/fd/{fd}/{name}"
                try:
                    sender.sendto(data, address)
                except ConnectionRefusedError:  # its process is gone
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=fd)
                except (BlockingIOError, FileNotFoundError):
                    pass  # busy (it will read the feed on its next ring) or just closed
                except OSError as exc:
                    log.debug("doorbell %s: %s", name, exc)
    finally:
        if own_fd:
            os.close(fd)
