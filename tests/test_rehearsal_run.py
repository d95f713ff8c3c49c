"""The whole runbook, performed by the rehearsal operator against the profile's own simulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutover.config import Profile, load_config, update_config
from cutover.engine import RunContext, run
from cutover.journal import Journal, RunInputs
from cutover.rehearsal import RehearsalOperator, prepare_world, rehearsal_runbook
from cutover.runbook.events import CheckFailed, RunFinished, StepBlocked, StepDone
from cutover.runbook.steps import CUTOVER as RUNBOOK  # the procedure through snapshot.after
from cutover.session import open_session

CUTOVER_DATE = "2026-12-01"  # the seeded world's go-live date


async def rehearse(world_db: Path, ws: Path, faults=(), *, blind=False, until=None):
    update_config(ws, lambda c: c.add(Profile(name="rehearsal", kind="rehearsal", sim_db=str(world_db)), replace=True))
    profile = load_config(ws).get("rehearsal")
    runbook = rehearsal_runbook(RUNBOOK.until(until) if until else RUNBOOK, faults)
    async with open_session(profile, ws, write_pool=True) as session:
        ctx = RunContext(
            env="rehearsal",
            profile=profile,
            workspace=ws,
            journal=Journal.open(ws),
            session=session,
            inputs=RunInputs.of(world_db.with_suffix(".csv"), None, CUTOVER_DATE),
            rehearsal=True,
        )
        await prepare_world(ctx, faults, blind=blind)
        events = [e async for e in run(runbook, ctx, RehearsalOperator())]
        ctx.journal.close()
    return events


async def test_a_clean_rehearsal_runs_the_whole_runbook(world_db, tmp_path):
    events = await rehearse(world_db, tmp_path / "ws")
    finished = events[-1]
    assert isinstance(finished, RunFinished), events[-5:]
    assert finished.ok, f"stopped at {finished.stopped_at}: {finished.reason}"
    assert [e.step for e in events if isinstance(e, StepDone)] == list(RUNBOOK.ids)


@pytest.mark.parametrize(
    ("fault", "step", "says"),
    [
        ("skip-cutover-version", "map.save-cutover-version", "TRANSSTATUS"),
        ("invoices-map-left-running", "maps.stop-three", "invoices"),
    ],
)
async def test_a_mistake_stops_the_run_at_the_step_that_sees_it(world_db, tmp_path, fault, step, says):
    events = await rehearse(world_db, tmp_path / "ws", [fault])
    finished = events[-1]
    assert not finished.ok and finished.stopped_at == step, finished
    failed = [e for e in events if isinstance(e, (CheckFailed, StepBlocked))]
    assert failed and says in (failed[-1].summary if isinstance(failed[-1], CheckFailed) else failed[-1].reason)
