"""Comparing two contents of a file: a unified text diff, or a summary for binary content.

Pure functions on bytes (no I/O). Text is UTF-8 without NUL bytes, at most :data:`TEXT_LIMIT`
bytes per side; anything else is compared by size, media type and hash only. difflib's work
grows with the number of lines, so callers run :func:`compare` off the event loop.
"""

from __future__ import annotations

import difflib
import mimetypes
from dataclasses import dataclass

from meshfs_common.models import NoTextReason

TEXT_LIMIT = 1024 * 1024
CONTEXT_LINES = 3
_SNIFF = 8192
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
    (b"\x7fELF", "application/x-executable"),
)


def decode_text(data: bytes) -> str | None:
    """The content as text when it is UTF-8 without NUL bytes, else None."""
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def guess_media_type(path: str, head: bytes) -> str:
    """A media type from well-known signatures, then the name, then whether it is text."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    by_name, _ = mimetypes.guess_type(path, strict=False)
    if by_name is not None:
        return by_name
    sample = head[:_SNIFF]
    # A multi-byte character cut at the sample's end is still text.
    if b"\x00" not in sample and decode_text(sample[: max(0, len(sample) - 3)]) is not None:
        return "text/plain"
    return "application/octet-stream"


@dataclass(slots=True)
class Comparison:
    """The outcome of :func:`compare`: a unified diff and line counts, or why there is none."""

    unified: str | None
    added: int
    removed: int
    no_text: NoTextReason | None


def compare(
    old: bytes | None, new: bytes | None, old_label: str, new_label: str, *, too_large: bool
) -> Comparison:
    """Diff two contents (None: no content on that side, as for a file created or deleted).

    *too_large* says a side exceeded :data:`TEXT_LIMIT` (its bytes were not read).
    """
    if too_large:
        return Comparison(None, 0, 0, "too_large")
    old_text = "" if old is None else decode_text(old)
    new_text = "" if new is None else decode_text(new)
    if old_text is None or new_text is None:
        return Comparison(None, 0, 0, "binary")
    lines = list(
        difflib.unified_diff(
            old_text.splitlines(keepends=True),
            new_text.splitlines(keepends=True),
            fromfile=old_label,
            tofile=new_label,
            n=CONTEXT_LINES,
        )
    )
    added = removed = 0
    out: list[str] = []
    for line in lines:
        if line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
        if not line.endswith("\n"):
            line += "\n\\ No newline at end of file\n"
        out.append(line)
    return Comparison("".join(out), added, removed, None)


def line_stats(old: bytes | None, new: bytes | None) -> tuple[int, int] | None:
    """(added, removed) lines between two text contents, or None when either is not text."""
    result = compare(old, new, "a", "b", too_large=False)
    return None if result.no_text is not None else (result.added, result.removed)
