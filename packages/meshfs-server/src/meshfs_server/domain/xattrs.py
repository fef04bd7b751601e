"""Extended attributes: ``user.*`` names stored per node, and the node's identity, read-only.

Rules (each set or remove is one transaction that also appends its ``xattr`` event):

* Names are UTF-8, 1 to 255 bytes, without NUL. Only the ``user.`` namespace is stored;
  ``meshfs.node_id``, ``meshfs.version_id`` and ``meshfs.content_hash`` read the node's identity
  (a directory has no version or hash) and refuse changes (``not_permitted``, EPERM);
  ``system.posix_acl_*`` is not supported (``not_supported``, ENOTSUP): MeshFS keeps no ACLs.
  Other namespaces (``trusted.``, ``security.``, ...) are never stored: reading one finds
  nothing (``xattr_not_found``), changing one is ``not_supported``.
* A value is at most 64 KiB (``xattr_too_large``, E2BIG); a node holds at most 256 names and
  1 MiB of names plus values (``xattr_space_full``, ENOSPC).
* ``create`` refuses a name that exists (``already_exists``, EEXIST); ``replace`` one that does
  not (``xattr_not_found``, ENODATA); without a flag, either is fine.
* A change bumps the node's ctime, honours ``If-Match`` (the head version; a directory's node
  id), and never makes a content version. The feed's ``xattr`` event names the attribute and
  whether it was set or removed - never the value.
* Attributes belong to the node: every hard link of a file shows the same ones.
"""

from __future__ import annotations

from typing import Literal

from meshfs_common import paths
from meshfs_common.errors import (
    AlreadyExistsError,
    BadRequestError,
    NotPermittedError,
    NotSupportedError,
    XattrNotFoundError,
    XattrSpaceFullError,
    XattrTooLargeError,
)
from meshfs_common.models import ChangeEvent, Entry, XattrAction, XattrInfo, XattrList
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.attributes import changed, now_ns
from meshfs_server.domain.feed import ChangeFeed
from meshfs_server.domain.namespace import check_precondition
from meshfs_server.domain.ports import MetadataStore, NewEvent, NodeRow
from meshfs_server.domain.tree import resolve, to_entry

#: Limits per value, per node (names) and per node (bytes of names and values).
MAX_VALUE = 64 * 1024
MAX_NAMES = 256
MAX_TOTAL = 1024 * 1024
MAX_NAME = 255
USER = "user."
IDENTITY = ("meshfs.node_id", "meshfs.version_id", "meshfs.content_hash")
_READ_ONLY = "meshfs."
_ACL = "system.posix_acl_"

Flag = Literal["create", "replace"]
XattrSpace = Literal["user", "meshfs", "other"]


def classify(name: str) -> XattrSpace:
    """Check *name* and say which namespace it is in (POSIX ACLs are refused here)."""
    if not name or "\0" in name:
        raise BadRequestError("an extended attribute name is non-empty and has no NUL")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME:
        raise BadRequestError(f"an extended attribute name is at most {MAX_NAME} bytes")
    if name.startswith(_ACL):
        raise NotSupportedError("MeshFS does not store POSIX ACLs (system.posix_acl_*)")
    if name.startswith(USER):
        if name == USER:
            raise BadRequestError("an extended attribute name needs something after 'user.'")
        return "user"
    return "meshfs" if name.startswith(_READ_ONLY) else "other"


def _writable(name: str) -> None:
    """Refuse a change of a name outside ``user.``."""
    space = classify(name)
    if space == "meshfs":
        raise NotPermittedError(f"{name} is read-only: the meshfs.* attributes describe the node")
    if space == "other":
        raise NotSupportedError(f"only user.* extended attributes are stored, not {name}")


def parse_flag(raw: str | None) -> Flag | None:
    """The ``flag`` of a set: ``create``, ``replace`` or nothing."""
    if raw is None or raw == "":
        return None
    if raw == "create":
        return "create"
    if raw == "replace":
        return "replace"
    raise BadRequestError("flag must be 'create' or 'replace'")


def identity(node: NodeRow, name: str) -> bytes | None:
    """The read-only ``meshfs.*`` attribute *name* of *node* (None: it has none)."""
    value = {
        "meshfs.node_id": node.node_id,
        "meshfs.version_id": node.head_version_id,
        "meshfs.content_hash": node.content_hash,
    }.get(name)
    return None if value is None else value.encode()


def check_value(value: bytes) -> None:
    if len(value) > MAX_VALUE:
        raise XattrTooLargeError(
            f"an extended attribute value is at most {MAX_VALUE} bytes, not {len(value)}"
        )


def check_room(sizes: dict[str, int], name: str, value: bytes) -> None:
    """Refuse a value that does not fit among the node's *sizes* (name -> value bytes)."""
    others = {n: s for n, s in sizes.items() if n != name}
    if len(others) + 1 > MAX_NAMES:
        raise XattrSpaceFullError(f"a node holds at most {MAX_NAMES} extended attributes")
    total = sum(len(n.encode()) + s for n, s in others.items()) + len(name.encode()) + len(value)
    if total > MAX_TOTAL:
        raise XattrSpaceFullError(
            f"a node's extended attributes hold at most {MAX_TOTAL} bytes of names and values"
        )


class ExtendedAttributes:
    """List, read, set and remove the extended attributes of nodes."""

    def __init__(self, store: MetadataStore, feed: ChangeFeed) -> None:
        self.store = store
        self.feed = feed

    async def list_names(self, actor: Actor, path: str) -> XattrList:
        """The ``user.*`` attributes of the node at *path* with the sizes of their values."""
        where = paths.normalise(path)
        actor.check_read(where)
        async with self.store.read(actor.tenant_id) as tx:
            node = await resolve(tx, where)
            sizes = await tx.xattr_sizes(node.node_id)
        return XattrList(
            path=where,
            node_id=node.node_id,
            xattrs=[XattrInfo(name=n, size=s) for n, s in sorted(sizes.items())],
        )

    async def get(self, actor: Actor, path: str, name: str) -> bytes:
        """The value of attribute *name* of the node at *path*."""
        where = paths.normalise(path)
        actor.check_read(where)
        space = classify(name)
        async with self.store.read(actor.tenant_id) as tx:
            node = await resolve(tx, where)
            if space == "user":
                value = await tx.xattr(node.node_id, name)
            else:
                value = identity(node, name) if space == "meshfs" else None
        if value is None:
            raise XattrNotFoundError(f"{where} has no extended attribute {name}")
        return value

    async def set(
        self,
        actor: Actor,
        path: str,
        name: str,
        value: bytes,
        *,
        flag: Flag | None = None,
        if_match: str | None = None,
    ) -> Entry:
        """Set attribute *name* of the node at *path* to *value* (see the module rules)."""
        where = paths.normalise(path)
        actor.check_write(where)
        _writable(name)
        check_value(value)
        return await self._change(actor, where, name, "set", value, flag, if_match)

    async def remove(
        self, actor: Actor, path: str, name: str, *, if_match: str | None = None
    ) -> Entry:
        """Remove attribute *name* of the node at *path*."""
        where = paths.normalise(path)
        actor.check_write(where)
        _writable(name)
        return await self._change(actor, where, name, "removed", None, None, if_match)

    async def _change(
        self,
        actor: Actor,
        where: str,
        name: str,
        action: XattrAction,
        value: bytes | None,
        flag: Flag | None,
        if_match: str | None,
    ) -> Entry:
        events: list[ChangeEvent] = []
        async with self.store.write(actor.tenant_id) as tx:
            node = await resolve(tx, where)
            check_precondition(node, if_match, False)
            if value is None:
                if not await tx.remove_xattr(node.node_id, name):
                    raise XattrNotFoundError(f"{where} has no extended attribute {name}")
            else:
                sizes = await tx.xattr_sizes(node.node_id)
                if flag == "create" and name in sizes:
                    raise AlreadyExistsError(f"{where} already has extended attribute {name}")
                if flag == "replace" and name not in sizes:
                    raise XattrNotFoundError(f"{where} has no extended attribute {name}")
                check_room(sizes, name, value)
                await tx.set_xattr(node.node_id, name, value)
            await changed(tx, node, now_ns())
            events.append(
                await tx.append_event(
                    NewEvent(
                        type="xattr", node_id=node.node_id, kind=node.kind, path=where,
                        version_id=node.head_version_id, writer=actor.writer,
                        xattr_name=name, xattr_action=action,
                    )
                )
            )  # fmt: skip
        await self.feed.publish(actor.tenant_id, events)
        return to_entry(node, where)
