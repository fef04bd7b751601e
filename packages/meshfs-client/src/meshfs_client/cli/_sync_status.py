"""What ``meshfs sync`` shows while it runs, and where the details go.

On a terminal: one status line, redrawn in place, that names the state -

* ``scanning``: the first pass (catching up with the server, scanning the folder);
* ``syncing N``: changes being carried out;
* ``live``: both sides agree and changes arrive as they happen;
* ``offline - retrying in 4s``: the server cannot be reached;
* ``recovered`` (``recovered - syncing N`` while what waited is sent): for a few seconds
  after it came back -

and nothing else: each event (uploads, conflicts, errors, the outage and its cause) goes to
the ``--log`` file. Without a terminal (a service, a script) events are JSON lines on stderr,
or in the ``--log`` file when one is given.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click

if TYPE_CHECKING:
    from meshfs_client.mirror import SyncEvent, SyncStatus

STATUS_LINE_INTERVAL = 0.25
RECOVERED_FOR = 5.0
"""Seconds the status line says ``recovered`` after an outage."""


def phase(status: SyncStatus, now: float) -> str:
    """The state word(s) of the status line for *status* at wall-clock time *now*."""
    if status.offline:
        wait = max(1, math.ceil(status.retry_at - now))
        return f"offline - retrying in {wait}s"
    if not status.scanned:
        return "scanning"
    busy = status.pending + status.in_flight
    recovered = bool(status.recovered_at) and now - status.recovered_at < RECOVERED_FOR
    if busy:
        # What was queued while offline starts at once: say both.
        return f"recovered - syncing {busy}" if recovered else f"syncing {busy}"
    return "recovered" if recovered else "live"


def status_line(status: SyncStatus, now: float) -> str:
    """The whole status line."""
    line = (
        f"meshfs sync: {phase(status, now)} | up {status.uploads} down {status.downloads}"
        f" del {status.deletes} mv {status.renames}"
    )
    if status.attributes:
        line += f" attributes {status.attributes}"
    if status.conflicts:
        line += f" conflicts {status.conflicts}"
    if status.error_paths:
        line += f" | {len(status.error_paths)} failing (details: --log, or sync --status)"
    return line


class SyncReporter:
    """Receives the engine's events; draws the status line or writes event lines."""

    def __init__(self, *, quiet: bool, as_json: bool, log_file: Path | None) -> None:
        from meshfs_client.mirror import SyncStatus

        self.status = SyncStatus()
        self._tty = sys.stderr.isatty() and not as_json
        self._quiet = quiet
        self._last_draw = 0.0
        self._width = 0
        self._log: IO[str] | None = None
        if log_file is not None:
            self._log = open(log_file, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        self._handler = self._route_library_logs()

    def _route_library_logs(self) -> logging.Handler:
        """The engine's own log records go where the events go, never onto the status line."""
        handler: logging.Handler
        if self._log is not None:
            handler = logging.StreamHandler(self._log)
        elif self._tty:
            handler = logging.NullHandler()
        else:
            handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger = logging.getLogger("meshfs")
        logger.addHandler(handler)
        logger.propagate = False
        return handler

    def close(self) -> None:
        """Finish the line and close the log file."""
        self.draw(force=True)
        if self._tty and not self._quiet and self._width:
            click.echo("", err=True)
        logging.getLogger("meshfs").removeHandler(self._handler)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __call__(self, event: SyncEvent) -> None:
        record: dict[str, object] = {
            "ts": round(time.time(), 3),
            "event": event.kind,
            "path": event.path,
        }
        if event.detail:
            record["detail"] = event.detail
        if self._log is not None:
            self._log.write(json.dumps(record) + "\n")
        elif not self._tty and not (self._quiet and event.kind != "error"):
            click.echo(json.dumps(record), err=True)
        self.draw(force=event.kind in ("offline", "recovered"))

    def draw(self, force: bool = False) -> None:
        """Redraw the status line (at most every STATUS_LINE_INTERVAL unless forced)."""
        if not self._tty or self._quiet:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < STATUS_LINE_INTERVAL:
            return
        self._last_draw = now
        line = status_line(self.status, time.time())
        pad = max(0, self._width - len(line))
        sys.stderr.write("\r" + line + " " * pad + "\b" * pad)
        sys.stderr.flush()
        self._width = len(line)
