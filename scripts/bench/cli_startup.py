"""Start-up time of the ``meshfs`` CLI (issue 13: target <= 0.25 s).

Measures, in one run, the median wall time of:
  * ``python -c pass`` (the interpreter alone: the floor every command pays)
  * ``meshfs --help``
  * ``meshfs ls /`` against a real server process (embedded default, signed in by token)

and prints the slowest imports of ``meshfs ls`` (``python -X importtime``), so a regression
names the module that caused it. Figures are medians of --runs runs; not a pass/fail test.

Usage: python scripts/bench/cli_startup.py [--runs 7] [--top 12]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _harness import median, report, running_server

_MESHFS = [sys.executable, "-c", "from meshfs_client.cli import main; main()"]


def _timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def _median_of(runs: int, argv: list[str], env: dict[str, str]) -> float:
    _timed(argv, env)  # warm the page cache and the bytecode cache
    return median([_timed(argv, env) for _ in range(runs)])


def _import_breakdown(argv: list[str], env: dict[str, str], top: int) -> None:
    """The *top* imports by cumulative time (microseconds), outermost packages only."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv[1:]],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
    )
    rows: list[tuple[int, str]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, field = line.split("|")
        depth = (len(field) - len(field.lstrip()) - 1) // 2
        if depth <= 1:  # the program's imports and theirs (deeper ones are inside these)
            rows.append((int(cumulative), "  " * depth + field.strip()))
    for micros, name in sorted(rows, reverse=True)[:top]:
        print(f"    {micros / 1000:>8.1f} ms  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if not k.startswith("MESHFS_")}
    floor = _median_of(args.runs, [sys.executable, "-c", "pass"], base)
    report("python -c pass (floor)", floor * 1000, "ms")
    help_time = _median_of(args.runs, [*_MESHFS, "--help"], base)
    report(
        "meshfs --help", help_time * 1000, "ms", f"target <= 250 ms; {help_time / floor:.1f}x floor"
    )
    with running_server() as server:
        env = base | {"MESHFS_SERVER": server.url, "MESHFS_TOKEN": server.token}
        ls_time = _median_of(args.runs, [*_MESHFS, "ls", "/"], env)
        report("meshfs ls /", ls_time * 1000, "ms", f"{ls_time / floor:.1f}x floor")
        print("  slowest imports of `meshfs ls /` (cumulative):")
        _import_breakdown([*_MESHFS, "ls", "/"], env, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
