"""The tar stream reader reads what users' tools write (GNU, pax, ustar; any block split),
and what it writes, tar reads back."""

from __future__ import annotations

import asyncio
import io
import math
import tarfile
from collections.abc import AsyncIterator
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshfs_common.tarstream import (
    END,
    NS,
    TarFormatError,
    TarMember,
    TarReader,
    file_member,
    member_header,
)

NAMES = st.lists(
    st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"),
            min_size=1, max_size=120),
    min_size=1, max_size=3,
).map("/".join)  # fmt: skip
MEMBERS = st.dictionaries(NAMES, st.binary(max_size=2000), min_size=1, max_size=8)


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def read_all(data: bytes, piece: int) -> dict[str, tuple[str, bytes | None]]:
    async def run() -> dict[str, tuple[str, bytes | None]]:
        reader = TarReader(_pieces(data, piece))
        found: dict[str, tuple[str, bytes | None]] = {}
        async for member in reader:
            body = await reader.read_data() if member.kind == "file" else None
            found[member.name] = (member.kind, body)
        return found

    return asyncio.run(run())


@settings(max_examples=60, deadline=None)
@given(
    members=MEMBERS,
    fmt=st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]),
    piece=st.integers(1, 5000),
)
def test_reads_what_tarfile_writes(members: dict[str, bytes], fmt: int, piece: int) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        directory = tarfile.TarInfo("a-directory")
        directory.type = tarfile.DIRTYPE
        tar.addfile(directory)
    found = read_all(out.getvalue(), piece)
    assert found.pop("a-directory") == ("dir", None)
    assert found == {name: ("file", data) for name, data in members.items()}


@settings(max_examples=60, deadline=None)
@given(members=MEMBERS, tags=st.dictionaries(st.sampled_from(["MESHFS.a", "MESHFS.b"]),
                                             st.text(max_size=80)))  # fmt: skip
def test_tar_reads_what_it_writes(members: dict[str, bytes], tags: dict[str, str]) -> None:
    archive = b"".join(file_member(n, d, pax=tags) for n, d in members.items())
    archive += member_header("dir", kind="dir") + END
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        got = {m.name: m for m in tar.getmembers()}
        assert got.pop("dir").isdir()
        for name, data in members.items():
            handle = tar.extractfile(got[name])
            assert handle is not None
            assert handle.read() == data
            assert {k: got[name].pax_headers[k] for k in tags} == tags


def test_a_link_is_a_member_of_another_kind_and_junk_is_refused() -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "elsewhere"
        tar.addfile(link)
    assert read_all(out.getvalue(), 512) == {"link": ("other", None)}
    with pytest.raises(TarFormatError, match="not a tar header"):
        read_all(b"x" * 1024, 100)
    with pytest.raises(TarFormatError, match="ends early"):
        read_all(file_member("f", b"y" * 3000)[:1500], 100)


ASCII_NAMES = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1,
                      max_size=130)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    name=ASCII_NAMES, directory=st.booleans(), size=st.integers(0, 8**11 + 5),
    mode=st.integers(0, 0o7777), mtime=st.integers(-5, 8**11 + 5),
    tags=st.dictionaries(st.sampled_from(["MESHFS.a", "path", "comment"]), st.text(max_size=40)),
)  # fmt: skip
def test_headers_are_written_and_read_as_tarfile_does(
    name: str, directory: bool, size: int, mode: int, mtime: int, tags: dict[str, str]
) -> None:
    from meshfs_common._tarheader import read_header, write_header

    if directory:
        size = 0
    ours = member_header(name, kind="dir" if directory else "file", size=size, mode=mode,
                         mtime=mtime, pax=tags)  # fmt: skip
    # tarfile reads every member we write as we meant it (the header alone: it reads no data
    # before it is asked for the next member)...
    with tarfile.open(fileobj=io.BytesIO(ours), mode="r:") as tar:
        got = tar.firstmember
    assert got is not None
    assert got.name == tags.get("path", name.rstrip("/") if directory else name)
    assert (got.isdir(), got.size, got.mode, got.mtime) == (directory, size, mode, mtime)
    assert {k: v for k, v in got.pax_headers.items() if k in tags} == tags
    # ...and every header tarfile writes we read as tarfile reads it (or leave it to tarfile).
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
        info.size, info.mode, info.mtime = size, mode, mtime
        try:
            block = info.tobuf(fmt, "utf-8", "surrogateescape")[-512:]
        except ValueError:
            continue  # a name or number this format cannot hold
        fast = read_header(block)
        if fast is not None:
            slow = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
            assert fast == (slow.name, slow.type, slow.size, slow.mode, slow.mtime)
    # A header of the common kind is written without tarfile.
    if name.isascii() and len(name) + (directory and not name.endswith("/")) <= 100:
        fits = 0 <= size < 8**11 and 0 <= mtime < 8**11
        written = write_header(
            name, directory=directory, size=size, mode=mode, mtime=mtime, pax=tags
        )
        assert (written is not None) == fits


def read_members(data: bytes) -> list[TarMember]:
    async def run() -> list[TarMember]:
        return [member async for member in TarReader(_pieces(data, 512))]

    return asyncio.run(run())


@settings(max_examples=200, deadline=None)
@given(
    mtime_ns=st.one_of(st.integers(-(2**62), 2**62),
                       st.integers(0, 8**11 - 1).map(lambda s: s * NS)),
    mode=st.integers(0, 0o7777),
)  # fmt: skip
def test_an_exact_mtime_is_written_as_pax_and_read_back_to_the_nanosecond(
    mtime_ns: int, mode: int
) -> None:
    archive = file_member("f", b"data", mode=mode, mtime_ns=mtime_ns) + END
    [member] = read_members(archive)
    assert (member.mtime_ns, member.mode) == (mtime_ns, mode)
    # Standard pax: tarfile (as GNU tar and bsdtar) reads the same time, to its float's grain.
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        got = tar.getmember("f")
    assert got.mode == mode
    assert got.mtime == pytest.approx(mtime_ns / NS, abs=1e-6, rel=1e-15)


@settings(max_examples=100, deadline=None)
@given(seconds=st.integers(-(2**40), 2**40), digits=st.text("0123456789", max_size=12))
def test_a_pax_time_tarfile_writes_is_read_exactly(seconds: int, digits: str) -> None:
    text = f"{seconds}.{digits}" if digits else str(seconds)
    info = tarfile.TarInfo("f")
    info.pax_headers = {"mtime": text}
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(b""))
    [member] = read_members(out.getvalue())
    exact = Fraction(text) * NS  # the record's value, floored to a nanosecond
    assert member.mtime_ns == math.floor(exact)
