"""Request overhead of a trivial GET (WhoAmI), in-process through httpx's ASGI transport.

Target (issue #2): ≤ 2 ms median. Also prints the figure over a loopback socket.

    python benchmarks/bench_request_overhead.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx
from _common import machine, median, served, token, world

from cutover.sim.app import create_app


async def in_process(db, n: int) -> list[float]:
    app = create_app(db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
        r = await c.post(
            "/_sim/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "cutover-rehearsal",
                "client_secret": "rehearsal-secret",
                "scope": "http://127.0.0.1/.default",
            },
        )
        h = {"Authorization": f"Bearer {r.json()['access_token']}"}
        for _ in range(50):
            await c.get("/api/data/v9.2/WhoAmI", headers=h)
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            r = await c.get("/api/data/v9.2/WhoAmI", headers=h)
            out.append(time.perf_counter() - t0)
            assert r.status_code == 200
        return out


def over_socket(db, n: int) -> list[float]:
    with served(db) as base, httpx.Client() as c:
        h = {"Authorization": f"Bearer {token(c, base)}"}
        for _ in range(50):
            c.get(f"{base}/api/data/v9.2/WhoAmI", headers=h)
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            c.get(f"{base}/api/data/v9.2/WhoAmI", headers=h)
            out.append(time.perf_counter() - t0)
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=2000)
    args = ap.parse_args()
    db = world("small")
    a = asyncio.run(in_process(db, args.requests))
    print(
        f"in-process: median {median(a) * 1000:.3f} ms, p95 {sorted(a)[int(len(a) * 0.95)] * 1000:.3f} ms over {len(a)} requests (target ≤ 2 ms)"
    )
    b = over_socket(db, args.requests)
    print(f"loopback socket: median {median(b) * 1000:.3f} ms, p95 {sorted(b)[int(len(b) * 0.95)] * 1000:.3f} ms")
    print(machine())


if __name__ == "__main__":
    main()
