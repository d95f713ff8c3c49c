"""The operator console's responsiveness: cold start, and the event loop while a migration runs.

1. **Cold start to first frame**, each in a fresh process: (a) the app headless
   (``App.run_test``) from before ``import cutover.tui.app`` to the first idle with the runbook
   screen mounted; (b) ``python -m cutover.cli tui --screenshot`` wall time.
2. **Under load**: a world seeded with ``--invoiced N`` (default 20,000) through the CLI in a
   subprocess, a rehearsal profile on it, and the runbook through ``migrate.milestones`` run in
   the console's worker by a pilot (manual steps attested as an operator does). While
   ``migrate.milestones`` runs: event-loop lag sampled by a ticker every 10 ms (p50, p95, max),
   and input-to-render latency (a key pressed to the screen drawn again, ``down``/``up`` in the
   step list). Target: p95 lag ≤ 50 ms.

    python benchmarks/bench_tui.py [--invoiced 20000] [--keep DIR]

Prints the figures with ``uptime`` (the machine's load) and the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.tui.helpers drives the console as the tests do

ENV = "rehearsal"
CUTOVER_DATE = "2026-12-01"


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "(uptime not available)"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


# --- 1. cold start --------------------------------------------------------------------------------

COLD = """
import time, asyncio, sys
t0 = time.perf_counter()
from pathlib import Path
from cutover.tui.app import CutoverApp
from cutover.tui.screens.runbook import RunbookScreen
t_import = time.perf_counter()
async def main():
    app = CutoverApp(Path(sys.argv[1]), sys.argv[2], claim=False)
    async with app.run_test(size=(120, 40)) as pilot:
        while not isinstance(app.screen, RunbookScreen):
            await pilot.pause(0.005)
        await pilot.pause()
        print(f"{t_import - t0:.3f} {time.perf_counter() - t0:.3f}")
asyncio.run(main())
"""


def cold_start(ws: Path) -> tuple[float, float, float]:
    out = subprocess.run([sys.executable, "-c", COLD, str(ws), ENV], capture_output=True, text=True, check=True)
    imports, first_frame = (float(x) for x in out.stdout.split()[-2:])
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "cutover.cli", "tui", "--workspace", str(ws), "--env", ENV,
         "--screenshot", str(ws / "shot.svg")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return imports, first_frame, time.perf_counter() - t0


# --- 2. under load --------------------------------------------------------------------------------


def seed(folder: Path, invoiced: int) -> tuple[Path, Path]:
    db, extract = folder / "world.sqlite", folder / "world.csv"
    if not db.exists():
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "cutover.cli", "sim", "seed", "--db", str(db), "--extract", str(extract),
             "--scale", "small", "--invoiced", str(invoiced), "--uninvoiced", str(invoiced // 10),
             "--contracts", "400"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        print(f"seeded {invoiced:,} invoiced milestones in {time.perf_counter() - t0:.1f} s", flush=True)
    return db, extract


async def under_load(ws: Path, extract: Path) -> dict[str, float]:
    from cutover.runbook.steps import CUTOVER
    from cutover.tui.app import CutoverApp
    from cutover.tui.engine_worker import RunDriver
    from tests.tui.helpers import drive_run, runbook

    book = CUTOVER.until("migrate.milestones")
    app = CutoverApp(ws, ENV, extract, None, cutover_date=CUTOVER_DATE,
                     driver_factory=lambda w, e: RunDriver(w, e, runbook=book))  # fmt: skip
    lags: list[float] = []
    latencies: list[float] = []
    sampling = asyncio.Event()

    async def ticker() -> None:
        interval = 0.010
        while True:
            t = time.perf_counter()
            await asyncio.sleep(interval)
            if sampling.is_set():
                lags.append(max(0.0, time.perf_counter() - t - interval))

    async with app.run_test(size=(120, 40)) as pilot:
        task = asyncio.create_task(ticker())
        screen = runbook(app)
        await pilot.pause()
        t_run = time.perf_counter()
        await pilot.press("r")
        migrate_started = 0.0

        def in_migration() -> bool:
            return screen.running_step == "migrate.milestones"

        async def watch() -> None:
            nonlocal migrate_started
            key = "down"
            while screen.running or not migrate_started:
                if in_migration() and app.screen is screen:
                    if not migrate_started:
                        migrate_started = time.perf_counter()
                    sampling.set()
                    before = screen.query_one("#steps").highlighted
                    t0 = time.perf_counter()
                    await pilot.press(key)
                    while screen.query_one("#steps").highlighted == before:
                        await asyncio.sleep(0.001)
                    await pilot.pause()
                    latencies.append(time.perf_counter() - t0)
                    key = "up" if key == "down" else "down"
                    await asyncio.sleep(0.25)
                else:
                    sampling.clear()
                    await asyncio.sleep(0.05)
                if not screen.running and migrate_started:
                    break

        watcher = asyncio.create_task(watch())
        await drive_run(pilot, timeout=1800)
        watcher.cancel()
        sampling.clear()
        task.cancel()
        ok = screen.last_finished is not None and screen.last_finished.ok
    return {
        "run_s": time.perf_counter() - t_run,
        "ok": ok,
        "migrate_s": (time.perf_counter() - migrate_started) if migrate_started else float("nan"),
        "samples": len(lags),
        "lag_p50": percentile(lags, 50) * 1000,
        "lag_p95": percentile(lags, 95) * 1000,
        "lag_max": (max(lags) if lags else float("nan")) * 1000,
        "keys": len(latencies),
        "input_p50": percentile(latencies, 50) * 1000,
        "input_p95": percentile(latencies, 95) * 1000,
        "input_max": (max(latencies) if latencies else float("nan")) * 1000,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--invoiced", type=int, default=20_000)
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder (kept; the world is reused)")
    args = ap.parse_args()
    from benchmarks._common import machine
    from cutover.config import Profile, update_config

    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-tui-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}\nload before: {uptime()}", flush=True)
    db, extract = seed(folder, args.invoiced)
    ws = folder / f"ws-{time.strftime('%Y%m%dT%H%M%S')}"
    update_config(ws, lambda c: c.add(Profile(name=ENV, kind="rehearsal", sim_db=str(db)), replace=True))

    imports, first, shot = cold_start(ws)
    print(f"cold start: imports {imports * 1000:.0f} ms; first frame (run_test, runbook mounted) {first * 1000:.0f} ms; "
          f"`cutover tui --screenshot` process {shot:.2f} s", flush=True)  # fmt: skip

    r = asyncio.run(under_load(ws, extract))
    print(
        f"run through migrate.milestones ({args.invoiced:,} invoiced): {'ok' if r['ok'] else 'NOT ok'}, "
        f"{r['run_s']:.1f} s (migrate.milestones {r['migrate_s']:.1f} s)\n"
        f"event-loop lag during migrate.milestones ({r['samples']:,} samples of a 10 ms ticker): "
        f"p50 {r['lag_p50']:.1f} ms, p95 {r['lag_p95']:.1f} ms, max {r['lag_max']:.1f} ms "
        f"(target p95 <= 50 ms: {'met' if r['lag_p95'] <= 50 else 'NOT met'})\n"
        f"input to render ({r['keys']} keys): p50 {r['input_p50']:.1f} ms, p95 {r['input_p95']:.1f} ms, "
        f"max {r['input_max']:.1f} ms",
        flush=True,
    )
    print(f"load after: {uptime()}")


if __name__ == "__main__":
    main()
