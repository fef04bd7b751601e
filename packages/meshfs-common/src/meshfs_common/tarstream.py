"""Tar archives as streams: the framing of bulk transfers (many small files in one request).

Bulk writes send, and bulk reads answer with, a POSIX tar archive (ustar with pax extended
headers; GNU long names are read too), so ``tar -c . | curl --data-binary @-`` and
``curl ... | tar -x`` work as they are. This module reads one incrementally from an async byte
stream (constant memory besides the member being read) and writes member headers; it never
touches the filesystem.

Only what bulk transfers need is interpreted: regular files, directories, the member's name
(``path``), ``size``, ``mode`` and ``mtime`` (to the nanosecond from a pax ``mtime`` record,
exactly: no float rounding); pax keywords reach the caller as they are (bulk
reads put ``MESHFS.*`` keywords there when asked). Other member types (links, devices) are
reported with kind ``"other"`` for the caller to refuse by name.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

from meshfs_common._tarheader import Header, read_header, write_header
from meshfs_common.errors import BadRequestError

BLOCK = 512
#: Two zero blocks end an archive.
END = bytes(2 * BLOCK)
#: The largest pax or GNU long-name record read (they carry names and a few numbers).
MAX_META = 64 * 1024
NS = 1_000_000_000

MemberKind = Literal["file", "dir", "other"]
_FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
_META_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)


class TarFormatError(BadRequestError):
    """The body is not a readable tar archive (400 ``bad_request``)."""


@dataclass(slots=True)
class TarMember:
    """One member of an archive: its header, not its data."""

    name: str
    kind: MemberKind
    size: int
    mode: int = 0o644
    mtime: float = 0.0
    pax: dict[str, str] = field(default_factory=dict)
    type_name: str = "file"
    """What the member is, for messages (``"symbolic link"``, ``"hard link"``...)."""
    mtime_ns: int = 0
    """The modification time in integer nanoseconds: exact from a pax ``mtime`` record
    (``"1700000000.123456789"``), else the header's whole seconds."""


_TYPE_NAMES = {
    tarfile.SYMTYPE: "symbolic link",
    tarfile.LNKTYPE: "hard link",
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "FIFO",
}


def padding(size: int) -> int:
    """Zero bytes that follow *size* bytes of member data up to the next block."""
    return -size % BLOCK


class TarReader:
    """Read an archive member by member from an async byte stream.

    ``async for member in reader`` yields each member; read its data with :meth:`read_data`
    (or let the next iteration skip it). A malformed archive raises :class:`TarFormatError`.
    """

    def __init__(self, blocks: AsyncIterator[bytes]) -> None:
        self._blocks = blocks
        self._buffer = bytearray()
        self._offset = 0  # bytes consumed from the stream before the buffer
        self._unread = 0  # data (plus padding) of the current member not yet consumed
        self._data_left = 0
        self._done = False

    @property
    def offset(self) -> int:
        """Bytes of the archive consumed so far."""
        return self._offset

    async def _fill(self, n: int) -> bool:
        while len(self._buffer) < n:
            block = await anext(self._blocks, None)
            if block is None:
                return False
            self._buffer += block
        return True

    async def _take(self, n: int) -> bytes:
        if not await self._fill(n):
            raise TarFormatError(
                f"the archive ends early, at byte {self._offset + len(self._buffer)}"
            )
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        self._offset += n
        return out

    async def _skip(self, n: int) -> None:
        while n > 0:
            if not self._buffer and not await self._fill(1):
                raise TarFormatError(f"the archive ends early, at byte {self._offset}")
            step = min(n, len(self._buffer))
            del self._buffer[:step]
            self._offset += step
            n -= step

    def __aiter__(self) -> TarReader:
        return self

    async def __anext__(self) -> TarMember:
        member = await self.next()
        if member is None:
            raise StopAsyncIteration
        return member

    async def next(self) -> TarMember | None:
        """The next member (its predecessor's unread data skipped), or None at the end."""
        if self._unread:
            await self._skip(self._unread)
            self._unread = self._data_left = 0
        pax: dict[str, str] = {}
        long_name: str | None = None
        while not self._done:
            if not await self._fill(BLOCK):
                if self._buffer:
                    raise TarFormatError(f"the archive ends early, at byte {self._offset}")
                self._done = True  # no end marker: accepted, as GNU tar does
                break
            at = self._offset
            raw = await self._take(BLOCK)
            if raw == bytes(BLOCK):
                self._done = True  # the end marker; anything after it is not read
                break
            header = read_header(raw) or _general_header(raw, at)
            info_name, info_type, size, info_mode, info_mtime = header
            if info_type in _META_TYPES:
                if size > MAX_META:
                    raise TarFormatError(f"an extended header of {size} bytes at byte {at}")
                body = await self._take(size)
                await self._skip(padding(size))
                if info_type == tarfile.XHDTYPE:
                    pax.update(_pax_records(body, at))
                elif info_type == tarfile.GNUTYPE_LONGNAME:
                    long_name = body.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                continue  # global headers and long link names carry nothing bulk uses
            if "size" in pax:  # pax carries sizes the header's 11 octal digits cannot
                if not pax["size"].isdigit():
                    raise TarFormatError(f"a malformed pax size at byte {at}")
                size = int(pax["size"])
            name = pax.get("path", long_name if long_name is not None else info_name)
            kind: MemberKind = "other"
            if info_type in _FILE_TYPES:
                kind = "dir" if name.endswith("/") and size == 0 else "file"
            elif info_type == tarfile.DIRTYPE:
                kind = "dir"
            mtime_ns = _pax_time_ns(pax.get("mtime"))
            if mtime_ns is None:
                mtime_ns = info_mtime * NS
            mtime = mtime_ns / NS
            self._data_left = size
            self._unread = size + padding(size)
            return TarMember(
                name=name, kind=kind, size=size, mode=info_mode & 0o7777, mtime=mtime, pax=pax,
                type_name=_TYPE_NAMES.get(info_type, "directory" if kind == "dir" else "file"),
                mtime_ns=mtime_ns,
            )  # fmt: skip
        return None

    async def read_data(self) -> bytes:
        """The whole data of the member last returned (call at most once per member)."""
        size = self._data_left
        data = await self._take(size)
        await self._skip(padding(size))
        self._unread = self._data_left = 0
        return data


def _general_header(raw: bytes, at: int) -> Header:
    """A header block only :mod:`tarfile` reads (see :mod:`meshfs_common._tarheader`)."""
    try:
        info = tarfile.TarInfo.frombuf(raw, "utf-8", "surrogateescape")
    except tarfile.HeaderError as exc:
        raise TarFormatError(f"not a tar header at byte {at}: {exc}") from None
    return info.name, info.type, info.size, info.mode, int(info.mtime)


_PAX_TIME = re.compile(r"(-?)([0-9]+)(?:\.([0-9]*))?")


def _pax_time_ns(text: str | None) -> int | None:
    """A pax time record (``"-12.5"``, ``"1700000000.123456789"``) in integer nanoseconds,
    exactly (digits past the ninth are dropped, towards the earlier time, as GNU tar does);
    None when absent or not a decimal number (the header's seconds are used then)."""
    if text is None:
        return None
    match = _PAX_TIME.fullmatch(text)
    if match is None:
        return None
    sign, whole, fraction = match.groups()
    digits = (fraction or "").ljust(9, "0")
    ns = int(whole) * NS + int(digits[:9])
    if sign:
        return -ns - (1 if digits[9:].strip("0") else 0)
    return ns


def pax_time(ns: int) -> str:
    """*ns* nanoseconds as a pax time record's value (``"1700000000.123456789"``; whole
    seconds without a fraction), read back exactly by :class:`TarReader`."""
    seconds, rest = divmod(ns, NS)
    if rest == 0:
        return str(seconds)
    if seconds < 0:  # pax writes a negative time as -S.F: the fraction counts away from zero
        seconds, rest = seconds + 1, NS - rest
        return f"-{abs(seconds)}.{rest:09d}".rstrip("0")
    return f"{seconds}.{rest:09d}".rstrip("0")


def _pax_records(body: bytes, at: int) -> dict[str, str]:
    """Parse pax extended header records: ``"<length> <keyword>=<value>\\n"``."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(body):
        if body[pos:].strip(b"\0") == b"":
            break
        space = body.find(b" ", pos)
        length_text = body[pos:space]
        if space < 0 or not length_text.isdigit():
            raise TarFormatError(f"a malformed pax header at byte {at}")
        length = int(length_text)
        record = body[space + 1 : pos + length]
        if length <= 0 or pos + length > len(body) or not record.endswith(b"\n"):
            raise TarFormatError(f"a malformed pax header at byte {at}")
        key, sep, value = record[:-1].partition(b"=")
        if not sep:
            raise TarFormatError(f"a malformed pax header at byte {at}")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def member_header(
    name: str,
    *,
    kind: MemberKind = "file",
    size: int = 0,
    mode: int | None = None,
    mtime: float = 0.0,
    pax: dict[str, str] | None = None,
    mtime_ns: int | None = None,
) -> bytes:
    """The header block(s) of one member (a pax extended header first when the name or *pax*
    needs one); its data follows, then :func:`padding` zero bytes. *mtime_ns* (instead of
    *mtime*) is written exactly, as a pax ``mtime`` record when it is not whole seconds."""
    if mode is None:
        mode = 0o755 if kind == "dir" else 0o644
    if mtime_ns is not None:
        mtime = mtime_ns // NS
        if mtime_ns % NS:
            pax = {**(pax or {}), "mtime": pax_time(mtime_ns)}
    common = write_header(
        name, directory=kind == "dir", size=0 if kind == "dir" else size, mode=mode,
        mtime=int(mtime), pax=pax,
    )  # fmt: skip
    if common is not None:
        return common
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if kind == "dir" else tarfile.REGTYPE
    info.size = 0 if kind == "dir" else size
    info.mode = mode
    info.mtime = int(mtime)
    if pax:
        info.pax_headers = dict(pax)
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def file_member(
    name: str, data: bytes, *, mode: int | None = None, mtime: float = 0.0,
    pax: dict[str, str] | None = None, mtime_ns: int | None = None,
) -> bytes:  # fmt: skip
    """A whole regular-file member: header, data and padding (*mtime_ns*: see
    :func:`member_header`)."""
    header = member_header(name, size=len(data), mode=mode, mtime=mtime, pax=pax,
                           mtime_ns=mtime_ns)  # fmt: skip
    return b"".join((header, data, bytes(padding(len(data)))))
