"""The one place where MeshFS decides what a path is.

Rules (the server enforces them; clients use the same functions so they fail early):

* A path is absolute and ``/``-separated; a relative path is taken from the root, so ``a/b`` is
  ``/a/b``. Repeated slashes collapse and a trailing slash is dropped; the root is ``/``.
* Names ``.`` and ``..`` are refused, never resolved: MeshFS paths cannot climb.
* NUL and other control characters (U+0000-U+001F, U+007F) are refused.
* Names are normalised to Unicode NFC, so the precomposed and decomposed spellings of a name (as
  macOS and Linux tend to produce) are one file. Comparison is then by code point: paths are
  case-sensitive, as on Linux.
* After normalisation a name may be at most 255 bytes of UTF-8 and a path at most 4,096 bytes.
"""

from __future__ import annotations

import re
import unicodedata

from meshfs_common.errors import InvalidPathError, NameTooLongError

ROOT = "/"
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def validate_name(name: str) -> str:
    """Return *name* normalised to NFC, or raise :class:`InvalidPathError`."""
    if not name:
        raise InvalidPathError("a name cannot be empty")
    if "/" in name:
        raise InvalidPathError(f"a name cannot contain '/': {name!r}")
    if _CONTROL.search(name):
        raise InvalidPathError(f"a name cannot contain control characters: {name!r}")
    plain = name.isascii()  # the common case: already NFC, one byte per character, valid
    if not plain:
        name = unicodedata.normalize("NFC", name)
    if name in (".", ".."):
        raise InvalidPathError(f"'{name}' is not allowed as a name; paths cannot be relative")
    if plain:
        if len(name) > MAX_NAME_BYTES:
            raise NameTooLongError(f"name is longer than {MAX_NAME_BYTES} bytes: {name[:40]!r}...")
        return name
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise NameTooLongError(f"name is longer than {MAX_NAME_BYTES} bytes: {name[:40]!r}...")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPathError(f"a name must be valid Unicode: {name!r}") from None
    return name


def split(path: str) -> tuple[str, ...]:
    """Normalise *path* and return its names from the root down (``()`` for the root)."""
    if not isinstance(path, str) or path == "":
        raise InvalidPathError("a path cannot be empty; use '/' for the root")
    if "\x00" in path:
        raise InvalidPathError("a path cannot contain NUL")
    names = tuple(validate_name(part) for part in path.split("/") if part)
    if sum(len(n.encode("utf-8")) + 1 for n in names) > MAX_PATH_BYTES:
        raise NameTooLongError(f"path is longer than {MAX_PATH_BYTES} bytes")
    return names


def normalise(path: str) -> str:
    """Return the canonical form of *path* or raise :class:`InvalidPathError`."""
    return join(split(path))


def join(names: tuple[str, ...] | list[str]) -> str:
    """Build a canonical path from already-valid *names*."""
    return "/" + "/".join(names)


def parent(path: str) -> str:
    """Parent of a canonical *path* (the root is its own parent)."""
    head, _, _ = path.rpartition("/")
    return head or ROOT


def basename(path: str) -> str:
    """Last name of a canonical *path* (empty for the root)."""
    return path.rpartition("/")[2]


def is_within(path: str, ancestor: str) -> bool:
    """True when canonical *path* equals *ancestor* or lies beneath it."""
    if ancestor == ROOT:
        return True
    return path == ancestor or path.startswith(ancestor + "/")


def relative_to(path: str, ancestor: str) -> str:
    """The part of canonical *path* below *ancestor*, as a canonical path."""
    if not is_within(path, ancestor):
        raise InvalidPathError(f"{path} is not within {ancestor}")
    if ancestor == ROOT:
        return path
    return path[len(ancestor) :] or ROOT


def rebase(path: str, old: str, new: str) -> str:
    """Move canonical *path* from under *old* to under *new* (for directory renames)."""
    rest = relative_to(path, old)
    if rest == ROOT:
        return new
    return (new if new != ROOT else "") + rest
