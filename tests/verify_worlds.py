"""Rehearsed workspaces for the validation-suite tests: one per fault, made once per session.

Each is a copy of the seeded template world, rehearsed end to end in-process with map state
withheld ("blind": the runbook's map steps become attestations, so a map fault goes through to
the end), exactly as tests/test_rehearsal_run.py runs a rehearsal. Afterwards the map state is
shown again (``map_state_hidden_from = []``) so that the validation suite can read it — unless
``blind_verify`` asks to keep it hidden from the verifying account too.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from cutover.config import Profile, load_config, update_config
from cutover.engine import RunContext, run
from cutover.journal import Journal, RunInputs
from cutover.rehearsal import RehearsalOperator, prepare_world, rehearsal_runbook
from cutover.runbook.events import RunFinished
from cutover.runbook.steps import CUTOVER as RUNBOOK  # the procedure through snapshot.after
from cutover.session import open_session
from cutover.sim.store import set_setting

CUTOVER_DATE = "2026-12-01"
ENV = "rehearsal"


@dataclass(frozen=True)
class World:
    db: Path
    workspace: Path
    extract: Path


def copy_world(template: Path, folder: Path) -> World:
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "world.sqlite"
    src, dst = sqlite3.connect(template), sqlite3.connect(db)
    src.backup(dst)
    src.close()
    dst.close()
    shutil.copyfile(template.with_suffix(".csv"), folder / "world.csv")
    return World(db, folder / "ws", folder / "world.csv")


async def _rehearse(world: World, faults: tuple[str, ...]) -> RunFinished:
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
        await prepare_world(ctx, faults, blind=True)
        events = [e async for e in run(rehearsal_runbook(RUNBOOK, faults), ctx, RehearsalOperator())]
        ctx.journal.close()
    finished = events[-1]
    assert isinstance(finished, RunFinished), events[-3:]
    return finished


def hide_map_state(db: Path, hidden: list[str]) -> None:
    conn = sqlite3.connect(db)
    try:
        set_setting(conn, "map_state_hidden_from", hidden)
        conn.commit()
    finally:
        conn.close()


def rehearse_world(template: Path, folder: Path, faults: tuple[str, ...] = (), *, blind_verify: bool = False) -> World:
    world = copy_world(template, folder)
    finished = asyncio.run(_rehearse(world, faults))
    assert finished.ok, f"the blind rehearsal stopped at {finished.stopped_at}: {finished.reason}"
    hide_map_state(world.db, ["*"] if blind_verify else [])
    return world


class WorldCache:
    """Rehearsed worlds by fault, made on first use (session scope)."""

    def __init__(self, template: Path, root: Path):
        self.template = template
        self.root = root
        self._worlds: dict[tuple, World] = {}
        self._reports: dict[tuple, object] = {}

    def world(self, *faults: str, blind_verify: bool = False) -> World:
        key = (tuple(faults), blind_verify)
        if key not in self._worlds:
            name = "-".join(faults) or "clean"
            self._worlds[key] = rehearse_world(
                self.template,
                self.root / (name + ("-blind" if blind_verify else "")),
                tuple(faults),
                blind_verify=blind_verify,
            )
        return self._worlds[key]

    def verified(self, *faults: str, blind_verify: bool = False):
        """The verification of that world (run once; its report folder stays for reading)."""
        from cutover.verification import run_verification

        key = (tuple(faults), blind_verify)
        if key not in self._reports:
            world = self.world(*faults, blind_verify=blind_verify)
            name = "-".join(faults) or "clean"
            report = self.root / "reports" / (name + ("-blind" if blind_verify else ""))
            self._reports[key] = run_verification(world.workspace, ENV, world.extract, report_dir=report)
        return self._reports[key]


_CACHES: dict[str, WorldCache] = {}


@pytest.fixture
def worlds(seeded_template, tmp_path_factory) -> WorldCache:
    """The session's one cache of rehearsed worlds, whichever test module asks first."""
    key = str(seeded_template)
    if key not in _CACHES:
        _CACHES[key] = WorldCache(seeded_template, tmp_path_factory.mktemp("verify-worlds"))
    return _CACHES[key]
