"""The meshfs-mount command line: help, validation and the FUSE options it computes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pyfuse3
import pytest
from click.testing import CliRunner

from meshfs_fuse import __version__, cli
from meshfs_fuse.cli import MountOptions, fuse_options, main, parse_remote


def test_pyfuse3_imports_with_its_libfuse() -> None:
    assert hasattr(pyfuse3, "FUSEError")
    assert hasattr(pyfuse3, "init")
    assert "default_permissions" in pyfuse3.default_options


def test_help_lists_every_option() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for option in (
        "--remote",
        "--target",
        "--allow-other",
        "--default-permissions",
        "--auto-unmount",
        "--read-only",
        "--cache-dir",
        "--cache-size",
        "--foreground",
    ):
        assert option in result.output


def test_installed_entry_point_answers_help() -> None:
    # As a user runs it: the console script next to this interpreter.
    script = Path(sys.executable).parent / "meshfs-mount"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Usage: meshfs-mount" in result.stdout


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_unreachable_server_is_one_clear_line_and_nothing_is_mounted(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens there once closed
    target = tmp_path / "mnt"
    target.mkdir()
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "meshfs-mount"),
            str(target),
            "--remote",
            f"http://127.0.0.1:{port}/",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == cli.EXIT_CANNOT_MOUNT
    assert done.stderr.startswith(f"meshfs-mount: cannot reach http://127.0.0.1:{port}")
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
    assert not os.path.ismount(target)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "Missing the mount point"),
        (["--remote", "http://h"], "Missing the mount point"),
        (["{tmp}", "--target", "{tmp}/other"], "give the mount point once"),
        (["--remote", "ftp://h", "--target", "{tmp}"], "not an http:// or https:// URL"),
        (["--remote", "http://", "--target", "{tmp}"], "has no host"),
        (["--remote", "http://h:99999", "--target", "{tmp}"], "invalid port"),
        (["--remote", "http://h/?a=1", "--target", "{tmp}"], "query or fragment"),
        (["--remote", "http://u:p@h", "--target", "{tmp}"], "must not carry credentials"),
        (["--remote", "http://h", "--target", "{tmp}/missing"], "is not an existing directory"),
        (["{tmp}/missing"], "is not an existing directory"),
        (["{tmp}", "--cache-size", "lots"], "is not a size"),
        (["--remote", "http://h", "--target", "{tmp}/file"], "is a file"),
        (["--remote", "http://h", "--target", "/proc"], "already a mount point"),
    ],
)
def test_invalid_arguments_exit_2_with_one_clear_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "file").write_text("x")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https://files.example.org/", "https://files.example.org"),
        ("https://files.example.org/meshfs//", "https://files.example.org/meshfs"),
        (" http://[::1]:9000 ", "http://[::1]:9000"),
    ],
)
def test_parse_remote(url: str, expected: str) -> None:
    assert parse_remote(url) == expected


def test_allow_other_needs_root_or_fuse_conf(tmp_path: Path) -> None:
    conf = tmp_path / "fuse.conf"
    assert cli.allow_other_permitted(0, conf)
    assert not cli.allow_other_permitted(1000, conf)  # no file
    conf.write_text("# user_allow_other\nmount_max = 1000\n")
    assert not cli.allow_other_permitted(1000, conf)
    conf.write_text("mount_max = 1000\nuser_allow_other  # let others in\n")
    assert cli.allow_other_permitted(1000, conf)


def test_fuse_options() -> None:
    plain = fuse_options(MountOptions("http://h", Path("/mnt")))
    assert plain == set(pyfuse3.default_options) - {"default_permissions"} | {
        "fsname=meshfs",
        "subtype=meshfs",
    }
    everything = fuse_options(MountOptions("http://h", Path("/mnt"), True, True, True, True))
    assert everything - plain == {"allow_other", "auto_unmount", "ro", "default_permissions"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1073741824", 1024**3),
        ("512M", 512 * 1024**2),
        ("2g", 2 * 1024**3),
        ("1.5GiB", 3 * 1024**3 // 2),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert cli.parse_size(text) == expected


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["meshfs", "/mnt/m"], ["/mnt/m"]),
        (
            ["https://files.example.org", "/mnt/m", "-o", "ro,allow_other,noatime,_netdev"],
            ["/mnt/m", "--remote", "https://files.example.org", "--read-only", "--allow-other"],
        ),
        (
            ["meshfs", "/mnt/m", "-o", "default_permissions,allow_other"],
            ["/mnt/m", "--default-permissions", "--allow-other"],
        ),
        (
            ["meshfs", "/mnt/m", "-ocache_dir=/var/cache/m,cache_size=2G", "-n"],
            ["/mnt/m", "--cache-dir", "/var/cache/m", "--cache-size", "2G"],
        ),
    ],
)
def test_mount_helper_follows_the_mount_convention(argv: list[str], expected: list[str]) -> None:
    assert cli.mount_arguments(argv) == expected


def test_mount_helper_refuses_what_it_does_not_know() -> None:
    import click

    with pytest.raises(click.UsageError, match="unknown option 'sync'"):
        cli.mount_arguments(["meshfs", "/mnt/m", "-o", "sync"])
    with pytest.raises(click.UsageError, match=r"usage: mount\.meshfs"):
        cli.mount_arguments(["/mnt/m"])


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_mount_helper_help_explains_the_options_and_exits_0(
    flag: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["mount.meshfs", flag])
    with pytest.raises(SystemExit) as exited:
        cli.mount_helper()
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: mount.meshfs SOURCE DIR [-o OPTIONS]")
    for option in [*cli._FLAG_OPTIONS, *cli._VALUE_OPTIONS]:
        assert option in out


def test_guardian_finds_the_device_of_the_topmost_mount() -> None:
    from meshfs_fuse.guardian import mount_device

    mountinfo = (
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "42 22 0:39 / /tmp/my\\040mount rw - fuse.meshfs meshfs rw\n"
        "43 42 0:40 / /tmp/my\\040mount rw - fuse.meshfs meshfs rw\n"
    )
    assert mount_device("/tmp/my mount", mountinfo) == "0:40"
    assert mount_device("/tmp/other", mountinfo) is None
