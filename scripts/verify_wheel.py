#!/usr/bin/env python3
"""Check an installed MeshFS wheel from inside the venv it was installed into.

Run with that venv's python (stdlib only)::

    VENV/bin/python scripts/verify_wheel.py --dist DIST meshfs-server

It checks that (1) every installed ``meshfs-*`` distribution is byte-for-byte the wheel in DIST
(so internal dependencies came from the fresh build, not from an index or the workspace),
(2) the package's top-level module imports, and (3) each console script it declares answers
``--help`` with exit status 0.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata as metadata
import subprocess
import sys
import zipfile
from pathlib import Path


def _wheel_for(dist_dir: Path, name: str) -> Path:
    wheels = sorted(dist_dir.glob(f"{name.replace('-', '_')}-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"verify_wheel: expected one wheel for {name} in {dist_dir}: {wheels}")
    return wheels[0]


def _check_same_files(dist_dir: Path, dist: metadata.Distribution) -> None:
    name = dist.metadata["Name"]
    wheel = _wheel_for(dist_dir, name)
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if ".dist-info/" in member or member.endswith("/"):
                continue
            installed = Path(str(dist.locate_file(member)))
            if not installed.is_file():
                raise SystemExit(f"verify_wheel: {name}: {member} from {wheel.name} not installed")
            if installed.read_bytes() != archive.read(member):
                raise SystemExit(
                    f"verify_wheel: {name}: installed {member} differs from {wheel.name}; "
                    "it did not come from the fresh build"
                )
    if dist.version != wheel.name.split("-")[1]:
        raise SystemExit(f"verify_wheel: {name}: installed {dist.version}, built {wheel.name}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dist", type=Path, required=True, help="directory of built wheels")
    parser.add_argument("name", help="distribution name, e.g. meshfs-server")
    args = parser.parse_args()

    internal = [
        d for d in metadata.distributions() if d.metadata["Name"].lower().startswith("meshfs-")
    ]
    for dist in internal:
        _check_same_files(args.dist, dist)

    module = args.name.replace("-", "_")
    imported = importlib.import_module(module)
    version = getattr(imported, "__version__", None)
    expected = metadata.version(args.name)
    if version is not None and version != expected:
        raise SystemExit(f"verify_wheel: {module}.__version__ is {version}, metadata {expected}")

    scripts = [
        ep for ep in metadata.distribution(args.name).entry_points if ep.group == "console_scripts"
    ]
    bindir = Path(sys.executable).parent
    for ep in scripts:
        result = subprocess.run(
            [str(bindir / ep.name), "--help"], capture_output=True, text=True, timeout=60
        )
        if result.returncode != 0:
            sys.stderr.write(result.stdout + result.stderr)
            raise SystemExit(f"verify_wheel: `{ep.name} --help` exited {result.returncode}")

    names = ", ".join(sorted(f"{d.metadata['Name']} {d.version}" for d in internal))
    shown = ", ".join(f"{ep.name} --help" for ep in scripts) or "no console scripts"
    print(f"verify_wheel: {args.name}: import {module} ok; {shown} ok; from wheels: {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
