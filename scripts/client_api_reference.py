"""Generate packages/meshfs-client/API.md: every public name, method and default of the client.

The reference is built from the code (signatures and docstrings), so it cannot drift:
``tests/test_api_reference.py`` in meshfs-client fails when the file differs from what this
script renders. After changing the public surface, run::

    .venv/bin/python scripts/client_api_reference.py --write
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

OUTPUT = Path(__file__).resolve().parents[1] / "packages" / "meshfs-client" / "API.md"

HEADER = """\
# meshfs-client API reference

Generated from the code by `scripts/client_api_reference.py` (do not edit by hand). Every
public method of `MeshFSClient` (async) and `MeshFS` (blocking: the same methods without
`await`, on a private event loop thread), with its defaults. Paths are MeshFS paths (`/a/b`);
failures raise the typed exceptions of `meshfs_common.errors` (re-exported by
`meshfs_client`).
"""


def _doc(obj: object) -> str:
    """The first paragraph of *obj*'s own docstring (not an inherited one), on one line."""
    text = inspect.cleandoc(getattr(obj, "__doc__", None) or "")
    return " ".join(text.split("\n\n", 1)[0].split())


class _Raw:
    """An annotation shown as written (they are strings under postponed evaluation)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _shown(annotation: object) -> object:
    return _Raw(annotation) if isinstance(annotation, str) else annotation


def _signature(name: str, func: object) -> str:
    try:
        signature = inspect.signature(func)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return name
    params = [
        p.replace(annotation=_shown(p.annotation))
        for p in signature.parameters.values()
        if p.name != "self"
    ]
    shown = signature.replace(
        parameters=params, return_annotation=_shown(signature.return_annotation)
    )
    return f"{name}{shown}"


def _members(cls: type) -> list[tuple[str, object]]:
    """Public methods and properties of *cls* in source order: its own, then those of the
    classes it is made of (``MeshFSClient`` groups its methods in a few base classes)."""
    found: list[tuple[str, object]] = []
    parts = [cls, *reversed(cls.__mro__[1:-1])]
    for name in dict.fromkeys(name for part in parts for name in vars(part)):
        if name.startswith("_") and name != "__init__":
            continue
        value = inspect.getattr_static(cls, name)
        if isinstance(value, property | staticmethod | classmethod) or inspect.isfunction(value):
            found.append((name, value))
    return found


def _class_section(title: str, cls: type, same_as: type | None = None) -> list[str]:
    """*cls*'s members; one without its own docstring takes the one of *same_as*'s method."""
    lines = [f"## {title}", "", _doc(cls), ""]
    for name, value in _members(cls):
        if isinstance(value, property):
            lines += [f"### `{name}` (property)", "", _doc(value), ""]
            continue
        func = value.__func__ if isinstance(value, staticmethod | classmethod) else value
        if name == "__init__":  # the class's own docstring above says what it takes
            lines[-1:-1] = ["", f"`{_signature(cls.__name__, func)}`"]
            continue
        asynchronous = inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)
        prefix = "async " if asynchronous else ""
        doc = _doc(func)
        if same_as is not None and (not doc or doc.startswith("See :meth:")):
            doc = _doc(getattr(same_as, name, None)) or doc
        lines += [f"### `{prefix}{_signature(name, func)}`", "", doc, ""]
    return lines


_ALIASES = {
    "FeedItem": "What a `ChangeFeed` yields: a `ChangeEvent` or a `FeedReset`.",
    "UploadSource": "What `upload()` accepts: bytes, a local file path, or an async iterable of"
    " bytes.",
}


def render() -> str:
    """The whole reference, as Markdown."""
    import meshfs_client
    from meshfs_client import MeshFS, MeshFSClient

    lines = [HEADER, "## Names exported by `meshfs_client`", ""]
    lines += ["| name | what |", "|---|---|"]
    for name in meshfs_client.__all__:
        if name.startswith("__"):
            continue
        value = getattr(meshfs_client, name)
        if isinstance(value, str):
            doc = f"`{value!r}`"
        elif inspect.isclass(value) and issubclass(value, meshfs_client.MeshFSError):
            doc = _doc(value) or f"error code `{value.code}`"
        else:
            doc = _ALIASES.get(name) or _doc(value)
        escaped = doc.replace("|", "\\|")
        lines.append(f"| `{name}` | {escaped} |")
    lines.append("")
    lines += _class_section("`MeshFSClient` (async)", MeshFSClient)
    lines += _class_section("`MeshFS` (blocking)", MeshFS, same_as=MeshFSClient)
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {OUTPUT.name}")
    args = parser.parse_args()
    text = render()
    if args.write:
        OUTPUT.write_text(text)
        print(f"wrote {OUTPUT}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
