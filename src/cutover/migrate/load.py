"""Running the milestone load: guards, the map check, the bulk writes, and unknown outcomes.

``run_migration(session, plan, …)`` is an async generator of :mod:`cutover.events`; it never
prints. In order:

1. **guards** — a ``production`` profile needs ``confirm_production`` equal to its name; the
   organization must be the pinned one (``session.check_fingerprint()``). Nothing is written
   before both pass.
2. **map check** — the milestone map must run a cutover version
   (:func:`cutover.mapcheck.check_milestone_map`); a version without the TRANSSTATUS value map
   refuses the load (:class:`MapVersionRefused`, exit 1) unless ``skip_map_check``; a version
   that cannot be read is a warning ("not verified") and the load goes on.
3. **load** — rows to create go with ``CreateMultiple`` (client-chosen deterministic ids), rows
   to update with ``UpsertMultiple``, both as :class:`cutover.bulk.BulkJob` over the session's
   pool, paced (:class:`cutover.bulk.Pacing`) unless told otherwise. Per-record failures carry
   the service's status, code and message and the rest goes on.
4. **resolve** — a create whose answer was lost (``OutcomeUnknown``: the connection dropped or
   the service answered 5xx) is never sent again blindly: it is read back by id and compared
   with the plan (:func:`cutover.migrate.plan.plan_migration` on just those rows). Landed and
   identical: done. Absent: sent again. Present but different: updated (it is ours: the id is
   deterministic). Up to ``resolve_rounds`` rounds; what is still unknown is a failure that
   says to run again.

The last event is :class:`cutover.events.MigrationFinished` with the :class:`Outcome`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from .. import odata
from ..bulk import ChunkOutcome, Pacer, Pacing
from ..config import Profile
from ..errors import ChecksFailed, UsageError
from ..events import ChunkLoaded, Event, MigrationFinished, Notice, PhaseFinished, PhaseStarted, Progress, RecordFailed
from ..mapcheck import NOT_CUTOVER, MapCheck, check_milestone_map
from ..source.model import RAW_SCHEMA, ValidatedExtract
from .plan import KEY, MILESTONE, SELECT, Plan, existing_frame, milestone_records, plan_migration

__all__ = [
    "DEFAULT_PACING",
    "Failure",
    "MapVersionRefused",
    "Outcome",
    "check_production",
    "read_existing",
    "run_migration",
]

#: Paced to the documented limits (6,000 requests / 1,200 s execution per 300 s per identity).
DEFAULT_PACING = Pacing()
#: Failure codes that say "we do not know whether it landed": read back, never resent blindly.
UNKNOWN_CODES = frozenset({"OutcomeUnknown", "NoOutcome", "NoAnswer", "BadBatchAnswer"})
DUPLICATE_RECORD = "0x80040237"  # a create met a record with its id: read back and compare
_READ_GROUP = 100  # ids per read-back query


class MapVersionRefused(ChecksFailed):
    """The milestone map does not run a cutover version: loading now would land milestones in
    F&O as Registered, not Invoiced (exit 1)."""

    def __init__(self, check: MapCheck):
        self.check = check
        super().__init__(f"the load was refused: {check.describe()}")


@dataclass(frozen=True)
class Failure:
    """One row of the extract that did not land, with the service's answer."""

    legacy_id: str | None
    milestone_id: str | None
    file: str | None
    row: int | None
    status: int | None
    code: str | None
    message: str

    def as_row(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "row": self.row,
            "legacy_id": self.legacy_id,
            "milestone_id": self.milestone_id,
            "status": self.status,
            "code": self.code,
            "message": self.message,
        }


@dataclass(frozen=True)
class Outcome:
    """What the load did. ``ok``: every planned row is in Dataverse and nothing conflicts."""

    planned: dict[str, int]
    created: int = 0
    updated: int = 0
    failures: tuple[Failure, ...] = ()
    confirmed_by_read_back: int = 0  # lost answers whose write had landed
    resent_after_read_back: int = 0  # lost answers whose write had not landed, sent again
    throttled: int = 0
    requests: int = 0
    seconds: float = 0.0
    map_check: MapCheck | None = None
    organization_id: str | None = None
    paced_seconds: float = 0.0  # time spent waiting on the pace (summed over identities)
    learned: dict[str, Any] = field(default_factory=dict)

    @property
    def written(self) -> int:
        return self.created + self.updated

    @property
    def conflicts(self) -> int:
        return self.planned.get("conflicts", 0)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.conflicts

    def summary(self) -> str:
        p = self.planned
        if self.written == 0 and not self.failures and p.get("create", 0) + p.get("update", 0) == 0:
            head = f"nothing to write: {p.get('identical', 0):,} milestones already identical in Dataverse"
        else:
            head = f"{self.created:,} created, {self.updated:,} updated, {p.get('identical', 0):,} already identical"
        tail = f", {len(self.failures):,} failed, {self.conflicts:,} conflicts, {p.get('excluded', 0):,} excluded"
        return head + tail


def check_production(profile: Profile, confirm: str | None) -> None:
    """A load into a ``production`` profile needs the profile's name typed again."""
    if profile.kind == "production" and confirm != profile.name:
        given = f" ('{confirm}' is not its name)" if confirm else ""
        raise UsageError(
            f"'{profile.name}' is a production environment: loading needs --confirm-production {profile.name}{given}",
            fix=f"type the profile's name again: --confirm-production {profile.name}",
        )


async def read_existing(session: Any, *, entity_set: str | None = None) -> pl.DataFrame:
    """Every milestone Dataverse holds (the fields planning compares), as EXISTING_SCHEMA."""
    name = entity_set or session.profile.entity_set("milestones")
    return existing_frame(await session.dataverse.query_all(name, select=list(SELECT)))


async def _read_ids(session: Any, entity_set: str, ids: Sequence[str]) -> pl.DataFrame:
    rows: list[dict] = []
    for start in range(0, len(ids), _READ_GROUP):
        group = [uuid.UUID(i) for i in ids[start : start + _READ_GROUP]]
        rows += await session.dataverse.query_all(entity_set, select=list(SELECT), filter=odata.in_(KEY, group))
    return existing_frame(rows)


class _Load:
    """One load's state: the records, where each came from, the events to hand out."""

    def __init__(self, session: Any, plan: Plan, pacing: Pacing | None, chunk: int | None):
        self.session = session
        self.plan = plan
        self.pacing = pacing
        self.chunk = chunk
        self.names = dict(session.profile.entity_names)
        self.entity_set = session.profile.entity_set("milestones")
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.total = plan.to_write
        self.done = 0
        self.failures: list[Failure] = []
        self.created = self.updated = 0
        self.confirmed = self.resent = 0
        self.requests = 0
        self.pacers: dict[int, Pacer] = {}  # shared by every job of this load
        self.started = time.monotonic()
        self.throttled0 = self._throttled()

    def _throttled(self) -> int:
        return sum(t.stats.throttled for t in self.session.dataverse.pool)

    def progress(self) -> Progress:
        elapsed = max(1e-9, time.monotonic() - self.started)
        rate = self.done / elapsed
        left = self.total - self.done
        eta = left / rate if rate > 0 else None
        return Progress(self.done, self.total, self._throttled() - self.throttled0, len(self.failures), rate, eta)

    def fail(self, meta: dict, status: int | None, code: str | None, message: str) -> None:
        f = Failure(meta["legacy_id"], meta["milestone_id"], meta["_file"], meta["_row"], status, code, message)
        self.failures.append(f)
        self.queue.put_nowait(RecordFailed(f.milestone_id, status, code, message, f.legacy_id, f.row, f.file))

    async def job(self, frame: pl.DataFrame, *, create: bool) -> pl.DataFrame:
        """Write `frame`'s rows; returns the rows whose outcome is unknown (to read back)."""
        if frame.height == 0:
            return frame
        records = milestone_records(frame, self.names)
        meta = frame.select("legacy_id", "milestone_id", "_file", "_row").to_dicts()
        unknown: list[int] = []

        def on_chunk(chunk: ChunkOutcome) -> None:
            ids = tuple(str(k) for _, k in chunk.succeeded if k)
            settled = len(chunk.succeeded)
            for f in chunk.failures:
                if f.code in UNKNOWN_CODES or (create and f.code == DUPLICATE_RECORD):
                    unknown.append(f.index)
                else:
                    self.fail(meta[f.index], f.status, f.code, f.message)
                    settled += 1
            if create:
                self.created += len(chunk.succeeded)
            else:
                self.updated += len(chunk.succeeded)
            self.done += settled
            self.queue.put_nowait(ChunkLoaded(len(chunk.succeeded), len(chunk.failures), self.done, self.total, ids))
            self.queue.put_nowait(self.progress())

        dv = self.session.dataverse
        job = dv.bulk_job(
            self.entity_set, MILESTONE, records, create=create, key_field=KEY, chunk=self.chunk, on_chunk=on_chunk
        )
        job.pacing = self.pacing
        job.pacers = self.pacers
        try:
            result = await dv.run_bulk(job)
        except BaseException as exc:
            partial = getattr(exc, "bulk_result", None)
            if partial is not None:  # a fatal error: what was never confirmed is reported before it propagates
                for f in partial.failures:
                    if f.index in unknown:
                        self.fail(meta[f.index], f.status, f.code, f.message)
            raise
        self.requests += result.bulk_requests + result.batch_requests
        return frame[sorted(set(unknown))] if unknown else frame.clear()

    async def resolve(self, unknown: pl.DataFrame, rounds: int) -> None:
        """Read back rows whose outcome is unknown; settle, resend or update them."""
        for n in range(1, rounds + 1):
            if unknown.height == 0:
                return
            self.queue.put_nowait(
                PhaseStarted("resolve", f"reading back {unknown.height:,} record(s) whose answer was lost")
            )
            found = await _read_ids(self.session, self.entity_set, unknown["milestone_id"].to_list())
            sub = plan_migration(
                ValidatedExtract(unknown, pl.DataFrame(schema=RAW_SCHEMA), [], unknown.height, self.plan.cutover_date),
                found,
            )
            landed = sub.identical.height
            self.confirmed += landed
            self.created += landed
            self.done += landed
            for row in sub.conflicts.iter_rows(named=True):
                self.fail(row, None, row["rule"], row["reason"])
                self.done += 1
            self.resent += sub.create.height
            self.queue.put_nowait(
                PhaseFinished(
                    "resolve",
                    f"round {n}: {landed:,} had landed, {sub.create.height:,} had not (sending again), "
                    f"{sub.update.height:,} differ (updating)",
                )
            )
            self.queue.put_nowait(self.progress())
            again = await self.job(sub.create, create=True)
            again2 = await self.job(sub.update.drop("changes"), create=False)
            unknown = pl.concat([again, again2]) if again2.height else again
        for row in unknown.iter_rows(named=True):
            self.fail(
                row,
                None,
                "OutcomeUnknown",
                f"the answer was lost {rounds} times and the read-back could not settle it; run the same command "
                "again (the record is read back first, never duplicated)",
            )
            self.done += 1

    async def run(self, rounds: int) -> None:
        try:
            unknown = await self.job(self.plan.create, create=True)
            unknown2 = await self.job(self.plan.update.drop("changes"), create=False)
            both = pl.concat([unknown, unknown2]) if unknown2.height else unknown
            await self.resolve(both, rounds)
        finally:
            self.queue.put_nowait(None)


async def run_migration(
    session: Any,
    plan: Plan,
    *,
    confirm_production: str | None = None,
    skip_map_check: bool = False,
    pacing: Pacing | None = DEFAULT_PACING,
    chunk: int | None = None,
    resolve_rounds: int = 3,
) -> AsyncIterator[Event]:
    """Load `plan` into the session's Dataverse; yields events, last :class:`MigrationFinished`.

    Raises (after the events so far): :class:`~cutover.errors.UsageError` for production without
    confirmation, :class:`~cutover.config.FingerprintMismatch` for the wrong organization,
    :class:`MapVersionRefused` for a map not on a cutover version, and any error that stops
    the whole load (no privilege, unreachable) — never for one record."""
    started = time.monotonic()
    yield PhaseStarted("guard", f"environment '{session.profile.name}' ({session.profile.kind})")
    check_production(session.profile, confirm_production)
    org = await session.check_fingerprint()
    yield PhaseFinished("guard", f"organization {org}", time.monotonic() - started)

    map_check: MapCheck | None = None
    if skip_map_check:
        yield Notice("milestone map check skipped (--skip-map-check): the runbook owns that gate", "warning")
    else:
        t0 = time.monotonic()
        yield PhaseStarted("map-check", "reading the milestone map's running version")
        map_check = await check_milestone_map(session.dataverse)
        yield PhaseFinished("map-check", map_check.describe(), time.monotonic() - t0)
        if map_check.state == NOT_CUTOVER:
            raise MapVersionRefused(map_check)
        if not map_check.verified:
            yield Notice(f"{map_check.describe()}; the load goes on", "warning")

    if plan.nothing_to_write:
        outcome = Outcome(plan.counts(), seconds=time.monotonic() - started, map_check=map_check, organization_id=org)
        yield Notice(outcome.summary())
        yield MigrationFinished(outcome)
        return

    load = _Load(session, plan, pacing, chunk)
    yield PhaseStarted("load", f"{plan.create.height:,} to create, {plan.update.height:,} to update")
    yield load.progress()
    task = asyncio.create_task(load.run(resolve_rounds))
    try:
        while True:
            event = await load.queue.get()
            if event is None:
                break
            yield event
        await task  # raises what stopped the load
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    yield load.progress()
    yield PhaseFinished("load", f"{load.created:,} created, {load.updated:,} updated", time.monotonic() - load.started)
    outcome = Outcome(
        plan.counts(),
        created=load.created,
        updated=load.updated,
        failures=tuple(load.failures),
        confirmed_by_read_back=load.confirmed,
        resent_after_read_back=load.resent,
        throttled=load._throttled() - load.throttled0,
        requests=load.requests,
        seconds=time.monotonic() - started,
        map_check=map_check,
        organization_id=org,
        paced_seconds=sum(p.waited for p in load.pacers.values()),
        learned={"execution_factor": max(p.factor for p in load.pacers.values())} if load.pacers else {},
    )
    yield MigrationFinished(outcome)
