"""The runbook's `verify` and `signoff` steps (runbook/verify_steps.py), appended to the runbook
and performed by a rehearsal; and the same validation suite run from an installed wheel."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import venv
from pathlib import Path
from types import SimpleNamespace

from cutover.config import Profile, load_config, update_config
from cutover.engine import RunContext, run
from cutover.journal import Journal, RunInputs
from cutover.rehearsal import RehearsalOperator, prepare_world, rehearsal_runbook
from cutover.runbook.events import CheckFailed, RunFinished, StepDone
from cutover.runbook.steps import CUTOVER as RUNBOOK  # the procedure through snapshot.after
from cutover.runbook.verify_steps import REPORT_KEY, SIGNOFF_STEP, VERIFY_STEP, VERIFY_STEPS, latest_report
from cutover.session import open_session
from cutover.signoff import sign

from . import verify_worlds
from .verify_worlds import CUTOVER_DATE, ENV, copy_world

worlds = verify_worlds.worlds  # the session's shared cache of rehearsed worlds (a fixture)
ROOT = Path(__file__).resolve().parent.parent


async def _rehearse_with_verify(world) -> list:
    ws = world.workspace
    update_config(ws, lambda c: c.add(Profile(name=ENV, kind="rehearsal", sim_db=str(world.db)), replace=True))
    profile = load_config(ws).get(ENV)
    async with open_session(profile, ws, write_pool=True) as session:
        ctx = RunContext(
            env=ENV,
            profile=profile,
            workspace=ws,
            journal=Journal.open(ws),
            session=session,
            inputs=RunInputs.of(world.extract, None, CUTOVER_DATE),
            rehearsal=True,
        )
        await prepare_world(ctx, ())
        events = [e async for e in run(rehearsal_runbook(RUNBOOK.extended(*VERIFY_STEPS)), ctx, RehearsalOperator())]
        ctx.journal.close()
    return events


def test_a_rehearsal_runs_verify_and_waits_for_two_signatures(seeded_template, tmp_path):
    world = copy_world(seeded_template, tmp_path / "world")
    events = asyncio.run(_rehearse_with_verify(world))
    done = [e.step for e in events if isinstance(e, StepDone)]
    assert done[-1] == "verify" and done[:-1] == list(RUNBOOK.ids)
    finished = events[-1]
    assert isinstance(finished, RunFinished) and not finished.ok and finished.stopped_at == "signoff"
    failed = [e for e in events if isinstance(e, CheckFailed)]
    assert failed and "2 more signature(s)" in failed[-1].summary

    ctx = SimpleNamespace(workspace=world.workspace, env=ENV, state={})
    report = latest_report(ctx)
    assert report is not None and report.parent == world.workspace / "reports"
    assert asyncio.run(VERIFY_STEP.check(ctx)).status == "ok"
    sign(report, "Ada Controller", "Finance controller")
    assert asyncio.run(SIGNOFF_STEP.check(ctx)).status == "failed"
    sign(report, "Bob Auditor", "Internal audit")
    evidence = asyncio.run(SIGNOFF_STEP.check(ctx))
    assert evidence.status == "ok" and "Ada Controller" in evidence.summary and "Bob Auditor" in evidence.summary


def test_the_verify_check_reads_a_failed_or_incomplete_pack(worlds):
    failed = SimpleNamespace(
        workspace=Path("/nonexistent"),
        env=ENV,
        state={REPORT_KEY: str(worlds.verified("maps-not-restarted").report_dir)},
    )
    evidence = asyncio.run(VERIFY_STEP.check(failed))
    assert evidence.status == "failed" and "dual-write maps" in evidence.summary
    blind = SimpleNamespace(
        workspace=Path("/nonexistent"), env=ENV, state={REPORT_KEY: str(worlds.verified(blind_verify=True).report_dir)}
    )
    assert asyncio.run(VERIFY_STEP.check(blind)).status == "not-verified"


def test_the_suite_runs_from_an_installed_wheel(worlds, tmp_path):
    world = worlds.world()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "w"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "w").glob("cutover-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
    )
    probe = (
        "import sys, cutover\n"
        "from cutover.verification import run_verification\n"
        f"r = run_verification({str(world.workspace)!r}, {ENV!r}, {str(world.extract)!r}, report_dir={str(tmp_path / 'report')!r})\n"
        "print(cutover.__file__); print(r.verdict, r.exit_code, len(r.scenarios))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(python), "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    package, outcome = out.stdout.splitlines()[-2:]
    assert str(env_dir) in package, "the wheel's copy ran, not the checkout"
    assert outcome == "passed 0 10", (tmp_path / "report" / "pytest.log").read_text()[-2000:]
    log = (tmp_path / "report" / "pytest.log").read_text()
    assert str(ROOT / "checks") not in log and str(ROOT / "features") not in log
