"""Text a client chose, made safe to show on a terminal or in a log line.

A device login's ``client_name``, a request path and the like come from whoever sent the
request, before any authentication. Printed raw, control characters in them (escape sequences,
carriage returns, bidirectional overrides) would rewrite an administrator's terminal or forge
log lines. Everything the server prints that a client chose goes through :func:`printable`;
labels it stores go through :func:`clean_label` first.
"""

from __future__ import annotations

import unicodedata

#: Longest client-chosen text printed, in characters (longer text ends with an ellipsis).
PRINT_LIMIT = 64
#: Longest client-chosen label stored (a device login's client name).
LABEL_LIMIT = 100

# Control, format (bidirectional overrides, zero-width), surrogate, private-use and unassigned
# code points, and the line/paragraph separators: none of them is safe to print as is.
_UNSAFE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in _UNSAFE


def _escape(char: str) -> str:
    # The escapes Python's repr() uses: \x1b, \u202e, \U000e0001.
    return char.encode("unicode_escape").decode("ascii")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def printable(text: str, limit: int = PRINT_LIMIT) -> str:
    """*text* with every unsafe character shown as an escape (``\\x1b``), cut to *limit*."""
    shown = "".join(_escape(c) if _unsafe(c) else c for c in text)
    return _shorten(shown, limit)


def clean_label(text: str, limit: int = LABEL_LIMIT, default: str = "") -> str:
    """*text* without unsafe characters (whitespace ones become a space, runs of spaces one),
    trimmed and cut to *limit*; *default* when nothing is left."""
    kept = "".join(" " if c.isspace() else c for c in text if c.isspace() or not _unsafe(c))
    label = _shorten(" ".join(kept.split()), limit)
    return label or default
