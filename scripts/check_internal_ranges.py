#!/usr/bin/env python3
"""Check that every dependency between MeshFS packages admits the version it points at.

The workspace packages are released together but installed separately, so a package that
requires ``meshfs-common>=0.1.0,<0.2`` while the workspace holds meshfs-common 0.2.0 would pass
in the workspace (uv links the local copy) and break for every user installing from wheels.

Usage::

    scripts/check_internal_ranges.py             # the pyprojects under packages/
    scripts/check_internal_ranges.py --wheels D  # the METADATA of the wheels in D

Exit status 0 when every internal requirement is a version range admitting the current
version, 1 otherwise (one line per problem on stderr). Needs ``packaging``.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
INTERNAL_PREFIX = "meshfs-"


@dataclass(frozen=True)
class Package:
    """One package: its name, version and requirement strings, and where they were read."""

    name: str
    version: str
    requirements: tuple[str, ...]
    source: str


def packages_from_pyprojects(packages_dir: Path) -> list[Package]:
    """Read ``[project]`` name, version, dependencies and optional-dependencies."""
    found = []
    for pyproject in sorted(packages_dir.glob("*/pyproject.toml")):
        with pyproject.open("rb") as f:
            project = tomllib.load(f).get("project", {})
        requirements = list(project.get("dependencies", []))
        for extra in project.get("optional-dependencies", {}).values():
            requirements += extra
        found.append(
            Package(
                name=str(project.get("name", pyproject.parent.name)),
                version=str(project.get("version", "")),
                requirements=tuple(requirements),
                source=str(pyproject.relative_to(packages_dir.parent)),
            )
        )
    return found


def packages_from_wheels(wheel_dir: Path) -> list[Package]:
    """Read Name, Version and Requires-Dist from each wheel's METADATA."""
    found = []
    for wheel in sorted(wheel_dir.glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            metadata_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            headers = HeaderParser().parsestr(archive.read(metadata_name).decode("utf-8"))
        found.append(
            Package(
                name=headers["Name"],
                version=headers["Version"],
                requirements=tuple(headers.get_all("Requires-Dist") or ()),
                source=wheel.name,
            )
        )
    return found


def problems(packages: Iterable[Package]) -> list[str]:
    """Every internal requirement that is not a range admitting the current version."""
    packages = list(packages)
    versions: dict[str, str] = {canonicalize_name(p.name): p.version for p in packages}
    found: list[str] = []
    for package in packages:
        for text in package.requirements:
            try:
                requirement = Requirement(text)
            except InvalidRequirement as exc:
                found.append(f"{package.source}: cannot parse requirement {text!r}: {exc}")
                continue
            name = canonicalize_name(requirement.name)
            if not name.startswith(INTERNAL_PREFIX):
                continue
            if name not in versions:
                found.append(
                    f"{package.source}: {package.name} requires {text!r}, "
                    "which is not a package of this workspace"
                )
                continue
            if requirement.url:
                found.append(
                    f"{package.source}: {package.name} requires {name} by URL ({text!r}); "
                    "use a version range"
                )
                continue
            if not requirement.specifier:
                found.append(
                    f"{package.source}: {package.name} requires {name} without a version range "
                    f"({text!r}); pin a range such as '>={versions[name]},<NEXT'"
                )
                continue
            try:
                current = Version(versions[name])
            except InvalidVersion:
                found.append(f"{package.source}: {name} has an invalid version {versions[name]!r}")
                continue
            if not requirement.specifier.contains(current, prereleases=True):
                found.append(
                    f"{package.source}: {package.name} requires {text!r}, but the workspace "
                    f"has {name} {current}; widen the range or bump the dependency"
                )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--packages", type=Path, default=ROOT / "packages")
    parser.add_argument("--wheels", type=Path, help="check built wheels in this directory")
    args = parser.parse_args(argv)
    if args.wheels:
        packages = packages_from_wheels(args.wheels)
    else:
        packages = packages_from_pyprojects(args.packages)
    if not packages:
        print("check_internal_ranges: no packages found", file=sys.stderr)
        return 1
    found = problems(packages)
    for line in found:
        print(f"check_internal_ranges: {line}", file=sys.stderr)
    if found:
        return 1
    names = ", ".join(f"{p.name} {p.version}" for p in packages)
    print(f"check_internal_ranges: internal ranges admit current versions ({names})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
