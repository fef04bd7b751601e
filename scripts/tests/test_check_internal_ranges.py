"""Tests of scripts/check_internal_ranges.py on small fake workspaces."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "check_internal_ranges.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_internal_ranges", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


check = _load()


def _package(root: Path, name: str, version: str, deps: list[str]) -> None:
    directory = root / name
    directory.mkdir(parents=True)
    dep_lines = "".join(f'    "{d}",\n' for d in deps)
    (directory / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "{version}"\ndependencies = [\n{dep_lines}]\n'
    )


def _run(packages: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--packages", str(packages)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_range_admitting_current_version_passes(tmp_path: Path) -> None:
    _package(tmp_path, "meshfs-common", "0.1.0", ["msgspec>=0.18"])
    _package(tmp_path, "meshfs-server", "0.1.0", ["meshfs-common>=0.1.0,<0.2", "click"])
    result = _run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "meshfs-common 0.1.0" in result.stdout


def test_range_excluding_current_version_fails_with_a_clear_line(tmp_path: Path) -> None:
    _package(tmp_path, "meshfs-common", "0.2.0", [])
    _package(tmp_path, "meshfs-client", "0.1.0", ["meshfs-common>=0.1.0,<0.2"])
    result = _run(tmp_path)
    assert result.returncode == 1
    assert "meshfs-client requires 'meshfs-common>=0.1.0,<0.2'" in result.stderr
    assert "meshfs-common 0.2.0" in result.stderr


@pytest.mark.parametrize(
    ("requirement", "message"),
    [
        ("meshfs-common", "without a version range"),
        ("meshfs-common @ file:///tmp/x.whl", "by URL"),
        ("meshfs-nosuch>=0.1", "not a package of this workspace"),
    ],
)
def test_unranged_url_and_unknown_internal_requirements_fail(
    tmp_path: Path, requirement: str, message: str
) -> None:
    _package(tmp_path, "meshfs-common", "0.1.0", [])
    _package(tmp_path, "meshfs-fuse", "0.1.0", [requirement])
    result = _run(tmp_path)
    assert result.returncode == 1
    assert message in result.stderr


def test_prerelease_workspace_version_is_judged_by_the_range(tmp_path: Path) -> None:
    _package(tmp_path, "meshfs-common", "0.2.0rc1", [])
    _package(tmp_path, "meshfs-fuse", "0.1.0", ["meshfs-common>=0.2.0rc1,<0.3"])
    assert _run(tmp_path).returncode == 0


def test_optional_dependencies_are_checked(tmp_path: Path) -> None:
    _package(tmp_path, "meshfs-common", "0.3.0", [])
    (tmp_path / "meshfs-client").mkdir()
    (tmp_path / "meshfs-client" / "pyproject.toml").write_text(
        '[project]\nname = "meshfs-client"\nversion = "0.1.0"\n'
        '[project.optional-dependencies]\nfs = ["meshfs-common<0.3"]\n'
    )
    assert _run(tmp_path).returncode == 1


def test_no_packages_is_an_error(tmp_path: Path) -> None:
    assert _run(tmp_path).returncode == 1


def test_wheel_metadata_mode(tmp_path: Path) -> None:
    def wheel(name: str, version: str, requires: list[str]) -> None:
        dist = name.replace("-", "_")
        lines = ["Metadata-Version: 2.3", f"Name: {name}", f"Version: {version}"]
        lines += [f"Requires-Dist: {r}" for r in requires]
        path = tmp_path / f"{dist}-{version}-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(f"{dist}-{version}.dist-info/METADATA", "\n".join(lines) + "\n")

    wheel("meshfs-common", "0.1.0", ["msgspec>=0.18"])
    wheel("meshfs-server", "0.1.0", ["meshfs-common<0.2,>=0.1.0"])
    packages = check.packages_from_wheels(tmp_path)
    assert [p.name for p in packages] == ["meshfs-common", "meshfs-server"]
    assert check.problems(packages) == []

    wheel("meshfs-client", "0.1.0", ["meshfs-common>=0.1.1"])
    found = check.problems(check.packages_from_wheels(tmp_path))
    assert len(found) == 1
    assert "meshfs-client" in found[0]


def test_the_real_workspace_passes() -> None:
    packages = SCRIPT.parent.parent / "packages"
    assert check.problems(check.packages_from_pyprojects(packages)) == []
