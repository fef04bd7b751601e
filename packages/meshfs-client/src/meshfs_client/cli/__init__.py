"""The ``meshfs`` command line.

Every failure ends with one line on stderr and a documented exit code (see
:mod:`meshfs_client.cli._errors`); a traceback always means a bug.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click
import msgspec

from meshfs_client import __version__
from meshfs_client.cli import (
    admin,
    agents,
    auth,
    diffs,
    files,
    history,
    mount,
    posix,
    snapshots,
    sync,
    tokens,
    transfer,
)
from meshfs_client.cli._context import CliState, CommandGroup
from meshfs_client.cli._errors import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    describe,
    error_code,
    exit_code_for,
)
from meshfs_common.errors import MeshFSError

__all__ = ["cli", "main"]

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


@click.group(cls=CommandGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--server",
    metavar="URL",
    help="Server URL (default: $MESHFS_SERVER, else the last server you logged in to).",
)
@click.option("--json", "json_", is_flag=True, help="Machine-readable JSON output.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or status messages.")
@click.version_option(__version__, prog_name="meshfs")
@click.pass_context
def cli(ctx: click.Context, server: str | None, json_: bool, quiet: bool) -> None:
    """MeshFS: a filesystem shared by people and agents.

    Authentication: `meshfs login`, or set MESHFS_TOKEN to a bearer token.
    """
    ctx.obj = CliState(server=server, json=json_, quiet=quiet)


for _command in (
    auth.login,
    auth.logout,
    auth.whoami,
    files.ls,
    files.stat,
    files.mkdir,
    files.mv,
    files.rm,
    posix.ln,
    posix.chmod,
    posix.touch,
    transfer.cat,
    transfer.put,
    transfer.get,
    transfer.cp,
    history.versions,
    history.restore,
    history.watch,
    diffs.diff,
    diffs.changes,
    snapshots.snapshot,
    admin.quota,
    admin.audit,
    sync.sync,
    tokens.token,
):
    cli.add_command(_command)
cli.add_command(admin.quota, name="plan")  # the and the server's name for it
cli.add_command(agents.mcp)
cli.add_command(mount.mount)
cli.add_command(mount.umount)


def _report(exc: BaseException, code: int, as_json: bool) -> None:
    if as_json:
        line = msgspec.json.encode(
            {"error": error_code(exc), "error_description": describe(exc), "exit_code": code}
        ).decode()
    else:
        line = f"meshfs: error: {describe(exc)}"
    click.echo(line, err=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``meshfs`` script."""
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    try:
        status = cli.main(args=args, prog_name="meshfs", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        if as_json and isinstance(exc, click.UsageError):
            _report(exc, EXIT_USAGE, True)
        else:
            exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("meshfs: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("meshfs: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (`meshfs cat f | head`); silence the interpreter's own
        # complaint when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_ERROR)
    except Exception as exc:
        error = _unwrap(exc)
        if not _expected(error):
            raise
        code = exit_code_for(error)
        _report(error, code, as_json)
        sys.exit(code)
    sys.exit(status if isinstance(status, int) else 0)


def _unwrap(exc: BaseException) -> BaseException:
    """The first real error inside task-group exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _expected(exc: BaseException) -> bool:
    return isinstance(exc, MeshFSError | OSError | ValueError)
