"""Benchmark: how long it takes to seed a rehearsal world.

    python benchmarks/bench_seed.py [--scale large] [--repeat N] [--seed 1]

Seeds into a fresh temporary simulator file each repeat (extract included) and prints the
median wall time of ``seed_world`` (one transaction, committed), rows written per second,
and the size of the database file (after a WAL checkpoint) and of the extract.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cutover.sim import store
from cutover.sim.seed import SCALES, seed_world


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="large")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    scale = SCALES[args.scale]

    times: list[float] = []
    summary = None
    db_size = extract_size = 0
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="bench_seed_") as tmp:
            db = Path(tmp) / "world.db"
            extract = Path(tmp) / "legacy.csv"
            conn = store.connect(db)
            start = time.perf_counter()
            summary = seed_world(conn, scale, seed=args.seed, scale_name=args.scale, extract_path=extract)
            elapsed = time.perf_counter() - start
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
            db_size = db.stat().st_size
            extract_size = extract.stat().st_size
            times.append(elapsed)
            print(f"run {i + 1}/{args.repeat}: {elapsed:.2f} s", file=sys.stderr)

    assert summary is not None
    median = statistics.median(times)
    rows = summary.rows_written
    print(f"scale           {args.scale}  ({scale})")
    print(
        f"machine         {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores, SQLite {sqlite3.sqlite_version}"
    )
    print(f"repeats         {args.repeat}")
    print(f"wall (median)   {median:.2f} s   (min {min(times):.2f} s, max {max(times):.2f} s)")
    print(
        f"rows written    {rows:,}  ({summary.gl_lines:,} GL lines, {summary.gl_entries:,} GL entries, "
        f"{summary.ar_transactions:,} AR, {summary.contract_lines:,} contract lines)"
    )
    print(f"rows/s          {rows / median:,.0f}")
    print(
        f"extract rows    {summary.invoiced_milestones:,} invoiced + {summary.uninvoiced_milestones:,} not invoiced"
        f"  ({_mb(extract_size)})"
    )
    print(f"database size   {_mb(db_size)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
