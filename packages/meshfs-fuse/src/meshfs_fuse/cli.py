"""``meshfs-mount``: command-line entry point of the MeshFS mount daemon.

This release parses and validates the mount arguments (the part every later release keeps) and
computes the FUSE options the daemon will pass to libfuse; it does not mount yet.

Exit status: 0 for ``--help``/``--version``; 2 for invalid arguments (one line on stderr, from
click); 1 when the arguments are valid, since this build cannot mount.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import click
import pyfuse3

from meshfs_fuse import __version__

__all__ = ["EXIT_CANNOT_MOUNT", "MountOptions", "fuse_options", "main", "parse_remote"]

EXIT_CANNOT_MOUNT = 1
FUSE_CONF = Path("/etc/fuse.conf")


@dataclass(frozen=True, slots=True)
class MountOptions:
    """Validated arguments of one mount."""

    remote: str
    target: Path
    allow_other: bool = False
    auto_unmount: bool = False
    read_only: bool = False


def parse_remote(url: str) -> str:
    """Return the canonical server URL (``http(s)://host[:port][/prefix]``, no trailing slash).

    Raises :class:`ValueError` with a message a person can act on.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError(f"{url!r} has no host")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port") from None
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r} must not have a query or fragment")
    if parts.username or parts.password:
        raise ValueError(f"{url!r} must not carry credentials; sign in with `meshfs login`")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def allow_other_permitted(euid: int, fuse_conf: Path = FUSE_CONF) -> bool:
    """Whether libfuse will accept ``allow_other``: always for root, else per /etc/fuse.conf."""
    if euid == 0:
        return True
    try:
        lines = fuse_conf.read_text().splitlines()
    except OSError:
        return False
    return any(line.split("#", 1)[0].strip() == "user_allow_other" for line in lines)


def fuse_options(options: MountOptions) -> set[str]:
    """The libfuse mount options for *options* (what ``pyfuse3.init`` receives)."""
    result = set(pyfuse3.default_options)
    result |= {"fsname=meshfs", "subtype=meshfs"}
    if options.allow_other:
        result.add("allow_other")
    if options.auto_unmount:
        result.add("auto_unmount")
    if options.read_only:
        result.add("ro")
    return result


def _remote(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return parse_remote(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--remote",
    required=True,
    metavar="URL",
    callback=_remote,
    help="Base URL of the MeshFS server, e.g. https://files.example.org.",
)
@click.option(
    "--target",
    required=True,
    metavar="DIR",
    type=click.Path(exists=True, file_okay=False, dir_okay=True, path_type=Path),
    help="Existing directory to mount on.",
)
@click.option("--allow-other", is_flag=True, help="Let users other than you use the mount.")
@click.option("--auto-unmount", is_flag=True, help="Unmount automatically if the daemon exits.")
@click.option("--read-only", is_flag=True, help="Mount read-only.")
@click.version_option(__version__, prog_name="meshfs-mount")
def main(remote: str, target: Path, allow_other: bool, auto_unmount: bool, read_only: bool) -> None:
    """Mount a MeshFS namespace on DIR (validation only in this release)."""
    target = target.resolve()
    if os.path.ismount(target):
        raise click.BadParameter(f"{target} is already a mount point", param_hint="--target")
    if allow_other and not allow_other_permitted(os.geteuid()):
        raise click.BadParameter(
            f"needs root or 'user_allow_other' in {FUSE_CONF}", param_hint="--allow-other"
        )
    options = MountOptions(remote, target, allow_other, auto_unmount, read_only)
    click.echo(
        f"meshfs-mount: arguments are valid ({options.remote} on {options.target}), "
        "but this build of meshfs-fuse cannot mount yet",
        err=True,
    )
    raise SystemExit(EXIT_CANNOT_MOUNT)
