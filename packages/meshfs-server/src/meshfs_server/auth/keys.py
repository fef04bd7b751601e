"""Signing keys for access tokens: generated on first start, persisted, rotated by ``kid``.

Layout under ``settings.keys_path`` (directory mode 0700, files 0600)::

    keys/
      signing.json   {"current": "<kid>", "keys": [<private JWK>, ...]}

Each key is an Ed25519 OKP JWK (alg ``Ed25519``, RFC 9864). ``rotate`` adds a new key and makes
it current; older keys stay for verification, so tokens signed before a rotation keep working
until they expire (``prune`` drops keys older than a bound). When ``MESHFS_JWT_SECRET`` is set,
that secret is the one HS256 key instead (its ``kid`` is derived from its hash, so it is stable
across restarts and processes), and nothing is written to disk.

Where the ring lives (:class:`KeySource`): in the key file above on the embedded SQLite backend
(one process); in the ``signing_keys`` table on Postgres (:class:`TableKeys`), so that every
server process of a deployment signs and verifies with the same keys and nothing needs
configuring. A rotation done through any of them reaches the others on their next reload.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from joserfc.jwk import KeySet, OctKey, OKPKey

from meshfs_common.ids import new_id
from meshfs_server.auth.store import AuthStore
from meshfs_server.settings import MIN_JWT_SECRET_BYTES

ASYMMETRIC_ALG = "Ed25519"
SECRET_ALG = "HS256"
KEYS_FILE = "signing.json"
MIN_SECRET_BYTES = MIN_JWT_SECRET_BYTES


class KeyFileError(RuntimeError):
    """The key file is unreadable or malformed (the server refuses to start)."""


@dataclass
class KeyRing:
    """The current signing key and every key still accepted for verification."""

    algorithm: str
    current_kid: str
    keys: dict[str, OKPKey | OctKey]
    created: dict[str, float]

    @property
    def current(self) -> OKPKey | OctKey:
        return self.keys[self.current_kid]

    def key_set(self) -> KeySet:
        """Every verification key (looked up by the token's ``kid``)."""
        return KeySet(list(self.keys.values()))

    def public_jwks(self) -> dict[str, Any]:
        """The public keys as a JWKS document (empty for a shared secret)."""
        if self.algorithm == SECRET_ALG:
            return {"keys": []}
        return {"keys": [k.as_dict(private=False) | {"alg": self.algorithm, "use": "sig"}
                         for k in self.keys.values()]}  # fmt: skip


def from_secret(secret: str) -> KeyRing:
    """A ring with one HS256 key made from a configured shared secret."""
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise KeyFileError(
            f"MESHFS_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes; "
            "unset it to use a generated key pair"
        )
    kid = "hs-" + hashlib.sha256(secret.encode()).hexdigest()[:16]
    key = OctKey.import_key(secret.encode(), {"kid": kid})
    return KeyRing(SECRET_ALG, kid, {kid: key}, {kid: 0.0})


def _new_key() -> tuple[str, OKPKey]:
    kid = new_id().lower()
    return kid, OKPKey.generate_key("Ed25519", parameters={"kid": kid})


def _write(path: Path, ring: KeyRing) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    document = {
        "current": ring.current_kid,
        "keys": [
            {"jwk": key.as_dict(private=True), "created": ring.created[kid]}
            for kid, key in ring.keys.items()
        ],
    }
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _read(path: Path) -> KeyRing:
    try:
        document = json.loads(path.read_text())
        keys: dict[str, OKPKey | OctKey] = {}
        created: dict[str, float] = {}
        for entry in document["keys"]:
            key = OKPKey.import_key(entry["jwk"])
            keys[str(key.kid)] = key
            created[str(key.kid)] = float(entry.get("created", 0.0))
        current = str(document["current"])
        if current not in keys:
            raise KeyError(current)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(f"cannot read signing keys from {path}: {exc}") from exc
    return KeyRing(ASYMMETRIC_ALG, current, keys, created)


def load_or_create(keys_dir: Path) -> KeyRing:
    """Load the persisted ring, generating and saving a first key if there is none."""
    path = keys_dir / KEYS_FILE
    if path.exists():
        return _read(path)
    kid, key = _new_key()
    ring = KeyRing(ASYMMETRIC_ALG, kid, {kid: key}, {kid: time.time()})
    _write(path, ring)
    return ring


def rotate(keys_dir: Path, *, keep_seconds: float | None = None) -> KeyRing:
    """Add a new current key; drop old keys created more than *keep_seconds* ago.

    Running servers pick the new key up on their next reload of the ring (see
    :meth:`meshfs_server.auth.tokens.TokenSigner.refresh_keys`).
    """
    path = keys_dir / KEYS_FILE
    ring = load_or_create(keys_dir)
    kid, key = _new_key()
    now = time.time()
    ring.keys[kid] = key
    ring.created[kid] = now
    ring.current_kid = kid
    if keep_seconds is not None:
        for old in [k for k, at in ring.created.items() if k != kid and now - at > keep_seconds]:
            del ring.keys[old]
            del ring.created[old]
    _write(path, ring)
    return ring


# --- where the ring lives -----------------------------------------------------------------------


class KeySource(Protocol):
    """Persistent storage of a key ring."""

    async def load(self) -> KeyRing:
        """The ring, generating and saving a first key if there is none."""
        ...

    async def rotate(self, *, keep_seconds: float | None = None) -> KeyRing:
        """Add a new current key (see :func:`rotate`)."""
        ...


class FixedKeys:
    """A ring that never changes (``MESHFS_JWT_SECRET``)."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    async def load(self) -> KeyRing:
        return self.ring

    async def rotate(self, *, keep_seconds: float | None = None) -> KeyRing:
        raise KeyFileError("MESHFS_JWT_SECRET is set; change the secret instead")


class FileKeys:
    """The ring in ``keys_dir/signing.json`` (the embedded default)."""

    def __init__(self, keys_dir: Path) -> None:
        self.keys_dir = keys_dir

    async def load(self) -> KeyRing:
        return load_or_create(self.keys_dir)

    async def rotate(self, *, keep_seconds: float | None = None) -> KeyRing:
        return rotate(self.keys_dir, keep_seconds=keep_seconds)


class TableKeys:
    """The ring in the database's ``signing_keys`` table, shared by every server process.

    Each key is one row, numbered by ``generation``; the highest generation is current. Rows are
    only ever inserted (and old ones deleted by a pruning rotation), and a generation number is
    a primary key, so processes starting (or rotating) at once cannot end up with different
    current keys: the one that loses the insert reads the winner's key.
    """

    def __init__(self, db: AuthStore) -> None:
        self.db = db

    async def load(self) -> KeyRing:
        ring = await self._read()
        if ring is not None:
            return ring
        await self._insert(1, time.time())
        ring = await self._read()
        assert ring is not None
        return ring

    async def rotate(self, *, keep_seconds: float | None = None) -> KeyRing:
        await self.load()  # the first key, as with the key file
        while True:
            async with self.db.read() as conn:
                row = await conn.fetchone("SELECT MAX(generation) FROM signing_keys")
            now = time.time()
            if await self._insert(int(row[0] or 0) + 1 if row else 1, now):
                break
        if keep_seconds is not None:
            async with self.db.write() as conn:
                await conn.execute(
                    "DELETE FROM signing_keys WHERE created_at < ?"
                    " AND generation < (SELECT MAX(generation) FROM signing_keys)",
                    (now - keep_seconds,),
                )
        ring = await self._read()
        assert ring is not None
        return ring

    async def _insert(self, generation: int, now: float) -> bool:
        kid, key = _new_key()
        async with self.db.write() as conn:
            return bool(
                await conn.execute(
                    "INSERT INTO signing_keys (generation, kid, jwk, created_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (generation, kid, json.dumps(key.as_dict(private=True)), now),
                )
            )

    async def _read(self) -> KeyRing | None:
        async with self.db.read() as conn:
            rows = await conn.fetchall(
                "SELECT kid, jwk, created_at FROM signing_keys ORDER BY generation"
            )
        if not rows:
            return None
        keys: dict[str, OKPKey | OctKey] = {}
        created: dict[str, float] = {}
        try:
            for kid, jwk, at in rows:
                keys[str(kid)] = OKPKey.import_key(json.loads(jwk))
                created[str(kid)] = float(at)
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyFileError(f"cannot read signing keys from the database: {exc}") from exc
        return KeyRing(ASYMMETRIC_ALG, str(rows[-1][0]), keys, created)
