"""Settings: defaults, environment, flags; bad values name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshfs_server.settings import Settings, SettingsError


def test_defaults_match_the_documented_surface() -> None:
    s = Settings.from_env({})
    assert s.bind == "127.0.0.1:8787"
    assert s.token_ttl_seconds == 3600
    assert s.refresh_token_ttl_seconds == 2592000
    assert s.rate_limit_per_minute == 1200
    assert s.tenant_storage_quota_bytes == 10 * 1024**3
    assert s.jwt_secret is None
    assert s.dev_auto_approve is False
    assert s.sqlite_path.parts[-3:] == ("meshfs", "control-plane", "metadata.db")


def test_environment_and_flags(tmp_path: Path) -> None:
    env = {"MESHFS_BIND_ADDR": "0.0.0.0:9000", "MESHFS_DATA_DIR": str(tmp_path)}
    s = Settings.from_env(env, bind="127.0.0.1:9001")
    assert s.bind == "127.0.0.1:9001"  # a flag wins over the environment
    assert s.sqlite_path == tmp_path / "control-plane" / "metadata.db"
    assert s.content_path == tmp_path / "content"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MESHFS_BIND_ADDR", "localhost"),
        ("MESHFS_BIND_ADDR", "127.0.0.1:99999"),
        ("MESHFS_TOKEN_TTL_SECONDS", "soon"),
        ("MESHFS_TOKEN_TTL_SECONDS", "0"),
        ("MESHFS_DEV_AUTO_APPROVE", "perhaps"),
        ("MESHFS_LOG_LEVEL", "loud"),
        ("MESHFS_TYPO", "1"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})
