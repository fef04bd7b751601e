"""The `meshfs` CLI against a REAL meshfs-server: the rough edges a new user hit in the first
hour (issue 13) - bad local names and symbolic links in `put -r`, agent tokens, `--json` after
the verb, and lines that used to mislead."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from meshfs_client_testkit import Account, device_login, own_server

from meshfs_common.hashing import CHUNK_SIZE

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


def as_json(done: subprocess.CompletedProcess[bytes]) -> Any:
    return json.loads(ok(done))


def tree_of(env: dict[str, str], path: str) -> list[str]:
    return sorted(e["path"] for e in as_json(meshfs(env, "ls", "-R", path, "--json")))


def test_put_r_skips_a_bad_name_sends_the_rest_and_a_retry_changes_nothing(
    account: Account, tmp_path: Path
) -> None:
    env = account.env()
    src = tmp_path / "weird"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "b.txt").write_text("b")
    (src / "bad\nname.txt").write_text("x")
    (src / "bad\tdir").mkdir()
    (src / "bad\tdir" / "inside.txt").write_text("never sent")

    first = meshfs(env, "put", "-r", str(src), "/weird")
    err = first.stderr.decode()
    assert first.returncode == 2, err
    assert "Traceback" not in err
    assert "bad\\nname.txt" in err  # each bad one, on one line
    assert "bad\\tdir" in err
    assert "2 entries could not be uploaded" in err
    expected = ["/weird/a.txt", "/weird/sub", "/weird/sub/b.txt"]
    assert tree_of(env, "/weird") == expected

    retry = meshfs(env, "put", "-r", str(src), "/weird")
    assert retry.returncode == 2
    assert tree_of(env, "/weird") == expected  # no /weird/weird
    history = as_json(meshfs(env, "versions", "/weird/a.txt", "--json"))
    assert len(history) == 1  # identical content made no new version

    # A trailing slash puts the tree inside the directory under its own name.
    (src / "bad\nname.txt").unlink()
    (src / "bad\tdir" / "inside.txt").unlink()
    (src / "bad\tdir").rmdir()
    ok(meshfs(env, "put", "-r", str(src), "/into/"))
    assert tree_of(env, "/into") == [
        "/into/weird",
        *(p.replace("/weird", "/into/weird") for p in expected),
    ]


def test_put_never_follows_symbolic_links_unless_asked(account: Account, tmp_path: Path) -> None:
    env = account.env()
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the tree")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "o.txt").write_text("o")
    src = tmp_path / "tree"
    src.mkdir()
    (src / "plain.txt").write_text("p")
    (src / "passwd").symlink_to(secret)
    (src / "linked-dir").symlink_to(outside)
    (src / "loop").symlink_to(src)

    done = meshfs(env, "put", "-r", str(src), "/t")
    assert done.returncode == 0, done.stderr.decode()
    assert "symbolic link not followed" in done.stderr.decode()
    assert tree_of(env, "/t") == ["/t/plain.txt"]

    single = meshfs(env, "put", str(src / "passwd"), "/p.txt")
    assert single.returncode == 2
    assert "--follow-symlinks" in single.stderr.decode()

    ok(meshfs(env, "put", "-r", "--follow-symlinks", str(src), "/f"))
    assert tree_of(env, "/f") == [
        "/f/linked-dir",
        "/f/linked-dir/o.txt",
        "/f/passwd",
        "/f/plain.txt",
    ]
    assert ok(meshfs(env, "cat", "/f/passwd")) == "outside the tree"


def test_agent_tokens_from_the_cli(account: Account) -> None:
    env = account.env()
    ok(meshfs(env, "mkdir", "-p", "/agents/box", "/private"))
    made = as_json(
        meshfs(env, "token", "create", "--name", "bot", "--prefix", "/agents", "--read-only",
               "--expires", "7d", "--json")
    )  # fmt: skip
    assert made["token"]
    assert (made["access"], made["path_prefix"]) == ("read", "/agents")
    listed = as_json(meshfs(env, "token", "list", "--json"))
    assert [t["session_id"] for t in listed] == [made["session_id"]]
    assert made["session_id"] in ok(meshfs(env, "token", "list"))

    agent_env = {k: v for k, v in env.items() if k != "MESHFS_CONFIG_DIR"}
    agent_env["MESHFS_TOKEN"] = made["token"]
    who = ok(meshfs(agent_env, "whoami"))
    assert "agent token 'bot'" in who
    assert "read access to /agents, expires 20" in who
    me = as_json(meshfs(agent_env, "whoami", "--json"))
    assert (me["kind"], me["path_prefix"], me["access"]) == ("agent", "/agents", "read")
    assert me["expires_at"] is not None
    assert ok(meshfs(agent_env, "ls", "/agents")).split() == ["box/"]
    assert meshfs(agent_env, "put", "-", "/agents/x.txt", stdin=b"x").returncode == 7

    ok(meshfs(env, "token", "revoke", made["session_id"]))
    assert meshfs(agent_env, "ls", "/agents").returncode == 3
    assert as_json(meshfs(env, "token", "list", "--json")) == []
    bad = meshfs(env, "token", "create", "--name", "x", "--expires", "soon")
    assert bad.returncode == 2
    assert b"duration" in bad.stderr


def test_json_after_the_verb_and_error_codes_from_the_table(
    account: Account, tmp_path: Path
) -> None:
    env = account.env()
    ok(meshfs(env, "mkdir", "/d"))
    assert [e["path"] for e in as_json(meshfs(env, "ls", "--json", "/"))] == ["/d"]
    missing = meshfs(env, "stat", "/nope", "--json")
    assert missing.returncode == 4
    assert json.loads(missing.stderr) == {
        "error": "not_found",
        "error_description": json.loads(missing.stderr)["error_description"],
        "exit_code": 4,
    }
    local = meshfs(env, "put", str(tmp_path / "absent.txt"), "/x", "--json")
    assert json.loads(local.stderr)["error"] in ("not_found", "bad_request")
    usage = meshfs(env, "ls", "--bogus", "--json")
    assert json.loads(usage.stderr)["error"] == "bad_request"


def test_lines_that_used_to_mislead(account: Account, tmp_path: Path) -> None:
    env = account.env()
    ok(meshfs(env, "put", "-", "/gone.txt", stdin=b"twenty-four bytes here!!"))
    version = as_json(meshfs(env, "versions", "/gone.txt", "--json"))[0]["version_id"]
    stat = ok(meshfs(env, "stat", "/gone.txt"))
    assert "size:      24 bytes\n" in stat

    ok(meshfs(env, "rm", "/gone.txt"))
    listing = ok(meshfs(env, "ls", "--deleted", "-l", "/"))
    assert listing.startswith("xrw-r--r-- ")  # x in place of the type: a tombstone
    assert "gone.txt  (deleted " in listing
    assert "(deleted " in ok(meshfs(env, "ls", "--deleted", "/"))
    restored = meshfs(env, "restore", "/gone.txt", version)
    assert restored.returncode == 0
    assert "restored deleted file /gone.txt" in restored.stderr.decode()
    assert "nothing changed" not in restored.stderr.decode()
    again = meshfs(env, "restore", "/gone.txt", version)
    assert "already has that content; nothing changed" in again.stderr.decode()

    ok(meshfs(env, "mkdir", "/dir"))
    versions_of_dir = meshfs(env, "versions", "/dir")
    assert versions_of_dir.returncode == 5
    assert "is a directory" in versions_of_dir.stderr.decode()

    missing_dir = tmp_path / "no" / "such" / "dir" / "out.txt"
    got = meshfs(env, "get", "/gone.txt", str(missing_dir))
    assert got.returncode == 4
    err = got.stderr.decode()
    assert "meshfs-part" not in err
    assert str(missing_dir.parent) in err

    # Every action named in `audit --help` exists: each finds rows in a fresh tenant.
    ok(meshfs(env, "token", "create", "--name", "probe"))
    help_text = " ".join(ok(meshfs(env, "audit", "--help")).split())
    examples = help_text.split("(e.g. ", 1)[1].split(")", 1)[0].split(", ")
    assert len(examples) >= 2
    for action in examples:
        rows = as_json(meshfs(env, "audit", "--action", action, "--json"))
        assert rows, action
        assert all(r["action"] == action for r in rows)


def test_put_r_leaves_out_fifos_instead_of_hanging(account: Account, tmp_path: Path) -> None:
    env = account.env()
    src = tmp_path / "t"
    src.mkdir()
    (src / "a.txt").write_text("a")
    os.mkfifo(src / "pipe")
    done = meshfs(env, "put", "-r", str(src), "/t")
    assert done.returncode == 0, done.stderr.decode()
    assert "pipe: not a regular file or directory" in done.stderr.decode()
    assert tree_of(env, "/t") == ["/t/a.txt"]


async def test_put_r_says_when_it_is_rate_limited_and_finishes(tmp_path: Path) -> None:
    # 30 requests a minute: a burst of 30, then one request every 2 s (Retry-After: 2).
    with own_server(tmp_path, {"MESHFS_RATE_LIMIT_PER_MINUTE": "30"}) as server:
        suffix = uuid.uuid4().hex[:8]
        account = await device_login(server, tmp_path / "config", f"u{suffix}", f"t{suffix}")
        src = tmp_path / "tree"
        src.mkdir()
        # Small files go many to a request; files over a chunk go one by one, in 4 requests
        # each (init, two parts, commit): 9 of them need 36 requests.
        for n in range(9):
            (src / f"f{n:02}.bin").write_bytes(bytes([n]) * (CHUNK_SIZE + 1))
        done = meshfs(account.env(), "put", "-r", str(src), "/tree")
        err = done.stderr.decode()
        assert done.returncode == 0, err
        assert "tree: rate limited, waiting 2s" in err
        assert "uploaded 9 files" in err
        assert len(tree_of(account.env(), "/tree")) == 9
