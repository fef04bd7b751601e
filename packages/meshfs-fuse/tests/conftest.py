"""Fixtures: one real server and one signed-in account per session; a real mount per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mount_testkit import Account, Mount, Server, login, mounted, running_server

from meshfs_client import MeshFS


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("server")) as running:
        yield running


@pytest.fixture(scope="session")
def account(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Account:
    return login(server, tmp_path_factory.mktemp("config"), "mounter", "mounter")


@pytest.fixture
def api(account: Account) -> Iterator[MeshFS]:
    with account.client() as client:
        yield client


@pytest.fixture
def mount(account: Account, tmp_path: Path) -> Iterator[Mount]:
    with mounted(account, tmp_path / "mnt", tmp_path / "cache") as running:
        yield running


@pytest.fixture
def home(mount: Mount, api: MeshFS, request: pytest.FixtureRequest) -> tuple[Path, str]:
    """A fresh directory for this test: (its path in the mount, its MeshFS path)."""
    name = request.node.name.replace("[", "-").replace("]", "")[:100]
    (mount.target / name).mkdir()
    return mount.target / name, f"/{name}"
