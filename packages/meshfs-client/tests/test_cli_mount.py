"""`meshfs mount` / `meshfs umount`: the mount daemon is run when installed, never imported."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from meshfs_client.cli import main
from meshfs_client.cli import mount as mount_cli


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(args)
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), out, err


def test_mount_without_the_daemon_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(mount_cli, "find_mount_command", lambda: None)
    code, _, err = run(["mount", str(tmp_path)], capsys)
    assert code == 1
    assert "pip install meshfs-fuse" in err
    assert len(err.strip().splitlines()) == 1


def test_mount_runs_meshfs_mount_with_the_arguments_and_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(mount_cli, "find_mount_command", lambda: "/opt/bin/meshfs-mount")
    monkeypatch.setattr(mount_cli.os, "execv", lambda path, argv: calls.append((path, argv)))
    with pytest.raises(SystemExit) as exited:
        main(["--server", "http://h:1", "mount", "--target", str(tmp_path), "--read-only"])
    assert exited.value.code in (0, None)
    assert calls == [
        (
            "/opt/bin/meshfs-mount",
            ["/opt/bin/meshfs-mount", "--target", str(tmp_path), "--read-only",
             "--remote", "http://h:1"],
        )
    ]  # fmt: skip


def test_the_client_does_not_import_the_mount_daemon() -> None:
    assert "meshfs_fuse" not in sys.modules
    assert "pyfuse3" not in sys.modules


def test_umount_of_a_directory_that_is_not_mounted_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["umount", str(tmp_path)], capsys)
    assert code == 1
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
