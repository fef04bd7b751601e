"""What every command shares: global options, output helpers, running async code."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import click
import msgspec

from meshfs_client._client import MeshFSClient

T = TypeVar("T")


@dataclass(slots=True)
class CliState:
    """The global options (``meshfs --server URL --json --quiet ...``)."""

    server: str | None = None
    json: bool = False
    quiet: bool = False

    def client(self) -> MeshFSClient:
        """A client for the chosen server (env and stored login apply, see MeshFSClient)."""
        return MeshFSClient(self.server)

    @property
    def show_progress(self) -> bool:
        """Progress bars only for a person watching a terminal."""
        return not (self.quiet or self.json) and sys.stdout.isatty() and sys.stderr.isatty()

    def info(self, message: str) -> None:
        """A human status line on stderr (silent with --quiet or --json)."""
        if not (self.quiet or self.json):
            click.echo(message, err=True)

    def emit(self, value: Any) -> None:
        """Print *value* as one JSON document on stdout."""
        click.echo(msgspec.json.encode(value).decode())


pass_state = click.make_pass_decorator(CliState, ensure=True)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's async body to completion."""
    return asyncio.run(coro)


def human_size(size: int) -> str:
    """1536 -> '1.5K' (powers of 1024, like ls -h)."""
    value = float(size)
    for unit in ("", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            return f"{int(value)}" if unit == "" else f"{value:.1f}{unit}"
        value /= 1024
    return str(size)  # pragma: no cover


def human_time(when: datetime) -> str:
    """A UTC time as 'YYYY-MM-DD HH:MM:SS' in local time."""
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")
