"""The text work behind the MCP tools (offline), and that the SDK stays out of plain imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from meshfs_client.mcp import _text
from meshfs_client.mcp._schemas import ChangesArgs, ReadArgs, object_schema
from meshfs_client.mcp._server import file_uri, uri_path
from meshfs_common.errors import BadRequestError


def test_line_windows_are_one_based_inclusive_and_cut_at_a_line() -> None:
    text = "a\nb\nc\nd\n"
    window = _text.line_window(text, 2, 3, max_chars=100)
    assert (window.text, window.start, window.end, window.total) == ("b\nc\n", 2, 3, 4)
    assert _text.line_window(text, 3, None, max_chars=100).text == "c\nd\n"
    assert _text.line_window(text, 1, 99, max_chars=100).end == 4
    cut = _text.line_window(text, 1, None, max_chars=5)
    assert (cut.text, cut.end, cut.truncated) == ("a\nb\n", 2, True)
    # A single line longer than the cap still comes back whole: a read always makes progress.
    assert _text.line_window("x" * 50 + "\n", 1, None, max_chars=5).end == 1


def test_exact_replacement_must_be_unique() -> None:
    assert _text.replace_exact("a b a", "b", "c", replace_all=False, path="/f") == ("a c a", 1)
    with pytest.raises(_text.EditError, match=r"occurs 2 times \(lines 1, 3\)"):
        _text.replace_exact("x\ny\nx\n", "x", "z", replace_all=False, path="/f")
    assert _text.replace_exact("x\ny\nx\n", "x", "z", replace_all=True, path="/f") == (
        "z\ny\nz\n",
        2,
    )
    with pytest.raises(_text.EditError, match="not found"):
        _text.replace_exact("abc", "B", "x", replace_all=False, path="/f")
    with pytest.raises(_text.EditError, match="empty"):
        _text.replace_exact("abc", "", "x", replace_all=False, path="/f")


def test_unified_diff_marks_a_missing_final_newline() -> None:
    diff = _text.unified_diff("a\nb", "a\nc", "/d/f.txt")
    assert diff.startswith("--- a/d/f.txt\n+++ b/d/f.txt\n")
    assert "-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n" in diff


def test_binary_sniffing_and_media_types() -> None:
    assert _text.decode_text("héllo".encode()) == "héllo"
    assert _text.decode_text(b"a\x00b") is None
    assert _text.decode_text(b"\xff\xfe") is None
    # A multi-byte character cut by the end of the sample is still text.
    assert not _text.looks_binary("é".encode()[:1])
    assert _text.looks_binary(b"\x00" * 10)
    assert _text.mime_type("/a/photo.png", binary=True) == "image/png"
    assert _text.mime_type("/a/NOTES", binary=False) == "text/plain"
    assert _text.mime_type("/a/blob", binary=True) == "application/octet-stream"


def test_grep_and_globs() -> None:
    literal = _text.text_matcher("a.b", regex=False, ignore_case=False)
    assert _text.grep_lines("axb\na.b\nA.B\n", literal, 10) == [(2, "a.b")]
    folded = _text.text_matcher("a.b", regex=True, ignore_case=True)
    assert [n for n, _ in _text.grep_lines("axb\na.b\nA.B\n", folded, 2)] == [1, 2]
    with pytest.raises(ValueError, match="invalid regular expression"):
        _text.text_matcher("(", regex=True, ignore_case=False)
    assert _text.name_matcher("*.PY", ignore_case=True).match("app.py")
    assert not _text.name_matcher("*.py", ignore_case=False).match("app.pyc")


def test_resource_uris_round_trip() -> None:
    assert file_uri("/proj/a b.md") == "meshfs:///proj/a%20b.md"
    assert uri_path("meshfs:///proj/a%20b.md") == "/proj/a b.md"
    assert uri_path("meshfs://proj/x") == "/proj/x"
    with pytest.raises(BadRequestError, match="meshfs:///path"):
        uri_path("file:///etc/passwd")


def test_schemas_are_objects_with_their_constraints() -> None:
    read = object_schema(ReadArgs)
    assert read["type"] == "object"
    assert read["required"] == ["path"]
    assert read["properties"]["start_line"]["minimum"] == 1
    assert read["additionalProperties"] is False
    changes = object_schema(ChangesArgs)
    assert changes["properties"]["since_time"]["anyOf"][0]["format"] == "date-time"


def test_the_sdk_is_imported_only_by_the_mcp_module() -> None:
    probe = (
        "import sys, meshfs_client, meshfs_client.cli; "
        "print(sorted(m for m in ('mcp', 'mcp_types', 'pydantic') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
