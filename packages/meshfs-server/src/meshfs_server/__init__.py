"""MeshFS server: a Starlette app over a metadata store and a content store."""

from __future__ import annotations

from meshfs_server.app import create_app
from meshfs_server.settings import Settings, SettingsError

__version__ = "0.1.0"

__all__ = ["Settings", "SettingsError", "__version__", "create_app"]
