"""Every Python example in the client README runs as written against a real server.

Each ```python block is saved as a program and run in a fresh directory by a fresh user who
has done `meshfs login` (as a reader of the README would have); it must exit 0 with no
traceback. A block that needs something first creates it itself.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from meshfs_client_testkit import Account

pytestmark = pytest.mark.live

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _examples() -> list[str]:
    return _BLOCK.findall(README.read_text())


def _title(code: str) -> str:
    return next(line for line in code.splitlines() if line and not line.startswith("import"))


def test_the_readme_has_examples_and_none_calls_an_undefined_helper() -> None:
    examples = _examples()
    assert len(examples) >= 5
    for code in examples:
        compile(code, "README example", "exec")  # a complete program, not a fragment
        assert "save(" not in code


@pytest.mark.parametrize("index", range(len(_examples())))
def test_readme_example_runs(index: int, account: Account, tmp_path: Path) -> None:
    code = _examples()[index]
    program = tmp_path / f"example_{index}.py"
    program.write_text(code)
    done = subprocess.run(
        [sys.executable, str(program)],
        cwd=tmp_path,
        env=account.env(),
        capture_output=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, f"{_title(code)}\n{done.stderr.decode()}"
