"""Server settings: the one place the environment is read.

Every setting has a flag on ``meshfs-server serve`` and an environment variable; a flag wins.
An unknown ``MESHFS_*`` variable or a malformed value is a start-up error naming the variable,
never a silent fallback.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs


class SettingsError(ValueError):
    """A setting is unknown or malformed; the message names it."""


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("meshfs", appauthor=False))


def _bind(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:8787")
    return value


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be a positive integer")
    return number


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _choice(*options: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value

    return parse


def _optional_path(value: str) -> Path | None:
    return Path(value).expanduser() if value else None


def _setting(env: str, parse: Callable[[str], Any], default: Any = None, **kw: Any) -> Any:
    return field(default=default, metadata={"env": env, "parse": parse}, **kw)


@dataclass(frozen=True)
class Settings:
    """Everything the server is configured with."""

    bind: str = _setting("MESHFS_BIND_ADDR", _bind, "127.0.0.1:8787")
    data_dir: Path | None = _setting("MESHFS_DATA_DIR", _optional_path)
    metadata_sqlite_path: Path | None = _setting("MESHFS_METADATA_SQLITE_PATH", _optional_path)
    content_dir: Path | None = _setting("MESHFS_CONTENT_DIR", _optional_path)
    public_url: str | None = _setting("MESHFS_PUBLIC_URL", str)
    jwt_secret: str | None = _setting("MESHFS_JWT_SECRET", str)
    token_ttl_seconds: int = _setting("MESHFS_TOKEN_TTL_SECONDS", _positive_int, 3600)
    refresh_token_ttl_seconds: int = _setting(
        "MESHFS_REFRESH_TOKEN_TTL_SECONDS", _positive_int, 2592000
    )
    rate_limit_per_minute: int = _setting("MESHFS_RATE_LIMIT_PER_MINUTE", _positive_int, 1200)
    tenant_storage_quota_bytes: int = _setting(
        "MESHFS_TENANT_STORAGE_QUOTA_BYTES", _positive_int, 10 * 1024**3
    )
    dev_auto_approve: bool = _setting("MESHFS_DEV_AUTO_APPROVE", _bool, False)
    gc_grace_seconds: int = _setting("MESHFS_GC_GRACE_SECONDS", int, 3600)
    log_level: str = _setting(
        "MESHFS_LOG_LEVEL", _choice("debug", "info", "warning", "error"), "info"
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``MESHFS_*`` variables, then apply *overrides* (from flags; None = unset)."""
        env = os.environ if environ is None else environ
        known = {f.metadata["env"]: f for f in fields(cls)}
        # Variables read by other MeshFS programs on the same machine are not ours to refuse.
        foreign = {"MESHFS_SERVER", "MESHFS_TOKEN", "MESHFS_PROFILE", "MESHFS_CONFIG_DIR"}
        unknown = sorted(k for k in env if k.startswith("MESHFS_") and k not in known)
        unknown = [k for k in unknown if k not in foreign and not k.startswith("MESHFS_TEST_")]
        if unknown:
            raise SettingsError(f"unknown setting {unknown[0]} (see meshfs-server serve --help)")
        values: dict[str, Any] = {}
        for name, spec in known.items():
            if name in env:
                try:
                    values[spec.name] = spec.metadata["parse"](env[name])
                except ValueError as exc:
                    raise SettingsError(f"{name}={env[name]!r}: {exc}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = replace(cls(), **values)
        _bind(settings.bind)
        return settings

    # Derived locations ---------------------------------------------------------------------

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir or default_data_dir()

    @property
    def sqlite_path(self) -> Path:
        return self.metadata_sqlite_path or (
            self.resolved_data_dir / "control-plane" / "metadata.db"
        )

    @property
    def content_path(self) -> Path:
        return self.content_dir or (self.resolved_data_dir / "content")

    @property
    def keys_path(self) -> Path:
        return self.resolved_data_dir / "control-plane" / "keys"

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.bind}").rstrip("/")
