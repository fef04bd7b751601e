"""Client settings: the one place that reads the environment.

Environment variables (all optional):

``MESHFS_SERVER``
    Base URL of the server, e.g. ``https://files.example.com``.
``MESHFS_TOKEN``
    A bearer token used as-is (no refresh, nothing stored); meant for agents and CI.
``MESHFS_CONFIG_DIR``
    Directory holding ``credentials.json`` instead of the platform's user config dir.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import platformdirs

DEFAULT_SERVER = "http://127.0.0.1:8787"
"""The server a fresh ``meshfs-server`` listens on."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Network time limits, in seconds (``None`` means no limit for that phase).

    ``request`` bounds a whole metadata request; transfers are bounded by ``connect`` and
    ``read`` (the longest silence between two reads) so a large download is never cut off
    just for being large.
    """

    connect: float = 10.0
    read: float = 60.0
    request: float | None = 120.0

    def for_request(self) -> aiohttp.ClientTimeout:
        """The aiohttp timeout for a JSON request."""
        return aiohttp.ClientTimeout(
            total=self.request, sock_connect=self.connect, sock_read=self.read
        )

    def for_transfer(self) -> aiohttp.ClientTimeout:
        """The aiohttp timeout for a streamed upload or download."""
        return aiohttp.ClientTimeout(total=None, sock_connect=self.connect, sock_read=self.read)


@dataclass(frozen=True, slots=True)
class Settings:
    """What the environment says about where and how to connect."""

    server: str | None = None
    token: str | None = None
    config_dir: Path = field(default_factory=lambda: Path(platformdirs.user_config_dir("meshfs")))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``MESHFS_SERVER``, ``MESHFS_TOKEN`` and ``MESHFS_CONFIG_DIR``."""
        env = os.environ if environ is None else environ
        config_dir = env.get("MESHFS_CONFIG_DIR") or platformdirs.user_config_dir("meshfs")
        return cls(
            server=normalise_server(env["MESHFS_SERVER"]) if env.get("MESHFS_SERVER") else None,
            token=env.get("MESHFS_TOKEN") or None,
            config_dir=Path(config_dir),
        )

    @property
    def credentials_path(self) -> Path:
        """Where login sessions are stored."""
        return self.config_dir / "credentials.json"


def normalise_server(url: str) -> str:
    """Canonical form of a server URL: scheme and host, no trailing slash.

    A bare ``host:port`` is taken as ``http://host:port`` so ``--server 127.0.0.1:8787`` works.
    """
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"server URL must be http:// or https://, got {url!r}")
    return url.rstrip("/")


def has_display(environ: Mapping[str, str] | None = None) -> bool:
    """True when a web browser can probably be opened for the user."""
    import sys

    env = os.environ if environ is None else environ
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))
