"""Dataverse write throughput for 20,000 milestones under service protection (issue #3).

The simulator runs in its own process with its cost model and service-protection limits on,
the 5-minute window scaled down (`PUT /_sim/protection {"scale": s, "cost": {...}}`), and
`latency_factor` > 0 so simulated execution time also costs wall time. Figures:

(a) one POST per record (modest concurrency), sampled for a fixed time and extrapolated;
(b) DataverseClient.bulk_upsert (UpsertMultiple in chunks), with a pool of 1 and of 4
    application users;
bound: what the limits allow for that cost model, per identity,
    min(requests/window × chunk, execution budget/window ÷ (write_base + write_per_record × chunk) × chunk)
    per window, i.e. records/s = that ÷ window seconds.

Sliding windows start empty, so the first window of any run is a free burst that a long
night would not get; and a run shorter than a few windows measures the phase of the window
more than the client. The figures are therefore steady-state: each identity's budget is first
exhausted by a warm-up load, then the 20,000-record load runs back to back as often as needed
to span at least `--windows` windows at the bound rate (pass 1 creates, later passes update
the same rows — the same cost to the service — and the row count proves nothing duplicated).
`--fresh` also prints the single-load figure from a fresh budget.

    python benchmarks/bench_dataverse_writes.py [--records 20000] [--scale 0.01] [--latency-factor 0.02]
    python benchmarks/bench_dataverse_writes.py --sweep      # chunk-size measurement
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sqlite3
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import httpx
from _common import admin_headers, machine, served, world

from cutover import odata
from cutover.bulk import DEFAULT_CHUNK
from cutover.dataverse import DataverseClient
from cutover.domain import deterministic_id
from cutover.transport import Transport

MILESTONES = "msdyn_contractlinescheduleofvalues"
MILESTONE = "msdyn_contractlinescheduleofvalue"
KEY = "msdyn_contractlinescheduleofvalueid"
NS = uuid.UUID("3f9a1c64-2b7d-4e15-9c80-5d6e7f8a9b0c")
IDENTITIES = [("cutover-rehearsal", "rehearsal-secret")] + [
    (f"cutover-rehearsal-{n}", f"rehearsal-secret-{n}") for n in (2, 3, 4)
]
WINDOW, REQUESTS, EXECUTION = 300.0, 6000, 1200.0  # documented limits per identity


class SimToken:
    """Client-credentials tokens from the simulator's stand-in identity endpoint."""

    def __init__(self, base: str, client_id: str, secret: str):
        self.base, self.client_id, self.secret, self._token = base, client_id, secret, None

    async def token(self, *, force_refresh: bool = False) -> str:
        if self._token is None or force_refresh:
            async with httpx.AsyncClient() as c:
                r = await c.post(
                    f"{self.base}/_sim/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": self.client_id,
                        "client_secret": self.secret,
                        "scope": f"{self.base}/.default",
                    },
                )
                r.raise_for_status()
                self._token = r.json()["access_token"]
        return self._token


def transports(base: str, n: int) -> list[Transport]:
    return [
        Transport(f"{base}/api/data/v9.2/", SimToken(base, cid, sec), environment="bench")
        for cid, sec in IDENTITIES[:n]
    ]


def bound(chunk: int, scale: float, cost: dict) -> float:
    """Records/s one identity may write with one bulk request per chunk."""
    window = WINDOW * scale
    requests, execution = max(1, round(REQUESTS * scale)), EXECUTION * scale
    per_window = min(requests * chunk, execution / (cost["write_base"] + cost["write_per_record"] * chunk) * chunk)
    return per_window / window


def single_bound(scale: float, cost: dict) -> float:
    window = WINDOW * scale
    return (
        min(max(1, round(REQUESTS * scale)), EXECUTION * scale / (cost["write_base"] + cost["write_per_record"]))
        / window
    )


def records(lines: list[str], prefix: str, n: int) -> list[dict]:
    return [
        {
            KEY: deterministic_id(f"{prefix}-{i:06d}", NS),
            "msdyn_name": f"{prefix} milestone {i}",
            "msdyn_amount": Decimal(1000 + i % 997) + Decimal("0.25"),
            "msdyn_invoicedate": "2026-10-31",
            "msdyn_invoicestatus": 192350001,
            "msdyn_ContractLineId@odata.bind": f"/salesorderdetails({lines[i % len(lines)]})",
        }
        for i in range(n)
    ]


async def admin(base: str, method: str, path: str, **kw) -> dict:
    async with httpx.AsyncClient(timeout=60) as c:
        r = await c.request(method, f"{base}/_sim/{path}", headers=admin_headers(base), **kw)
        r.raise_for_status()
        return r.json()


async def reset_budgets(base: str, scale: float, cost: dict) -> None:
    await admin(base, "PUT", "protection", json={"scale": scale, "cost": cost})


async def one_post_per_record(
    base: str, lines: list[str], seconds: float, concurrency: int, warm: bool
) -> tuple[float, int, int]:
    """(a): POST each record on its own for `seconds` (after the budget is exhausted when `warm`)."""
    t = transports(base, 1)[0]
    recs = iter(records(lines, f"single-{uuid.uuid4().hex[:6]}", 1_000_000))
    started: list[float] = []
    done = 0
    stop = asyncio.Event()

    async def worker() -> None:
        nonlocal done
        while not stop.is_set():
            rec = next(recs)
            await t.request(
                "POST",
                MILESTONES,
                content=odata.dumps(rec),
                headers={"Content-Type": "application/json"},
                idempotent=False,
            )
            if started:
                done += 1
            elif not warm or t.stats.throttled:
                started.append(time.perf_counter())

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    while not started:
        await asyncio.sleep(0.05)
    await asyncio.sleep(seconds)
    stop.set()
    elapsed = time.perf_counter() - started[0]
    await asyncio.gather(*tasks)
    await t.aclose()
    return done / elapsed, done, t.stats.throttled


async def bulk(base: str, lines: list[str], n: int, pool: int, chunk: int, *, warm: bool, passes: int = 1) -> dict:
    """(b): bulk_upsert of the same n records `passes` times back to back (the first pass creates,
    the next ones update — the same cost to the service), after a warm-up that exhausts each
    identity's budget when `warm`."""
    dv = DataverseClient(transports(base, pool), chunk=chunk)
    warm_seconds = 0.0
    if warm:
        t0 = time.perf_counter()
        while not all(t.stats.throttled for t in dv.pool):
            r = await dv.bulk_upsert(
                MILESTONES, MILESTONE, records(lines, f"warm-{uuid.uuid4().hex[:6]}", chunk * 8 * pool)
            )
            assert r.ok, r.summary()
        warm_seconds = time.perf_counter() - t0
    throttled0 = sum(t.stats.throttled for t in dv.pool)
    recs = records(lines, f"bulk-{pool}-{chunk}-{uuid.uuid4().hex[:6]}", n)
    times, requests = [], 0
    for _ in range(passes):
        t0 = time.perf_counter()
        result = await dv.bulk_upsert(MILESTONES, MILESTONE, recs)
        times.append(time.perf_counter() - t0)
        assert result.ok, result.summary()
        requests += result.bulk_requests + result.batch_requests
    out = {
        "rate": n * passes / sum(times),
        "elapsed": sum(times),
        "times": times,
        "requests": requests,
        "throttled": sum(t.stats.throttled for t in dv.pool) - throttled0,
        "warmup": warm_seconds,
        "ids": {r[KEY] for r in recs},
    }
    await dv.aclose()
    return out


def passes_for(n: int, rate: float, seconds: float) -> int:
    """Back-to-back passes so the measurement spans at least `seconds` at the bound rate."""
    return max(1, math.ceil(seconds * rate / n - 0.25))


def count(db: Path, ids: set[str]) -> int:
    conn = sqlite3.connect(db)
    conn.execute("CREATE TEMP TABLE want(id TEXT PRIMARY KEY)")
    conn.executemany("INSERT INTO want VALUES (?)", [(i,) for i in ids])
    n = conn.execute(f"SELECT count(*) FROM dv_{MILESTONES} m JOIN want w ON w.id = m.{KEY}").fetchone()[0]
    conn.close()
    return n


async def run(args, base: str, db: Path) -> None:
    cost = {
        "read_base": 0.010,
        "read_per_record": 0.00002,
        "write_base": 0.020,
        "write_per_record": 0.005,
        "latency_factor": args.latency_factor,
    }
    await reset_budgets(base, args.scale, cost)
    reader = DataverseClient(transports(base, 1))
    lines = [
        r["salesorderdetailid"]
        for r in await reader.query_all(
            "salesorderdetails", select=["salesorderdetailid"], filter=odata.filter_eq("msdyn_billingmethod", 192350001)
        )
    ]
    await reader.aclose()
    window = WINDOW * args.scale
    print(
        f"parameters: {args.records:,} milestones over {len(lines)} fixed-price lines; window {window:g} s (scale {args.scale:g}): "
        f"{max(1, round(REQUESTS * args.scale))} requests, {EXECUTION * args.scale:g} s execution per identity per window; "
        f"cost write_base {cost['write_base']} s + write_per_record {cost['write_per_record']} s, latency_factor {cost['latency_factor']}; "
        f"chunk {args.chunk}; simulator in its own process over loopback",
        flush=True,
    )

    window_count = args.windows
    if args.sweep:
        for chunk in (100, 250, 500, 1000):
            for pool in (1, 4):
                await reset_budgets(base, args.scale, cost)
                limit = bound(chunk, args.scale, cost) * pool
                b = await bulk(
                    base,
                    lines,
                    args.records,
                    pool,
                    chunk,
                    warm=True,
                    passes=passes_for(args.records, limit, window_count * window),
                )
                print(
                    f"chunk {chunk:>4}, pool {pool}: {b['rate']:7.1f} records/s, bound {limit:7.1f}, ratio {b['rate'] / limit:.2f} "
                    f"({len(b['times'])} × {args.records:,} in {b['elapsed']:.1f} s, {b['throttled']} throttled)",
                    flush=True,
                )
        return

    await admin(base, "PUT", "protection", json={"limits": {"enabled": False}, "cost": cost})
    raw = await bulk(base, lines, args.records, 4, args.chunk, warm=False)
    print(
        f"simulator capacity with the limits off (pool of 4, same cost latency): {raw['rate']:.0f} records/s — the ceiling of this machine, "
        f"for comparison with the bounds below",
        flush=True,
    )

    await reset_budgets(base, args.scale, cost)
    a_rate, a_done, a_thr = await one_post_per_record(
        base, lines, args.sample_seconds, args.single_concurrency, warm=True
    )
    print(
        f"(a) one POST per record, concurrency {args.single_concurrency}: {a_rate:.1f} records/s — {a_done} records in a {args.sample_seconds:g} s sample "
        f"taken after the budget was exhausted ({a_thr} throttled); {args.records:,} would take ≈ {args.records / a_rate / 60:.0f} min "
        f"(extrapolated, not run); the limits allow {single_bound(args.scale, cost):.1f}/s for single requests",
        flush=True,
    )

    for pool in (1, 4):
        limit = bound(args.chunk, args.scale, cost) * pool
        if args.fresh:
            await reset_budgets(base, args.scale, cost)
            fresh = await bulk(base, lines, args.records, pool, args.chunk, warm=False)
            print(
                f"    (fresh budget, pool of {pool}: {fresh['rate']:.1f} records/s, {args.records:,} in {fresh['elapsed']:.1f} s — includes the free first window)",
                flush=True,
            )
        await reset_budgets(base, args.scale, cost)
        b = await bulk(
            base,
            lines,
            args.records,
            pool,
            args.chunk,
            warm=True,
            passes=passes_for(args.records, limit, window_count * window),
        )
        landed = count(db, b["ids"])
        print(
            f"(b) bulk_upsert, pool of {pool}: {b['rate']:.1f} records/s steady state — {len(b['times'])} back-to-back load(s) of {args.records:,} "
            f"in {', '.join(f'{t:.1f}' for t in b['times'])} s ({b['requests']} requests, {b['throttled']} throttled, warm-up {b['warmup']:.1f} s); "
            f"rows in Dataverse afterwards: {landed:,}",
            flush=True,
        )
        print(
            f"    bound {limit:.1f} records/s ({pool} × {bound(args.chunk, args.scale, cost):.1f}) → (b)/bound = {b['rate'] / limit:.2f} (target ≥ 0.85); "
            f"(b)/(a) = {b['rate'] / a_rate:.1f}× (target ≥ 20×)",
            flush=True,
        )
        if landed != args.records:
            raise SystemExit(f"lost or duplicated writes: {landed:,} of {args.records:,} rows")
    print(machine())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--scale", type=float, default=0.01)
    ap.add_argument("--latency-factor", type=float, default=0.02)
    ap.add_argument("--chunk", type=int, default=DEFAULT_CHUNK)
    ap.add_argument("--sample-seconds", type=float, default=15.0)
    ap.add_argument("--single-concurrency", type=int, default=4)
    ap.add_argument(
        "--windows", type=float, default=8, help="measure (b) over at least this many windows (back-to-back loads)"
    )
    ap.add_argument("--fresh", action="store_true", help="also show (b) from a fresh budget (first window free)")
    ap.add_argument("--sweep", action="store_true", help="measure pool-of-1 throughput for several chunk sizes")
    args = ap.parse_args()
    source = world("small")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.sqlite"
        src, dst = sqlite3.connect(source), sqlite3.connect(db)
        src.backup(dst)
        src.close()
        dst.close()
        with served(db) as base:
            asyncio.run(run(args, base, db))


if __name__ == "__main__":
    main()
