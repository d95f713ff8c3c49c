"""A small runbook of synthetic steps over a scripted "world", as tests/test_engine.py builds it,
so the TUI's safety rules are tested on a production profile with no real service."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from cutover.config import Profile, update_config
from cutover.runbook.model import Evidence, Kind, Runbook, Step
from cutover.tui.app import CutoverApp
from cutover.tui.engine_worker import RunDriver

ENV = "night"


def world_runbook(world: dict) -> Runbook:
    """load (auto, writes) → stop maps (manual, checked) → invoice (auto, gated, point of no return)."""

    async def load(ctx):
        for n in (1, 2, 3):
            if world.get("hold_at") == n:
                world["held"] = asyncio.Event()
                await world["held"].wait()  # a step that takes its time
            world["loaded"] = n
            yield {"message": f"chunk {n}", "done": n, "total": 3, "rate": 1.5, "eta": 2.0, "throttled": 0, "failed": 0}

    async def loaded(ctx):
        n = world.get("loaded", 0)
        return Evidence.ok("3 of 3 loaded") if n == 3 else Evidence.failed(f"{n} of 3 loaded")

    async def maps_stopped(ctx):
        running = [m for m, state in world["maps"].items() if state != "stopped"]
        return Evidence.failed(f"{', '.join(running)} still running") if running else Evidence.ok("all three stopped")

    async def invoice(ctx):
        world["invoiced"] = world.get("invoiced", 0) + 1
        yield "invoiced"

    return Runbook(
        (
            Step("load", "Load milestones", Kind.AUTO, action=load, check=loaded, writes=True, what="Write the milestones."),
            Step(
                "maps.stop",
                "Stop the maps",
                Kind.MANUAL,
                depends_on=("load",),
                click_path=("Data management", "Dual-write", "Stop"),
                check=maps_stopped,
            ),
            Step(
                "invoice",
                "Confirm invoices",
                Kind.AUTO,
                depends_on=("maps.stop",),
                gate=maps_stopped,
                gate_rule="no invoice before the three maps are stopped",
                action=invoice,
                writes=True,
                point_of_no_return=True,
                what="Confirm every invoice.",
            ),
        )
    )  # fmt: skip


def production_workspace(ws: Path, kind: str = "production") -> Path:
    profile = Profile(
        name=ENV,
        kind=kind,
        dataverse_url="https://contoso.crm.dynamics.com",
        fno_url="https://contoso.operations.dynamics.com",
        tenant="contoso.onmicrosoft.com",
        client_id="00000000-0000-0000-0000-000000000001",
        auth="device-code",
    )
    update_config(ws, lambda c: c.add(profile, replace=True))
    (ws / "extract.csv").write_text("legacy_id\nLEG-1\n", encoding="utf-8")
    return ws


@contextlib.asynccontextmanager
async def no_session(**_kw):
    yield None


def synthetic_app(ws: Path, world: dict, **kw) -> CutoverApp:
    def driver(workspace: Path, env: str) -> RunDriver:
        return RunDriver(workspace, env, runbook=world_runbook(world), opener=no_session)

    return CutoverApp(ws, ENV, ws / "extract.csv", None, cutover_date="2026-12-01", driver_factory=driver, **kw)
