"""Transfer progress bars (rich), drawn on stderr and only for a person at a terminal."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


class TransferProgress:
    """One bar for the bytes of a whole command; a no-op when disabled."""

    def __init__(self, enabled: bool, description: str, total: int | None) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None
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
            self._progress.advance(self._task, nbytes)

    def add_total(self, nbytes: int) -> None:
        """Grow the total (when sizes are discovered while walking a tree)."""
        if self._progress is not None and self._task is not None:
            task = next(t for t in self._progress.tasks if t.id == self._task)
            self._progress.update(self._task, total=(task.total or 0) + nbytes)
