"""Run every benchmark in turn (``nox -s bench``). Each prints its own figures and ratios."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# In order; a benchmark whose file is absent (not written yet) is skipped.
BENCHMARKS = [
    "server_core.py",
    "workers.py",
    "request_cost.py",
    "backends.py",
    "client_transfer.py",
    "large_files.py",
    "bulk_files.py",
    "partial_write.py",
    "posix_attributes.py",
    "mirror_sync.py",
    "flood.py",
    "idle_streams.py",
    "cli_startup.py",
    "mount.py",
    "xattrs.py",
]


def main() -> int:
    failed = 0
    for name in BENCHMARKS:
        script = HERE / name
        if not script.exists():
            continue
        print(f"\n=== {name} ===", flush=True)
        failed |= subprocess.call([sys.executable, str(script)]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
