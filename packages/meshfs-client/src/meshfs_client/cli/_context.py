"""What every command shares: global options, output helpers, the client-command body."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, overload

import click
import msgspec

if TYPE_CHECKING:
    from meshfs_client._client import MeshFSClient

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(slots=True)
class CliState:
    """The global options (``meshfs --server URL --json --quiet ...``)."""

    server: str | None = None
    json: bool = False
    quiet: bool = False

    def client(self) -> MeshFSClient:
        """A client for the chosen server (env and stored login apply, see MeshFSClient)."""
        # Imported on first use: aiohttp is a third of a second that `--help` must not pay.
        from meshfs_client._client import MeshFSClient

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


def _json_after_verb(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(CliState).json = True


class CommandGroup(click.Group):
    """A group of ``meshfs`` commands: each also takes ``--json`` after its name."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        """Register *cmd*, giving it a ``--json`` flag if it has none of its own."""
        if not any("--json" in param.opts for param in cmd.params):
            cmd.params.append(
                click.Option(
                    ["--json"],
                    is_flag=True,
                    expose_value=False,
                    is_eager=True,
                    callback=_json_after_verb,
                    help="Machine-readable JSON output (same as `meshfs --json ...`).",
                )
            )
        super().add_command(cmd, name)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's async body to completion."""
    return asyncio.run(coro)


Body = Callable[Concatenate[CliState, "MeshFSClient", P], Awaitable[T | None]]
"""A command's async body: ``async def body(state, client, **options) -> answer``."""


@overload
def client_command() -> Callable[[Body[P, object]], Callable[P, None]]: ...


@overload
def client_command(
    text: Callable[[CliState, T], None],
) -> Callable[[Body[P, T]], Callable[P, None]]: ...


def client_command(
    text: Callable[[CliState, T], None] | None = None,
) -> Callable[[Body[P, T]], Callable[P, None]]:
    """Make a click callback of a command's async body: what every client command does.

    The callback opens a client for the chosen server, awaits the body with it, closes it,
    and shows the body's answer: as one JSON document with ``--json``, else through *text*
    (nothing without one). A body that prints as it goes returns ``None``, and nothing more
    is shown. Failures propagate to :func:`meshfs_client.cli.main`, which prints one line and
    exits with the documented code. Put it below the click decorators::

        @click.command()
        @click.argument("path")
        @client_command(text=lambda state, entry: click.echo(entry.path))
        async def stat(state: CliState, client: MeshFSClient, path: str) -> Entry:
            return await client.meta(path)
    """

    def decorate(body: Body[P, T]) -> Callable[P, None]:
        @functools.wraps(body)
        def command(*args: P.args, **kwargs: P.kwargs) -> None:
            state = click.get_current_context().ensure_object(CliState)

            async def opened() -> T | None:
                async with state.client() as client:
                    return await body(state, client, *args, **kwargs)

            answer = asyncio.run(opened())
            if answer is None:
                return
            if state.json:
                state.emit(answer)
            elif text is not None:
                text(state, answer)

        return command

    return decorate


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
