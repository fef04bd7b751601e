"""The `meshfs` CLI against a REAL meshfs-server: cp -r, quota, audit, and every command's bad
input (missing paths, wrong types, ended sessions, unreachable server) with its one-line
message and documented exit code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from meshfs_client_testkit import Account, free_port

from meshfs_client._credentials import CredentialStore

pytestmark = pytest.mark.live

MESHFS = str(Path(sys.executable).with_name("meshfs"))


def meshfs(
    env: dict[str, str], *args: str, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [MESHFS, *args], env=env, input=stdin, capture_output=True, timeout=120, check=False
    )


def ok(done: subprocess.CompletedProcess[bytes]) -> str:
    assert done.returncode == 0, done.stderr.decode()
    assert b"Traceback" not in done.stderr
    return done.stdout.decode()


def fails(done: subprocess.CompletedProcess[bytes], code: int, snippet: str) -> None:
    err = done.stderr.decode()
    assert done.returncode == code, (done.returncode, err)
    assert "Traceback" not in err
    assert err.count("\n") == 1, err  # one line
    assert snippet in err, err


def test_cp_recursive_copies_a_tree(account: Account, tmp_path: Path) -> None:
    env = account.env()
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "b.bin").write_bytes(os.urandom(5 * 1024 * 1024))
    (src / "empty").mkdir()
    ok(meshfs(env, "put", "-r", str(src), "/tree"))

    ok(meshfs(env, "cp", "-r", "/tree", "/copy"))
    listing = json.loads(ok(meshfs(env, "--json", "ls", "-R", "/copy")))
    assert sorted(e["path"] for e in listing) == [
        "/copy/a.txt",
        "/copy/empty",
        "/copy/sub",
        "/copy/sub/b.bin",
    ]
    back = tmp_path / "back"
    ok(meshfs(env, "get", "-r", "/copy", str(back)))
    assert (back / "sub" / "b.bin").read_bytes() == (src / "sub" / "b.bin").read_bytes()
    # Into an existing directory: like cp -r, the tree lands inside it.
    ok(meshfs(env, "mkdir", "/into"))
    copied = json.loads(ok(meshfs(env, "--json", "cp", "-r", "/tree", "/into")))
    assert sorted(r["entry"]["path"] for r in copied) == [
        "/into/tree/a.txt",
        "/into/tree/sub/b.bin",
    ]
    # -n refuses to replace; a copy is a new file with its own history.
    fails(meshfs(env, "cp", "-n", "/tree/a.txt", "/copy/a.txt"), 5, "meshfs: error:")
    versions = json.loads(ok(meshfs(env, "--json", "versions", "/copy/a.txt")))
    assert len(versions) == 1


def test_quota_and_audit(account: Account) -> None:
    env = account.env()
    ok(meshfs(env, "put", "-", "/q.bin", stdin=b"x" * 1000))
    info = json.loads(ok(meshfs(env, "--json", "quota")))
    assert info["storage"]["used"] >= 1000
    assert info["plan"]
    assert json.loads(ok(meshfs(env, "--json", "plan"))) == info  # the same command
    text = ok(meshfs(env, "quota"))
    assert "plan:" in text
    assert "storage:" in text
    # A token limited to a folder sees the quota, not the tenant's usage.
    token = ok(meshfs(env, "token", "create", "--name", "q", "--prefix", "/q")).strip()
    agent = {**env, "MESHFS_TOKEN": token}
    assert "used" not in json.loads(ok(meshfs(agent, "--json", "quota")))["storage"]
    assert "usage not shown to this token" in ok(meshfs(agent, "quota"))
    rows = json.loads(ok(meshfs(env, "--json", "audit", "-n", "20")))
    assert isinstance(rows, list)
    assert rows  # at least the device login that created this account
    assert all("action" in row for row in rows)
    ok(meshfs(env, "audit"))
    assert meshfs(env, "audit", "-n", "0").returncode == 2  # click's usage message


def test_bad_input_per_command(account: Account, tmp_path: Path) -> None:
    env = account.env()
    ok(meshfs(env, "mkdir", "-p", "/d/sub"))
    ok(meshfs(env, "put", "-", "/d/file.txt", stdin=b"content"))
    local = tmp_path / "local.txt"
    local.write_text("x")
    cases: list[tuple[list[str], int, str]] = [
        (["ls", "/missing"], 4, "/missing"),
        (["stat", "/missing"], 4, "/missing"),
        (["cat", "/missing"], 4, "/missing"),
        (["cat", "/d"], 5, "directory"),
        (["get", "/missing", str(tmp_path)], 4, "/missing"),
        (["get", "/d", str(tmp_path)], 5, "use -r"),
        (["put", str(tmp_path / "nope.txt"), "/x"], 4, "nope.txt"),
        (["put", str(local), "/d/file.txt/below"], 5, "meshfs: error:"),
        (["mkdir", "/d/file.txt"], 5, "meshfs: error:"),
        (["mkdir", "/no/such/parent"], 4, "meshfs: error:"),
        (["mv", "/missing", "/x"], 4, "/missing"),
        (["mv", "/d", "/d/sub/inside"], 5, "meshfs: error:"),
        (["rm", "/missing"], 4, "/missing"),
        (["rm", "/d"], 5, "meshfs: error:"),
        (["cp", "/missing", "/x"], 4, "/missing"),
        (["cp", "/d", "/x"], 5, "use -r"),
        (["cp", "-r", "/d", "/d/sub/again"], 5, "into itself"),
        (["cp", "-r", "--version", "v1", "/d", "/e"], 2, "--version"),
        (["versions", "/missing"], 4, "/missing"),
        (["restore", "/d/file.txt", "no-such-version"], 4, "meshfs: error:"),
        (["stat", "/a/../b"], 2, "meshfs: error:"),
        (["cat", "--version", "no-such-version", "/d/file.txt"], 4, "meshfs: error:"),
    ]
    for args, code, snippet in cases:
        done = meshfs(env, *args)
        err = done.stderr.decode()
        assert done.returncode == code, (args, done.returncode, err)
        assert "Traceback" not in err, args
        assert snippet in err, (args, err)
    ok(meshfs(env, "rm", "-f", "/missing"))
    # Nothing was left half-done by the failures.
    assert json.loads(ok(meshfs(env, "--json", "ls", "/")))[0]["path"] == "/d"


def test_ended_and_expired_sessions_exit_3(account: Account, tmp_path: Path) -> None:
    # A second copy of the login: when the session is ended elsewhere (logout on another
    # shell), this copy's refresh is refused.
    other = tmp_path / "other-config"
    shutil.copytree(account.config_dir, other)
    other_env = account.env() | {"MESHFS_CONFIG_DIR": str(other)}
    ok(meshfs(other_env, "ls", "/"))
    ok(meshfs(account.env(), "logout"))
    for args in (["ls", "/"], ["put", "-", "/x"], ["quota"], ["whoami"]):
        done = meshfs(other_env, *args)
        fails(done, 3, "meshfs: error:")

    # An expired access token whose refresh token is no longer valid.
    store = CredentialStore(Path(other) / "credentials.json")
    stored = store.load(account.server.url)
    assert stored is not None
    stored.expires_at = time.time() - 60
    stored.refresh_token = "not-a-refresh-token"
    store.save(stored)
    fails(meshfs(other_env, "cat", "/x"), 3, "meshfs: error:")
    report = json.loads(meshfs(other_env, "--json", "ls", "/").stderr)
    assert report["exit_code"] == 3


@pytest.mark.parametrize(
    "args",
    [
        ["ls", "/"],
        ["put", "-", "/x"],
        ["get", "/x", "-"],
        ["cp", "/x", "/y"],
        ["mkdir", "/x"],
        ["rm", "/x"],
        ["versions", "/x"],
        ["quota"],
        ["audit"],
        ["whoami"],
    ],
)
def test_unreachable_server_exits_6(account: Account, args: list[str]) -> None:
    env = account.env() | {"MESHFS_SERVER": f"http://127.0.0.1:{free_port()}"}
    # The stored login is for another server: unreachable wins over "not logged in" only
    # when a token is at hand, so give one as an agent would.
    env["MESHFS_TOKEN"] = "token"
    fails(meshfs(env, *args), 6, "meshfs: error:")
