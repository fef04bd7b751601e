"""What the mirror engine is told (:class:`SyncOptions`) and what it reports (events, status)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from meshfs_client.mirror._conflicts import ConflictPolicy


@dataclass(frozen=True, slots=True)
class SyncOptions:
    """What to mirror and how."""

    target: Path
    remote_root: str = "/"
    conflicts: ConflictPolicy = ConflictPolicy.LWW
    once: bool = False
    state_dir: Path | None = None
    transfers: int = 8
    websocket: bool = True
    watch_step_ms: int = 10
    echo_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class SyncEvent:
    """One thing the engine did or noticed (for the status line and the structured log)."""

    kind: str
    """upload, download, mkdir_local, mkdir_remote, delete_local, delete_remote, rename_local,
    exchange_local, attributes_remote (a local chmod/touch sent without content),
    attributes_local (a server chmod/utimens applied locally), link_local and link_remote (a
    symbolic link made or retargeted on that side), rename_remote, conflict, error,
    reset, live, offline, recovered, idle."""
    path: str = ""
    detail: str = ""


@dataclass(slots=True)
class SyncStatus:
    """Counters and state for ``--status`` and the status line.

    ``scanned`` turns true when the first full pass (catch-up and local scan) is done.
    ``offline`` is true while the server cannot be reached (``offline_reason`` says why, the
    next try is at ``retry_at``, wall clock); ``recovered_at`` is when it last came back.
    ``error_paths`` holds the paths failing now (an outage is not counted there); ``errors``
    counts every failure since the start.
    """

    pending: int = 0
    in_flight: int = 0
    uploads: int = 0
    downloads: int = 0
    deletes: int = 0
    renames: int = 0
    conflicts: int = 0
    attributes: int = 0
    """Attribute-only changes (executable bits, mtime) mirrored either way."""
    errors: int = 0
    cursor: int = 0
    live: bool = False
    feed: str = "starting"
    last_error: str = ""
    error_paths: dict[str, str] = field(default_factory=dict)
    scanned: bool = False
    offline: bool = False
    offline_reason: str = ""
    retry_at: float = 0.0
    recovered_at: float = 0.0


__all__ = ["SyncEvent", "SyncOptions", "SyncStatus"]
