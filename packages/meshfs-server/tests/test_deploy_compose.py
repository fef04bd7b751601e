"""deploy/docker-compose.yml against the server's real settings (no Docker engine runs here).

Every MESHFS_* variable the stack sets is one the server reads, and accepts with the value
given; ports, the bind address and the health checks agree with the routes the app serves.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshfs_server.app import all_routes
from meshfs_server.settings import Settings

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"


def _expand(value: str) -> str:
    """Compose's ${VAR:-default} with the default (what an unconfigured stack runs with)."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return loaded


@pytest.fixture(scope="module")
def server_env(compose: dict[str, Any]) -> dict[str, str]:
    env = compose["services"]["meshfs"]["environment"]
    return {k: _expand(str(v)) for k, v in env.items()}


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
