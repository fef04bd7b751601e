"""Server-side copy (copy_file_range, ``cp --reflink``): a new file whose head shares the
source's content.

The copy's head version references the source head's chunks, so no bytes travel and no storage
is charged twice (the chunks are stored and referenced already: a copy adds nothing to the
tenant's deduplicated usage, through any scope). From then on the copy is a file of its own
with its own history; its creation is a ``write`` event like any other.

Rules: the source must be a regular file (a directory is ``409 is_a_directory``: copy its
files one by one); the destination's parent must exist (``404``) and be a directory; an
existing file at the destination is replaced, as a new version of it, only with
``overwrite`` (else ``409 already_exists``); a directory there is ``409 is_a_directory``.
Copying a file onto itself changes nothing.
"""

from __future__ import annotations

from meshfs_common import paths
from meshfs_common.errors import AlreadyExistsError, IsADirError, NotAFileError, NotFoundError
from meshfs_common.models import ChangeEvent, CommitResult
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.feed import ChangeFeed
from meshfs_server.domain.namespace import commit_version
from meshfs_server.domain.ports import MetadataStore
from meshfs_server.domain.tree import lookup, not_a_directory, resolve, to_entry, to_version


async def copy_file(
    store: MetadataStore,
    feed: ChangeFeed,
    actor: Actor,
    path: str,
    new_path: str,
    *,
    overwrite: bool = False,
) -> CommitResult:
    """Copy the file at *path* to *new_path* (see the module rules)."""
    src, dst = paths.normalise(path), paths.normalise(new_path)
    actor.check_read(src)
    actor.check_write(dst)
    if dst == paths.ROOT:
        raise IsADirError("the root is a directory")
    events: list[ChangeEvent] = []
    async with store.write(actor.tenant_id) as tx:
        source = await resolve(tx, src)
        if source.is_dir:
            raise IsADirError(f"{src} is a directory; copy the files in it one by one")
        if source.kind != "file":
            raise NotAFileError(f"{src} is a {source.kind}, not a regular file")
        head = await tx.get_version(source.head_version_id or "")
        assert head is not None, "a live file always has a head version"
        parent = await lookup(tx, paths.split(paths.parent(dst)))
        if parent is None:
            raise NotFoundError(f"parent directory does not exist: {paths.parent(dst)}")
        if not parent.is_dir:
            raise not_a_directory(parent, paths.parent(dst))
        target = await tx.child(parent.node_id, paths.basename(dst))
        if target is not None and target.is_dir:
            raise IsADirError(f"is a directory: {dst}")
        if target is not None and not overwrite and target.node_id != source.node_id:
            raise AlreadyExistsError(f"{dst} exists; pass overwrite to replace it")
        done = await commit_version(
            tx, actor, dst, size=head.size, content_hash=head.content_hash, chunks=head.chunks,
            events=events, mode=source.mode,
        )  # fmt: skip
    if events:
        await feed.publish(actor.tenant_id, events)
    return CommitResult(
        entry=to_entry(done.node, dst), version=to_version(done.version),
        created_version=done.created,
    )  # fmt: skip
