"""Server settings: the one place the environment is read.

Every setting has a flag on ``meshfs-server serve`` and an environment variable; a flag wins.
An unknown ``MESHFS_*`` variable or a malformed value is a start-up error naming the variable,
never a silent fallback: :class:`SettingsError`, whose message reads ``MESHFS_X: what is
wrong`` (``meshfs-server`` prints it as one line and exits 2).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs

#: The shortest ``MESHFS_JWT_SECRET`` accepted (HS256 wants a key at least as long as its hash).
MIN_JWT_SECRET_BYTES = 32


class SettingsError(ValueError):
    """A setting is unknown or malformed; the message (``MESHFS_X: what is wrong``) names it."""


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("meshfs", appauthor=False))


def _bind(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:8787")
    return value


def _integer(value: str, what: str) -> int:
    text = value.strip()
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits.isascii() or not digits.isdigit():
        raise ValueError(f"must be {what}")
    return int(text)


def _listens_everywhere(bind: str) -> bool:
    """Whether HOST:PORT names the wildcard address (every interface) rather than a host."""
    host = bind.rpartition(":")[0].strip("[]")
    return host in ("0.0.0.0", "::", "*")


def _positive_int(value: str) -> int:
    number = _integer(value, "a positive integer")
    if number <= 0:
        raise ValueError("must be a positive integer")
    return number


def _non_negative_int(value: str) -> int:
    number = _integer(value, "a whole number of seconds (0 or more)")
    if number < 0:
        raise ValueError("must be a whole number of seconds (0 or more)")
    return number


def _jwt_secret(value: str) -> str | None:
    if not value:
        return None
    if len(value.encode()) < MIN_JWT_SECRET_BYTES:
        raise ValueError(
            f"must be at least {MIN_JWT_SECRET_BYTES} bytes long"
            " (unset it to use a generated key pair)"
        )
    return value


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


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError("must be a positive number of seconds") from None
    if not number > 0 or number == float("inf"):
        raise ValueError("must be a positive number of seconds")
    return number


def _postgres_dsn(value: str) -> str | None:
    if not value:
        return None
    parsed = urlsplit(value)
    if parsed.scheme not in ("postgresql", "postgres"):
        raise ValueError("expected a postgresql:// URL, e.g. postgresql://user:pass@host:5432/db")
    try:
        parsed.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise ValueError(f"malformed port: {exc}") from None
    return value


def _http_url(value: str) -> str | None:
    if not value:
        return None
    parsed = urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError("expected an http:// or https:// URL, e.g. http://127.0.0.1:8333")
    try:
        parsed.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise ValueError(f"malformed port: {exc}") from None
    return value.rstrip("/")


def _optional_str(value: str) -> str | None:
    return value or None


def _setting(
    env: str, parse: Callable[[str], Any], default: Any = None, *, secret: bool = False, **kw: Any
) -> Any:
    # A secret's value is never echoed in an error message.
    return field(default=default, metadata={"env": env, "parse": parse, "secret": secret}, **kw)


def _parse(spec: Any, name: str, raw: str) -> Any:
    try:
        return spec.metadata["parse"](raw)
    except ValueError as exc:
        # A secret's value is never echoed; others are, so the mistake is visible.
        shown = "" if spec.metadata["secret"] else f" (got {raw!r})"
        raise SettingsError(f"{name}: {exc}{shown}") from None


@dataclass(frozen=True)
class Settings:
    """Everything the server is configured with."""

    bind: str = _setting("MESHFS_BIND_ADDR", _bind, "127.0.0.1:8787")
    data_dir: Path | None = _setting("MESHFS_DATA_DIR", _optional_path)
    metadata_sqlite_path: Path | None = _setting("MESHFS_METADATA_SQLITE_PATH", _optional_path)
    content_dir: Path | None = _setting("MESHFS_CONTENT_DIR", _optional_path)
    public_url: str | None = _setting("MESHFS_PUBLIC_URL", _http_url)
    jwt_secret: str | None = _setting("MESHFS_JWT_SECRET", _jwt_secret, secret=True)
    token_ttl_seconds: int = _setting("MESHFS_TOKEN_TTL_SECONDS", _positive_int, 3600)
    refresh_token_ttl_seconds: int = _setting(
        "MESHFS_REFRESH_TOKEN_TTL_SECONDS", _positive_int, 2592000
    )
    rate_limit_per_minute: int = _setting("MESHFS_RATE_LIMIT_PER_MINUTE", _positive_int, 1200)
    max_streams_per_token: int = _setting("MESHFS_MAX_STREAMS_PER_TOKEN", _positive_int, 8)
    max_streams_per_tenant: int = _setting("MESHFS_MAX_STREAMS_PER_TENANT", _positive_int, 64)
    # Server processes sharing the port (None: one per CPU; 1: a single process).
    workers: int | None = _setting("MESHFS_WORKERS", _positive_int)
    tenant_storage_quota_bytes: int = _setting(
        "MESHFS_TENANT_STORAGE_QUOTA_BYTES", _positive_int, 10 * 1024**3
    )
    dev_auto_approve: bool = _setting("MESHFS_DEV_AUTO_APPROVE", _bool, False)
    gc_grace_seconds: int = _setting("MESHFS_GC_GRACE_SECONDS", _non_negative_int, 3600)
    log_level: str = _setting(
        "MESHFS_LOG_LEVEL", _choice("debug", "info", "warning", "error"), "info"
    )
    # One line per request at info (secrets hidden); 429s are logged as warnings regardless.
    access_log: bool = _setting("MESHFS_ACCESS_LOG", _bool, True)
    # Production backends. Metadata is in Postgres when a DSN is set, else in SQLite.
    database_url: str | None = _setting("MESHFS_DATABASE_URL", _postgres_dsn, secret=True)
    database_pool_size: int = _setting("MESHFS_DATABASE_POOL_SIZE", _positive_int, 10)
    database_timeout_seconds: float = _setting(
        "MESHFS_DATABASE_TIMEOUT_SECONDS", _positive_float, 5.0
    )
    database_migrate_on_start: bool = _setting("MESHFS_DATABASE_MIGRATE_ON_START", _bool, True)
    object_store_backend: str = _setting(
        "MESHFS_OBJECT_STORE_BACKEND", _choice("local", "s3"), "local"
    )
    object_store_bucket: str | None = _setting("MESHFS_OBJECT_STORE_BUCKET", _optional_str)
    object_store_region: str = _setting("MESHFS_OBJECT_STORE_REGION", str, "us-east-1")
    object_store_endpoint: str | None = _setting("MESHFS_OBJECT_STORE_ENDPOINT", _http_url)
    object_store_public_endpoint: str | None = _setting(
        "MESHFS_OBJECT_STORE_PUBLIC_ENDPOINT", _http_url
    )
    object_store_access_key_id: str | None = _setting(
        "MESHFS_OBJECT_STORE_ACCESS_KEY_ID", _optional_str
    )
    object_store_secret_access_key: str | None = _setting(
        "MESHFS_OBJECT_STORE_SECRET_ACCESS_KEY", _optional_str, secret=True
    )
    object_store_force_path_style: bool = _setting(
        "MESHFS_OBJECT_STORE_FORCE_PATH_STYLE", _bool, False
    )
    object_store_direct_transfers: bool = _setting(
        "MESHFS_OBJECT_STORE_DIRECT_TRANSFERS", _bool, False
    )
    object_store_presign_ttl_seconds: int = _setting(
        "MESHFS_OBJECT_STORE_PRESIGN_TTL_SECONDS", _positive_int, 900
    )
    object_store_connect_timeout_seconds: float = _setting(
        "MESHFS_OBJECT_STORE_CONNECT_TIMEOUT_SECONDS", _positive_float, 2.0
    )
    object_store_timeout_seconds: float = _setting(
        "MESHFS_OBJECT_STORE_TIMEOUT_SECONDS", _positive_float, 8.0
    )
    object_store_max_attempts: int = _setting("MESHFS_OBJECT_STORE_MAX_ATTEMPTS", _positive_int, 3)

    def __post_init__(self) -> None:
        # Combinations are checked here so that flags, the environment and code all agree.
        if _listens_everywhere(self.bind) and not self.public_url:
            # Login links and token issuers would name http://0.0.0.0:..., which no client can
            # open; only the operator knows the name clients use.
            raise SettingsError(
                f"MESHFS_PUBLIC_URL: must be set when MESHFS_BIND_ADDR={self.bind} listens on"
                " every interface: the URL clients reach this server at, e.g."
                " https://files.example.com (it appears in login links)"
            )
        if self.object_store_backend == "s3" and not self.object_store_bucket:
            raise SettingsError(
                "MESHFS_OBJECT_STORE_BUCKET: must be set when MESHFS_OBJECT_STORE_BACKEND=s3"
            )
        if self.object_store_direct_transfers and self.object_store_backend != "s3":
            raise SettingsError(
                "MESHFS_OBJECT_STORE_DIRECT_TRANSFERS: needs MESHFS_OBJECT_STORE_BACKEND=s3"
            )
        if bool(self.object_store_access_key_id) != bool(self.object_store_secret_access_key):
            missing = (
                "MESHFS_OBJECT_STORE_SECRET_ACCESS_KEY"
                if self.object_store_access_key_id
                else "MESHFS_OBJECT_STORE_ACCESS_KEY_ID"
            )
            raise SettingsError(f"{missing}: must be set together with its pair")

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
            raise SettingsError(f"{unknown[0]}: unknown setting (see meshfs-server serve --help)")
        values: dict[str, Any] = {}
        for name, spec in known.items():
            if name in env:
                values[spec.name] = _parse(spec, name, env[name])
        by_field = {f.name: f for f in fields(cls)}
        for key, value in overrides.items():
            if value is None:
                continue
            # A flag given as text is checked like its variable; the error names the flag.
            flag = "--" + key.replace("_", "-")
            values[key] = _parse(by_field[key], flag, value) if isinstance(value, str) else value
        return replace(cls(), **values)

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
    def worker_count(self) -> int:
        """How many server processes ``serve`` starts: MESHFS_WORKERS, else one per CPU."""
        if self.workers is not None:
            return self.workers
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not Linux
            return max(1, os.cpu_count() or 1)

    @property
    def metadata_backend(self) -> str:
        """``postgres`` when MESHFS_DATABASE_URL is set, else ``sqlite``."""
        return "postgres" if self.database_url else "sqlite"

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.bind}").rstrip("/")
