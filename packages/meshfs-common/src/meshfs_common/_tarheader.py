"""Tar header blocks of the common kind, read and written without :mod:`tarfile`'s general
machinery (which costs more per member than a small file's own bytes do).

The common kind is what bulk transfers exchange all day: ustar blocks with octal numbers, a
checksum that adds up, ASCII names of at most 100 bytes and pax records of UTF-8 text. The
functions here answer None for anything else - base-256 numbers, a signed checksum, old V7
headers, names that need a pax ``path`` - and the caller hands that block to :mod:`tarfile`,
so every archive reads as tarfile reads it.
"""

from __future__ import annotations

import tarfile

BLOCK = 512
Header = tuple[str, bytes, int, int, int]
"""A header read: (name, type flag, size, mode, mtime), as :meth:`tarfile.TarInfo.frombuf`
reads them."""

# Numeric fields tarfile reads (mode, uid, gid, size, mtime, devmajor, devminor).
_NUMBERS = ((100, 108), (108, 116), (116, 124), (124, 136), (136, 148), (329, 337), (337, 345))
_OCTAL_LIMIT = 8**11  # eleven octal digits: sizes and times up to here fit the ustar fields
_ZEROS = b"0000000\0"
_PAX_NAME = b"././@PaxHeader"


def _octal(field: bytes) -> int | None:
    if field[:1] in (b"\x80", b"\xff"):
        return None  # base-256: tarfile's
    text = field.split(b"\0", 1)[0].strip()
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        return None


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def read_header(raw: bytes) -> Header | None:
    """The fields of a ustar header block, or None when :mod:`tarfile` should read it."""
    if raw[257:262] != b"ustar":
        return None
    numbers = [_octal(raw[start:end]) for start, end in _NUMBERS]
    stored = _octal(raw[148:156])
    if stored is None or None in numbers:
        return None
    if stored != sum(raw) - sum(raw[148:156]) + 8 * 32:  # the field counts as eight spaces
        return None
    mode, _, _, size, mtime, _, _ = (n or 0 for n in numbers)
    name = _text(raw[0:100])
    kind = raw[156:157]
    if kind == tarfile.AREGTYPE and name.endswith("/"):
        kind = tarfile.DIRTYPE
    if kind == tarfile.DIRTYPE:
        name = name.rstrip("/")
    prefix = _text(raw[345:500])
    if prefix and kind not in tarfile.GNU_TYPES:
        name = prefix + "/" + name
    return name, kind, size, mode, mtime


def _block(name: bytes, kind: bytes, size: int, mode: int, mtime: int) -> bytes:
    block = b"".join((
        name.ljust(100, b"\0"), b"%07o\0" % mode, _ZEROS, _ZEROS, b"%011o\0" % size,
        b"%011o\0" % mtime, b" " * 8, kind, bytes(100), b"ustar\x0000", bytes(64), _ZEROS,
        _ZEROS, bytes(167),
    ))  # fmt: skip
    return b"%s%06o\0 %s" % (block[:148], sum(block), block[156:])


def _record(keyword: str, value: str) -> bytes:
    """One pax record, ``"<length> <keyword>=<value>\\n"`` (the length counts itself)."""
    body = b" %s=%s\n" % (keyword.encode("utf-8"), value.encode("utf-8"))
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return b"%d%s" % (length, body)


def write_header(
    name: str, *, directory: bool, size: int, mode: int, mtime: int,
    pax: dict[str, str] | None,
) -> bytes | None:  # fmt: skip
    """The header block(s) of a member (a pax extended header first when *pax* is given), or
    None when :mod:`tarfile` should write them (a name or number the ustar fields cannot
    hold as they are)."""
    if directory and not name.endswith("/"):
        name += "/"
    if not name.isascii() or len(name) > 100:
        return None
    if not (0 <= size < _OCTAL_LIMIT and 0 <= mtime < _OCTAL_LIMIT):
        return None
    kind = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    header = _block(name.encode("ascii"), kind, size, mode & 0o7777, mtime)
    if not pax:
        return header
    try:
        records = b"".join(_record(keyword, value) for keyword, value in pax.items())
    except UnicodeEncodeError:
        return None
    extended = _block(_PAX_NAME, tarfile.XHDTYPE, len(records), 0o644, 0)
    return b"".join((extended, records, bytes(-len(records) % BLOCK), header))
