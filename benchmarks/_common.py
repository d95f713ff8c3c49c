"""Shared plumbing for the benchmark scripts: a cached seeded world and a simulator subprocess."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from cutover.sim import seed as seeding
from cutover.sim.store import connect
from cutover.simprocess import SimulatorProcess

BENCH_DIR = Path(os.environ.get("CUTOVER_BENCH_DIR", Path(__file__).resolve().parent.parent / ".bench"))


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"
    )


def world(name: str, **overrides: int) -> Path:
    """A seeded world cached under .bench/ (seeded on first use)."""
    BENCH_DIR.mkdir(exist_ok=True)
    db = BENCH_DIR / f"{name}.sqlite"
    if not db.exists():
        scale = dataclasses.replace(seeding.SCALES["small"], **overrides)
        print(f"seeding {db} …", flush=True)
        tmp = db.with_suffix(".part")
        tmp.unlink(missing_ok=True)
        conn = connect(tmp)
        seeding.seed_world(conn, scale, seed=1, scale_name=name)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        tmp.rename(db)
    return db


_ADMIN_HEADERS: dict[str, dict[str, str]] = {}


@contextlib.contextmanager
def served(db: Path) -> Iterator[str]:
    """The simulator in its own process (as on the night: server and client apart), started the
    one way the tool starts it (`cutover.simprocess.SimulatorProcess`); yields its base URL."""
    simulator = SimulatorProcess(db)
    with simulator as url:
        _ADMIN_HEADERS[url] = simulator.admin_headers()
        try:
            yield url
        finally:
            _ADMIN_HEADERS.pop(url, None)


def admin_headers(base: str) -> dict[str, str]:
    """Headers for the admin surface (`/_sim/…`) of the simulator `served` started at `base`."""
    return dict(_ADMIN_HEADERS[base])


def token(
    client: httpx.Client, base: str, client_id: str = "cutover-rehearsal", secret: str = "rehearsal-secret"
) -> str:
    r = client.post(
        f"{base}/_sim/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": f"{base}/.default",
        },
    )
    r.raise_for_status()
    return r.json()["access_token"]


def median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
