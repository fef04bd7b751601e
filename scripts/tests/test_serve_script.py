"""scripts/serve.sh installs what serving and the quickstart need, and nothing for development."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_serve_installs_only_what_serving_needs(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    env = dict(os.environ, UV_PROJECT_ENVIRONMENT=str(venv))
    result = subprocess.run(
        [str(ROOT / "scripts" / "serve.sh"), "--help"],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Serve the HTTP API" in result.stdout
    # Where the commands are, and the line that puts them on PATH.
    assert f'export PATH="{venv}/bin:$PATH"' in result.stderr
    assert (venv / "bin" / "meshfs-server").exists()
    assert (venv / "bin" / "meshfs").exists()
    [site] = (venv / "lib").glob("python3.*/site-packages")
    installed = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
    assert {"meshfs_server", "meshfs_client", "meshfs_common"} <= installed
    for tool in ("pytest", "mypy", "selenium", "ruff", "hypothesis", "nox"):
        assert tool not in installed, tool
