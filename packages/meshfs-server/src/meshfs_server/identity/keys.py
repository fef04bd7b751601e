"""Signing keys for access tokens: generated on first start, persisted, rotated by ``kid``.

Layout under ``settings.keys_path`` (directory mode 0700, files 0600)::

    keys/
      signing.json   {"current": "<kid>", "keys": [<private JWK>, ...]}

Each key is an Ed25519 OKP JWK (alg ``Ed25519``, RFC 9864). ``rotate`` adds a new key and makes
it current; older keys stay for verification, so tokens signed before a rotation keep working
until they expire (``prune`` drops keys older than a bound). When ``MESHFS_JWT_SECRET`` is set,
that secret is the one HS256 key instead (its ``kid`` is derived from its hash, so it is stable
across restarts and processes), and nothing is written to disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.jwk import KeySet, OctKey, OKPKey

from meshfs_common.ids import new_id

ASYMMETRIC_ALG = "Ed25519"
SECRET_ALG = "HS256"
KEYS_FILE = "signing.json"
MIN_SECRET_BYTES = 32


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
    :meth:`meshfs_server.identity.tokens.TokenSigner.refresh_keys`).
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
