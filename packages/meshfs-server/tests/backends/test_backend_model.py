"""The Hypothesis namespace model (meshfs_server_model.py) on Postgres + SeaweedFS.

Every machine run gets a tenant of its own (tenants are isolated by design), so one database
serves the whole module.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from meshfs_server_backends import Production
from meshfs_server_model import NamespaceMachine

from meshfs_server.settings import Settings

pytestmark = pytest.mark.skipif(
    "postgres" not in os.environ.get("MESHFS_TEST_BACKENDS", "postgres"),
    reason="MESHFS_TEST_BACKENDS excludes postgres",
)


class PostgresNamespaceMachine(NamespaceMachine):
    overrides: ClassVar[dict[str, Any]] = {}

    def make_settings(self, data_dir: Path) -> Settings:
        assert self.overrides, "the module fixture sets the database"
        return Settings(data_dir=data_dir, **self.overrides)


@pytest.fixture(scope="module", autouse=True)
def _database(production: Production) -> Iterator[None]:
    dsn = production.create_database()
    PostgresNamespaceMachine.overrides = production.settings_overrides(dsn)
    yield
    PostgresNamespaceMachine.overrides = {}
    production.drop_database(dsn)


PostgresNamespaceMachine.TestCase.settings = NamespaceMachine.TestCase.settings
TestPostgresNamespaceModel = PostgresNamespaceMachine.TestCase
