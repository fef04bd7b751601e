"""Login sessions on disk, one per server.

The file is ``<config dir>/credentials.json``, mode 0600 in a 0700 directory::

    {"version": 1, "default": "https://a.example",
     "profiles": {"https://a.example": {"server": ..., "access_token": ..., ...}}}

Every write goes to a temporary file in the same directory and is renamed over the old one, so
a crash never leaves a half-written file and a reader never sees one. Refresh tokens rotate on
every use and a reused one revokes the session, so two processes must not refresh with the same
token: :meth:`CredentialStore.locked` is an advisory lock (``flock``) that callers hold across
"read, refresh, write" and that makes a second process pick up the first one's new token.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import msgspec

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock; the lock becomes a no-op
    fcntl = None  # type: ignore[assignment]


class Credentials(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One signed-in session on one server."""

    server: str
    access_token: str
    refresh_token: str | None = None
    expires_at: float = 0.0
    """Access token expiry, seconds since the epoch (0 = unknown)."""
    user_id: str | None = None
    tenant_id: str | None = None
    session_id: str | None = None
    username: str | None = None

    def expires_within(self, seconds: float, *, now: float | None = None) -> bool:
        """True when the access token is (nearly) expired; unknown expiry never is."""
        if not self.expires_at:
            return False
        return (time.time() if now is None else now) + seconds >= self.expires_at


class _CredentialsFile(msgspec.Struct, kw_only=True, omit_defaults=True):
    version: int = 1
    default: str | None = None
    profiles: dict[str, Credentials] = {}


class CredentialStore:
    """Reads and atomically rewrites ``credentials.json``."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    # --- reading --------------------------------------------------------------------------------

    def _read(self) -> _CredentialsFile:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return _CredentialsFile()
        try:
            return msgspec.json.decode(data, type=_CredentialsFile)
        except msgspec.DecodeError:
            # A corrupt file is treated as "not logged in" rather than a crash; the next login
            # replaces it.
            return _CredentialsFile()

    def load(self, server: str) -> Credentials | None:
        """The stored session for *server*, if any."""
        return self._read().profiles.get(server)

    def default_server(self) -> str | None:
        """The server of the most recent login, used when none is given."""
        return self._read().default

    def servers(self) -> list[str]:
        """Every server with a stored session."""
        return sorted(self._read().profiles)

    # --- writing --------------------------------------------------------------------------------

    def save(self, credentials: Credentials, *, make_default: bool = False) -> None:
        """Store (or replace) the session for ``credentials.server``."""
        data = self._read()
        profiles = dict(data.profiles)
        profiles[credentials.server] = credentials
        default = credentials.server if make_default or data.default is None else data.default
        self._write(_CredentialsFile(default=default, profiles=profiles))

    def delete(self, server: str) -> bool:
        """Forget the session for *server*; True when there was one.

        The default server stays as it is, so after ``meshfs logout`` the next command says
        "not logged in to <that server>" instead of silently talking to another one.
        """
        data = self._read()
        if server not in data.profiles:
            return False
        profiles = {k: v for k, v in data.profiles.items() if k != server}
        self._write(_CredentialsFile(default=data.default, profiles=profiles))
        return True

    def _ensure_dir(self) -> None:
        directory = self.path.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkdir's mode is filtered by the umask and ignored for an existing directory.
        if directory.stat().st_mode & 0o077:
            directory.chmod(0o700)

    def _write(self, data: _CredentialsFile) -> None:
        self._ensure_dir()
        fd, tmp = tempfile.mkstemp(prefix=".credentials.", suffix=".tmp", dir=self.path.parent)
        try:
            # mkstemp creates the file 0600 already; chmod again in case of an odd platform.
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(msgspec.json.format(msgspec.json.encode(data)))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    # --- cross-process lock ---------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's advisory lock (blocking); use around read-refresh-write."""
        self._ensure_dir()
        lock_path = self.path.with_name(self.path.name + ".lock")
        handle: IO[bytes] = open(lock_path, "ab")  # noqa: SIM115 - closed in finally
        try:
            os.chmod(lock_path, 0o600)
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()
