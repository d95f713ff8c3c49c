"""Paging all GL account entries through the F&O endpoint with one client stream.

Target (issue #2): ≥ 100,000 rows/s for 1,000,000 lines. Server in its own process over a
loopback socket, client following @odata.nextLink and parsing every page with exact
decimals (json.loads(parse_float=Decimal)), as cutover's own client must.

    python benchmarks/bench_fno_paging.py [--lines 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import time
from decimal import Decimal

import httpx
from _common import machine, median, served, token, world


def walk(client: httpx.Client, base: str, headers: dict) -> tuple[int, int]:
    url = f"{base}/data/GeneralJournalAccountEntryBiEntities"
    rows = pages = 0
    while url:
        r = client.get(url, headers=headers)
        r.raise_for_status()
        page = json.loads(r.content, parse_float=Decimal)
        rows += len(page["value"])
        pages += 1
        url = page.get("@odata.nextLink")
    return rows, pages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    db = world(f"gl-{args.lines}", gl_lines=args.lines)
    with served(db) as base, httpx.Client(timeout=120) as client:
        headers = {"Authorization": f"Bearer {token(client, base)}"}
        times = []
        for i in range(args.repeat):
            t0 = time.perf_counter()
            rows, pages = walk(client, base, headers)
            times.append(time.perf_counter() - t0)
            print(
                f"run {i + 1}: {rows:,} rows in {pages} pages, {times[-1]:.2f} s, {rows / times[-1]:,.0f} rows/s",
                flush=True,
            )
        if rows != args.lines:
            raise SystemExit(f"walk returned {rows:,} rows, expected {args.lines:,}")
        m = median(times)
        print(f"median: {m:.2f} s for {rows:,} rows = {rows / m:,.0f} rows/s (target ≥ 100,000) — {machine()}")


if __name__ == "__main__":
    main()
