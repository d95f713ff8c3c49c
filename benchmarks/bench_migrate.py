"""`cutover migrate` figures (issue #9): validate + plan 100,000 rows; load 20,000 milestones
against the service-protection bound with 1 and 4 identities, paced.

(1) validate + plan: a world seeded with 100,000 invoiced milestones and its extract; timed:
    read + file rules, the reference fetched from the simulator, every rule, the plan against
    what Dataverse holds, and the Web API records built. Target ≤ 3 s (reading, validating
    and planning; the reference fetch over the network is shown apart) and peak RSS ≤ 500 MB
    (this process; the simulator runs in its own).

(2) load: first the simulator's own ceiling on this machine (limits off, pool of 4, the same
    cost latency), then a cost model chosen so that the pool-of-4 bound is at most a third of
    that ceiling — so the ratio measures the client, not the laptop. The window is scaled so
    that it holds at least --chunks-per-window bulk requests (a bound whose one request costs
    more than the window allows would be meaningless). Each identity is paced to its window
    (cutover.bulk.Pacing) and learns the execution cost the simulator charges; after a warm-up
    (until every identity's pacer has learned, then one more window) the 20,000 records are written back to back for at least --windows windows (pass 1
    creates, later passes update the same rows: the same cost to the service; the row count
    proves nothing was duplicated). Printed: records/s, the bound, the ratio (target ≥ 0.95)
    and the throttled share of the requests.

    bound (records/s, one identity) = min(requests/window × chunk,
                                          execution/window ÷ (write_base + write_per_record × chunk) × chunk) ÷ window

    python benchmarks/bench_migrate.py [--rows 100000] [--records 20000] [--windows 4] [--skip-validate]
                                       [--pools 1,4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import resource
import sqlite3
import statistics
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import httpx
from _common import BENCH_DIR, machine

from cutover import odata
from cutover.bulk import DEFAULT_CHUNK, Pacing
from cutover.dataverse import DataverseClient
from cutover.domain import deterministic_id
from cutover.sim import seed as seeding
from cutover.sim.store import connect
from cutover.simprocess import SimulatorProcess
from cutover.transport import Transport

MILESTONES = "msdyn_contractlinescheduleofvalues"
MILESTONE = "msdyn_contractlinescheduleofvalue"
KEY = "msdyn_contractlinescheduleofvalueid"
IDENTITIES = [("cutover-rehearsal", "rehearsal-secret")] + [
    (f"cutover-rehearsal-{n}", f"rehearsal-secret-{n}") for n in (2, 3, 4)
]
WINDOW, REQUESTS, EXECUTION = 300.0, 6000, 1200.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class SimToken:
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


def transports(base: str, n: int, root: str = "/api/data/v9.2/") -> list[Transport]:
    return [Transport(f"{base}{root}", SimToken(base, cid, sec), environment="bench") for cid, sec in IDENTITIES[:n]]


class Admin:
    def __init__(self, sim: SimulatorProcess):
        self.base, self.headers = sim.url, sim.admin_headers()

    async def __call__(self, method: str, path: str, **kw) -> dict:
        async with httpx.AsyncClient(timeout=60) as c:
            r = await c.request(method, f"{self.base}/_sim/{path}", headers=self.headers, **kw)
            r.raise_for_status()
            return r.json()


def seeded(name: str, **overrides: int) -> tuple[Path, Path]:
    """A world with its legacy extract, cached under .bench/."""
    BENCH_DIR.mkdir(exist_ok=True)
    db, extract = BENCH_DIR / f"{name}.sqlite", BENCH_DIR / f"{name}-extract.csv"
    if not db.exists() or not extract.exists():
        print(f"seeding {db} …", flush=True)
        tmp = db.with_suffix(".part")
        tmp.unlink(missing_ok=True)
        conn = connect(tmp)
        scale = dataclasses.replace(seeding.SCALES["small"], **overrides)
        seeding.seed_world(conn, scale, seed=1, scale_name=name, extract_path=extract)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        tmp.rename(db)
    return db, extract


def copy(source: Path, target: Path) -> Path:
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    src.backup(dst)
    src.close()
    dst.close()
    return target


# --- (1) validate + plan --------------------------------------------------------------------------


async def validate_and_plan(args) -> None:
    try:
        from cutover.source import fetch_reference, read_extract, validate, validate_file
    except ImportError as exc:  # the source module is not there: plan only
        print(f"(1) skipped: cutover.source is not available ({exc})")
        return
    from cutover.fno import FnoClient
    from cutover.migrate import existing_frame, milestone_records, plan_migration

    db, extract = seeded(
        f"migrate-{args.rows}", invoiced_milestones=args.rows, uninvoiced_milestones=args.rows // 10, contracts=400
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = copy(db, Path(tmp) / "w.sqlite")
        async with SimulatorProcess(work) as url:
            dv = DataverseClient(transports(url, 1))
            fno = FnoClient(transports(url, 1, "/data/")[0])
            t0 = time.perf_counter()
            raw = read_extract(extract)
            t1 = time.perf_counter()
            checked = validate_file(raw, None, "2026-12-01")
            t2 = time.perf_counter()
            reference = await fetch_reference(dv, fno, raw)
            t3 = time.perf_counter()
            validated = validate(raw, reference, cutover_date="2026-12-01")
            t4 = time.perf_counter()
            existing = existing_frame(await dv.query_all(MILESTONES, select=["msdyn_contractlinescheduleofvalueid"]))
            t5 = time.perf_counter()
            plan = plan_migration(validated, existing)
            records = milestone_records(plan.create)
            t6 = time.perf_counter()
            await dv.aclose()
            await fno.transport.aclose()
    assert checked.ok and validated.ok, validated.problems_by_rule()
    local = (t1 - t0) + (t2 - t1) + (t4 - t3) + (t6 - t5)
    print(
        f"(1) {raw.frame.height:,} extract rows ({validated.rows.height:,} invoiced): read {t1 - t0:.2f} s, file rules "
        f"{t2 - t1:.2f} s, every rule {t4 - t3:.2f} s, plan + {len(records):,} records {t6 - t5:.2f} s → "
        f"{local:.2f} s (target ≤ 3 s); reference fetched over loopback {t3 - t2:.2f} s, existing milestones read "
        f"{t5 - t4:.2f} s; peak RSS {peak_rss_mb():.0f} MB (target ≤ 500 MB)",
        flush=True,
    )


# --- (2) the load -----------------------------------------------------------------------------


def records(lines: list[str], prefix: str, n: int) -> list[dict]:
    return [
        {
            KEY: deterministic_id(f"{prefix}-{i:06d}"),
            "msdyn_name": f"{prefix} milestone {i}",
            "msdyn_amount": Decimal(1000 + i % 997) + Decimal("0.25"),
            "msdyn_invoicedate": "2026-10-31",
            "msdyn_invoicestatus": 192350001,
            "msdyn_ContractLineId@odata.bind": f"/salesorderdetails({lines[i % len(lines)]})",
        }
        for i in range(n)
    ]


def bound(chunk: int, scale: float, cost: dict) -> float:
    window = WINDOW * scale
    requests, execution = max(1, round(REQUESTS * scale)), EXECUTION * scale
    per_window = min(requests * chunk, execution / (cost["write_base"] + cost["write_per_record"] * chunk) * chunk)
    return per_window / window


async def load(
    base: str, lines: list[str], n: int, pool: int, chunk: int, pacing: Pacing | None, passes: int, *, warm: bool = True
) -> dict:
    dv = DataverseClient(transports(base, pool), chunk=chunk)
    pacers: dict = {}

    async def one(recs: list[dict]):
        job = dv.bulk_job(MILESTONES, MILESTONE, recs, chunk=chunk)
        job.pacing, job.pacers = pacing, pacers
        result = await dv.run_bulk(job)
        assert result.ok, result.summary()
        return result

    # warm-up: until each identity's pacer has met its limit and learned what it costs, then one
    # more window of steady load (an unpaced client: until each identity has been throttled)
    t0 = time.perf_counter()
    while warm:
        await one(records(lines, f"warm-{uuid.uuid4().hex[:6]}", chunk * 4 * pool))
        if pacing is None and all(t.stats.throttled for t in dv.pool):
            break
        if pacing is not None and len(pacers) == pool and all(p.learned for p in pacers.values()):
            t1 = time.perf_counter()
            while time.perf_counter() - t1 < pacing.window_seconds:
                await one(records(lines, f"warm-{uuid.uuid4().hex[:6]}", chunk * 4 * pool))
            break
    warm = time.perf_counter() - t0
    throttled0 = sum(t.stats.throttled for t in dv.pool)
    recs = records(lines, f"load-{pool}-{uuid.uuid4().hex[:6]}", n)
    times, requests = [], 0
    for _ in range(passes):
        t = time.perf_counter()
        result = await one(recs)
        times.append(time.perf_counter() - t)
        requests += result.bulk_requests + result.batch_requests
    throttled = sum(t.stats.throttled for t in dv.pool) - throttled0
    out = {
        "rate": n * passes / sum(times),
        "times": times,
        "requests": requests,
        "throttled": throttled,
        "warm": warm,
        "ids": {r[KEY] for r in recs},
        "factor": max((p.factor for p in pacers.values()), default=1.0),
        "paced": sum(p.waited for p in pacers.values()),
        "learning": (
            f"raised {first.learned}×, lowered {first.lowered}×, {first.stale} stale throttles"
            + (" on the first identity" if len(pacers) > 1 else "")
            if (first := next(iter(pacers.values()), None))
            else "not paced"
        ),
    }
    await dv.aclose()
    return out


def count(db: Path, ids: set[str]) -> int:
    conn = sqlite3.connect(db)
    conn.execute("CREATE TEMP TABLE want(id TEXT PRIMARY KEY)")
    conn.executemany("INSERT INTO want VALUES (?)", [(i,) for i in ids])
    n = conn.execute(f"SELECT count(*) FROM dv_{MILESTONES} m JOIN want w ON w.id = m.{KEY}").fetchone()[0]
    conn.close()
    return n


async def load_figures(args) -> None:
    db, _ = seeded("migrate-load")
    with tempfile.TemporaryDirectory() as tmp:
        work = copy(db, Path(tmp) / "w.sqlite")
        sim = SimulatorProcess(work)
        async with sim as url:
            admin = Admin(sim)
            reader = DataverseClient(transports(url, 1))
            lines = [
                r["salesorderdetailid"]
                for r in await reader.query_all(
                    "salesorderdetails",
                    select=["salesorderdetailid"],
                    filter=odata.filter_eq("msdyn_billingmethod", 192350001),
                )
            ]
            await reader.aclose()
            base_cost = {
                "read_base": 0.010,
                "read_per_record": 0.00002,
                "write_base": 0.020,
                "latency_factor": args.latency_factor,
            }

            # the simulator's own ceiling on this machine
            await admin(
                "PUT",
                "protection",
                json={"limits": {"enabled": False}, "cost": {**base_cost, "write_per_record": 0.005}},
            )
            ceiling = (await load(url, lines, args.records, 4, args.chunk, None, 1, warm=False))["rate"]
            # a cost model whose pool-of-4 bound is a third of that ceiling (at most)
            per_identity = ceiling / 3 / 4
            write_per_record = max(
                0.005, (EXECUTION / WINDOW / per_identity * args.chunk - base_cost["write_base"]) / args.chunk
            )
            cost = {**base_cost, "write_per_record": round(write_per_record, 6)}
            request_cost = cost["write_base"] + cost["write_per_record"] * args.chunk
            scale = max(args.min_scale, args.chunks_per_window * request_cost / EXECUTION)
            window = WINDOW * scale
            print(
                f"(2) simulator ceiling (limits off, pool of 4, latency factor {args.latency_factor}): {ceiling:,.0f} records/s. "
                f"Cost model: write_base {cost['write_base']} s + write_per_record {cost['write_per_record']} s "
                f"({request_cost:.2f} s per {args.chunk}-record request); window scale {scale:.4f} ({window:.1f} s, "
                f"{max(1, round(REQUESTS * scale))} requests, {EXECUTION * scale:.1f} s execution per identity); "
                f"pool-of-4 bound {4 * bound(args.chunk, scale, cost):,.0f} records/s = {4 * bound(args.chunk, scale, cost) / ceiling:.2f} of the ceiling",
                flush=True,
            )
            for pool in args.pools:
                limit = bound(args.chunk, scale, cost) * pool
                passes = max(1, math.ceil(args.windows * window * limit / args.records - 0.25))
                for paced in (True, False) if args.compare else (True,):
                    ratios = []
                    for _ in range(args.repeat):
                        await admin("PUT", "protection", json={"scale": scale, "cost": cost})
                        pacing = Pacing(window_scale=scale) if paced else None
                        b = await load(url, lines, args.records, pool, args.chunk, pacing, passes)
                        landed = count(work, b["ids"])
                        share = b["throttled"] / max(1, b["requests"] + b["throttled"])
                        ratios.append(b["rate"] / limit)
                        print(
                            f"    pool of {pool}, {'paced' if paced else 'unpaced'}: {b['rate']:,.1f} records/s over {passes} × "
                            f"{args.records:,} in {', '.join(f'{t:.1f}' for t in b['times'])} s — bound {limit:,.1f} → ratio "
                            f"{b['rate'] / limit:.3f} (target ≥ 0.95); throttled {b['throttled']} of {b['requests'] + b['throttled']} "
                            f"requests ({share:.1%}); learned execution factor {b['factor']:.1f} ({b['learning']}), "
                            f"paced waits {b['paced']:.1f} s, warm-up {b['warm']:.1f} s; rows {landed:,}",
                            flush=True,
                        )
                        if landed != args.records:
                            raise SystemExit(f"lost or duplicated writes: {landed:,} of {args.records:,}")
                    if args.repeat > 1:
                        print(
                            f"    pool of {pool}, {'paced' if paced else 'unpaced'}: median ratio "
                            f"{statistics.median(ratios):.3f} of {args.repeat} runs ({', '.join(f'{r:.3f}' for r in ratios)})",
                            flush=True,
                        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000, help="invoiced rows in the extract for (1)")
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--chunk", type=int, default=DEFAULT_CHUNK)
    ap.add_argument("--latency-factor", type=float, default=0.02)
    ap.add_argument("--windows", type=float, default=4, help="measure each load over at least this many windows")
    ap.add_argument("--chunks-per-window", type=float, default=12)
    ap.add_argument("--min-scale", type=float, default=0.01)
    ap.add_argument("--compare", action="store_true", help="also run each load unpaced")
    ap.add_argument("--skip-validate", action="store_true")
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--pools", default="1,4", help="identity pool sizes to load with, comma-separated")
    ap.add_argument("--repeat", type=int, default=1, help="loads per pool size (the median ratio is printed)")
    args = ap.parse_args()
    try:
        args.pools = [int(p) for p in args.pools.split(",")]
    except ValueError:
        ap.error(f"--pools: expected comma-separated pool sizes such as 1,4, got {args.pools!r}")
    if any(p not in range(1, len(IDENTITIES) + 1) for p in args.pools):
        ap.error(f"--pools: each pool size must be 1 to {len(IDENTITIES)} (the simulator's identities)")
    if args.repeat < 1:
        ap.error("--repeat: at least 1")
    if not args.skip_validate:
        asyncio.run(validate_and_plan(args))
    if not args.skip_load:
        asyncio.run(load_figures(args))
    print(machine())


if __name__ == "__main__":
    main()
