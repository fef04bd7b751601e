"""``meshfs-server serve --workers N``: N server processes answering on one listening socket.

The parent binds the port, prepares the storage once (migrations, the signing key), then
starts N worker processes. Each inherits the listening socket and accepts from it, so the
kernel hands every new connection to one idle worker; clients see one server. The parent
serves nothing itself: it watches the workers and starts a new one in place of any that dies
(the others keep serving meanwhile), and on Ctrl-C or SIGTERM it asks every worker to stop
(each closes its streams with 1001 "going away" and lets running requests finish) and exits
when all have, within :data:`STOP_SECONDS` (a worker still running then is killed). Worker 0
(and whichever replaces it) also runs the garbage collector.

A worker that keeps dying at start (:data:`CRASH_LIMIT` times in a row, each within
:data:`CRASH_WINDOW` seconds) stops the server: the same failure would only repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import click

log = logging.getLogger("meshfs_server.workers")

#: Seconds every worker gets to stop before it is killed.
STOP_SECONDS = 10.0
#: A worker that dies this soon after it started counts as a crash at start.
CRASH_WINDOW = 5.0
#: Crashes at start in a row (of one worker slot) after which the server gives up.
CRASH_LIMIT = 5
LISTEN_BACKLOG = 1024


def listening_socket(bind: str) -> socket.socket:
    """Bind and listen on ``HOST:PORT`` (IPv4 or ``[v6]``), inheritable by child processes."""
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def worker_arguments(flags: dict[str, object]) -> list[str]:
    """The command-line flags that give a worker the settings the parent was given."""
    args: list[str] = []
    for name, value in flags.items():
        if value is None or name == "workers":
            continue
        option = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            args.append(option if value else "--no-" + name.replace("_", "-"))
        else:
            args += [option, str(value)]
    return args


@dataclass
class _Slot:
    """One worker position: the process in it now and its crashes at start in a row."""

    index: int
    process: asyncio.subprocess.Process | None = None
    crashes: int = 0


@dataclass
class Supervisor:
    """Runs :attr:`count` workers on *sock* until a stop signal (see the module docstring)."""

    sock: socket.socket
    count: int
    arguments: Sequence[str]
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    failed: str | None = None
    _slots: list[_Slot] = field(default_factory=list)

    def command(self, index: int) -> list[str]:
        fd = str(self.sock.fileno())
        return [
            sys.executable, "-m", "meshfs_server", "serve", "--worker-fd", fd,
            "--worker-index", str(index), *self.arguments,
        ]  # fmt: skip

    async def run(self) -> None:
        """Start the workers, replace those that die, and return once all have stopped."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        self._slots = [_Slot(i) for i in range(self.count)]
        async with asyncio.TaskGroup() as tasks:
            for slot in self._slots:
                tasks.create_task(self._keep(slot))

    def stop(self, reason: str | None = None) -> None:
        """Ask every worker to stop (idempotent)."""
        if self.stopping.is_set():
            return
        if reason is not None:
            self.failed = reason
        self.stopping.set()
        for slot in self._slots:
            _signal(slot.process, signal.SIGTERM)

    async def _keep(self, slot: _Slot) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            process = await asyncio.create_subprocess_exec(
                *self.command(slot.index), pass_fds=(self.sock.fileno(),)
            )
            slot.process = process
            if self.stopping.is_set():  # a stop arrived while it was starting
                _signal(process, signal.SIGTERM)
            code = await self._wait(process)
            if self.stopping.is_set():
                return
            slot.crashes = slot.crashes + 1 if time.monotonic() - started < CRASH_WINDOW else 0
            click.echo(
                f"MeshFS server worker {slot.index} (pid {process.pid}) exited with"
                f" {_how(code)}; starting a new one",
                err=True,
            )
            if slot.crashes >= CRASH_LIMIT:
                self.stop(f"worker {slot.index} keeps exiting at start ({_how(code)})")
                return
            # Back off a little when it keeps crashing; the other workers serve meanwhile.
            pause = 0.1 * 2**slot.crashes if slot.crashes else 0.0
            try:
                async with asyncio.timeout(pause):
                    await self.stopping.wait()
            except TimeoutError:
                pass

    async def _wait(self, process: asyncio.subprocess.Process) -> int:
        """The worker's exit code; once stopping, killed after :data:`STOP_SECONDS`."""
        waiting = asyncio.ensure_future(process.wait())
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({waiting, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                try:
                    async with asyncio.timeout(STOP_SECONDS):
                        return await asyncio.shield(waiting)
                except TimeoutError:
                    click.echo(
                        f"MeshFS server worker (pid {process.pid}) did not stop in"
                        f" {STOP_SECONDS:.0f} s; killing it",
                        err=True,
                    )
                    _signal(process, signal.SIGKILL)
            return await waiting
        finally:
            stop.cancel()


def _signal(process: asyncio.subprocess.Process | None, sig: int) -> None:
    if process is not None and process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)


def _how(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


def die_with_parent() -> None:
    """Ask the kernel to SIGTERM this worker when its parent dies (Linux), so a killed parent
    leaves no orphan serving on its port."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)
