"""The server's garbage-collector settings: a write fanned out to many open streams must not
start full collections (each walks every long-lived object with the event loop stopped)."""

from __future__ import annotations

import subprocess
import sys

# Long-lived objects standing for open streams, then bursts of short-lived ones standing for
# the fan-out of writes (each burst's objects are alive together, then dropped); prints how
# many full collections the bursts caused.
_SCENARIO = """
import gc, sys
if sys.argv[1] == "tuned":
    from meshfs_server.cli.serve import tune_garbage_collector
    tune_garbage_collector()
streams = [[{"state": i}, [i]] for i in range(300_000)]
full_before = gc.get_stats()[2]["collections"]
for _ in range(20):
    burst = [[{"frame": i}] for i in range(30_000)]
    del burst
print(gc.get_stats()[2]["collections"] - full_before)
"""


def _full_collections(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _SCENARIO, mode], check=True, capture_output=True, text=True
    )
    return int(out.stdout)


def test_bursts_of_short_lived_objects_start_no_full_collection() -> None:
    assert _full_collections("default") > 0  # what the tuning is for
    assert _full_collections("tuned") == 0
