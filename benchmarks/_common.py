"""Shared plumbing for the benchmark scripts: a cached seeded world and a simulator subprocess."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from cutover.sim import seed as seeding
from cutover.sim.store import connect

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


@contextlib.contextmanager
def served(db: Path) -> Iterator[str]:
    """`cutover sim serve` in its own process (as on the night: server and client apart)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cutover.cli", "sim", "serve", "--db", str(db), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise RuntimeError(f"simulator did not start: {line!r}")
        yield line.split()[-1]
    finally:
        proc.terminate()
        proc.wait(10)


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
