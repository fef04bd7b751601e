"""Settings of the production backends: each malformed value is a start-up error naming it."""

from __future__ import annotations

import pytest

from meshfs_server.settings import Settings, SettingsError


def test_defaults_are_the_embedded_backends() -> None:
    settings = Settings.from_env({})
    assert settings.metadata_backend == "sqlite"
    assert settings.object_store_backend == "local"
    assert settings.object_store_region == "us-east-1"
    assert not settings.object_store_direct_transfers


def test_production_settings_are_read() -> None:
    settings = Settings.from_env({
        "MESHFS_DATABASE_URL": "postgresql://meshfs:pw@db:5432/meshfs",
        "MESHFS_OBJECT_STORE_BACKEND": "s3",
        "MESHFS_OBJECT_STORE_BUCKET": "meshfs",
        "MESHFS_OBJECT_STORE_ENDPOINT": "http://s3:8333/",
        "MESHFS_OBJECT_STORE_ACCESS_KEY_ID": "AK",
        "MESHFS_OBJECT_STORE_SECRET_ACCESS_KEY": "SK",
        "MESHFS_OBJECT_STORE_FORCE_PATH_STYLE": "true",
        "MESHFS_OBJECT_STORE_DIRECT_TRANSFERS": "yes",
        "MESHFS_OBJECT_STORE_TIMEOUT_SECONDS": "7.5",
    })  # fmt: skip
    assert settings.metadata_backend == "postgres"
    assert settings.object_store_endpoint == "http://s3:8333"
    assert settings.object_store_force_path_style
    assert settings.object_store_direct_transfers
    assert settings.object_store_timeout_seconds == 7.5


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"MESHFS_DATABASE_URL": "mysql://db/x"}, "MESHFS_DATABASE_URL"),
        ({"MESHFS_DATABASE_URL": "postgresql://db:port/x"}, "MESHFS_DATABASE_URL"),
        ({"MESHFS_OBJECT_STORE_BACKEND": "gcs"}, "MESHFS_OBJECT_STORE_BACKEND"),
        ({"MESHFS_OBJECT_STORE_BACKEND": "s3"}, "MESHFS_OBJECT_STORE_BUCKET"),
        ({"MESHFS_OBJECT_STORE_ENDPOINT": "s3.local"}, "MESHFS_OBJECT_STORE_ENDPOINT"),
        ({"MESHFS_OBJECT_STORE_FORCE_PATH_STYLE": "maybe"}, "MESHFS_OBJECT_STORE_FORCE_PATH_STYLE"),
        ({"MESHFS_OBJECT_STORE_DIRECT_TRANSFERS": "1"}, "MESHFS_OBJECT_STORE_DIRECT_TRANSFERS"),
        ({"MESHFS_OBJECT_STORE_TIMEOUT_SECONDS": "0"}, "MESHFS_OBJECT_STORE_TIMEOUT_SECONDS"),
        ({"MESHFS_OBJECT_STORE_MAX_ATTEMPTS": "x"}, "MESHFS_OBJECT_STORE_MAX_ATTEMPTS"),
        ({"MESHFS_DATABASE_POOL_SIZE": "-2"}, "MESHFS_DATABASE_POOL_SIZE"),
        ({"MESHFS_OBJECT_STORE_ACCESS_KEY_ID": "AK"}, "MESHFS_OBJECT_STORE_SECRET_ACCESS_KEY"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_secrets_are_not_echoed() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"MESHFS_DATABASE_URL": "postgresql://u:hunter2@db:x/meshfs"})
    assert "hunter2" not in str(caught.value)
