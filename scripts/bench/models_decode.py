#!/usr/bin/env python3
"""Benchmark: decode a 10,000-entry ListPage from JSON into typed objects.

Compares the wire models (msgspec Structs, meshfs_common.models) with an equivalent pydantic v2
model (model_validate_json and TypeAdapter.validate_json) and with the standard library
(json.loads + dataclasses, datetimes parsed with fromisoformat). Every decoder produces typed
objects with parsed datetimes, so the work is the same. Prints the median of --runs runs and
the ratio to msgspec measured in the same run. Not a pass/fail test.

    uv run --with 'pydantic>=2' python scripts/bench/models_decode.py
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgspec

from meshfs_common.models import Entry, ListPage


def make_page(n: int) -> bytes:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    entries = []
    for i in range(n):
        is_dir = i % 10 == 0
        entries.append(
            Entry(
                node_id=f"01JD{i:022d}",
                path=f"/projects/data/file-{i:05d}.bin",
                name=f"file-{i:05d}.bin",
                kind="dir" if is_dir else "file",
                created_at=t0 + timedelta(seconds=i),
                modified_at=t0 + timedelta(seconds=i, microseconds=123456),
                size=0 if is_dir else i * 4096,
                version_id=None if is_dir else f"01JV{i:022d}",
                content_hash=None if is_dir else f"{i:064x}",
            )
        )
    return msgspec.json.encode(ListPage(path="/projects/data", entries=entries, has_more=True))


# --- stdlib: json.loads + dataclasses ------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class DCEntry:
    node_id: str
    path: str
    name: str
    kind: str
    created_at: datetime
    modified_at: datetime
    size: int = 0
    version_id: str | None = None
    content_hash: str | None = None
    deleted_at: datetime | None = None


@dataclasses.dataclass(slots=True)
class DCListPage:
    path: str
    entries: list[DCEntry]
    has_more: bool = False
    next_after: str | None = None


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def stdlib_decode(data: bytes) -> DCListPage:
    raw = json.loads(data)
    entries = []
    for e in raw["entries"]:
        entries.append(
            DCEntry(
                node_id=e["node_id"],
                path=e["path"],
                name=e["name"],
                kind=e["kind"],
                created_at=datetime.fromisoformat(e["created_at"]),
                modified_at=datetime.fromisoformat(e["modified_at"]),
                size=e.get("size", 0),
                version_id=e.get("version_id"),
                content_hash=e.get("content_hash"),
                deleted_at=_dt(e.get("deleted_at")),
            )
        )
    return DCListPage(raw["path"], entries, raw.get("has_more", False), raw.get("next_after"))


# --- pydantic v2 ----------------------------------------------------------------------------------


def pydantic_decoders() -> dict[str, Callable[[bytes], Any]]:
    try:
        import pydantic
    except ImportError:
        return {}

    class PEntry(pydantic.BaseModel):
        node_id: str
        path: str
        name: str
        kind: Literal["file", "dir"]
        created_at: datetime
        modified_at: datetime
        size: int = 0
        version_id: str | None = None
        content_hash: str | None = None
        deleted_at: datetime | None = None

    class PListPage(pydantic.BaseModel):
        path: str
        entries: list[PEntry]
        has_more: bool = False
        next_after: str | None = None

    adapter = pydantic.TypeAdapter(PListPage)
    return {
        f"pydantic {pydantic.VERSION} model_validate_json": PListPage.model_validate_json,
        f"pydantic {pydantic.VERSION} TypeAdapter.validate_json": adapter.validate_json,
    }


def median_ms(fn: Callable[[bytes], Any], data: bytes, runs: int) -> float:
    fn(data)  # warm up (pydantic builds validators lazily; caches settle)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(data)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    data = make_page(args.entries)
    typed = msgspec.json.Decoder(ListPage)
    decoders: dict[str, Callable[[bytes], Any]] = {
        f"msgspec {msgspec.__version__} Struct (meshfs_common.models)": typed.decode,
        **pydantic_decoders(),
        "stdlib json.loads + dataclasses": stdlib_decode,
    }
    # Same answer from each: the decoders are doing equivalent work.
    reference = typed.decode(data)
    for name, fn in decoders.items():
        result = fn(data)
        assert len(result.entries) == args.entries, name
        assert result.entries[-1].modified_at == reference.entries[-1].modified_at, name

    print(
        f"models_decode: ListPage of {args.entries:,} entries, {len(data) / 1e6:.2f} MB JSON, "
        f"median of {args.runs} runs, Python {sys.version.split()[0]}"
    )
    results = {name: median_ms(fn, data, args.runs) for name, fn in decoders.items()}
    base = next(iter(results.values()))
    for name, ms in results.items():
        print(f"  {name:<58} {ms:8.2f} ms  {ms / base:5.2f}x msgspec")
    if not any(name.startswith("pydantic") for name in results):
        print("  (pydantic not installed: uv run --with 'pydantic>=2' ...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
