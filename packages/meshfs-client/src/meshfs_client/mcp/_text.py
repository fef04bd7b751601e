"""Text work behind the MCP tools: binary sniffing, line windows, exact edits, grep, diffs.

Pure functions over ``str``/``bytes``; nothing here talks to a server.
"""

from __future__ import annotations

import codecs
import difflib
import fnmatch
import mimetypes
import re
from dataclasses import dataclass

SNIFF_BYTES = 8192
"""How much of a file decides whether it is text (like git and grep)."""


def mime_type(path: str, *, binary: bool) -> str:
    """A media type for *path*, guessed from its name (``text/plain`` or
    ``application/octet-stream`` when the name says nothing)."""
    guessed, _ = mimetypes.guess_type(path, strict=False)
    if guessed:
        return guessed
    return "application/octet-stream" if binary else "text/plain"


def decode_text(data: bytes) -> str | None:
    """The UTF-8 text of *data*, or ``None`` when it is binary (a NUL byte near the start, or
    not valid UTF-8)."""
    if b"\x00" in data[:SNIFF_BYTES]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def looks_binary(sample: bytes) -> bool:
    """True when the start of a file is not UTF-8 text (a sequence cut at the end of the sample
    is not held against it)."""
    head = sample[:SNIFF_BYTES]
    if b"\x00" in head:
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return True
    return False


@dataclass(frozen=True, slots=True)
class LineWindow:
    """Lines ``start``..``end`` (1-based, inclusive) of a text; ``end < start`` when empty."""

    text: str
    start: int
    end: int
    total: int
    truncated: bool


def line_window(text: str, start: int, end: int | None, *, max_chars: int) -> LineWindow:
    """Lines *start* to *end* (inclusive; ``None`` = to the end) of *text*, cut at a line
    boundary once *max_chars* characters are reached (``truncated`` then says so and ``end``
    is the last line returned, so the next read starts at ``end + 1``)."""
    lines = text.splitlines(keepends=True)
    total = len(lines)
    last = total if end is None else min(end, total)
    picked: list[str] = []
    size = 0
    truncated = False
    for number in range(start, last + 1):
        line = lines[number - 1]
        if picked and size + len(line) > max_chars:
            truncated = True
            break
        picked.append(line)
        size += len(line)
    return LineWindow("".join(picked), start, start + len(picked) - 1, total, truncated)


class EditError(ValueError):
    """An exact find/replace that cannot be applied as asked; the message says why."""


def replace_exact(
    text: str, old: str, new: str, *, replace_all: bool, path: str
) -> tuple[str, int]:
    """*text* with *old* replaced by *new*, and the number of replacements.

    *old* must occur exactly once unless *replace_all*; otherwise :class:`EditError` names the
    lines where it occurs so the caller can add context.
    """
    if not old:
        raise EditError("old_text is empty; give the exact text to replace")
    if old == new:
        raise EditError("old_text and new_text are the same; nothing would change")
    count = text.count(old)
    if count == 0:
        raise EditError(
            f"old_text was not found in {path}; read the file and copy the text exactly"
        )
    if count > 1 and not replace_all:
        lines = ", ".join(str(n) for n in occurrence_lines(text, old)[:20])
        raise EditError(
            f"old_text is not unique in {path}: it occurs {count} times (lines {lines}); "
            "include more surrounding text to pick one, or set replace_all"
        )
    return text.replace(old, new), count


def occurrence_lines(text: str, needle: str) -> list[int]:
    """The 1-based line numbers where each occurrence of *needle* starts."""
    found: list[int] = []
    at = text.find(needle)
    while at != -1:
        found.append(text.count("\n", 0, at) + 1)
        at = text.find(needle, at + len(needle))
    return found


def unified_diff(before: str, after: str, path: str, *, context: int = 3) -> str:
    """A unified diff of two texts with ``a/`` and ``b/`` headers, as git shows it."""
    name = path.lstrip("/")
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"a/{name}",
        tofile=f"b/{name}",
        n=context,
    )
    out: list[str] = []
    for line in lines:
        out.append(line)
        if not line.endswith("\n"):
            out.append("\n\\ No newline at end of file\n")
    return "".join(out)


def name_matcher(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    """A compiled glob: matched against the name, or against the whole path when the
    pattern contains ``/``."""
    return re.compile(fnmatch.translate(pattern), re.IGNORECASE if ignore_case else 0)


def text_matcher(pattern: str, *, regex: bool, ignore_case: bool) -> re.Pattern[str]:
    """A compiled grep pattern (a literal unless *regex*); a bad regex raises ``ValueError``."""
    flags = re.IGNORECASE if ignore_case else 0
    try:
        return re.compile(pattern if regex else re.escape(pattern), flags)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None


def grep_lines(text: str, matcher: re.Pattern[str], limit: int) -> list[tuple[int, str]]:
    """Up to *limit* ``(line number, line)`` pairs of *text* that *matcher* finds."""
    hits: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if matcher.search(line):
            hits.append((number, line))
            if len(hits) >= limit:
                break
    return hits
