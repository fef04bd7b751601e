"""``meshfs-mount`` and ``mount.meshfs``: the command line of the MeshFS mount daemon.

``meshfs-mount DIR`` mounts in the background and returns once the mount is ready (exit 0),
or prints one line saying why it cannot and exits 1 (2 for invalid arguments). The daemon
logs to ``<cache dir>/mount.log``; ``--foreground`` keeps it in the terminal instead.
``mount.meshfs SOURCE DIR -o OPTIONS`` is the same for ``mount -t fuse.meshfs`` and fstab.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import click
import pyfuse3

from meshfs_fuse import __version__
from meshfs_fuse.daemon import DaemonConfig, MountError, serve

__all__ = [
    "EXIT_CANNOT_MOUNT",
    "MountOptions",
    "fuse_options",
    "main",
    "mount_helper",
    "parse_remote",
    "parse_size",
]

EXIT_CANNOT_MOUNT = 1
FUSE_CONF = Path("/etc/fuse.conf")
READY_FD_ENV = "MESHFS_MOUNT_READY_FD"
DEFAULT_CACHE_SIZE = 1024**3
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


@dataclass(frozen=True, slots=True)
class MountOptions:
    """Validated arguments of one mount."""

    remote: str | None
    target: Path
    allow_other: bool = False
    auto_unmount: bool = False
    read_only: bool = False
    default_permissions: bool = False


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
    """The libfuse mount options for *options* (what ``pyfuse3.init`` receives).

    ``default_permissions`` (on in pyfuse3's defaults) only when asked for: the kernel then
    checks each node's stored mode and owner, which only fits when the uid/gid the server
    stores mean the same users as on this machine.
    """
    result = set(pyfuse3.default_options) - {"default_permissions"}
    result |= {"fsname=meshfs", "subtype=meshfs"}
    if options.allow_other:
        result.add("allow_other")
    if options.auto_unmount:
        result.add("auto_unmount")
    if options.read_only:
        result.add("ro")
    if options.default_permissions:
        result.add("default_permissions")
    return result


def parse_size(text: str) -> int:
    """Bytes in ``"1073741824"``, ``"512M"``, ``"1G"``, ``"2.5g"`` (powers of 1024)."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", text.lower())
    if found is None:
        raise ValueError(f"{text!r} is not a size (e.g. 512M, 2G)")
    return int(float(found.group(1)) * _UNITS[found.group(2)])


def default_cache_dir(remote: str | None, target: Path) -> Path:
    """``$XDG_CACHE_HOME/meshfs/mount-<id>``: one per server and mount point."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(f"{remote or ''}|{target}".encode()).hexdigest()[:16]
    return base / "meshfs" / f"mount-{key}"


def _remote(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return parse_remote(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def _size(ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument(
    "directory",
    required=False,
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option(
    "--target",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Existing directory to mount on (or give it as the argument).",
)
@click.option(
    "--remote",
    metavar="URL",
    callback=_remote,
    help="MeshFS server, e.g. https://files.example.org (default: MESHFS_SERVER, else the "
    "server of your last `meshfs login`).",
)
@click.option("--read-only", is_flag=True, help="Mount read-only.")
@click.option("--allow-other", is_flag=True, help="Let users other than you use the mount.")
@click.option(
    "--default-permissions",
    is_flag=True,
    help="Let the kernel enforce each node's mode and owner (as stored on the server: nodes "
    "made through the API or another device carry the uid/gid they were given there).",
)
@click.option(
    "--auto-unmount/--no-auto-unmount",
    default=True,
    show_default=True,
    help="Unmount when the daemon exits, even if it is killed.",
)
@click.option(
    "--cache-dir",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the read cache and the write journal live "
    "(default: ~/.cache/meshfs/mount-<id>, one per server and mount point).",
)
@click.option(
    "--cache-size",
    metavar="SIZE",
    default="1G",
    show_default=True,
    callback=_size,
    help="Most disk space the read cache uses (e.g. 512M, 4G).",
)
@click.option("--foreground", "-f", is_flag=True, help="Stay in the foreground; log to stderr.")
@click.version_option(__version__, prog_name="meshfs-mount")
def main(
    directory: Path | None,
    target: Path | None,
    remote: str | None,
    read_only: bool,
    allow_other: bool,
    default_permissions: bool,
    auto_unmount: bool,
    cache_dir: Path | None,
    cache_size: int,
    foreground: bool,
) -> None:
    """Mount MeshFS on DIR.

    Signs in with MESHFS_TOKEN or the login stored by `meshfs login`. Returns once the mount
    is ready; unmount with `fusermount3 -u DIR` (or `meshfs umount DIR`). Files written
    through the mount become one version each time they are closed.
    """
    if directory is not None and target is not None and directory != target:
        raise click.UsageError("give the mount point once: DIR or --target DIR")
    where = directory or target
    if where is None:
        raise click.UsageError("Missing the mount point: DIR or --target DIR")
    if not where.is_dir():
        raise click.BadParameter(f"{where} is not an existing directory", param_hint="DIR")
    where = where.resolve()
    if os.path.ismount(where):
        raise click.BadParameter(f"{where} is already a mount point", param_hint="DIR")
    if allow_other and not allow_other_permitted(os.geteuid()):
        raise click.BadParameter(
            f"needs root or 'user_allow_other' in {FUSE_CONF}", param_hint="--allow-other"
        )
    options = MountOptions(remote, where, allow_other, auto_unmount, read_only, default_permissions)
    cache = (cache_dir or default_cache_dir(remote, where)).resolve()
    config = DaemonConfig(
        target=where,
        server=remote,
        cache_dir=cache,
        cache_size=cache_size,
        fuse_options=frozenset(fuse_options(options)),
        read_only=read_only,
    )
    ready_fd = os.environ.pop(READY_FD_ENV, None)
    if foreground or ready_fd is not None:
        _run_daemon(config, int(ready_fd) if ready_fd is not None else None)
        return
    _start_in_background(config, _daemon_arguments(config, options))


def _daemon_arguments(config: DaemonConfig, options: MountOptions) -> list[str]:
    result = [str(config.target), "--cache-dir", str(config.cache_dir)]
    result += ["--cache-size", str(config.cache_size)]
    if options.remote is not None:
        result += ["--remote", options.remote]
    if options.read_only:
        result.append("--read-only")
    if options.allow_other:
        result.append("--allow-other")
    if options.default_permissions:
        result.append("--default-permissions")
    result.append("--auto-unmount" if options.auto_unmount else "--no-auto-unmount")
    return result


def _run_daemon(config: DaemonConfig, ready_fd: int | None) -> None:
    if ready_fd is not None:
        # Helpers libfuse starts (fusermount3) must not hold the pipe the caller waits on.
        os.set_inheritable(ready_fd, False)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    def ready() -> None:
        if ready_fd is not None:
            os.write(ready_fd, b"ok\n")
            os.close(ready_fd)
        logging.getLogger("meshfs_fuse").info("mounted on %s", config.target)

    try:
        serve(config, ready)
    except MountError as exc:
        if ready_fd is not None:
            os.write(ready_fd, f"error: {exc}\n".encode())
        click.echo(f"meshfs-mount: {exc}", err=True)
        raise SystemExit(EXIT_CANNOT_MOUNT) from None


def _start_in_background(config: DaemonConfig, arguments: list[str]) -> None:
    """Start the daemon as its own session and wait until it says it is mounted."""
    config.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = config.cache_dir / "mount.log"
    read_end, write_end = os.pipe()
    argv = [sys.executable, "-m", "meshfs_fuse", *arguments]
    env = dict(os.environ, **{READY_FD_ENV: str(write_end)})
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            env=env,
            pass_fds=(write_end,),
            start_new_session=True,
        )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as answers:
        answer = answers.readline().decode(errors="replace").strip()
    if answer == "ok":
        return
    if answer.startswith("error: "):
        message = answer.removeprefix("error: ")
    else:
        code = process.wait()
        message = f"the mount daemon exited ({code}) before mounting; see {log_path}"
    click.echo(f"meshfs-mount: {message}", err=True)
    raise SystemExit(EXIT_CANNOT_MOUNT)


_IGNORED_MOUNT_OPTIONS = {
    "rw", "defaults", "auto", "noauto", "user", "nouser", "users", "_netdev", "nofail",
    "dev", "nodev", "suid", "nosuid", "exec", "noexec", "atime", "noatime", "relatime",
}  # fmt: skip
_FLAG_OPTIONS = {
    "ro": "--read-only",
    "allow_other": "--allow-other",
    "default_permissions": "--default-permissions",
    "auto_unmount": "--auto-unmount",
    "no_auto_unmount": "--no-auto-unmount",
    "foreground": "--foreground",
}
_VALUE_OPTIONS = {"remote": "--remote", "cache_dir": "--cache-dir", "cache_size": "--cache-size"}


def mount_arguments(argv: Sequence[str]) -> list[str]:
    """``meshfs-mount`` arguments for ``mount.meshfs SOURCE DIR [-o OPTIONS]`` (mount(8)'s
    convention). SOURCE is a server URL or any word (``meshfs``) for the default server."""
    positional: list[str] = []
    options: list[str] = []
    items = iter(argv)
    for item in items:
        if item == "-o":
            options.extend(next(items, "").split(","))
        elif item.startswith("-o"):
            options.extend(item[2:].split(","))
        elif item in ("-n", "-s", "-v"):
            continue  # mount(8) passes these; nothing to do for them
        else:
            positional.append(item)
    if len(positional) != 2:
        raise click.UsageError("usage: mount.meshfs SOURCE DIR [-o OPTIONS]")
    source, directory = positional
    result = [directory]
    if "://" in source:
        result += ["--remote", source]
    for option in filter(None, (o.strip() for o in options)):
        key, _, value = option.partition("=")
        if key in _FLAG_OPTIONS and not value:
            result.append(_FLAG_OPTIONS[key])
        elif key in _VALUE_OPTIONS and value:
            result += [_VALUE_OPTIONS[key], value]
        elif key not in _IGNORED_MOUNT_OPTIONS:
            raise click.UsageError(f"mount.meshfs: unknown option {option!r}")
    return result


MOUNT_HELPER_HELP = """usage: mount.meshfs SOURCE DIR [-o OPTIONS]

Mount MeshFS at DIR the way mount(8) and /etc/fstab call file system helpers
(`mount -t fuse.meshfs SOURCE DIR -o OPTIONS`). SOURCE is the server URL, or any
word (e.g. `meshfs`) for the server of the last `meshfs login`.

OPTIONS (comma-separated): ro, allow_other, default_permissions, auto_unmount,
no_auto_unmount, foreground, remote=URL, cache_dir=DIR, cache_size=SIZE; the generic
mount options (rw, noauto, user, nofail, _netdev, ...) are accepted and left to mount(8).
The mount itself is `meshfs-mount` (see `meshfs-mount --help`)."""


def mount_helper() -> None:
    """Entry point of ``mount.meshfs``."""
    if any(arg in ("-h", "--help") for arg in sys.argv[1:]):
        click.echo(MOUNT_HELPER_HELP)
        raise SystemExit(0)
    try:
        arguments = mount_arguments(sys.argv[1:])
    except click.UsageError as exc:
        click.echo(exc.format_message(), err=True)
        raise SystemExit(2) from None
    sys.argv = ["meshfs-mount", *arguments]
    main(arguments, prog_name="mount.meshfs")
