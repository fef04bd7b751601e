"""Where a page of a directory listing starts: the ``after`` / ``next_after`` position.

A listing is ordered by name, then node id: unique even when tombstones share a name with each
other and with a live entry (``include_deleted``), so paging never skips or repeats an entry.
``next_after`` is an opaque token for (name, node id). It contains a ``/``, which no name
can, so ``after`` also still takes a plain name (entries named after it in code-point order)
as older clients send.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from meshfs_common.errors import BadRequestError
from meshfs_common.ids import is_id

_TOKEN_PREFIX = "n1/"


@dataclass(frozen=True, slots=True)
class ChildKey:
    """A position in a listing: after *name*, and (if set) after *node_id* among that name's
    entries; without a node id, after every entry called *name*."""

    name: str
    node_id: str | None = None


def encode_after(name: str, node_id: str) -> str:
    """The opaque ``next_after`` token for the entry (*name*, *node_id*)."""
    raw = json.dumps([name, node_id], ensure_ascii=False, separators=(",", ":")).encode()
    return _TOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_after(value: str | None) -> ChildKey | None:
    """The position an ``after`` parameter names: a token from ``next_after``, or a name."""
    if not value:
        return None
    if "/" not in value:
        return ChildKey(value)
    problem = BadRequestError(
        "after is not a position this server gave: pass next_after back unchanged, or a name"
    )
    if not value.startswith(_TOKEN_PREFIX):
        raise problem
    body = value.removeprefix(_TOKEN_PREFIX)
    try:
        decoded = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError):
        raise problem from None
    match decoded:
        case [str(name), str(node_id)] if is_id(node_id):
            return ChildKey(name, node_id)
    raise problem
