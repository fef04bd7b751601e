"""Identifiers shared by every MeshFS component.

Ids are opaque strings on the wire. New ids are ULID-shaped (48-bit millisecond time + 80 random
bits, Crockford base32, 26 characters) so they sort roughly by creation time, which keeps database
indexes append-mostly, and carry enough randomness that they cannot be guessed.
"""

from __future__ import annotations

import os
import time
from typing import NewType

TenantId = NewType("TenantId", str)
UserId = NewType("UserId", str)
NodeId = NewType("NodeId", str)
VersionId = NewType("VersionId", str)
UploadId = NewType("UploadId", str)
SessionId = NewType("SessionId", str)
ChunkHash = NewType("ChunkHash", str)

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id() -> str:
    """Return a new 26-character, time-ordered, unguessable identifier."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def is_id(text: str) -> bool:
    """True when *text* has the shape of an id made by :func:`new_id`."""
    return len(text) == 26 and all(c in _ALPHABET for c in text)
