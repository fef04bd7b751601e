"""The real `meshfs` CLI, as a subprocess, against a REAL meshfs-server process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from meshfs_client_testkit import Account, LiveServer

pytestmark = pytest.mark.live

MESHFS = str(Path(sys.executable).with_name("meshfs"))


def meshfs(
    account: Account | None, *args: str, env: dict[str, str] | None = None, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    environment = env if env is not None else account.env() if account else dict(os.environ)
    return subprocess.run(
        [MESHFS, *args], env=environment, input=stdin, capture_output=True, timeout=120, check=False
    )


def ok(done: subprocess.CompletedProcess[bytes]) -> str:
    assert done.returncode == 0, done.stderr.decode()
    assert b"Traceback" not in done.stderr
    return done.stdout.decode()


def as_json(done: subprocess.CompletedProcess[bytes]) -> Any:
    return json.loads(ok(done))


def test_file_commands_end_to_end(account: Account, tmp_path: Path) -> None:
    local = tmp_path / "hello.txt"
    local.write_text("hello world\n")
    ok(meshfs(account, "mkdir", "-p", "/a/b"))
    ok(meshfs(account, "put", str(local), "/a/"))
    assert ok(meshfs(account, "cat", "/a/hello.txt")) == "hello world\n"
    assert ok(meshfs(account, "ls", "/a")).split() == ["b/", "hello.txt"]
    listing = as_json(meshfs(account, "--json", "ls", "-R", "/a"))
    assert {e["path"] for e in listing} == {"/a/b", "/a/hello.txt"}
    assert "hello.txt" in ok(meshfs(account, "ls", "-l", "/a"))
    meta = as_json(meshfs(account, "--json", "stat", "/a/hello.txt"))
    assert meta["size"] == 12

    ok(meshfs(account, "cp", "/a/hello.txt", "/a/b"))
    ok(meshfs(account, "mv", "/a/hello.txt", "/a/renamed.txt"))
    out = tmp_path / "out"
    out.mkdir()
    ok(meshfs(account, "get", "/a/renamed.txt", str(out)))
    assert (out / "renamed.txt").read_text() == "hello world\n"
    assert ok(meshfs(account, "get", "/a/b/hello.txt", "-")) == "hello world\n"

    ok(meshfs(account, "put", "-", "/a/stdin.txt", stdin=b"from stdin"))
    assert ok(meshfs(account, "cat", "/a/stdin.txt")) == "from stdin"

    ok(meshfs(account, "rm", "-r", "/a/b"))
    assert meshfs(account, "stat", "/a/b").returncode == 4


def test_tree_put_and_get(account: Account, tmp_path: Path) -> None:
    src = tmp_path / "tree"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "one.txt").write_text("1")
    (src / "sub" / "two.txt").write_text("22")
    (src / "sub" / "deeper" / "big.bin").write_bytes(os.urandom(5 * 1024 * 1024))
    ok(meshfs(account, "put", "-r", str(src), "/up"))
    assert sorted(e["path"] for e in as_json(meshfs(account, "--json", "ls", "-R", "/up"))) == [
        "/up/one.txt",
        "/up/sub",
        "/up/sub/deeper",
        "/up/sub/deeper/big.bin",
        "/up/sub/two.txt",
    ]
    dst = tmp_path / "back"
    ok(meshfs(account, "get", "-r", "/up", str(dst)))
    for path in src.rglob("*"):
        if path.is_file():
            assert (dst / path.relative_to(src)).read_bytes() == path.read_bytes()


def test_versions_restore_and_exit_codes(account: Account, tmp_path: Path) -> None:
    ok(meshfs(account, "put", "-", "/v.txt", stdin=b"one"))
    ok(meshfs(account, "put", "-", "/v.txt", stdin=b"two"))
    versions = as_json(meshfs(account, "--json", "versions", "/v.txt"))
    assert len(versions) == 2
    oldest = versions[-1]["version_id"]
    ok(meshfs(account, "restore", "/v.txt", oldest))
    assert ok(meshfs(account, "cat", "/v.txt")) == "one"
    assert ok(meshfs(account, "cat", "--version", versions[0]["version_id"], "/v.txt")) == "two"

    missing = meshfs(account, "stat", "/nope")
    assert missing.returncode == 4
    assert missing.stderr.decode().count("\n") == 1
    ok(meshfs(account, "mkdir", "/d"))
    assert meshfs(account, "mkdir", "/d").returncode == 5
    assert meshfs(account, "put", "-n", "-", "/v.txt", stdin=b"x").returncode == 5
    report = json.loads(meshfs(account, "--json", "cat", "/nope").stderr)
    assert report["error"] == "not_found"
    assert report["exit_code"] == 4


def test_not_logged_in_exits_3(live_server: LiveServer, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHFS_")}
    env["MESHFS_SERVER"] = live_server.url
    env["MESHFS_CONFIG_DIR"] = str(tmp_path / "empty")
    done = meshfs(None, "ls", "/", env=env)
    assert done.returncode == 3
    assert b"meshfs login" in done.stderr


def test_token_env_var_for_agents(account: Account) -> None:
    from meshfs_client._credentials import CredentialStore

    stored = CredentialStore(account.settings.credentials_path).load(account.server.url)
    assert stored is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHFS_")}
    env["MESHFS_SERVER"] = account.server.url
    env["MESHFS_TOKEN"] = stored.access_token
    env["MESHFS_CONFIG_DIR"] = "/nonexistent/meshfs-config"
    assert account.user in ok(meshfs(None, "whoami", env=env))
    env["MESHFS_TOKEN"] = "not-a-token"
    assert meshfs(None, "whoami", env=env).returncode == 3


def test_login_whoami_logout_through_the_cli(live_server: LiveServer, tmp_path: Path) -> None:
    user = f"cli{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHFS_")}
    env["MESHFS_CONFIG_DIR"] = str(tmp_path / "config")
    server = ["--server", live_server.url]
    login = subprocess.Popen(
        [MESHFS, *server, "--json", "login", "--no-browser"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert login.stdout is not None
        prompt = json.loads(login.stdout.readline())
        live_server.approve(prompt["user_code"], user, "cli-tenant")
        out, err = login.communicate(timeout=60)
    finally:
        if login.poll() is None:
            login.kill()
            login.wait()
    assert login.returncode == 0, err.decode()
    assert json.loads(out)["username"] == user
    # The login became the default server: no --server needed any more.
    assert user in ok(meshfs(None, "whoami", env=env))
    ok(meshfs(None, "logout", env=env))
    assert meshfs(None, "whoami", env=env).returncode == 3
