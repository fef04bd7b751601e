"""Path rules: what a MeshFS path is (meshfs_common.paths)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from meshfs_common import paths
from meshfs_common.errors import BadRequestError, InvalidPathError, NameTooLongError

CONTROL = [chr(c) for c in range(0x20)] + ["\x7f"]

# Names that are always valid: letters (including ones with NFC/NFD forms), digits, punctuation.
valid_name = (
    st.lists(
        st.sampled_from([*"abcXYZ019-_ .~", "\u00e9", "e\u0301", "\u00df", "\u65e5", "\U0001f600"]),
        min_size=1,
        max_size=12,
    )
    .map("".join)
    .filter(lambda n: unicodedata.normalize("NFC", n) not in (".", ".."))
)

canonical_names = st.lists(valid_name, max_size=6).map(
    lambda names: tuple(unicodedata.normalize("NFC", n) for n in names)
)

# Raw input: pieces likely to hit every rule, joined by one or more slashes.
piece = st.one_of(
    valid_name,
    st.sampled_from(["", ".", "..", "...", "a\x00b", "\x1f", "x\x7f", "\ud800", "a" * 256]),
    st.text(max_size=6),
)
raw_path = st.tuples(
    st.sampled_from(["", "/", "//"]),
    st.lists(st.tuples(piece, st.sampled_from(["/", "//", "///"])), max_size=6),
).map(lambda t: t[0] + "".join(p + sep for p, sep in t[1]).rstrip("/") + ("/" if t[1] else ""))
any_text = st.one_of(raw_path, st.text(max_size=30))


def check_canonical(path: str) -> None:
    assert path.startswith("/")
    assert "//" not in path
    assert path == "/" or not path.endswith("/")
    names = path.split("/")[1:] if path != "/" else []
    for name in names:
        assert name not in ("", ".", "..")
        assert len(name.encode("utf-8")) <= paths.MAX_NAME_BYTES
    assert not any(c in path for c in CONTROL)
    assert unicodedata.is_normalized("NFC", path)
    assert len(path.encode("utf-8")) <= paths.MAX_PATH_BYTES


@given(any_text)
def test_normalise_yields_canonical_paths_or_refuses(text: str) -> None:
    try:
        result = paths.normalise(text)
    except InvalidPathError:
        return
    check_canonical(result)


@given(any_text)
def test_normalise_is_idempotent(text: str) -> None:
    try:
        once = paths.normalise(text)
    except InvalidPathError:
        return
    assert paths.normalise(once) == once


@given(canonical_names, st.sampled_from(["", "/", "//"]), st.sampled_from(["", "/", "///"]))
def test_valid_names_are_always_accepted(names: tuple[str, ...], lead: str, trail: str) -> None:
    text = lead + "//".join(names) + trail if names else lead + trail
    assume(text)
    assert paths.normalise(text) == "/" + "/".join(names)
    assert paths.split(text) == names


@given(canonical_names, st.sampled_from([".", ".."]), canonical_names)
def test_dot_and_dotdot_are_refused_never_resolved(
    before: tuple[str, ...], dots: str, after: tuple[str, ...]
) -> None:
    with pytest.raises(InvalidPathError):
        paths.normalise("/".join(("", *before, dots, *after)))


@given(canonical_names, st.sampled_from(CONTROL), valid_name)
def test_control_characters_are_refused(names: tuple[str, ...], ctrl: str, name: str) -> None:
    bad = name[: len(name) // 2] + ctrl + name[len(name) // 2 :]
    with pytest.raises(InvalidPathError):
        paths.normalise("/".join(("", *names, bad)))


@given(canonical_names)
def test_nfd_and_nfc_spellings_are_one_path(names: tuple[str, ...]) -> None:
    path = "/" + "/".join(names)
    assert paths.normalise(unicodedata.normalize("NFD", path)) == paths.normalise(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/", "/"),
        ("///", "/"),
        ("a", "/a"),
        ("a/b", "/a/b"),
        ("/a//b/", "/a/b"),
        ("//a///b//c//", "/a/b/c"),
        ("/ a /b ", "/ a /b "),  # spaces are ordinary characters
        ("/...", "/..."),  # only exactly '.' and '..' are special
        ("/.hidden/x.", "/.hidden/x."),
        ("/Caf\u0065\u0301", "/Caf\u00e9"),  # NFD -> NFC
        ("/A/a", "/A/a"),  # case-sensitive
        ("/\u00ad\u0080", "/\u00ad\u0080"),  # C1 controls are not in the refused set
    ],
)
def test_normalise_examples(text: str, expected: str) -> None:
    assert paths.normalise(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "/a/./b", "/a/../b", "..", ".", "/a/\x00", "/a\nb", "/tab\there", "/del\x7f", "/\ud800"],
)
def test_normalise_refuses(text: str) -> None:
    with pytest.raises(InvalidPathError) as info:
        paths.normalise(text)
    # Callers rely on it being a 400 bad request, not an internal error.
    assert isinstance(info.value, BadRequestError)
    assert info.value.status == 400
    assert info.value.code == "invalid_path"


def test_non_string_path_is_refused() -> None:
    with pytest.raises(InvalidPathError):
        paths.split(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("a" * 255, True),
        ("a" * 256, False),
        ("\u00e9" * 127, True),  # 254 bytes
        ("\u00e9" * 128, False),  # 256 bytes
        ("e\u0301" * 127, True),  # 381 bytes as typed, 254 once NFC
        ("e\u0301" * 128, False),
        ("\U0001f600" * 63, True),  # 252 bytes
        ("\U0001f600" * 64, False),  # 256 bytes
    ],
)
def test_name_byte_limit_counts_utf8_after_nfc(name: str, ok: bool) -> None:
    if ok:
        assert paths.normalise("/d/" + name) == "/d/" + unicodedata.normalize("NFC", name)
    else:
        with pytest.raises(NameTooLongError, match="255 bytes") as refused:
            paths.normalise("/d/" + name)
        assert refused.value.code == "name_too_long"  # ENAMETOOLONG in the mount


def test_path_byte_limit_is_4096() -> None:
    longest = ("/" + "a" * 255) * 16
    assert len(longest.encode()) == 4096
    assert paths.normalise(longest) == longest
    with pytest.raises(NameTooLongError, match="4096 bytes"):
        paths.normalise(longest + "/b")
    # Repeated slashes do not count: the limit applies to the canonical form.
    assert paths.normalise(longest.replace("/", "//")) == longest


def test_validate_name() -> None:
    assert paths.validate_name("e\u0301") == "\u00e9"
    for bad in ["", "a/b", ".", "..", "a\x00"]:
        with pytest.raises(InvalidPathError):
            paths.validate_name(bad)


@given(canonical_names.filter(bool))
def test_parent_and_basename_split_a_path(names: tuple[str, ...]) -> None:
    path = paths.join(names)
    assert paths.basename(path) == names[-1]
    assert paths.parent(path) == paths.join(names[:-1])


def test_root_parent_and_basename() -> None:
    assert paths.parent("/") == "/"
    assert paths.basename("/") == ""
    assert paths.parent("/a") == "/"


@given(canonical_names, canonical_names)
def test_a_path_is_within_each_of_its_prefixes(
    head: tuple[str, ...], tail: tuple[str, ...]
) -> None:
    ancestor = paths.join(head)
    path = paths.join(head + tail)
    assert paths.is_within(path, ancestor)
    assert paths.is_within(path, "/")
    assert paths.relative_to(path, ancestor) == paths.join(tail)


@given(canonical_names, valid_name, valid_name)
def test_sibling_with_common_prefix_is_not_within(
    head: tuple[str, ...], name: str, suffix: str
) -> None:
    name = unicodedata.normalize("NFC", name)
    longer = unicodedata.normalize("NFC", name + suffix)
    assume(longer != name)
    a = paths.join((*head, name))
    b = paths.join((*head, longer))
    assert not paths.is_within(b, a)
    with pytest.raises(InvalidPathError):
        paths.relative_to(b, a)


@given(canonical_names, canonical_names, canonical_names)
def test_rebase_moves_a_subtree_and_back(
    old: tuple[str, ...], rest: tuple[str, ...], new: tuple[str, ...]
) -> None:
    old_path, new_path = paths.join(old), paths.join(new)
    path = paths.join(old + rest)
    moved = paths.rebase(path, old_path, new_path)
    assert moved == paths.join(new + rest)
    check_canonical(moved)
    assert paths.is_within(moved, new_path)
    assert paths.rebase(moved, new_path, old_path) == path


@pytest.mark.parametrize(
    ("path", "old", "new", "expected"),
    [
        ("/a/b/c", "/a", "/x", "/x/b/c"),
        ("/a", "/a", "/x/y", "/x/y"),
        ("/a/b", "/a", "/", "/b"),
        ("/a/b", "/", "/z", "/z/a/b"),
        ("/", "/", "/", "/"),
    ],
)
def test_rebase_examples(path: str, old: str, new: str, expected: str) -> None:
    assert paths.rebase(path, old, new) == expected


def test_rebase_outside_old_is_refused() -> None:
    with pytest.raises(InvalidPathError):
        paths.rebase("/ab/c", "/a", "/x")
