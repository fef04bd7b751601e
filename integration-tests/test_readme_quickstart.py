"""The README's quickstart, run as written: its commands in its order, from the clone, with a
fresh HOME; only the port (a free one instead of 8787) and the login code (the one `login`
printed instead of the example) are put in."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import httpx
from conftest import ROOT, free_port, wait_until

EXAMPLE_CODE = "KJQT-WZMB"
_CODE = re.compile(r"\b([BCDFGHJKMNPQRSTVWXZ]{4}-[BCDFGHJKMNPQRSTVWXZ]{4})\b")


def quickstart_blocks() -> list[str]:
    """The fenced code blocks of the README's Quickstart section, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```\n(.*?)^```", section, flags=re.DOTALL | re.MULTILINE)


def test_the_quickstart_runs_as_written(tmp_path: Path) -> None:
    commands, terminal_two, approve, terminal_two_after = quickstart_blocks()
    assert commands.splitlines()[0].split("#")[0].strip() == "scripts/serve.sh"
    assert EXAMPLE_CODE in approve

    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    # A new user's environment: nothing of ours configured, a HOME of their own.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESHFS_", "XDG_"))}
    env["HOME"] = str(home)

    def ours(block: str) -> str:
        return block.replace("127.0.0.1:8787", f"127.0.0.1:{port}")

    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        ["bash", "-c", "scripts/serve.sh"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env=dict(env, MESHFS_BIND_ADDR=f"127.0.0.1:{port}"), start_new_session=True,
    )  # fmt: skip
    log.close()
    try:
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            if server.poll() is not None:
                raise AssertionError((tmp_path / "serve.log").read_text())
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, 180, "the quickstart server")

        # The second terminal: one shell for both of its blocks, waiting in `login` until the
        # third terminal approves the code it printed.
        out_path = tmp_path / "terminal-two.out"
        with out_path.open("w") as out_file:
            shell = subprocess.Popen(
                ["bash", "-euo", "pipefail", "-c", ours(terminal_two + terminal_two_after)],
                cwd=ROOT, env=env, stdout=out_file, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
        assert shell.stderr is not None
        printed: list[str] = []
        approved: list[subprocess.CompletedProcess[str]] = []

        def third_terminal() -> None:
            assert shell.stderr is not None
            for line in shell.stderr:
                printed.append(line)
                found = _CODE.search(line)
                if found and not approved:
                    approved.append(subprocess.run(
                        ["bash", "-euo", "pipefail", "-c",
                         ours(approve).replace(EXAMPLE_CODE, found.group(1))],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                    ))  # fmt: skip

        reader = threading.Thread(target=third_terminal, daemon=True)
        reader.start()
        shell.wait(timeout=180)
        reader.join(10)
        out = out_path.read_text()
        assert approved, "".join(printed)
        assert approved[0].returncode == 0, approved[0].stderr
        assert "approved" in approved[0].stdout
        assert shell.returncode == 0, "".join(printed)
        assert "notes.md" in out
        assert (home / "meshfs-demo" / "notes.md").read_text() == "hello from MeshFS\n"
        assert not (ROOT / "notes.md").exists()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
