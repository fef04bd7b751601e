"""The package README renders the error table; it must say what the code does."""

from __future__ import annotations

import errno
import re
from pathlib import Path

import pytest

from meshfs_common.errors import ERROR_TABLE

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_error_table_matches_error_table() -> None:
    if not README.exists():  # pragma: no cover - tests run from a checkout
        pytest.skip("README.md not next to the tests")
    rows = re.findall(
        r"^\| `(\w+)` \| (\d+) \| `(E\w+)` \| (yes|no) \| `\w+` \|$", README.read_text(), re.M
    )
    documented = {
        code: (int(status), getattr(errno, name), flag == "yes")
        for code, status, name, flag in rows
    }
    actual = {code: (s.status, s.errno, s.retryable) for code, s in ERROR_TABLE.items()}
    assert documented == actual
