"""Everyday tools on a real mount: editors, git, tar, cp -a, rsync -a, SQLite, make (small
trees)."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import tarfile
from pathlib import Path

from meshfs_client import MeshFS


def run(*args: str, cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def source_tree(root: Path) -> None:
    """A small project: nested directories, an executable, a symlink, set times."""
    (root / "src" / "lib").mkdir(parents=True)
    (root / "README").write_text("a small tree\n")
    (root / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    (root / "src" / "lib" / "util.h").write_text("#define UTIL 1\n")
    (root / "run.sh").write_text("#!/bin/sh\necho ran\n")
    os.chmod(root / "run.sh", 0o755)
    os.chmod(root / "src" / "lib" / "util.h", 0o600)
    os.symlink("src/main.c", root / "main-link")
    for index, path in enumerate(sorted(root.rglob("*"))):
        moment = 10**18 + index * 10**9  # whole seconds: what a tar header keeps
        os.utime(path, ns=(moment, moment), follow_symlinks=False)


def same_modes_and_times(left: Path, right: Path) -> None:
    for path in sorted(left.rglob("*")):
        other = right / path.relative_to(left)
        a, b = os.lstat(path), os.lstat(other)
        assert stat.S_IFMT(a.st_mode) == stat.S_IFMT(b.st_mode), path
        assert stat.S_IMODE(a.st_mode) == stat.S_IMODE(b.st_mode), path
        if not stat.S_ISDIR(a.st_mode):  # a directory's mtime moves as it is filled
            assert a.st_mtime_ns == b.st_mtime_ns, path


def test_vim_saves_with_a_swap_file_and_rename(home: tuple[Path, str], api: MeshFS) -> None:
    local, remote = home
    (local / "notes.txt").write_text("one\n")
    os.chmod(local / "notes.txt", 0o640)
    subprocess.run(
        ["vim", "-n", "-e", "-s", "-c", "set backupcopy=no writebackup", "-c", "%s/one/two/",
         "-c", "wq", str(local / "notes.txt")],
        check=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert (local / "notes.txt").read_text() == "two\n"
    assert api.read_bytes(f"{remote}/notes.txt") == b"two\n"
    assert stat.S_IMODE(os.stat(local / "notes.txt").st_mode) == 0o640
    assert sorted(os.listdir(local)) == ["notes.txt"]


def test_git_init_add_commit_status_log_checkout(home: tuple[Path, str]) -> None:
    local, _ = home
    repo = local / "repo"
    repo.mkdir()
    env = ["-c", "user.name=T", "-c", "user.email=t@example.com"]
    run("git", "init", "-q", "-b", "main", cwd=repo)
    (repo / "a.txt").write_text("first\n")
    (repo / "tool.sh").write_text("#!/bin/sh\n")
    os.chmod(repo / "tool.sh", 0o755)
    run("git", "add", "-A", cwd=repo)
    run("git", *env, "commit", "-q", "-m", "first", cwd=repo)
    assert run("git", "status", "--porcelain", cwd=repo) == ""
    run("git", "checkout", "-q", "-b", "feature", cwd=repo)
    (repo / "a.txt").write_text("second\n")
    run("git", *env, "commit", "-q", "-am", "second", cwd=repo)
    assert run("git", "log", "--format=%s", cwd=repo).split() == ["second", "first"]
    run("git", "checkout", "-q", "main", cwd=repo)
    assert (repo / "a.txt").read_text() == "first\n"
    assert run("git", "status", "--porcelain", cwd=repo) == ""  # modes and times as indexed
    assert run("git", "fsck", "--no-progress", cwd=repo) == ""
    assert "100755" in run("git", "ls-files", "-s", "tool.sh", cwd=repo)


def test_tar_extract_then_diff_keeps_modes_and_times(
    home: tuple[Path, str], tmp_path: Path
) -> None:
    local, _ = home
    tree = tmp_path / "tree"
    tree.mkdir()
    source_tree(tree)
    archive = tmp_path / "tree.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tree, arcname="tree")
    run("tar", "-xpf", str(archive), cwd=local)
    run("diff", "-r", "--no-dereference", str(tree), str(local / "tree"), cwd=local)
    same_modes_and_times(tree, local / "tree")


def test_cp_a_preserves_modes_times_and_links(home: tuple[Path, str], tmp_path: Path) -> None:
    local, _ = home
    tree = tmp_path / "tree"
    tree.mkdir()
    source_tree(tree)
    run("cp", "-a", str(tree), str(local / "copy"), cwd=local)
    run("diff", "-r", "--no-dereference", str(tree), str(local / "copy"), cwd=local)
    same_modes_and_times(tree, local / "copy")
    # And back out of the mount.
    run("cp", "-a", str(local / "copy"), str(tmp_path / "back"), cwd=local)
    same_modes_and_times(tree, tmp_path / "back")


def test_rsync_a_preserves_modes_times_and_links_and_a_second_run_sends_nothing(
    home: tuple[Path, str], tmp_path: Path
) -> None:
    local, _ = home
    tree = tmp_path / "tree"
    tree.mkdir()
    source_tree(tree)
    run("rsync", "-a", f"{tree}/", f"{local / 'synced'}/", cwd=local)
    run("diff", "-r", "--no-dereference", str(tree), str(local / "synced"), cwd=local)
    same_modes_and_times(tree, local / "synced")
    # Sizes and mtimes agree now, so a second run finds nothing to send.
    again = run("rsync", "-a", "--itemize-changes", f"{tree}/", f"{local / 'synced'}/", cwd=local)
    assert [line for line in again.splitlines() if not line.startswith(".d")] == [], again
    # And back out of the mount.
    run("rsync", "-a", f"{local / 'synced'}/", f"{tmp_path / 'back'}/", cwd=local)
    same_modes_and_times(tree, tmp_path / "back")


def test_sqlite_database_survives_inserts(home: tuple[Path, str], api: MeshFS) -> None:
    local, remote = home
    db = sqlite3.connect(local / "data.db")
    db.execute("create table t (id integer primary key, body text)")
    for batch in range(5):
        with db:
            db.executemany(
                "insert into t (body) values (?)", [(f"row {batch}-{i}" * 20,) for i in range(200)]
            )
    assert db.execute("pragma integrity_check").fetchone() == ("ok",)
    assert db.execute("select count(*) from t").fetchone() == (1000,)
    db.close()
    copy = local.parent / "copy.db"
    copy.write_bytes(api.read_bytes(f"{remote}/data.db"))  # what the server holds
    check = sqlite3.connect(copy)
    assert check.execute("pragma integrity_check").fetchone() == ("ok",)
    assert check.execute("select count(*) from t").fetchone() == (1000,)
    check.close()


def test_make_rebuilds_only_what_changed(home: tuple[Path, str]) -> None:
    local, _ = home
    (local / "Makefile").write_text(
        "all: a.out b.out\n"
        "a.out: a.in\n\tcp a.in a.out\n\techo a >> log\n"
        "b.out: b.in\n\tcp b.in b.out\n\techo b >> log\n"
    )
    (local / "a.in").write_text("a")
    (local / "b.in").write_text("b")
    run("make", "-s", cwd=local)
    assert (local / "log").read_text().split() == ["a", "b"]
    assert "Nothing to be done" in run("make", cwd=local)
    assert (local / "log").read_text().split() == ["a", "b"]
    later = os.stat(local / "b.out").st_mtime_ns + 10**9
    (local / "b.in").write_text("b2")
    os.utime(local / "b.in", ns=(later, later))
    run("make", "-s", cwd=local)
    assert (local / "log").read_text().split() == ["a", "b", "b"]
    assert (local / "b.out").read_text() == "b2"
