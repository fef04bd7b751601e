"""Transfer progress bars (rich), drawn on stderr and only for a person at a terminal.

Waits between attempts are shown, not hidden: when the server rate-limits us (429) the bar says
"rate limited, waiting 3s" until bytes move again; without a bar (piped, scripted) the same
news is one line on stderr per wait, unless notices are off (``--quiet``, ``--json``).
"""

from __future__ import annotations

import math
import time
from types import TracebackType
from typing import TYPE_CHECKING

import click

from meshfs_common.errors import MeshFSError, RateLimitedError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

_NOTICE_INTERVAL = 1.0


def wait_message(exc: MeshFSError, seconds: float) -> str:
    """ "rate limited, waiting 3s" (or "server busy, retrying in 1s" for other retries)."""
    wait = max(1, math.ceil(seconds))
    if isinstance(exc, RateLimitedError):
        return f"rate limited, waiting {wait}s"
    return f"{exc.message.split(':')[0]}; retrying in {wait}s"


class TransferProgress:
    """One bar for the bytes of a whole command; a no-op when disabled."""

    def __init__(
        self, enabled: bool, description: str, total: int | None, *, notices: bool = False
    ) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._description = description
        self._notices = notices
        self._waiting_until = 0.0
        self._last_notice = 0.0
        if enabled:
            # Imported here: rich costs a tenth of a second of start-up that scripted and
            # piped uses (no bar) should not pay.
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._task = self._progress.add_task(description, total=total)

    def __enter__(self) -> TransferProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, nbytes: int) -> None:
        """Count *nbytes* more as done (the upload/download progress callback)."""
        if self._progress is not None and self._task is not None:
            if self._waiting_until and time.monotonic() >= self._waiting_until:
                self._waiting_until = 0.0
                self._progress.update(self._task, description=self._description)
            self._progress.advance(self._task, nbytes)

    def waiting(self, exc: MeshFSError, seconds: float) -> None:
        """A request waits *seconds* before its next attempt (a ``MeshFSClient.on_retry``
        listener): say so on the bar, or in a line when there is no bar."""
        message = wait_message(exc, seconds)
        now = time.monotonic()
        if self._progress is not None and self._task is not None:
            self._waiting_until = max(self._waiting_until, now + seconds)
            self._progress.update(self._task, description=f"{self._description}  {message}")
        elif self._notices and now - self._last_notice >= _NOTICE_INTERVAL:
            self._last_notice = now
            click.echo(f"meshfs: {self._description}: {message}", err=True)

    def add_total(self, nbytes: int) -> None:
        """Grow the total (when sizes are discovered while walking a tree)."""
        if self._progress is not None and self._task is not None:
            task = next(t for t in self._progress.tasks if t.id == self._task)
            self._progress.update(self._task, total=(task.total or 0) + nbytes)
