"""`meshfs ls -l`, `ln`, `ln -s`, `chmod`, `touch` and `stat` against a REAL server."""

from __future__ import annotations

import pytest
from meshfs_client_testkit import Account
from test_live_cli import as_json, meshfs, ok

from meshfs_client.cli._modes import parse_mode

pytestmark = pytest.mark.live


def _line(listing: str, name: str) -> list[str]:
    """The fields of the ``ls -l`` line of *name* (mode, links, size, date, time, name...)."""
    found = [line.split() for line in listing.splitlines() if line.split()[5] == name]
    assert found, listing
    return found[0]


def test_ls_long_shows_mode_links_time_and_link_targets(account: Account) -> None:
    ok(meshfs(account, "put", "-", "/d/run.sh", stdin=b"#!/bin/sh\n"))
    ok(meshfs(account, "chmod", "755", "/d/run.sh"))
    ok(meshfs(account, "ln", "-s", "run.sh", "/d/go"))
    ok(meshfs(account, "ln", "/d/run.sh", "/d/again.sh"))
    ok(meshfs(account, "mkdir", "/d/sub"))
    ok(meshfs(account, "touch", "-d", "2020-05-17T10:20:30+00:00", "/d/run.sh"))

    listing = ok(meshfs(account, "ls", "-l", "/d"))
    run = _line(listing, "run.sh")
    assert run[0] == "-rwxr-xr-x"
    assert run[1] == "2"  # two names: run.sh and again.sh
    assert run[3].startswith("2020-05-1")  # the date set by touch (local time)
    link = _line(listing, "go")
    assert link[0].startswith("l")
    assert link[-3:] == ["go", "->", "run.sh"]
    assert _line(listing, "sub/")[0].startswith("d")
    assert _line(listing, "again.sh")[0] == "-rwxr-xr-x"


def test_chmod_octal_and_symbolic_change_only_the_bits(account: Account) -> None:
    ok(meshfs(account, "put", "-", "/f.txt", stdin=b"x"))
    before = as_json(meshfs(account, "--json", "stat", "/f.txt"))
    assert as_json(meshfs(account, "--json", "chmod", "640", "/f.txt"))[0]["mode"] == 0o640
    assert as_json(meshfs(account, "--json", "chmod", "u+x,o+r", "/f.txt"))[0]["mode"] == 0o744
    assert as_json(meshfs(account, "--json", "chmod", "go=", "/f.txt"))[0]["mode"] == 0o700
    after = as_json(meshfs(account, "--json", "stat", "/f.txt"))
    assert after["version_id"] == before["version_id"]  # no new content version
    assert "mode:      0700 (-rwx------)" in ok(meshfs(account, "stat", "/f.txt"))


def test_bad_input_is_one_clear_line_and_a_non_zero_exit(account: Account) -> None:
    ok(meshfs(account, "put", "-", "/f.txt", stdin=b"x"))
    for bad in ("999", "u+q", "7777777", "rwx"):
        done = meshfs(account, "chmod", bad, "/f.txt")
        assert done.returncode == 2, bad
        assert b"Traceback" not in done.stderr
        assert b"MODE" in done.stderr, done.stderr
    missing = meshfs(account, "chmod", "644", "/missing")
    assert missing.returncode == 4
    bad_date = meshfs(account, "touch", "-d", "yesterday-ish", "/f.txt")
    assert bad_date.returncode == 2
    assert b"is not a time" in bad_date.stderr
    ok(meshfs(account, "mkdir", "/dir"))
    hard_to_dir = meshfs(account, "ln", "/dir", "/dir2")
    assert hard_to_dir.returncode != 0
    assert b"Traceback" not in hard_to_dir.stderr
    taken = meshfs(account, "ln", "-s", "anything", "/f.txt")
    assert taken.returncode == 5


def test_touch_creates_an_empty_file_or_sets_times_without_a_new_version(
    account: Account,
) -> None:
    ok(meshfs(account, "touch", "/new.txt"))
    created = as_json(meshfs(account, "--json", "stat", "/new.txt"))
    assert created["kind"] == "file"
    assert created["size"] == 0
    ok(meshfs(account, "put", "-", "/kept.txt", stdin=b"content"))
    version = as_json(meshfs(account, "--json", "stat", "/kept.txt"))["version_id"]
    touched = as_json(meshfs(account, "--json", "touch", "-d", "@1000000000", "/kept.txt"))[0]
    assert touched["mtime_ns"] == 1_000_000_000 * 1_000_000_000
    assert touched["atime_ns"] == 1_000_000_000 * 1_000_000_000
    assert touched["version_id"] == version
    assert ok(meshfs(account, "cat", "/kept.txt")) == "content"
    ok(meshfs(account, "touch", "-c", "/not-made.txt"))
    assert meshfs(account, "stat", "/not-made.txt").returncode == 4


def test_hard_link_into_a_directory_shares_the_file(account: Account) -> None:
    ok(meshfs(account, "put", "-", "/a.txt", stdin=b"one"))
    ok(meshfs(account, "mkdir", "/into"))
    made = as_json(meshfs(account, "--json", "ln", "/a.txt", "/into"))
    assert made["path"] == "/into/a.txt"
    assert made["nlink"] == 2
    ok(meshfs(account, "put", "-", "/a.txt", stdin=b"two"))
    assert ok(meshfs(account, "cat", "/into/a.txt")) == "two"
    assert "target:    a.txt" in ok(
        meshfs(
            account, "stat", as_json(meshfs(account, "--json", "ln", "-s", "a.txt", "/s"))["path"]
        )
    )


def test_symbolic_modes_follow_chmod() -> None:
    assert parse_mode("a+X", 0o644, is_dir=False) == 0o644
    assert parse_mode("a+X", 0o744, is_dir=False) == 0o755
    assert parse_mode("a+X", 0o644, is_dir=True) == 0o755
    assert parse_mode("u+s,+t", 0o755, is_dir=False) == 0o5755
    assert parse_mode("a=r,u+w", 0o777, is_dir=False) == 0o644
    assert parse_mode("0755", 0, is_dir=False) == 0o755
