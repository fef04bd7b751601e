"""The meshfs-mount command line: help, validation and the FUSE options it computes."""

from __future__ import annotations

import os
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
    for option in ("--remote", "--target", "--allow-other", "--auto-unmount", "--read-only"):
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


def test_valid_arguments_do_not_pretend_to_mount(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["--remote", "http://127.0.0.1:8080/", "--target", str(tmp_path), "--read-only"]
    )
    assert result.exit_code == cli.EXIT_CANNOT_MOUNT
    assert "cannot mount yet" in result.output
    assert "http://127.0.0.1:8080 on" in result.output
    assert not os.path.ismount(tmp_path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "Missing option '--remote'"),
        (["--remote", "http://h"], "Missing option '--target'"),
        (["--remote", "ftp://h", "--target", "{tmp}"], "not an http:// or https:// URL"),
        (["--remote", "http://", "--target", "{tmp}"], "has no host"),
        (["--remote", "http://h:99999", "--target", "{tmp}"], "invalid port"),
        (["--remote", "http://h/?a=1", "--target", "{tmp}"], "query or fragment"),
        (["--remote", "http://u:p@h", "--target", "{tmp}"], "must not carry credentials"),
        (["--remote", "http://h", "--target", "{tmp}/missing"], "does not exist"),
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
    assert plain == set(pyfuse3.default_options) | {"fsname=meshfs", "subtype=meshfs"}
    everything = fuse_options(MountOptions("http://h", Path("/mnt"), True, True, True))
    assert everything - plain == {"allow_other", "auto_unmount", "ro"}
