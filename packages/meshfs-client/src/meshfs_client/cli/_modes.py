"""Permission bits as people write them: ``ls -l``'s ``drwxr-xr-x`` and chmod's ``755``/``u+x``."""

from __future__ import annotations

import re
import stat

from meshfs_common.models import KIND_TYPE_BITS, Entry

_WHO = {"u": 0o4700, "g": 0o2070, "o": 0o1007}
_CLAUSE = re.compile(r"^([ugoa]*)([-+=])([rwxXst]*)$")


def mode_string(entry: Entry) -> str:
    """``-rw-r--r--``, ``drwxr-xr-x``, ``lrwxrwxrwx``... as ``ls -l`` shows the entry; a
    deleted entry (a tombstone) shows ``x`` in place of the type."""
    shown = stat.filemode(KIND_TYPE_BITS[entry.kind] | (entry.mode & 0o7777))
    return "x" + shown[1:] if entry.deleted_at is not None else shown


def parse_mode(spec: str, current: int, *, is_dir: bool) -> int:
    """The permission bits *spec* gives a node whose bits are now *current*.

    *spec* is octal (``644``, ``0755``, ``4755``) or chmod's symbolic form: comma-separated
    clauses ``[ugoa]*[+-=][rwxXst]*`` (``u+x``, ``go-w``, ``a=r,u+w``); ``X`` is execute
    only for a directory or where some execute bit is set. Raises :class:`ValueError` with a
    message naming the mistake.
    """
    if re.fullmatch(r"[0-7]{1,4}", spec):
        return int(spec, 8)
    if not spec:
        raise ValueError("empty mode: give octal (755) or symbolic (u+x, go-w, a=r)")
    mode = current & 0o7777
    for clause in spec.split(","):
        match = _CLAUSE.match(clause)
        if match is None:
            raise ValueError(
                f"invalid mode {spec!r}: give octal (755) or symbolic clauses "
                "[ugoa]*[+-=][rwxXst]* (u+x, go-w, a=r)"
            )
        who, op, perms = match.groups()
        mask = 0
        for person in who or "a":
            mask |= 0o7777 if person == "a" else _WHO[person]
        bits = _bits(perms, mode, is_dir=is_dir) & mask
        if op == "+":
            mode |= bits
        elif op == "-":
            mode &= ~bits
        else:
            # '=' replaces the rwx of the named classes; setuid/setgid follow u/g as chmod does
            mode = (mode & ~(mask & 0o7777)) | bits
    return mode


def _bits(perms: str, mode: int, *, is_dir: bool) -> int:
    bits = 0
    for perm in perms:
        if perm == "r":
            bits |= 0o444
        elif perm == "w":
            bits |= 0o222
        elif perm == "x" or (perm == "X" and (is_dir or mode & 0o111)):
            bits |= 0o111
        elif perm == "s":
            bits |= 0o6000
        elif perm == "t":
            bits |= 0o1000
    return bits
