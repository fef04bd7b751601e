"""The Hypothesis namespace model: random mkdir/write/partial write/rename/exchange/copy/delete/
restore sequences against the real domain, compared after every step with a model of the tree
and its versions written independently; replaying the change feed from cursor 0 must rebuild
the same tree.

The machine runs on SQLite (backends/test_namespace_model.py), Postgres + S3
(backends/test_backend_model.py) and the in-memory ports (unit/test_namespace_model_memory.py)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from meshfs_common import paths
from meshfs_common.errors import MeshFSError
from meshfs_common.hashing import hash_bytes
from meshfs_common.ids import new_id
from meshfs_common.models import AttributesRequest, UploadInitRequest
from meshfs_server.domain import posix
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.copies import copy_file
from meshfs_server.domain.exchange import exchange
from meshfs_server.services import Services, open_services
from meshfs_server.settings import Settings

T = TypeVar("T")
NAMES = st.sampled_from(["a", "b", "c"])
PATHS = st.lists(NAMES, min_size=1, max_size=3).map(lambda n: "/" + "/".join(n))
DATA = st.sampled_from([b"", b"one", b"two", b"three"])
XATTR_NAMES = st.sampled_from(["user.a", "user.b"])
XATTR_FLAGS = st.sampled_from([None, "create", "replace"])
MODES = st.sampled_from([0o644, 0o755, 0o600, 0o4711])
TIMES = st.sampled_from([0, 1_000_000_000_123_456_789, -5])
TARGETS = st.sampled_from(["a", "../b/c", "/abs//x/"])
SPECIAL = st.sampled_from(["fifo", "socket", "chardev", "blockdev"])
DEFAULT_MODES = {"file": 0o644, "dir": 0o755, "symlink": 0o777}


@dataclass
class MNode:
    """The model's idea of a node; ``sid`` is the server's node id once known."""

    kind: str
    parent: int | None
    name: str
    live: bool = True
    content: str | None = None  # content hash of the head (files)
    versions: list[tuple[str, str]] = field(default_factory=list)  # (version_id, hash)
    xattrs: dict[str, bytes] = field(default_factory=dict)  # extended attributes
    sid: str | None = None
    mode: int = -1  # -1: the kind's default (set in __post_init__)
    mtime_ns: int | None = None  # known when a client set it (utimens), until the next write
    target: str | None = None  # symbolic links

    alias: MNode | None = None  # a hard link: the node whose content this name shows

    def __post_init__(self) -> None:
        if self.mode == -1:
            self.mode = DEFAULT_MODES.get(self.kind, 0o644)

    # A hard link is a name of its own (parent, name, live) that reads and writes the file's
    # content, versions, attributes and xattrs: those go to the node it is an alias of.
    def __getattribute__(self, name: str) -> Any:
        if name in _SHARED:
            alias = object.__getattribute__(self, "alias")
            if alias is not None:
                return getattr(alias, name)
        return object.__getattribute__(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        alias = self.__dict__.get("alias")
        if name in _SHARED and alias is not None:
            setattr(alias, name, value)
        else:
            object.__setattr__(self, name, value)

    @property
    def file(self) -> MNode:
        """The node that holds this name's content (itself unless a hard link)."""
        return self.alias or self


_SHARED = frozenset({"content", "versions", "xattrs", "mode", "mtime_ns", "sid"})


class Model:
    """The namespace rules, written independently of the server's code."""

    def __init__(self) -> None:
        self.nodes: dict[int, MNode] = {0: MNode("dir", None, "")}
        self.next = 1

    def path(self, key: int) -> str:
        names: list[str] = []
        node = self.nodes[key]
        while node.parent is not None:
            names.append(node.name)
            node = self.nodes[node.parent]
        return paths.join(list(reversed(names)))

    def child(self, parent: int, name: str) -> int | None:
        for key, node in self.nodes.items():
            if node.live and node.parent == parent and node.name == name:
                return key
        return None

    def lookup(self, path: str) -> int | None:
        key = 0
        for name in paths.split(path):
            if self.nodes[key].kind != "dir":
                raise ModelError("not_a_directory")
            found = self.child(key, name)
            if found is None:
                return None
            key = found
        return key

    def add(self, kind: str, parent: int, name: str) -> int:
        key = self.next
        self.next += 1
        self.nodes[key] = MNode(kind, parent, name)
        return key

    def ensure_dirs(self, names: tuple[str, ...]) -> tuple[int, list[int]]:
        key, made = 0, []
        for name in names:
            found = self.child(key, name)
            if found is None:
                found = self.add("dir", key, name)
                made.append(found)
            elif self.nodes[found].kind != "dir":
                raise ModelError("not_a_directory")
            key = found
        return key, made

    def names_of(self, key: int) -> list[int]:
        """Every name (live or not) of the file *key* names."""
        file = self.nodes[key].file
        return [k for k, n in self.nodes.items() if n.file is file]

    def descendants(self, key: int) -> list[int]:
        out = [k for k, n in self.nodes.items() if n.live and n.parent == key]
        for k in list(out):
            out += self.descendants(k)
        return out

    def tree(self) -> dict[str, tuple[str, str | None]]:
        return {
            self.path(k): (n.kind, n.content)
            for k, n in self.nodes.items()
            if k != 0 and n.live and self._reachable(k)
        }

    def _reachable(self, key: int) -> bool:
        node = self.nodes[key]
        while node.parent is not None:
            if not node.live:
                return False
            node = self.nodes[node.parent]
        return True


class ModelError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class NamespaceMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = Path(tempfile.mkdtemp(prefix="meshfs-model-"))
        self.actor = Actor(tenant_id=new_id(), user_id=new_id())
        self.context = self.open(self.tmp)
        self.services: Services = self.run(self.context.__aenter__())
        self.model = Model()
        self.created: list[tuple[int, str, str]] = []  # (model key, version id, hash)

    def make_settings(self, data_dir: Path) -> Settings:
        """The embedded default (see the module docstring for the other backends)."""
        return Settings(data_dir=data_dir)

    def open(self, data_dir: Path) -> AbstractAsyncContextManager[Any]:
        """The services under test (anything with ``namespace``, ``content`` and ``feed``): a
        server's, on the backend :meth:`make_settings` selects."""
        return open_services(self.make_settings(data_dir), authenticate=self._no_auth)

    async def _no_auth(self, conn: Any) -> Actor:
        raise AssertionError("not used")

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.context.__aexit__(None, None, None))
        self.loop.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def expect(self, model_step: Any, server_step: Coroutine[Any, Any, T]) -> T | None:
        """Run both; they must agree on success or on the error code."""
        try:
            predicted = model_step()
            expected_error = None
        except ModelError as exc:
            predicted, expected_error = None, exc.code
        result = None
        try:
            result = self.run(server_step)
        except MeshFSError as exc:
            refused = exc.code
        else:
            refused = None
        if refused is not None:
            assert refused == expected_error, f"server said {refused}, model {expected_error}"
            return None
        assert expected_error is None, f"server succeeded, model expected {expected_error}"
        if callable(predicted):
            predicted(result)
        return result

    def learn_ids(self, keys: list[int]) -> None:
        for key in keys:
            entry = self.run(self.services.namespace.meta(self.actor, path=self.model.path(key)))
            self.model.nodes[key].sid = entry.node_id

    # --- rules ----------------------------------------------------------------------------------

    @rule(path=PATHS)
    def mkdir(self, path: str) -> None:
        m = self.model
        made: list[int] = []

        def step() -> None:
            existing = m.lookup(path)
            if existing is not None:
                if m.nodes[existing].kind != "dir":
                    raise ModelError("already_exists")
                return
            made.extend(m.ensure_dirs(paths.split(path))[1])

        self.expect(step, self.services.namespace.mkdir(self.actor, path))
        self.learn_ids(made)

    @rule(path=PATHS, data=DATA)
    def write(self, path: str, data: bytes) -> None:
        m = self.model
        digest = hash_bytes(data).content_hash
        names = paths.split(path)
        made: list[int] = []

        def step() -> Any:
            parent, new_dirs = m.ensure_dirs(names[:-1])
            made.extend(new_dirs)
            key = m.child(parent, names[-1])
            if key is not None and m.nodes[key].kind == "dir":
                raise ModelError("is_a_directory")
            if key is not None and m.nodes[key].kind != "file":
                raise ModelError("not_a_file")
            if key is None:
                key = m.add("file", parent, names[-1])
                made.append(key)
            node = m.nodes[key]
            changed = node.content != digest
            node.content = digest
            if changed:
                node.mtime_ns = None  # the commit's time

            def check(result: Any) -> None:
                assert result.created_version == changed
                if changed:
                    node.versions.append((result.version.version_id, digest))
                    self.created.append((key, result.version.version_id, digest))

            return check

        snapshot = _copy(m)
        result = self.expect(step, self.services.content.write(self.actor, path, _stream(data)))
        if result is None:
            self.model = snapshot
            return
        self.learn_ids(made)

    @rule(src=PATHS, dst=PATHS, overwrite=st.booleans())
    def rename(self, src: str, dst: str, overwrite: bool) -> None:
        m = self.model

        def step() -> Any:
            key = m.lookup(src)
            if key is None:
                raise ModelError("not_found")
            node = m.nodes[key]
            if src == dst:
                return None
            if paths.is_within(dst, src):
                raise ModelError("invalid_move" if node.kind == "dir" else "not_a_directory")
            parent = m.lookup(paths.parent(dst))
            if parent is None:
                raise ModelError("not_found")
            if m.nodes[parent].kind != "dir":
                raise ModelError("not_a_directory")
            name = paths.basename(dst)
            target = m.child(parent, name)
            if target is not None:
                tnode = m.nodes[target]
                if not overwrite:
                    raise ModelError("already_exists")
                if tnode.file is node.file:  # two names of one file: rename(2) does nothing
                    return None
                if node.kind == "dir" and tnode.kind != "dir":
                    raise ModelError("not_a_directory")
                if node.kind != "dir" and tnode.kind == "dir":
                    raise ModelError("is_a_directory")
                if tnode.kind == "dir":
                    if m.descendants(target):
                        raise ModelError("directory_not_empty")
                    tnode.live = False
                elif node.kind != "file" or tnode.kind != "file":  # a link or special node
                    tnode.live = False
                elif sum(1 for k in m.names_of(target) if m.nodes[k].live) > 1:
                    tnode.live = False  # a name of a linked file: only the name changes hands
                else:  # the target keeps its identity and gains the moved content
                    changed = tnode.content != node.content
                    tnode.content = node.content
                    tnode.mode, tnode.mtime_ns = node.mode, node.mtime_ns
                    node.live = False

                    def check(entry: Any) -> None:
                        assert entry.node_id == tnode.sid
                        if changed:
                            tnode.versions.append((entry.version_id, tnode.content or ""))

                    return check
            node.parent, node.name = parent, name
            return None

        # Every refusal is decided before the model changes anything.
        self.expect(step, self.services.namespace.rename(self.actor, src, dst, overwrite=overwrite))

    @rule(path=PATHS, recursive=st.booleans())
    def delete(self, path: str, recursive: bool) -> None:
        m = self.model

        def step() -> None:
            key = m.lookup(path)
            if key is None:
                raise ModelError("not_found")
            below = m.descendants(key)
            if below and not recursive:
                raise ModelError("directory_not_empty")
            for k in [key, *below]:
                m.nodes[k].live = False

        self.expect(step, self.services.namespace.delete(self.actor, path, recursive=recursive))

    @precondition(lambda self: bool(self.created))
    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        m = self.model
        key, version_id, digest = data.draw(st.sampled_from(self.created))
        node = m.nodes[key]
        made: list[int] = []

        every_name = m.names_of(key)
        reachable = any(m.nodes[k].live and m._reachable(k) for k in every_name)
        revived = key
        if not reachable and len(every_name) > 1:
            # The file comes back under the name it had last: the server's record says which.
            last = self.run(self.services.namespace.meta(self.actor, node_id=node.sid)).path
            revived = next(k for k in every_name if m.path(k) == last)

        def step() -> Any:
            if not reachable:
                names = paths.split(m.path(revived))
                parent, new_dirs = m.ensure_dirs(names[:-1])
                made.extend(new_dirs)
                if m.child(parent, names[-1]) is not None:
                    raise ModelError("already_exists")
                back = m.nodes[revived]
                back.parent, back.name, back.live = parent, names[-1], True
            changed = node.content != digest
            node.content = digest
            if changed:
                node.mtime_ns = None

            def check(result: Any) -> None:
                assert result.created_version == changed
                if changed:
                    node.versions.append((result.version.version_id, digest))

            return check

        snapshot = _copy(m)
        result = self.expect(
            step, self.services.namespace.restore(self.actor, node.sid or "", version_id)
        )
        if result is None:
            self.model = snapshot
            return
        self.learn_ids(made)

    @rule(path=PATHS, data=DATA)
    def partial_write(self, path: str, data: bytes) -> None:
        """A new version as "the head with chunk 0 replaced and a new size"."""
        m = self.model
        digest = hash_bytes(data).content_hash

        def step() -> Any:
            key = m.lookup(path)
            if key is None:
                raise ModelError("not_found")
            node = m.nodes[key]
            if node.kind == "dir":
                raise ModelError("is_a_directory")
            if node.kind != "file":
                raise ModelError("not_a_file")
            changed = node.content != digest
            node.content = digest
            if changed:
                node.mtime_ns = None

            def check(result: Any) -> None:
                assert result.created_version == changed
                if changed:
                    node.versions.append((result.version.version_id, digest))
                    self.created.append((key, result.version.version_id, digest))

            return check

        snapshot = _copy(m)
        if self.expect(step, self._partial(path, data)) is None:
            self.model = snapshot

    async def _partial(self, path: str, data: bytes) -> Any:
        entry = await self.services.namespace.meta(self.actor, path=path)
        digest = hash_bytes(data)
        request = UploadInitRequest(
            path=path, size=len(data), content_hash=digest.content_hash,
            base_version=entry.version_id or "none", replace=dict(enumerate(digest.chunks)),
        )  # fmt: skip
        answer = await self.services.content.init_upload(self.actor, request)
        for index in answer.missing:
            await self.services.content.put_part(self.actor, answer.upload_id, index, _stream(data))
        return await self.services.content.commit_upload(self.actor, answer.upload_id)

    @rule(src=PATHS, dst=PATHS, overwrite=st.booleans())
    def copy(self, src: str, dst: str, overwrite: bool) -> None:
        m = self.model
        made: list[int] = []

        def step() -> Any:
            key = m.lookup(src)
            if key is None:
                raise ModelError("not_found")
            node = m.nodes[key]
            if node.kind == "dir":
                raise ModelError("is_a_directory")
            if node.kind != "file":
                raise ModelError("not_a_file")
            parent = m.lookup(paths.parent(dst))
            if parent is None:
                raise ModelError("not_found")
            if m.nodes[parent].kind != "dir":
                raise ModelError("not_a_directory")
            target = m.child(parent, paths.basename(dst))
            if target is not None and m.nodes[target].kind == "dir":
                raise ModelError("is_a_directory")
            if target is not None and target != key and not overwrite:
                raise ModelError("already_exists")
            if target is not None and m.nodes[target].kind != "file":
                raise ModelError("not_a_file")
            if target is None:
                target = m.add("file", parent, paths.basename(dst))
                m.nodes[target].mode = node.mode
                made.append(target)
            copy = m.nodes[target]
            changed = copy.content != node.content
            copy.content = node.content
            if changed:
                copy.mtime_ns = None
            kept = target

            def check(result: Any) -> None:
                assert result.created_version == changed
                if changed:
                    copy.versions.append((result.version.version_id, copy.content or ""))
                    self.created.append((kept, result.version.version_id, copy.content or ""))

            return check

        snapshot = _copy(m)
        result = self.expect(
            step, copy_file(self.store, self.services.feed, self.actor, src, dst,
                            overwrite=overwrite),
        )  # fmt: skip
        if result is None:
            self.model = snapshot
            return
        self.learn_ids(made)

    @rule(src=PATHS, dst=PATHS)
    def exchange(self, src: str, dst: str) -> None:
        m = self.model

        def step() -> None:
            first = m.lookup(src)
            if first is None:
                raise ModelError("not_found")
            second = m.lookup(dst)
            if second is None:
                raise ModelError("not_found")
            if src == dst:
                return
            if paths.is_within(dst, src) or paths.is_within(src, dst):
                raise ModelError("invalid_move")
            one, two = m.nodes[first], m.nodes[second]
            (one.parent, one.name), (two.parent, two.name) = (
                (two.parent, two.name), (one.parent, one.name)
            )  # fmt: skip

        self.expect(step, exchange(self.store, self.services.feed, self.actor, src, dst))

    @property
    def store(self) -> Any:
        return self.services.namespace.store

    def _set_attributes(self, path: str, **wanted: int) -> None:
        m = self.model

        def step() -> None:
            key = m.lookup(path)
            if key is None:
                raise ModelError("not_found")
            node = m.nodes[key]
            node.mode = wanted.get("mode", node.mode)
            node.mtime_ns = wanted.get("mtime_ns", node.mtime_ns)

        request = AttributesRequest(path=path, **wanted)
        self.expect(step, posix.set_attributes(self.store, self.services.feed, self.actor, request))

    @rule(path=PATHS, mode=MODES)
    def chmod(self, path: str, mode: int) -> None:
        self._set_attributes(path, mode=mode)

    @rule(path=PATHS, mtime=TIMES, atime=TIMES)
    def utimens(self, path: str, mtime: int, atime: int) -> None:
        self._set_attributes(path, mtime_ns=mtime, atime_ns=atime)

    def _make_special(self, path: str, kind: str, server_step: Any, **fields: Any) -> None:
        m = self.model
        made: list[int] = []

        def step() -> None:
            names = paths.split(path)
            parent = m.lookup(paths.parent(path))
            if parent is None:
                raise ModelError("not_found")
            if m.nodes[parent].kind != "dir":
                raise ModelError("not_a_directory")
            if m.child(parent, names[-1]) is not None:
                raise ModelError("already_exists")
            key = m.add(kind, parent, names[-1])
            for name, value in fields.items():
                setattr(m.nodes[key], name, value)
            made.append(key)

        self.expect(step, server_step)
        self.learn_ids(made)

    @rule(path=PATHS, to=TARGETS)
    def symlink(self, path: str, to: str) -> None:
        server = posix.symlink(self.store, self.services.feed, self.actor, path, to)
        self._make_special(path, "symlink", server, target=to)

    @rule(path=PATHS, kind=SPECIAL, mode=MODES)
    def mknod(self, path: str, kind: Any, mode: int) -> None:
        server = posix.mknod(self.store, self.services.feed, self.actor, path, kind, mode=mode)
        self._make_special(path, kind, server, mode=mode)

    @rule(src=PATHS, dst=PATHS)
    def link(self, src: str, dst: str) -> None:
        m = self.model

        def step() -> None:
            key = m.lookup(src)
            if key is None:
                raise ModelError("not_found")
            if m.nodes[key].kind == "dir":
                raise ModelError("not_permitted")
            parent = m.lookup(paths.parent(dst))
            if parent is None:
                raise ModelError("not_found")
            if m.nodes[parent].kind != "dir":
                raise ModelError("not_a_directory")
            if m.child(parent, paths.basename(dst)) is not None:
                raise ModelError("already_exists")
            name = m.add(m.nodes[key].kind, parent, paths.basename(dst))
            m.nodes[name].target = m.nodes[key].target
            m.nodes[name].alias = m.nodes[key].file

        self.expect(step, self.services.namespace.link(self.actor, src, dst))

    @rule(path=PATHS, name=XATTR_NAMES, value=DATA, flag=XATTR_FLAGS)
    def setxattr(self, path: str, name: str, value: bytes, flag: Any) -> None:
        m = self.model

        def step() -> None:
            key = m.lookup(path)
            if key is None:
                raise ModelError("not_found")
            node = m.nodes[key]
            if flag == "create" and name in node.xattrs:
                raise ModelError("already_exists")
            if flag == "replace" and name not in node.xattrs:
                raise ModelError("xattr_not_found")
            node.xattrs[name] = value

        self.expect(step, self.services.xattrs.set(self.actor, path, name, value, flag=flag))

    @rule(path=PATHS, name=XATTR_NAMES)
    def removexattr(self, path: str, name: str) -> None:
        m = self.model

        def step() -> None:
            key = m.lookup(path)
            if key is None:
                raise ModelError("not_found")
            if m.nodes[key].xattrs.pop(name, None) is None:
                raise ModelError("xattr_not_found")

        self.expect(step, self.services.xattrs.remove(self.actor, path, name))

    # --- invariants -----------------------------------------------------------------------------

    @invariant()
    def xattrs_match_model(self) -> None:
        for path in self.model.tree():
            key = self.model.lookup(path)
            assert key is not None
            expected = self.model.nodes[key].xattrs
            listed = self.run(self.services.xattrs.list_names(self.actor, path))
            assert {x.name: x.size for x in listed.xattrs} == {
                n: len(v) for n, v in expected.items()
            }, path
            for name, value in expected.items():
                assert self.run(self.services.xattrs.get(self.actor, path, name)) == value

    @invariant()
    def attributes_match_model(self) -> None:
        for path in self.model.tree():
            key = self.model.lookup(path)
            assert key is not None
            node = self.model.nodes[key]
            entry = self.run(self.services.namespace.meta(self.actor, path=path))
            assert (entry.mode, entry.target) == (node.mode, node.target), path
            # A directory's mtime also moves with its entries; the model follows files'.
            if node.mtime_ns is not None and node.kind != "dir":
                assert entry.mtime_ns == node.mtime_ns, path

    @invariant()
    def tree_matches_model(self) -> None:
        assert self.server_tree() == self.model.tree()

    @invariant()
    def feed_replay_rebuilds_tree(self) -> None:
        assert self.replayed_tree() == self.server_tree()

    def server_tree(self) -> dict[str, tuple[str, str | None]]:
        found: dict[str, tuple[str, str | None]] = {}

        def walk(path: str) -> None:
            page = self.run(self.services.namespace.list_directory(self.actor, path))
            for e in page.entries:
                found[e.path] = (e.kind, e.content_hash)
                if e.kind == "dir":
                    walk(e.path)

        walk("/")
        return found

    def replayed_tree(self) -> dict[str, tuple[str, str | None]]:
        # Each path's kind, content hash and node id: a write through one name of a
        # hard-linked file changes the content of every name of that node.
        tree: dict[str, tuple[str, str | None, str]] = {}
        page = self.run(self.services.feed.pull(self.actor.tenant_id, 0))
        assert [e.seq for e in page.events] == list(range(1, len(page.events) + 1))
        swapped: set[str] = set()  # the second events of exchanges, already applied
        for event in page.events:
            if event.exchanged_with is not None:
                if event.node_id not in swapped:
                    assert event.old_path is not None
                    swapped.add(event.exchanged_with)
                    tree = _swapped(tree, event.old_path, event.path)
                else:
                    swapped.discard(event.node_id)
            elif event.type in ("delete", "rename"):
                gone = event.old_path if event.type == "rename" else event.path
                moved = {
                    p: v for p, v in tree.items() if gone is not None and paths.is_within(p, gone)
                }
                for p in moved:
                    del tree[p]
                if event.type == "rename":
                    for p in [p for p in tree if paths.is_within(p, event.path)]:
                        del tree[p]
                    for p, v in moved.items():
                        tree[paths.rebase(p, gone or "/", event.path)] = v
                    if event.kind == "file":
                        tree[event.path] = ("file", event.content_hash, event.node_id)
                        _same_content(tree, event.node_id, event.content_hash)
            elif event.type == "mkdir":
                tree[event.path] = ("dir", None, event.node_id)
            elif event.type == "create":  # a symbolic link or special node
                assert (event.kind == "symlink") == (event.target is not None)
                tree[event.path] = (event.kind, None, event.node_id)
            elif event.type == "attributes":
                assert event.path in tree
                assert event.attributes
                assert event.old_attributes is not None
                assert event.attributes.keys() == event.old_attributes.keys()
            elif event.type == "link":
                tree[event.path] = (event.kind, event.content_hash, event.node_id)
            elif event.type == "xattr":
                assert event.path in tree
                assert event.xattr_name is not None
            else:  # write, restore
                tree[event.path] = ("file", event.content_hash, event.node_id)
                _same_content(tree, event.node_id, event.content_hash)
        return {p: (kind, digest) for p, (kind, digest, _) in tree.items()}


def _same_content(
    tree: dict[str, tuple[str, str | None, str]], node_id: str, content_hash: str | None
) -> None:
    """Every name of *node_id* (a hard-linked file has several) shows *content_hash*."""
    for p, (kind, _, other) in list(tree.items()):
        if other == node_id:
            tree[p] = (kind, content_hash, other)


def _swapped(tree: dict[str, T], one: str, two: str) -> dict[str, T]:
    """*tree* with the subtrees at *one* and *two* trading places."""
    out: dict[str, T] = {}
    for p, v in tree.items():
        if paths.is_within(p, one):
            out[paths.rebase(p, one, two)] = v
        elif paths.is_within(p, two):
            out[paths.rebase(p, two, one)] = v
        else:
            out[p] = v
    return out


def _copy(model: Model) -> Model:
    import copy

    return copy.deepcopy(model)


async def _stream(data: bytes) -> Any:
    yield data


NamespaceMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
