"""``meshfs mount`` and ``meshfs umount``: the FUSE mount, from the usual command.

The mount daemon is a separate distribution (``meshfs-fuse``: pyfuse3 needs libfuse), so the
client never imports it: ``meshfs mount`` runs the ``meshfs-mount`` command when it is
installed and otherwise says how to install it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click

from meshfs_client.cli._context import CliState, pass_state

INSTALL_HINT = "meshfs mount needs the mount daemon: pip install meshfs-fuse"


def find_mount_command() -> str | None:
    """``meshfs-mount`` beside this interpreter (same environment), else on PATH."""
    beside = Path(sys.executable).with_name("meshfs-mount")
    if beside.exists():
        return str(beside)
    return shutil.which("meshfs-mount")


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
@pass_state
def mount(state: CliState, arguments: tuple[str, ...]) -> None:
    """Mount MeshFS on a directory: meshfs mount DIR (or --target DIR).

    Options: --remote URL (default: --server, $MESHFS_SERVER, else your last login),
    --read-only, --allow-other, --default-permissions, --no-auto-unmount, --cache-dir DIR,
    --cache-size SIZE, --foreground. Returns once the mount is ready. Runs `meshfs-mount` (from the
    meshfs-fuse package); `meshfs mount --help` shows its full help.
    """
    command = find_mount_command()
    if command is None:
        raise click.ClickException(INSTALL_HINT)
    argv = [command, *arguments]
    if state.server and "--remote" not in arguments:
        argv += ["--remote", state.server]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command, argv)


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def umount(directory: Path) -> None:
    """Unmount a MeshFS mount (files still open are committed by the daemon first)."""
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    command = [tool, "-u", str(directory)] if tool else ["umount", str(directory)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise click.ClickException(f"cannot run {command[0]}: {exc}") from None
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()
        raise click.ClickException(reason[-1] if reason else f"cannot unmount {directory}")
