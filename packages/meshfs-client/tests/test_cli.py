"""CLI behaviour that needs no server: argument errors, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshfs_client.cli import main


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MESHFS_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("MESHFS_SERVER", "http://127.0.0.1:1")  # nothing listens on port 1
    monkeypatch.delenv("MESHFS_TOKEN", raising=False)


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(args)
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), out, err


@pytest.mark.parametrize(
    "args",
    [
        ["ls", "--bogus"],
        ["put"],
        ["get"],
        ["restore", "/a"],
        ["watch", "--cursor", "-1"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(args, capsys)
    assert code == 2
    assert "Traceback" not in err


def test_put_directory_needs_r(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["put", str(tmp_path), "/x"], capsys)
    assert code == 2
    assert "use -r" in err


def test_invalid_remote_path_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["stat", "/a/../b"], capsys)
    assert code == 2
    assert err.startswith("meshfs: error:")


def test_missing_local_file_exits_4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["put", str(tmp_path / "nope"), "/x"], capsys)
    assert code == 4
    assert err.count("\n") == 1


def test_unreachable_server_is_one_line_and_exit_6(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["ls", "/"], capsys)
    assert code == 6
    assert out == ""
    assert err.startswith("meshfs: error:")
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_json_errors_are_machine_readable(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["--json", "stat", "/a"], capsys)
    assert code == 6
    report = json.loads(err)
    assert report["exit_code"] == 6
    assert report["error"] in ("unavailable", "timeout")


def test_bad_server_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["--server", "ftp://example.com", "ls"], capsys)
    assert code == 2
    assert "http" in err


def test_version_and_help_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--version"], capsys)[0] == 0
    code, out, _ = run(["put", "--help"], capsys)
    assert code == 0
    assert "Upload" in out


def test_start_up_imports_no_network_or_sync_machinery() -> None:
    """`meshfs --help` must start fast: the heavy libraries load only when a command runs."""
    import subprocess
    import sys

    probe = (
        "import sys; from meshfs_client.cli import cli; "
        "print(' '.join(m for m in ('aiohttp', 'rich', 'watchfiles', 'pathspec', 'tenacity',"
        " 'meshfs_client.mirror', 'meshfs_client._client') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == []


def test_sync_conflict_choices_are_the_engine_policies() -> None:
    from meshfs_client.cli.sync import CONFLICT_POLICIES
    from meshfs_client.mirror import ConflictPolicy

    assert tuple(p.value for p in ConflictPolicy) == CONFLICT_POLICIES


def test_library_names_still_import_from_the_package() -> None:
    import meshfs_client

    for name in meshfs_client.__all__:
        assert getattr(meshfs_client, name) is not None, name
    with pytest.raises(AttributeError):
        _ = meshfs_client.NoSuchThing  # type: ignore[attr-defined]
