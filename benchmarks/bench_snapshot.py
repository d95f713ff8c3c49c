"""AR/GL snapshot of 1,000,000 GL lines: rows/s vs one nextLink stream, and peak memory.

Targets (issue #10 item 5): the snapshot reads GL lines at least 3x the rows/s of one
nextLink stream (with simulated server time, as in bench_fno_reads.py), and the client's peak
RSS stays at or below 600 MB.

Set-up as bench_fno_reads.py: the simulator in its own process over loopback, the cost model
on (each page costs ``read_base + read_per_record * rows`` simulated seconds, slept with
``latency_factor`` 1), the documented service-protection limits, the budget reset before each
run. The snapshot is `cutover.snapshot.take_snapshot` end to end: AR per legal entity, GL
entries per legal entity and GL lines in key ranges at the same time, pages to Decimal frames
to Parquet parts, the streaming join and sink, control totals, hashes, manifest. Its rows/s
counts GL lines only (AR and GL entries are read on top). The one stream only pages the GL
lines and parses them (no frames, no files): the snapshot does strictly more work.

Peak RSS is of this (client) process: sampled every 10 ms during the snapshot from
/proc/self/statm, and the kernel's high-water mark (ru_maxrss) after it.

    python benchmarks/bench_snapshot.py [--lines 1000000] [--parts 8] [--batch-rows 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import sqlite3
import tempfile
import threading
import time

import httpx
from _common import BENCH_DIR, admin_headers, machine, served, token, world

from cutover.fno import FnoClient
from cutover.snapshot import take_snapshot
from cutover.tokens import StaticToken
from cutover.transport import AdaptiveLimit, Transport

GL = "GeneralJournalAccountEntryBiEntities"
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 1e6


class Sampler(threading.Thread):
    """Peak RSS, overall and per phase (the phase is set from the snapshot's progress callback)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = rss_mb()
        self.phase = "reads"
        self.peaks: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.01):
            now = rss_mb()
            self.peak = max(self.peak, now)
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), now)

    def progress(self, stage: str, done: int, total: int | None) -> None:
        if stage == "files":
            self.phase = "files + totals" if done == 0 else self.phase


def reset_budget(client: httpx.Client, base: str, cost: dict) -> None:
    r = client.put(
        f"{base}/_sim/protection",
        headers=admin_headers(base),
        json={
            "limits": {
                "window_seconds": 300.0,
                "max_requests": 6000,
                "max_execution_seconds": 1200.0,
                "max_concurrent": 52,
                "enabled": True,
            },
            "cost": cost,
        },
    )
    r.raise_for_status()


def client(base: str, bearer: str, http: httpx.AsyncClient, parallel: int) -> FnoClient:
    return FnoClient(
        Transport(
            f"{base}/data/",
            StaticToken(bearer),
            environment="bench",
            read_only=True,
            client=http,
            limit=AdaptiveLimit(start=parallel),
        )
    )


async def one_stream(base: str, bearer: str) -> tuple[float, int]:
    async with httpx.AsyncClient(timeout=300) as http:
        fno = client(base, bearer, http, 1)
        t0 = time.perf_counter()
        rows = 0
        async for page in fno.pages(GL):
            rows += len(page)
        return time.perf_counter() - t0, rows


async def snapshot(
    base: str,
    bearer: str,
    workspace: str,
    entities: list[str],
    parts: int,
    batch_rows: int,
    page_size: int,
    progress=None,
):
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=300, limits=limits) as http:
        fno = client(base, bearer, http, parts + 2 * len(entities))
        t0 = time.perf_counter()
        manifest = await take_snapshot(
            fno,
            workspace,
            "bench",
            "before",
            entities,
            gl_parts=parts,
            batch_rows=batch_rows,
            page_size=page_size,
            organization_id=None,
            progress=progress,
        )
        return time.perf_counter() - t0, manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--parts", type=int, default=8, help="GL line key ranges read at once")
    ap.add_argument("--batch-rows", type=int, default=100_000, help="rows per Parquet part file")
    ap.add_argument("--page-size", type=int, default=5_000, help="rows per page the snapshot asks for (F&O: <= 10,000)")
    ap.add_argument("--read-base", type=float, default=0.010)
    ap.add_argument("--read-per-record", type=float, default=0.00002)
    ap.add_argument("--latency-factor", type=float, default=1.0)
    ap.add_argument("--skip-stream", action="store_true", help="skip the one-stream baseline")
    args = ap.parse_args()
    cost = {"read_base": args.read_base, "read_per_record": args.read_per_record, "latency_factor": args.latency_factor}

    db = world(f"gl-{args.lines}", gl_lines=args.lines)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        entities = [r[0] for r in conn.execute("SELECT cdm_companycode FROM dv_cdm_companies ORDER BY 1")]
        ar_rows = conn.execute("SELECT count(*) FROM fno_CustTransactions").fetchone()[0]
        entries = conn.execute("SELECT count(*) FROM fno_GeneralJournalEntryBiEntities").fetchone()[0]
    workspace = tempfile.mkdtemp(prefix="snapshot-", dir=BENCH_DIR)
    try:
        with served(db) as base, httpx.Client(timeout=60) as admin:
            bearer = token(admin, base, "cutover-verify", "verify-secret")
            print(f"AR/GL snapshot: {args.lines:,} GL lines, {entries:,} GL entries, {ar_rows:,} AR rows — {machine()}")
            print(f"legal entities {', '.join(entities)}; cost model {cost}; documented service-protection limits")
            print()

            reset_budget(admin, base, cost)
            baseline = rss_mb()
            sampler = Sampler()
            sampler.start()
            seconds, manifest = asyncio.run(
                snapshot(
                    base, bearer, workspace, entities, args.parts, args.batch_rows, args.page_size, sampler.progress
                )
            )
            sampler.stop.set()
            sampler.join()
            maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
            if manifest.gl_lines_read != args.lines or manifest.gl_rows != args.lines:
                raise SystemExit(f"snapshot read {manifest.gl_lines_read:,} lines, kept {manifest.gl_rows:,}")
            snap_rate = args.lines / seconds
            total_rows = manifest.gl_lines_read + manifest.gl_entries_read + manifest.ar_rows
            print(
                f"  snapshot ({args.parts} key ranges)     {seconds:7.2f} s  {snap_rate:>10,.0f} GL lines/s"
                f"  ({total_rows / seconds:,.0f} rows/s all entities)"
            )
            sizes = ", ".join(f"{k} {f.bytes / 1e6:.1f} MB" for k, f in manifest.files.items())
            print(f"  files: {sizes}")
            phases = ", ".join(f"{k} {v:,.0f} MB" for k, v in sampler.peaks.items())
            print(
                f"  peak RSS {sampler.peak:,.0f} MB sampled ({phases}; baseline {baseline:,.0f} MB), ru_maxrss {maxrss:,.0f} MB"
            )
            print(f"  target <= 600 MB — {'met' if max(sampler.peak, maxrss) <= 600 else 'NOT met'}")

            if not args.skip_stream:
                reset_budget(admin, base, cost)
                s_seconds, rows = asyncio.run(one_stream(base, bearer))
                if rows != args.lines:
                    raise SystemExit(f"one stream read {rows:,} rows")
                s_rate = rows / s_seconds
                print(f"  one nextLink stream (GL lines only) {s_seconds:7.2f} s  {s_rate:>10,.0f} GL lines/s")
                ratio = snap_rate / s_rate
                print(f"  ratio {ratio:.2f}x (target >= 3x) — {'met' if ratio >= 3 else 'NOT met'}")
    finally:
        shutil.rmtree(workspace, ignore_errors=True)  # this run's own snapshot


if __name__ == "__main__":
    main()
