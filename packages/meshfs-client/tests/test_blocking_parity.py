"""`MeshFS` offers every public member of `MeshFSClient`, with the same parameters."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator
from typing import Any, get_type_hints

from meshfs_client import ClientOptions, MeshFS, MeshFSClient


def _public(cls: type) -> dict[str, Any]:
    """Every public member of *cls*, also those of the classes it is made of."""
    names = {name for part in cls.__mro__[:-1] for name in vars(part) if not name.startswith("_")}
    return {name: inspect.getattr_static(cls, name) for name in sorted(names)}


def _parameters(func: Any) -> list[tuple[str, Any, Any]]:
    params = inspect.signature(func).parameters.values()
    return [(p.name, p.kind, p.default) for p in params if p.name != "self"]


def _blocking_return(annotation: str) -> set[str]:
    """What a blocking method may return for an async method's return annotation."""
    if annotation.startswith("AsyncIterator["):
        item = annotation.removeprefix("AsyncIterator")
        return {f"Iterator{item}", f"list{item}"}  # a stream, or the whole (short) list
    streams = {"DownloadStream": "Iterator[bytes]", "ChangeFeed": "Iterator[FeedItem]"}
    return {streams.get(annotation, annotation)}


def drift(async_cls: type, blocking_cls: type) -> list[str]:
    """Every way *blocking_cls* differs from *async_cls*'s public surface."""
    found: list[str] = []
    blocking = _public(blocking_cls)
    for name, member in _public(async_cls).items():
        counterpart = blocking.get(name)
        if counterpart is None:
            found.append(f"{name}: missing")
        elif isinstance(member, property) != isinstance(counterpart, property):
            found.append(f"{name}: a property on one side only")
        elif callable(member):
            if _parameters(member) != _parameters(counterpart):
                found.append(f"{name}: parameters {_parameters(counterpart)}")
            expected = _blocking_return(str(inspect.signature(member).return_annotation))
            got = str(inspect.signature(counterpart).return_annotation)
            if got not in expected:
                found.append(f"{name}: returns {got}, not {' or '.join(sorted(expected))}")
    return found


def test_every_async_member_has_its_blocking_counterpart() -> None:
    assert drift(MeshFSClient, MeshFS) == []


def test_the_constructors_take_the_same_options() -> None:
    client = _parameters(MeshFSClient.__init__)
    options = [(name, kind, default) for name, kind, default in client[1:] if name != "session"]
    assert _parameters(MeshFS.__init__)[0] == client[0]  # server
    assert list(get_type_hints(ClientOptions)) == [name for name, _, _ in options]
    assert all(kind is inspect.Parameter.KEYWORD_ONLY for _, kind, _ in options)


def test_no_blocking_method_takes_unchecked_keywords() -> None:
    for name, member in _public(MeshFS).items():
        if callable(member) and not isinstance(member, property):
            kinds = [kind for _, kind, _ in _parameters(member)]
            assert inspect.Parameter.VAR_KEYWORD not in kinds, name


class _Async:
    async def read(self, path: str, *, limit: int = 10) -> bytes:
        return b""

    async def items(self, path: str) -> AsyncIterator[int]:
        yield 1

    @property
    def server(self) -> str:
        return ""

    @contextlib.contextmanager
    def on_event(self, listener: Any) -> Any:
        yield


class _Drifted:
    def read(self, path: str, *, limit: int = 20) -> bytes:  # another default
        return b""

    def items(self, path: str) -> int:  # not an iterator
        return 1

    def server(self) -> str:  # a method, not a property
        return ""


def test_drift_is_reported() -> None:
    assert drift(_Async, _Drifted) == [
        "items: returns int, not Iterator[int] or list[int]",
        "on_event: missing",
        "read: parameters [('path', <_ParameterKind.POSITIONAL_OR_KEYWORD: 1>, "
        "<class 'inspect._empty'>), ('limit', <_ParameterKind.KEYWORD_ONLY: 3>, 20)]",
        "server: a property on one side only",
    ]
