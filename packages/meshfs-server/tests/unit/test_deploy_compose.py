"""deploy/ (compose stack and image) against the server's real settings and the deployment
rules (no Docker engine runs here).

Every MESHFS_* variable the stack sets is one the server reads, and accepts with the value
given; ports, the bind address and the health checks agree with the routes the app serves. No
secret has a default; ports are published on loopback unless configured; the S3 store has only
the identity the server uses; direct transfers need a public S3 URL; the image alone refuses to
advertise 0.0.0.0; every dependency the image installs is pinned with hashes.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshfs_server.app import all_routes
from meshfs_server.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[4]
DEPLOY = ROOT / "deploy"
#: What an operator sets before the first start (deploy/README.md).
SECRETS = {"MESHFS_DB_PASSWORD": "db-pass-0123", "MESHFS_S3_SECRET": "s3-secret-0123"}
_VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}")


class MissingVariableError(Exception):
    """Compose refuses to start: a ${VAR:?message} variable is not set."""


def _expand(value: str, environ: Mapping[str, str] = SECRETS) -> str:
    """Compose's interpolation of ${VAR}, ${VAR:-default} and ${VAR:?message} in *environ*."""

    def one(match: re.Match[str]) -> str:
        name, kind, text = match.groups()
        if environ.get(name):
            return environ[name]
        if kind == "?":
            raise MissingVariableError(f"{name}: {text}")
        return text if kind == "-" else ""

    return _VARIABLE.sub(one, value)


def _service_env(compose: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    env = compose["services"]["meshfs"]["environment"]
    return {k: _expand(str(v), environ) for k, v in env.items()}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return loaded


@pytest.fixture(scope="module")
def server_env(compose: dict[str, Any]) -> dict[str, str]:
    """The server's environment in a stack started as deploy/README.md says."""
    return _service_env(compose, SECRETS)


def test_every_variable_is_a_real_setting(server_env: dict[str, str]) -> None:
    known = {f.metadata["env"] for f in fields(Settings)}
    assert set(server_env) <= known, set(server_env) - known
    # Settings.from_env refuses unknown names and malformed values, naming them.
    settings = Settings.from_env(server_env)
    assert settings.metadata_backend == "postgres"
    assert settings.object_store_backend == "s3"


def test_ports_and_health_checks_match_the_server(
    compose: dict[str, Any], server_env: dict[str, str]
) -> None:
    service = compose["services"]["meshfs"]
    port = server_env["MESHFS_BIND_ADDR"].rsplit(":", 1)[1]
    assert server_env["MESHFS_BIND_ADDR"].startswith("0.0.0.0:")  # reachable from the host
    assert any(str(p).split(":")[-1] == port for p in service["ports"])
    routes = {getattr(r, "path", None) for r in all_routes()}
    check = " ".join(service["healthcheck"]["test"])
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", check)
    assert url is not None, check
    assert url.group(1) == port
    assert url.group(2) in routes

    dockerfile = (DEPLOY / service["build"]["dockerfile"].removeprefix("deploy/")).read_text()
    assert f"EXPOSE {port}" in dockerfile
    assert f"127.0.0.1:{port}/readyz" in dockerfile
    assert "/readyz" in routes


def test_the_stack_wires_the_services_together(
    compose: dict[str, Any], server_env: dict[str, str]
) -> None:
    services = compose["services"]
    depends = services["meshfs"]["depends_on"]
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["bucket"]["condition"] == "service_completed_successfully"
    assert "@postgres:5432/" in server_env["MESHFS_DATABASE_URL"]
    s3_port = server_env["MESHFS_OBJECT_STORE_ENDPOINT"].rsplit(":", 1)[1]
    assert f"-s3.port={s3_port}" in services["seaweedfs"]["command"]
    assert server_env["MESHFS_OBJECT_STORE_BUCKET"] in " ".join(services["bucket"]["command"])
    for name in ("postgres", "seaweedfs"):
        assert "healthcheck" in services[name]
    build = services["meshfs"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).exists()


def test_readme_documents_every_variable(server_env: dict[str, str]) -> None:
    readme = (DEPLOY / "README.md").read_text()
    for name in server_env:
        assert f"`{name}`" in readme, name


# --- deployment rules ---------------------------------------------------------------------------


def test_no_secret_has_a_default(compose: dict[str, Any]) -> None:
    """Compose refuses to start without the secrets, instead of using a known password."""
    text = (DEPLOY / "docker-compose.yml").read_text()
    for name in SECRETS:
        assert re.search(rf"\$\{{{name}:-", text) is None, name
        assert f"${{{name}:?" in text, name
    with pytest.raises(MissingVariableError, match="MESHFS_DB_PASSWORD"):
        _expand(str(compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]), {})
    with pytest.raises(MissingVariableError):
        _service_env(compose, {})
    with pytest.raises(MissingVariableError, match="MESHFS_S3_SECRET"):
        _expand(compose["configs"]["s3_identities"]["content"], {})
    for path in DEPLOY.iterdir():
        assert "change-me" not in path.read_text(), path.name


def test_ports_are_published_on_loopback_by_default(compose: dict[str, Any]) -> None:
    published = [
        (name, _expand(str(port)))
        for name, service in compose["services"].items()
        for port in service.get("ports", [])
    ]
    assert {name for name, _ in published} == {"meshfs", "seaweedfs"}
    for name, port in published:
        assert port.startswith("127.0.0.1:"), (name, port)
    widened = dict(SECRETS, MESHFS_PUBLISH_ADDR="0.0.0.0")
    meshfs_port = str(compose["services"]["meshfs"]["ports"][0])
    assert _expand(meshfs_port, widened) == "0.0.0.0:8787:8787"


def test_the_store_has_only_the_servers_identity(
    compose: dict[str, Any], server_env: dict[str, str]
) -> None:
    config = yaml.safe_load(_expand(compose["configs"]["s3_identities"]["content"]))
    [identity] = config["identities"]
    [credentials] = identity["credentials"]
    assert credentials["accessKey"] == server_env["MESHFS_OBJECT_STORE_ACCESS_KEY_ID"]
    assert credentials["secretKey"] == server_env["MESHFS_OBJECT_STORE_SECRET_ACCESS_KEY"]
    assert "Admin" not in identity["actions"]


def test_direct_transfers_need_a_public_s3_url(compose: dict[str, Any]) -> None:
    default = Settings.from_env(_service_env(compose, SECRETS))
    assert default.object_store_direct_transfers is False
    public = "https://s3.files.example.com"
    configured = Settings.from_env(
        _service_env(
            compose, dict(SECRETS, MESHFS_DIRECT_TRANSFERS="true", MESHFS_PUBLIC_S3_URL=public)
        )
    )
    assert configured.object_store_direct_transfers is True
    assert configured.object_store_public_endpoint == public
    assert "MESHFS_PUBLIC_S3_URL" in (DEPLOY / "README.md").read_text()


def _dockerfile_env() -> dict[str, str]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(dict(pair.split("=", 1) for pair in line[4:].split()))
    return env


def test_the_image_alone_does_not_advertise_the_wildcard_address() -> None:
    env = _dockerfile_env()
    assert env["MESHFS_BIND_ADDR"].startswith("0.0.0.0:")
    with pytest.raises(SettingsError, match="MESHFS_PUBLIC_URL"):
        Settings.from_env(env)
    given = Settings.from_env(dict(env, MESHFS_PUBLIC_URL="https://files.example.com"))
    assert given.base_url == "https://files.example.com"


def _pinned(path: Path) -> dict[str, str]:
    """name -> version of a hash-pinned requirements file (each entry must carry hashes)."""
    entries = re.split(r"\n(?=[A-Za-z0-9])", path.read_text())
    pinned = {}
    for entry in entries:
        if entry.startswith("#") or not entry.strip():
            continue
        match = re.match(r"([A-Za-z0-9_.-]+)==([^ ;\\]+)", entry)
        assert match is not None, entry
        assert "--hash=sha256:" in entry, entry
        pinned[re.sub(r"[-_.]+", "-", match.group(1).lower())] = match.group(2)
    return pinned


def _requirement_names(package: str) -> set[str]:
    project = tomllib.loads((ROOT / "packages" / package / "pyproject.toml").read_text())
    names = {
        re.split(r"[ <>=!~;\[]", dep, maxsplit=1)[0] for dep in project["project"]["dependencies"]
    }
    return {re.sub(r"[-_.]+", "-", name.lower()) for name in names}


def test_the_image_installs_only_pinned_dependencies() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "--require-hashes -r /tmp/requirements.txt" in dockerfile
    assert "COPY deploy/requirements.txt /tmp/requirements.txt" in dockerfile
    assert "--require-hashes -r deploy/build-requirements.txt" in dockerfile
    assert "--no-build-isolation" in dockerfile
    assert dockerfile.count("pip install") == dockerfile.count("--require-hashes") + 1
    assert "--no-deps /wheels/" in dockerfile  # our wheels add nothing unpinned
    assert "lives in SQLite" not in dockerfile
    runtime = _pinned(DEPLOY / "requirements.txt")
    workspace = {"meshfs-common", "meshfs-client", "meshfs-server"}
    needed = set().union(*(_requirement_names(p) for p in workspace)) - workspace
    assert needed <= set(runtime), needed - set(runtime)
    for package in workspace:  # the image builds every workspace package it needs
        assert f"COPY packages/{package} packages/{package}" in dockerfile
    assert "hatchling" in _pinned(DEPLOY / "build-requirements.txt")


def test_the_compose_version_needed_is_stated() -> None:
    for name in ("docker-compose.yml", "README.md"):
        assert "Compose v2.23.1 or newer" in (DEPLOY / name).read_text(), name
