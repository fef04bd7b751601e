"""What the parts of :class:`~meshfs_client.MeshFSClient` share: the transport, and how a
file is addressed."""

from __future__ import annotations

from urllib.parse import quote

from meshfs_client._transport import Transport
from meshfs_common import paths


class ClientBase:
    """The connection every group of client methods talks through."""

    _transport: Transport | None
    _upload_concurrency: int

    @property
    def _t(self) -> Transport:
        if self._transport is None:
            raise RuntimeError("use `async with MeshFSClient() as client:` first")
        return self._transport


def where(path: str | None, node_id: str | None) -> dict[str, str | int | bool | None]:
    """The query naming a file: by node id when given, else by its (normalised) path."""
    if node_id:
        return {"node_id": node_id}
    return {"path": paths.normalise(required(path))}


def segment(text: str) -> str:
    """*text* as one URL path segment."""
    return quote(text, safe="")


def required(path: str | None) -> str:
    """*path*, which must be given when no node id is."""
    if path is None:
        raise TypeError("give a path or a node_id")
    return path
