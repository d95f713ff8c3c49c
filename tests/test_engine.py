"""The engine's rules, on a small runbook of synthetic steps over a scripted "world".

The steps here stand in for the real ones (which read Dataverse and F&O); what is tested is
what the engine does with them: journal first, gates, attestations checked against evidence,
production confirmation, point of no return, resume, same inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutover.config import Profile
from cutover.engine import RunContext, first_unfinished, run, step_states
from cutover.errors import InputError, WrongEnvironment
from cutover.journal import Journal, RunInputs
from cutover.runbook.events import (
    Attested,
    CheckFailed,
    NotVerified,
    RunFinished,
    StepBlocked,
    StepDone,
    StepFailed,
    StepProgress,
)
from cutover.runbook.model import Evidence, Kind, Runbook, Step
from cutover.runbook.operator import Attestation


class ScriptedOperator:
    def __init__(self, name="ops@contoso", attest=True, production=True, point=True, ack=None):
        self.name, self._attest, self._production, self._point, self._ack = name, attest, production, point, ack
        self.asked: list[tuple[str, str]] = []

    async def attest(self, step, evidence):
        self.asked.append(("attest", step.id))
        return Attestation(self.name, f"done: {step.title}") if self._attest else None

    async def confirm_production(self, step, environment):
        self.asked.append(("production", step.id))
        return self._production

    async def confirm_point_of_no_return(self, step):
        self.asked.append(("point", step.id))
        return self._point

    async def acknowledge_not_verified(self, step, evidence):
        self.asked.append(("ack", step.id))
        return self._ack


def world_runbook(world: dict) -> Runbook:
    """load (auto) → stop maps (manual, checked against world['maps']) → invoice (auto, gated, point of no return)."""

    async def load(ctx):
        for n in (1, 2, 3):
            if world.get("crash_at") == n:
                raise RuntimeError("power cut")
            world["loaded"] = n
            yield {"message": f"chunk {n}", "done": n, "total": 3}

    async def loaded(ctx):
        return (
            Evidence.ok("3 of 3 loaded")
            if world.get("loaded") == 3
            else Evidence.failed(f"{world.get('loaded', 0)} of 3 loaded")
        )

    async def maps_stopped(ctx):
        if world.get("maps") is None:
            return Evidence.not_verified("map state cannot be read with this account")
        running = [m for m, state in world["maps"].items() if state != "stopped"]
        return Evidence.failed(f"{', '.join(running)} still running") if running else Evidence.ok("all three stopped")

    async def invoice(ctx):
        world["invoiced"] = world.get("invoiced", 0) + 1
        yield "invoiced"

    return Runbook(
        (
            Step("load", "Load milestones", Kind.AUTO, action=load, check=loaded, writes=True),
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
            ),
        )
    )


def context(tmp_path: Path, kind="rehearsal", inputs=None) -> RunContext:
    profile = Profile(name="night", kind=kind, dataverse_url="https://a.crm.dynamics.com" if kind != "rehearsal" else "http://127.0.0.1:9",
                      fno_url="https://a.operations.dynamics.com" if kind != "rehearsal" else "http://127.0.0.1:9",
                      **({"tenant": "contoso.onmicrosoft.com", "client_id": "c", "auth": "device-code"} if kind != "rehearsal" else {}))  # fmt: skip
    return RunContext(env="night", profile=profile, workspace=tmp_path, journal=Journal.open(tmp_path), inputs=inputs)


async def collect(runbook, ctx, operator):
    return [event async for event in run(runbook, ctx, operator)]


async def test_a_clean_run_journals_every_event_before_yielding_it(tmp_path):
    world = {"maps": {"milestones": "stopped", "actuals": "stopped", "invoices": "stopped"}}
    ctx = context(tmp_path)
    events = await collect(world_runbook(world), ctx, ScriptedOperator())
    assert isinstance(events[-1], RunFinished) and events[-1].ok
    journal_kinds = [e.kind for e in ctx.journal.entries("night")]
    assert journal_kinds == [e.kind for e in events], "the journal holds exactly what was yielded, in order"
    assert [e.figures["done"] for e in events if isinstance(e, StepProgress) and e.step == "load"] == [1, 2, 3]
    done = [e for e in events if isinstance(e, StepDone)]
    assert [d.step for d in done] == ["load", "maps.stop", "invoice"]
    finished_rows = {e.step: e for e in ctx.journal.entries("night") if e.kind == StepDone.kind}
    assert all(d.head_hash == finished_rows[d.step].hash and d.head_seq == finished_rows[d.step].seq for d in done)
    assert ctx.journal.recorded_head() == ctx.journal.head(), "the head is anchored outside the database at the end"
    attested = [e for e in ctx.journal.entries("night") if e.kind == Attested.kind]
    assert attested[0].actor == "ops@contoso" and attested[0].data["statement"] == "done: Stop the maps"
    assert ctx.journal.verify().ok


async def test_an_attestation_contradicted_by_live_state_fails_the_step(tmp_path):
    world = {"maps": {"milestones": "stopped", "actuals": "stopped", "invoices": "running"}}
    ctx = context(tmp_path)
    events = await collect(world_runbook(world), ctx, ScriptedOperator())
    failed = [e for e in events if isinstance(e, CheckFailed)]
    assert failed and failed[0].step == "maps.stop"
    assert "the attestation is contradicted by live state: invoices still running" == failed[0].summary
    assert events[-1] == RunFinished(
        None,
        ok=False,
        stopped_at="maps.stop",
        reason=failed[0].summary,
        head_seq=events[-1].head_seq,
        head_hash=events[-1].head_hash,
    )
    assert "invoiced" not in world


async def test_a_gate_that_does_not_hold_blocks_the_step_even_after_the_attested_step(tmp_path):
    """The maps were stopped and attested; someone restarts one before invoicing: blocked."""
    world = {"maps": {"milestones": "stopped", "actuals": "stopped", "invoices": "stopped"}}
    ctx = context(tmp_path)
    runbook = world_runbook(world)
    operator = ScriptedOperator(point=False)  # stop before invoicing, then change the world
    events = await collect(runbook, ctx, operator)
    assert events[-1].stopped_at == "invoice" and "not confirmed" in events[-1].reason
    world["maps"]["actuals"] = "running"
    events = await collect(runbook, ctx, ScriptedOperator())
    blocked = [e for e in events if isinstance(e, StepBlocked)]
    assert (
        blocked[0].step == "invoice"
        and blocked[0].reason == "no invoice before the three maps are stopped: actuals still running"
    )
    assert "invoiced" not in world


async def test_unreadable_evidence_is_journaled_and_needs_a_name_on_production(tmp_path):
    world = {"maps": None}
    events = await collect(world_runbook(world), context(tmp_path / "reh"), ScriptedOperator())
    assert events[-1].ok
    assert [e.step for e in events if isinstance(e, NotVerified)] == ["maps.stop", "invoice"]

    world = {"maps": None}
    ctx = context(tmp_path / "prod", kind="production")
    events = await collect(world_runbook(world), ctx, ScriptedOperator(ack=None))
    assert events[-1].stopped_at == "maps.stop" and "not acknowledged" in events[-1].reason
    events = await collect(world_runbook(world), ctx, ScriptedOperator(ack="controller@contoso"))
    acks = [e for e in events if isinstance(e, NotVerified) and e.step == "maps.stop"]
    assert acks[0].acknowledged_by == "controller@contoso" and events[-1].ok


async def test_production_writes_need_the_environment_name_typed_again(tmp_path):
    world = {"maps": {"milestones": "stopped", "actuals": "stopped", "invoices": "stopped"}}
    ctx = context(tmp_path, kind="production")
    operator = ScriptedOperator(production=False)
    events = await collect(world_runbook(world), ctx, operator)
    assert events[-1].stopped_at == "load" and "not confirmed" in events[-1].reason
    assert "loaded" not in world and ("production", "load") in operator.asked


async def test_a_crash_mid_step_resumes_at_that_step_and_rechecks_first(tmp_path):
    world = {"maps": {"milestones": "stopped", "actuals": "stopped", "invoices": "stopped"}, "crash_at": 3}
    ctx = context(tmp_path)
    runbook = world_runbook(world)
    with pytest.raises(RuntimeError, match="power cut"):
        await collect(runbook, ctx, ScriptedOperator())
    assert first_unfinished(ctx.journal, "night", runbook) == "load"
    assert step_states(ctx.journal, "night", runbook)["load"].failed
    world.pop("crash_at")
    events = await collect(runbook, ctx, ScriptedOperator())
    assert events[0].resumed_at == "load" and events[-1].ok
    assert world["invoiced"] == 1


async def test_a_finished_step_is_not_done_again_and_a_half_done_one_is_recognised(tmp_path):
    world = {"maps": {"milestones": "stopped", "actuals": "stopped", "invoices": "stopped"}}
    ctx = context(tmp_path)
    runbook = world_runbook(world)
    await collect(runbook.until("load"), ctx, ScriptedOperator())
    # a second run: `load` is finished (not done again), the rest runs
    world["loaded"] = 3
    events = await collect(runbook, ctx, ScriptedOperator())
    assert not [e for e in events if isinstance(e, StepProgress) and e.step == "load"]
    assert events[-1].ok and world["invoiced"] == 1
    # a third run does nothing at all
    events = await collect(runbook, ctx, ScriptedOperator())
    assert [type(e).__name__ for e in events] == ["RunStarted", "RunFinished"] and events[-1].ok
    assert world["invoiced"] == 1


async def test_a_resume_with_a_changed_extract_is_refused(tmp_path):
    extract = tmp_path / "legacy.csv"
    extract.write_text("x\n1\n")
    world = {"maps": {"milestones": "stopped", "actuals": "stopped", "invoices": "stopped"}}
    ctx = context(tmp_path, inputs=RunInputs.of(extract, None, "2026-12-01"))
    await collect(world_runbook(world).until("load"), ctx, ScriptedOperator())
    extract.write_text("x\n2\n")
    ctx.inputs = RunInputs.of(extract, None, "2026-12-01")
    with pytest.raises(InputError, match="changed: the extract"):
        await collect(world_runbook(world), ctx, ScriptedOperator())


async def test_a_manual_step_without_an_attestation_waits(tmp_path):
    world = {"maps": {"milestones": "stopped", "actuals": "stopped", "invoices": "stopped"}}
    ctx = context(tmp_path)
    events = await collect(world_runbook(world), ctx, ScriptedOperator(attest=False))
    assert events[-1].stopped_at == "maps.stop" and events[-1].reason == "waiting for the operator's attestation"
    assert not [e for e in events if isinstance(e, StepFailed)]


async def test_the_wrong_environment_stops_a_writing_step(tmp_path):
    class WrongSession:
        async def check_fingerprint(self):
            raise WrongEnvironment("organization 1 is not the pinned 2")

    world = {"maps": {"milestones": "stopped", "actuals": "stopped", "invoices": "stopped"}}
    ctx = context(tmp_path)
    ctx.session = WrongSession()
    events = await collect(world_runbook(world), ctx, ScriptedOperator())
    assert events[-1].stopped_at == "load" and "pinned" in events[-1].reason and "loaded" not in world


def test_a_runbook_refuses_bad_data():
    async def act(ctx):
        yield "x"

    with pytest.raises(ValueError, match="depends on b"):
        Runbook((Step("a", "A", Kind.AUTO, action=act, depends_on=("b",)), Step("b", "B", Kind.AUTO, action=act)))
    with pytest.raises(ValueError, match="appears twice"):
        Runbook((Step("a", "A", Kind.AUTO, action=act), Step("a", "A", Kind.AUTO, action=act)))
    with pytest.raises(ValueError, match="click path"):
        Step("m", "M", Kind.MANUAL)
