"""Nox sessions for the MeshFS workspace.

``scripts/test.sh`` runs ``lint``, ``typecheck``, ``tests``, ``integration`` and ``wheels`` (the
CI gate); ``bench`` is run by hand. Every session uses a uv-built virtualenv on Python 3.11 (the
floor the project supports) and installs the workspace packages it needs in editable mode, each
together with the workspace packages it depends on, so nothing resolves a ``meshfs-*`` name
from an index.

A package that needs more than the common test tools declares them in its own pyproject as a
dependency group: ``[dependency-groups] test = [...]`` (installed by ``tests``, ``typecheck`` and
``integration``) and optionally ``typecheck = [...]`` (stub packages). Integration tests may add
``integration = [...]`` to the root pyproject.

Locally ``nox -r -s tests`` reuses the session venvs; CI (scripts/test.sh with CI set) builds
them fresh.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path
from typing import Any

import nox

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "typecheck", "tests", "integration", "wheels"]
nox.needs_version = ">=2024.10"

PYTHON = "3.11"
ROOT = Path(__file__).resolve().parent
PACKAGES = ROOT / "packages"
# Short names used in session ids (tests(package='fuse')) -> package directories.
PACKAGE_NAMES = ["common", "server", "client", "fuse"]

TEST_TOOLS = [
    "pytest>=8",
    "pytest-asyncio>=1.0",
    "pytest-timeout>=2.3",
    "hypothesis>=6.100",
    "httpx>=0.27",
]
# A test that hangs fails after this many seconds instead of holding CI until its limit.
TEST_TIMEOUT = "--timeout=600"
# meshfs-common has no async code; the FUSE daemon runs on trio (pytest-trio, trio_mode).
# Workspace packages a package's tests run for real beside it (the client's tests talk to a real
# meshfs-server process; the mount's tests to a server through the client).
TEST_PEERS = {"client": ["server"], "fuse": ["server", "client"]}
PACKAGE_TEST_TOOLS = {
    "common": ["pytest>=8", "pytest-timeout>=2.3", "hypothesis>=6.100"],
    "fuse": [
        "pytest>=8",
        "pytest-trio>=0.8",
        "pytest-timeout>=2.3",
        "hypothesis>=6.100",
        "httpx>=0.27",
    ],
}
SCRIPTS_TEST_TOOLS = ["pytest>=8", "packaging>=24"]


def _pyproject(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        return tomllib.load(f)


def _package_dir(short: str) -> Path:
    return PACKAGES / f"meshfs-{short}"


def _workspace() -> dict[str, Path]:
    """Distribution name -> directory of every workspace package."""
    found: dict[str, Path] = {}
    for pyproject in sorted(PACKAGES.glob("*/pyproject.toml")):
        found[_pyproject(pyproject)["project"]["name"]] = pyproject.parent
    return found


def _dep_name(requirement: str) -> str:
    # Good enough for names in our own pyprojects; packaging is not importable in noxfile.py.
    name = requirement
    for stop in "<>=!~;[ @(":
        name = name.split(stop, 1)[0]
    return name.strip().lower().replace("_", "-")


def _internal_closure(directory: Path) -> list[Path]:
    """*directory* plus every workspace package it depends on, transitively."""
    workspace = _workspace()
    seen: list[Path] = []
    todo = [directory]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.append(current)
        for dep in _pyproject(current / "pyproject.toml")["project"].get("dependencies", []):
            name = _dep_name(dep)
            if name in workspace:
                todo.append(workspace[name])
    return seen


def _group(pyproject: Path, group: str) -> list[str]:
    """Requirements of a PEP 735 dependency group, following include-group entries."""
    groups = _pyproject(pyproject).get("dependency-groups", {})
    out: list[str] = []

    def walk(name: str) -> None:
        for item in groups.get(name, []):
            if isinstance(item, str):
                out.append(item)
            else:
                walk(item["include-group"])

    walk(group)
    workspace = _workspace()
    # Workspace packages in a group are installed editable by _install_packages instead.
    return [req for req in out if _dep_name(req) not in workspace]


def _install_packages(session: nox.Session, directories: list[Path], *extra: str) -> None:
    """Install *directories* (with their workspace deps) editable, plus *extra* requirements."""
    editables: list[str] = []
    for directory in directories:
        for dep_dir in _internal_closure(directory):
            if str(dep_dir) not in editables:
                editables.append(str(dep_dir))
    args: list[str] = []
    for editable in editables:
        args += ["-e", editable]
    session.install(*args, *extra)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check + ruff format --check over the whole tree, and the internal-range check."""
    session.install("ruff>=0.8", "packaging>=24")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("python", "scripts/check_internal_ranges.py")


@nox.session(python=PYTHON)
@nox.parametrize("package", PACKAGE_NAMES)
def typecheck(session: nox.Session, package: str) -> None:
    """mypy --strict over one package's src, with that package's dependencies installed."""
    directory = _package_dir(package)
    pyproject = directory / "pyproject.toml"
    _install_packages(
        session,
        [directory],
        "mypy>=1.13",
        *_group(pyproject, "test"),
        *_group(pyproject, "typecheck"),
    )
    session.chdir(directory)
    session.run("mypy", "--strict", "--python-version", "3.11", f"src/meshfs_{package}")


@nox.session(python=PYTHON)
@nox.parametrize("package", [*PACKAGE_NAMES, "scripts"])
def tests(session: nox.Session, package: str) -> None:
    """One package's tests/ directory (or the tests of scripts/ for package='scripts').

    pytest's exit code 5 ("no tests collected") fails the session like any other non-zero code.
    """
    if package == "scripts":
        session.install(*SCRIPTS_TEST_TOOLS)
        session.run("pytest", "-q", "scripts/tests", *session.posargs)
        return
    directory = _package_dir(package)
    tools = PACKAGE_TEST_TOOLS.get(package, TEST_TOOLS)
    peers = [_package_dir(name) for name in TEST_PEERS.get(package, [])]
    extra = [*tools, *_group(directory / "pyproject.toml", "test")]
    for peer in peers:
        extra += _group(peer / "pyproject.toml", "test")
    _install_packages(session, [directory, *peers], *dict.fromkeys(extra))
    # Run from the package directory so its own [tool.pytest.ini_options] apply.
    session.chdir(directory)
    session.run("pytest", "-q", TEST_TIMEOUT, "tests", *session.posargs)


@nox.session(python=PYTHON)
def integration(session: nox.Session) -> None:
    """integration-tests/ against the installed server, client and FUSE mount."""
    directories = [_package_dir(name) for name in ("server", "client", "fuse")]
    extra = [*TEST_TOOLS, *_group(ROOT / "pyproject.toml", "integration")]
    for directory in directories:
        extra += _group(directory / "pyproject.toml", "test")
    _install_packages(session, directories, *dict.fromkeys(extra))
    session.run("pytest", "-q", TEST_TIMEOUT, "integration-tests", *session.posargs)


@nox.session(python=PYTHON)
def wheels(session: nox.Session) -> None:
    """Build every package and install each one from its wheel alone into a fresh venv.

    Internal dependencies come from the freshly built wheels (--find-links); the check in
    scripts/verify_wheel.py proves the installed meshfs-* files are the built ones, imports the
    package and runs each console script with --help.
    """
    session.install("packaging>=24")
    tmp = Path(session.create_tmp())
    dist = tmp / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.run("uv", "build", "--all-packages", "--out-dir", str(dist), external=True)
    session.run("python", "scripts/check_internal_ranges.py", "--wheels", str(dist))

    for name in sorted(_workspace()):
        wheel_name = name.replace("-", "_")
        built = sorted(dist.glob(f"{wheel_name}-*.whl"))
        if len(built) != 1:
            session.error(f"expected one wheel for {name} in {dist}, found {built}")
        venv = tmp / f"venv-{name}"
        shutil.rmtree(venv, ignore_errors=True)
        session.run("uv", "venv", "--quiet", "--python", PYTHON, str(venv), external=True)
        python = str(venv / "bin" / "python")
        session.run(
            "uv",
            "pip",
            "install",
            "--quiet",
            "--python",
            python,
            "--find-links",
            str(dist),
            # The built wheels keep their version between builds; never take a cached copy.
            *(arg for other in PACKAGE_NAMES for arg in ("--refresh-package", f"meshfs-{other}")),
            str(built[0]),
            external=True,
        )
        session.run(python, "scripts/verify_wheel.py", "--dist", str(dist), name, external=True)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks (not pass/fail): model decoding, then scripts/bench/run.py when present."""
    directories = [_package_dir(name) for name in PACKAGE_NAMES]
    _install_packages(session, directories, "pydantic>=2")
    session.run("python", "scripts/bench/models_decode.py", *session.posargs)
    run_py = ROOT / "scripts" / "bench" / "run.py"
    if run_py.exists():
        session.run("python", str(run_py), *session.posargs)
    else:
        session.log("scripts/bench/run.py does not exist yet; skipping server benchmarks")
