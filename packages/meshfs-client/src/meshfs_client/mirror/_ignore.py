"""Which paths stay local: built-in temporary names plus the target's ``.meshfsignore``.

``.meshfsignore`` sits at the top of the mirrored folder and uses gitignore syntax (matched with
:mod:`pathspec`, including ``!`` negation and ``dir/`` patterns). It is itself never synced, so
each device keeps its own rules. Ignored paths are neither uploaded nor downloaded.

Always ignored, whatever the file says:

* the mirror's own temporary files (``.*.meshfs-tmp``) and the client library's partial
  downloads (``*.meshfs-part``);
* editors' scratch files: Vim swap files (``.*.sw?``) and its write test ``4913``, Emacs lock
  and autosave files (``.#*``, ``#*#``), backup files (``*~``), JetBrains safe-write files
  (``*___jb_tmp___``, ``*___jb_old___``), GNOME's ``.goutputstream-*``, and ``.DS_Store``.
"""

from __future__ import annotations

from pathlib import Path

import pathspec

IGNORE_FILE = ".meshfsignore"
TEMP_SUFFIX = ".meshfs-tmp"

BUILTIN_PATTERNS = (
    f"/{IGNORE_FILE}",
    f"*{TEMP_SUFFIX}",
    "*.meshfs-part",
    ".*.sw[a-p]",
    "4913",
    ".#*",
    r"\#*#",  # a leading "#" starts a comment in gitignore syntax
    "*~",
    "*___jb_tmp___",
    "*___jb_old___",
    ".goutputstream-*",
    ".DS_Store",
)


class IgnoreRules:
    """Matches mirror-relative paths (``/a/b``) against the built-in and the user's patterns."""

    def __init__(self, user_lines: list[str] | None = None) -> None:
        self.user_lines = list(user_lines or [])
        self._spec = pathspec.GitIgnoreSpec.from_lines([*BUILTIN_PATTERNS, *self.user_lines])

    @classmethod
    def load(cls, target: Path) -> IgnoreRules:
        """The rules for a target folder (built-ins only when it has no ``.meshfsignore``)."""
        try:
            text = (target / IGNORE_FILE).read_text(encoding="utf-8", errors="replace")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return cls()
        return cls(text.splitlines())

    def ignored(self, rel: str, *, is_dir: bool = False) -> bool:
        """True when the path (a directory when *is_dir*) stays local."""
        if rel == "/":
            return False
        candidate = rel.lstrip("/") + ("/" if is_dir else "")
        return bool(self._spec.match_file(candidate))


def is_temp_name(name: str) -> bool:
    """True for the mirror's own temporary download files."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)
