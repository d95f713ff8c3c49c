"""Rollback before the point of no return (``cutover rollback --env NAME``, issue #10 item 7).

Undoes what the run wrote into Dataverse — its draft pro-forma invoices, then the milestones
it created — proves what is left, and lists what only a person can undo (the dual-write map
steps, F&O milestone rows). The shape of every operation of the tool:

- :func:`read_run` ``(journal, env) -> RunRecord`` — what the journal says the run did;
- :func:`plan_rollback` ``(record, live) -> RollbackPlan`` — pure: which drafts and milestones
  to delete, which to keep and why, or why the rollback is refused;
- :func:`run_rollback` ``(session, ctx_or_journal, …)`` — an async iterator of
  :class:`RollbackProgress` (each has a ``message``: the engine can journal it as a step's
  progress); raises :class:`RollbackRefused` (exit 1) before anything is sent when refused;
- :func:`verify_rollback` ``(session, ctx_or_journal, …) -> RollbackReport`` — read-only
  apart from the ``rollback`` AR/GL snapshot it takes below the workspace;
- :func:`rollback` ``(session, workspace, env, runbook=RUNBOOK, *, progress=None)`` — the entry
  point for the CLI: lock, journal, run, verify; returns the report.

**What "created by this run" means, and how it is known.** Only milestones whose
deterministic id (:func:`cutover.domain.deterministic_id`) the run *created* are deleted —
never one that existed before ``migrate.milestones`` (the plan's ``identical`` and ``update``
rows: same id, already in Dataverse). The journal is the only record of the run, and it is
read in this order:

1. **Exact** — a ``step.progress`` of ``migrate.milestones`` whose figures carry
   ``created_ids`` (the plan's ``create`` rows, journaled *before* the load writes) and
   ``existing_ids`` (its ``update`` and ``identical`` rows). The union over the step's attempts
   is the created set (a resumed attempt plans the first attempt's creates as identical:
   existing minus created is what existed before). The runbook does not journal these yet
   (see :data:`CREATED_IDS`).
2. **Reconstructed** (what the runbook journals today) — the load's own events: the
   ``PhaseStarted`` figures of the ``load`` phase (``"N to create, M to update"``) and the
   ``ChunkLoaded`` figures (``ids`` that landed, in the order they settled). The load writes
   every create before the first update (:mod:`cutover.migrate.load`), so the chunks settling
   the first N records carry only created ids. Ids written later — by the update job or a
   read-back round after a lost answer — are *unproven*: kept, and listed. A create whose
   answer was lost but which had landed appears in no chunk: it is kept too, and shows in
   the report as one of the extract's milestones still in Dataverse.
3. With the run's extract at hand (the journal's inputs, same SHA-256), the created set is
   narrowed to the deterministic ids of the validated extract's rows.

Rules, in the order :func:`run_rollback` meets them:

- **Point of no return.** Refused (:class:`RollbackRefused`, exit 1, naming the reason, nothing
  sent) when the journal shows a confirmation was sent (``invoice.confirm`` progress with
  ``action`` confirm), when one of the run's invoices reads Confirmed (or Paid), or when one of
  its milestones reads Customer invoice posted (192350003).
- **Only this run's drafts.** A draft is deleted when the journal shows ``invoice.create``
  made it, or when it is the only open invoice of a contract whose created milestones read
  Customer invoice created and on which no other milestone does (so it holds only ours).
  Anything else holding our milestones refuses the rollback, naming the invoice.
- **Drafts first, then milestones.** ``DELETE invoices(id)``; deleting a draft returns its
  milestones to Ready for invoicing (our assumption, to be confirmed on a real environment; it
  is what :class:`cutover.invoicing.DraftMismatch` tells the operator to do). The milestones are
  awaited (bounded polling) before ``DELETE msdyn_contractlinescheduleofvalues(id)``. A 404 is
  fine: a rollback may run again. Milestone statuses are never written.
- **What stays for a person.** F&O ``ProjectContractLineMilestones`` rows with our ids are listed
  with the click path to remove them: a Dataverse delete reaches F&O only where the milestone
  map propagates deletes (the rehearsal simulator does not model delete propagation: the rows
  always remain there). The map steps the journal shows done are listed with their undo text
  and click paths, in the order to undo them.

:func:`verify_rollback` succeeds (``RollbackReport.ok``) when none of the run's milestones or
drafts is in Dataverse, the milestones that existed before are still there, no F&O row with
our ids remains, and the ``rollback`` AR/GL snapshot equals ``before``
(:func:`cutover.reconcile.compare_balances`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from . import odata
from .domain import InvoiceStatus, ProjectInvoiceStatus
from .engine import RunContext, StepState, step_states
from .errors import ChecksFailed, InputError
from .invoicing import ExistingInvoice, LiveMilestone, LiveState, Polling, read_invoicing_state
from .journal import Journal, RunInputs, WriterLock, check_same_inputs
from .profile import DEFAULT_ENTITY_NAMES
from .runbook.model import Runbook
from .runbook.steps import RUNBOOK, validated
from .transport import AuthenticationFailed, NotFound, PermissionDenied, ServiceError

__all__ = [
    "CREATED_IDS",
    "EXISTING_IDS",
    "FNO_REMOVAL_PATH",
    "FnoMilestoneRow",
    "RollbackIncomplete",
    "RollbackPlan",
    "RollbackProgress",
    "RollbackRefused",
    "RollbackReport",
    "RunRecord",
    "UndoStep",
    "plan_rollback",
    "read_run",
    "rollback",
    "run_rollback",
    "verify_rollback",
]

ROLLBACK_STEP = "rollback"  # the journal's step name for a rollback's entries
ROLLBACK_LABEL = "rollback"  # the AR/GL snapshot a rollback takes, compared with "before"
MIGRATE_STEP, CREATE_STEP, CONFIRM_STEP = "migrate.milestones", "invoice.create", "invoice.confirm"
#: Figures of a ``migrate.milestones`` progress entry that make "created by this run" exact:
#: the plan's create ids and its update/identical ids, journaled before the load writes.
CREATED_IDS, EXISTING_IDS = "created_ids", "existing_ids"
#: The map steps a rollback lists for the operator, in the order to undo them: the version
#: first (switching it needs a stopped map), then the starts.
MAP_STEPS = ("map.save-cutover-version", "map.add-transstatus", "maps.stop-three", "map.stop-milestones")
#: step -> the forward step whose click path undoes it; and what a listed step covers.
_UNDO_VIA = {
    "map.save-cutover-version": "maps.revert-version",
    "map.add-transstatus": "maps.revert-version",
    "maps.stop-three": "maps.restart-three",
}
_COVERED_BY = {"map.add-transstatus": "map.save-cutover-version", "map.stop-milestones": "maps.stop-three"}
#: Where an F&O milestone row is removed by hand. Our reading of F&O's project contract form
#: (contract lines synchronise as billing rules) — an assumption, to be checked on a real
#: environment before the night.
FNO_REMOVAL_PATH = (
    "Finance and Operations",
    "Project management and accounting",
    "Project contracts",
    "All project contracts",
    "the contract (ProjectContractId)",
    "Billing rules",
    "the contract line (ContractLineId)",
    "Milestones",
    "the milestone (ContractLineMilestoneIdentifier)",
    "Delete",
)

_READY, _CREATED, _POSTED = int(InvoiceStatus.READY), int(InvoiceStatus.CREATED), int(InvoiceStatus.POSTED)
_CONFIRMED = (int(ProjectInvoiceStatus.CONFIRMED), int(ProjectInvoiceStatus.PAID))
_MS_KEY = "msdyn_contractlinescheduleofvalueid"
_OBJECT_DOES_NOT_EXIST = "0x80040217"
_LOAD_DETAIL = re.compile(r"^\s*([\d,]+) to create, ([\d,]+) to update\s*$")
_GROUP = 50  # ids per `in (…)` query
_PER_TRANSPORT = 8  # deletes in flight per application user


# --- errors --------------------------------------------------------------------------------------


class RollbackRefused(ChecksFailed):
    """The rollback may not run (exit 1): the point of no return is passed, or an invoice that
    is not this run's holds its milestones. Nothing was sent."""


class RollbackIncomplete(ChecksFailed):
    """The rollback ran, but something could not be deleted (exit 1); the message names it.
    What was deleted stays deleted; running the rollback again continues."""


# --- what the journal says -------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRecord:
    """What the journal shows the run of ``env`` did, as far as a rollback needs it."""

    env: str
    created: frozenset[str]  # milestone ids this run created
    existing: frozenset[str] = frozenset()  # ids the plan found already in Dataverse (exact basis only)
    unproven: frozenset[str] = frozenset()  # ids the load wrote that are not proven created: kept
    basis: str = "none"  # "planned" (exact), "load-chunks" (reconstructed) or "none" (nothing loaded)
    drafts: Mapping[str, str] = field(default_factory=dict)  # invoice id -> contract id, made by invoice.create
    confirms_sent: tuple[str, ...] = ()  # invoice ids whose confirmation was sent
    steps: Mapping[str, StepState] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def migrated(self) -> bool:
        st = self.steps.get(MIGRATE_STEP)
        return bool(st and st.started)

    def narrowed(self, extract_ids: Iterable[str]) -> RunRecord:
        """Only ids of the validated extract's rows (the deterministic ids of its legacy ids)."""
        ids = {i.lower() for i in extract_ids}
        dropped = len(self.created - ids)
        notes = self.notes
        if dropped:
            notes += (f"{dropped:,} id(s) the journal shows created are not rows of the validated extract: kept",)
        return dataclasses.replace(
            self, created=self.created & ids, unproven=(self.unproven & ids) | (self.created - ids), notes=notes
        )


def _ids(value: Any) -> set[str]:
    return {str(v).lower() for v in value or ()}


def read_run(journal: Journal, env: str, runbook: Runbook = RUNBOOK) -> RunRecord:
    """Read the journal of ``env``: the milestones ``migrate.milestones`` created (see the module
    docstring for the exact and the reconstructed basis), the drafts ``invoice.create`` made, the
    confirmations sent, and every step's state."""
    created: set[str] = set()
    existing: set[str] = set()
    unproven: set[str] = set()
    attempts: list[dict[str, Any]] = []
    drafts: dict[str, str] = {}
    confirms: list[str] = []
    notes: list[str] = []

    for entry in journal.entries(env):
        figures = (entry.data.get("figures") or {}) if entry.kind == "step.progress" else {}
        if entry.step == MIGRATE_STEP:
            if entry.kind == "step.started":
                attempts.append({"exact": False, "to_create": None, "settled": 0, "resolving": False})
                continue
            if entry.kind != "step.progress" or not attempts:
                continue
            attempt = attempts[-1]
            if CREATED_IDS in figures or EXISTING_IDS in figures:
                attempt["exact"] = True
                created |= _ids(figures.get(CREATED_IDS))
                existing |= _ids(figures.get(EXISTING_IDS))
            elif figures.get("phase") == "load" and entry.data.get("message") == "PhaseStarted":
                match = _LOAD_DETAIL.match(str(figures.get("detail") or ""))
                attempt["to_create"] = int(match.group(1).replace(",", "")) if match else None
                if match is None:
                    notes.append(f"journal row {entry.seq}: the load's plan could not be read; its writes are kept")
            elif figures.get("phase") == "resolve":
                attempt["resolving"] = True
            elif "ids" in figures and "succeeded" in figures:  # a ChunkLoaded
                ids = _ids(figures.get("ids"))
                size = int(figures.get("succeeded") or 0) + int(figures.get("failed") or 0)
                to_create = attempt["to_create"]
                if attempt["exact"]:
                    unproven |= ids
                elif to_create is not None and not attempt["resolving"] and attempt["settled"] + size <= to_create:
                    created |= ids  # a chunk of the create job: every create settles before the first update
                else:
                    unproven |= ids
                attempt["settled"] += size
        elif entry.step == CREATE_STEP and figures:
            for contract_id, invoice_id in (figures.get("drafts") or {}).items():
                if invoice_id:
                    drafts[str(invoice_id).lower()] = str(contract_id).lower()
            if figures.get("action") == "create" and figures.get("invoice_id"):
                contracts = figures.get("contract_ids") or [""]
                drafts[str(figures["invoice_id"]).lower()] = str(contracts[0] or "").lower()
        elif entry.step == CONFIRM_STEP and figures.get("action") == "confirm":
            confirms.append(str(figures.get("invoice_id") or "?").lower())
    if not attempts:
        basis = "none"
    elif all(a["exact"] for a in attempts):
        basis = "planned"
    else:
        basis = "load-chunks"
    return RunRecord(
        env=env,
        created=frozenset(created),
        existing=frozenset(existing - created),
        unproven=frozenset(unproven - created - existing),
        basis=basis,
        drafts=drafts,
        confirms_sent=tuple(dict.fromkeys(confirms)),
        steps=step_states(journal, env, runbook),
        notes=tuple(notes),
    )


# --- the plan (pure) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RollbackPlan:
    """What a rollback will delete, keep and why; ``refused`` names why it may not run."""

    invoices: tuple[ExistingInvoice, ...]  # drafts to delete, in contract order
    milestones: tuple[str, ...]  # created milestone ids in Dataverse, to delete
    kept: Mapping[str, str] = field(default_factory=dict)  # milestone id -> why it stays
    absent: int = 0  # created milestones no longer in Dataverse (an earlier rollback)
    refused: tuple[str, ...] = ()
    contracts: tuple[str, ...] = ()  # the contracts concerned (ours and the drafts')

    @property
    def nothing_to_do(self) -> bool:
        return not self.invoices and not self.milestones and not self.refused

    def summary(self) -> str:
        if self.refused:
            return "refused: " + "; ".join(self.refused)
        if self.nothing_to_do:
            return (
                f"nothing to roll back: none of this run's milestones or draft invoices is in Dataverse "
                f"({self.absent:,} already deleted, {len(self.kept):,} kept)"
            )
        return (
            f"{len(self.invoices):,} draft invoice(s) and {len(self.milestones):,} milestone(s) to delete; "
            f"{len(self.kept):,} kept, {self.absent:,} already absent"
        )


def _describe_invoice(inv: ExistingInvoice) -> str:
    try:
        status = ProjectInvoiceStatus(inv.status).name.replace("_", " ").capitalize()
    except ValueError:
        status = f"status {inv.status}"
    return f"invoice {inv.number or inv.invoice_id} ({status}) of contract {inv.contract_id}"


def plan_rollback(record: RunRecord, live: LiveState) -> RollbackPlan:
    """Decide from the journal's ``record`` and Dataverse's ``live`` state (the invoices and every
    milestone of the contracts concerned — :func:`cutover.invoicing.read_invoicing_state`). Pure."""
    ours = set(record.created)
    status_of = {m.milestone_id: m for m in live.milestones}
    present = sorted(i for i in ours if i in status_of)
    refused: list[str] = []

    if record.confirms_sent:
        shown = ", ".join(record.confirms_sent[:5]) + (" …" if len(record.confirms_sent) > 5 else "")
        refused.append(
            f"invoice.confirm sent a confirmation for {len(record.confirms_sent):,} invoice(s) ({shown}): "
            "the point of no return is passed"
        )
    posted = [i for i in present if status_of[i].status == _POSTED]
    posted += [i for i in record.unproven if i in status_of and status_of[i].status == _POSTED]
    if posted:
        refused.append(
            f"{len(posted):,} of this run's milestone(s) read Customer invoice posted ({', '.join(sorted(posted)[:5])}"
            + (" …" if len(posted) > 5 else "")
            + "): the point of no return is passed"
        )
    by_contract_open: dict[str, list[ExistingInvoice]] = defaultdict(list)
    for inv in live.invoices:
        if inv.invoice_id in record.drafts and inv.confirmed:
            refused.append(f"{_describe_invoice(inv)} is confirmed: the point of no return is passed")
        if inv.open:
            by_contract_open[inv.contract_id].append(inv)

    drafts: dict[str, ExistingInvoice] = {}
    for inv in live.invoices:
        if inv.open and inv.invoice_id in record.drafts:
            drafts[inv.invoice_id] = inv
    on_invoice: dict[str, list[LiveMilestone]] = defaultdict(list)
    for i in present:
        m = status_of[i]
        if m.status == _CREATED:
            on_invoice[m.contract_id].append(m)
    for contract_id, mine in sorted(on_invoice.items()):
        opened = by_contract_open.get(contract_id, [])
        if any(inv.invoice_id in drafts for inv in opened):
            continue
        foreign = [
            m
            for m in live.milestones
            if m.contract_id == contract_id and m.status == _CREATED and m.milestone_id not in ours
        ]
        if len(opened) == 1 and not foreign:
            drafts[opened[0].invoice_id] = opened[0]
            continue
        label = live.contract_numbers.get(contract_id) or contract_id
        if not opened:
            refused.append(
                f"contract {label}: {len(mine)} of this run's milestone(s) read Customer invoice created but no open "
                "invoice holds them (a deleted draft did not release them); they cannot be deleted until Project "
                "Operations shows them Ready for invoicing again"
            )
            continue
        reason = (
            f"{len(foreign)} other milestone(s) read Customer invoice created too"
            if foreign
            else f"{len(opened)} open invoice(s)"
        )
        refused.append(
            f"contract {label}: {len(mine)} of this run's milestone(s) are on a draft invoice this run did not "
            f"create ({reason}: "
            + ", ".join(_describe_invoice(i) for i in opened)
            + "); delete that draft by hand in Project Operations, then roll back again"
        )

    kept: dict[str, str] = {}
    for i in sorted(record.existing):
        if i in status_of:
            kept[i] = "existed before the run (the plan found it in Dataverse)"
    for i in sorted(record.unproven):
        if i in status_of:
            kept[i] = "written by the load as an update or after a lost answer: not proven created by this run"
    contracts = sorted({status_of[i].contract_id for i in present} | {d.contract_id for d in drafts.values()})
    if refused:
        return RollbackPlan((), (), kept, len(ours) - len(present), tuple(refused), tuple(contracts))
    return RollbackPlan(
        tuple(sorted(drafts.values(), key=lambda i: (i.contract_id, i.invoice_id))),
        tuple(present),
        kept,
        len(ours) - len(present),
        (),
        tuple(contracts),
    )


# --- progress ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RollbackProgress:
    """One thing a rollback did or found; ``message`` is for people (the engine journals it)."""

    message: str
    phase: str  # "plan" | "nothing" | "invoices" | "wait" | "milestones" | "done"
    done: int = 0
    total: int = 0
    ids: tuple[str, ...] = ()


# --- running it ------------------------------------------------------------------------------------


def _names(session: Any) -> dict[str, str]:
    names = dict(DEFAULT_ENTITY_NAMES)
    names.update(getattr(getattr(session, "profile", None), "entity_names", None) or {})
    return names


def _context(session: Any, ctx_or_journal: RunContext | Journal, env: str | None) -> RunContext:
    if isinstance(ctx_or_journal, RunContext):
        if ctx_or_journal.session is None:
            ctx_or_journal.session = session
        return ctx_or_journal
    if env is None:
        raise ValueError("run_rollback with a Journal needs env=")
    journal = ctx_or_journal
    return RunContext(
        env=env,
        profile=session.profile,
        workspace=journal.workspace,
        journal=journal,
        session=session,
        inputs=journal.run_inputs(env),
    )


async def _record(ctx: RunContext, runbook: Runbook) -> RunRecord:
    """The journal's record, narrowed to the validated extract's ids when the run has inputs."""
    record = read_run(ctx.journal, ctx.env, runbook)
    recorded = ctx.journal.run_inputs(ctx.env)
    if recorded is None or not record.created:
        return record
    path = Path(recorded.extract_path)
    if not path.is_file():
        raise InputError(
            f"the run's extract {path} is not there",
            fix="put the extract the run started with back in place (its SHA-256 is in the journal), then roll back",
        )
    check_same_inputs(
        recorded,
        RunInputs.of(path, Path(recorded.mapping_path) if recorded.mapping_path else None, recorded.cutover_date),
    )
    ctx.inputs = ctx.inputs or recorded
    result = await validated(ctx)
    extract_ids = result.rows["milestone_id"].to_list() if result.rows.height else []
    return record.narrowed(extract_ids)


async def _read_by_id(dataverse: Any, entity_set: str, ids: Iterable[str]) -> list[dict]:
    rows: list[dict] = []
    ids = sorted(set(ids))
    for start in range(0, len(ids), _GROUP):
        group = [uuid.UUID(i) for i in ids[start : start + _GROUP]]
        rows += await dataverse.query_all(
            entity_set,
            select=[_MS_KEY, "_msdyn_contract_value", "msdyn_invoicestatus"],
            filter=odata.in_(_MS_KEY, group),
        )
    return rows


async def _live(session: Any, record: RunRecord) -> LiveState:
    """The invoices and milestones of every contract concerned: where this run's milestones are,
    and where its drafts were made."""
    names = _names(session)
    rows = await _read_by_id(session.dataverse, names["milestones"], record.created | record.unproven)
    contracts = {str(r.get("_msdyn_contract_value") or "").lower() for r in rows} | set(record.drafts.values())
    contracts.discard("")
    return await read_invoicing_state(session, contracts)


async def _delete(session: Any, entity_set: str, key: str, slot: int) -> bool:
    """``DELETE set(key)``; False when it was not there. ``slot`` is unused: the client spreads
    requests over its identity pool itself."""
    return await session.dataverse.delete(entity_set, uuid.UUID(key))


async def _delete_all(
    session: Any, entity_set: str, ids: list[str]
) -> AsyncIterator[tuple[str, bool | None, str | None]]:
    """Delete ``ids`` with a few requests in flight per application user; yields (id, deleted,
    error) as each settles (deleted None: refused, with the service's message)."""
    limit = asyncio.Semaphore(_PER_TRANSPORT * len(session.dataverse.pool))
    queue: asyncio.Queue[tuple[str, bool | None, str | None]] = asyncio.Queue()

    async def one(n: int, key: str) -> None:
        async with limit:
            try:
                await queue.put((key, await _delete(session, entity_set, key, n), None))
            except ServiceError as exc:
                await queue.put((key, None, exc.message))

    tasks = [asyncio.create_task(one(n, key)) for n, key in enumerate(ids)]
    try:
        for _ in ids:
            yield await queue.get()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def run_rollback(
    session: Any,
    ctx_or_journal: RunContext | Journal,
    *,
    env: str | None = None,
    runbook: Runbook = RUNBOOK,
    polling: Polling = Polling(timeout_s=120.0),
    sleep: Callable[[float], Any] = asyncio.sleep,
) -> AsyncIterator[RollbackProgress]:
    """Delete this run's draft invoices, then its milestones (see the module docstring).

    Raises :class:`RollbackRefused` before anything is sent when the point of no return is
    passed or a foreign draft holds our milestones; :class:`RollbackIncomplete` when a delete
    was refused or milestones did not leave their deleted draft in time."""
    ctx = _context(session, ctx_or_journal, env)
    names = _names(session)
    record = await _record(ctx, runbook)
    for note in record.notes:
        yield RollbackProgress(note, "plan")
    plan = plan_rollback(record, await _live(session, record))
    if plan.refused:
        raise RollbackRefused(
            "the rollback was refused, nothing was deleted: " + "; ".join(plan.refused),
            fix="after the first invoice is confirmed the run cannot be rolled back: finish it, and correct "
            "mistakes in Project Operations with credit notes"
            if any("point of no return" in r for r in plan.refused)
            else "see the reason; nothing was sent",
        )
    basis = {
        "planned": "the plan's create rows, as journaled",
        "load-chunks": "the load's journaled chunks (creates only; updates and read-back rounds kept)",
        "none": "migrate.milestones never started",
    }[record.basis]
    yield RollbackProgress(
        f"{plan.summary()} — created ids known from {basis}",
        "nothing" if plan.nothing_to_do else "plan",
        total=len(plan.invoices) + len(plan.milestones),
    )
    if plan.nothing_to_do:
        return

    failures: list[str] = []
    if plan.invoices:
        done = 0
        by_id = {i.invoice_id: i for i in plan.invoices}
        async for key, ok, error in _delete_all(session, names["invoices"], list(by_id)):
            done += 1
            if ok is None:
                failures.append(f"{_describe_invoice(by_id[key])}: {error}")
                continue
            yield RollbackProgress(
                f"draft {by_id[key].number or key} {'deleted' if ok else 'was already gone'} ({done} of {len(by_id)})",
                "invoices",
                done,
                len(by_id),
                (key,) if ok else (),
            )
        if failures:
            raise RollbackIncomplete(
                f"{len(failures)} draft invoice(s) could not be deleted, no milestone was deleted: "
                + "; ".join(failures[:5]),
                fix="read the service's answer; fix the cause and roll back again (deleted drafts stay deleted)",
            )

    # Deleting a draft releases its milestones (Customer invoice created -> Ready for invoicing).
    mine = set(plan.milestones)
    contracts = sorted({i.contract_id for i in plan.invoices})
    if contracts:
        started = time.monotonic()
        wait = polling.first_wait_s
        while True:
            live = await read_invoicing_state(session, contracts, numbers=False)
            held = sorted(m.milestone_id for m in live.milestones if m.milestone_id in mine and m.status == _CREATED)
            if not held:
                break
            elapsed = time.monotonic() - started
            if elapsed >= polling.timeout_s:
                raise RollbackIncomplete(
                    f"the drafts were deleted, but after {elapsed:.0f} s {len(held):,} of this run's milestone(s) still read "
                    f"Customer invoice created ({', '.join(held[:5])}{' …' if len(held) > 5 else ''}); a milestone on "
                    "an invoice cannot be deleted, and its status is never written by this tool",
                    fix="check in Project Operations that the milestones are back to Ready for invoicing (Sales › Billing "
                    "› Fixed Price Milestones), then roll back again",
                )
            yield RollbackProgress(
                f"waiting for {len(held):,} milestone(s) to leave the deleted drafts; checking again in {wait:.1f} s",
                "wait",
            )
            await sleep(wait)
            wait = min(wait * polling.factor, polling.max_wait_s)

    done = 0
    removed = 0
    async for key, ok, error in _delete_all(session, names["milestones"], list(plan.milestones)):
        done += 1
        if ok is None:
            failures.append(f"milestone {key}: {error}")
            continue
        removed += bool(ok)
        if done % 100 == 0 or done == len(plan.milestones):
            yield RollbackProgress(
                f"milestones: {done:,} of {len(plan.milestones):,} settled ({removed:,} deleted)",
                "milestones",
                done,
                len(plan.milestones),
            )
    if failures:
        raise RollbackIncomplete(
            f"{len(failures):,} milestone(s) could not be deleted: " + "; ".join(failures[:5]),
            fix="read the service's answer; fix the cause and roll back again (deleted milestones stay deleted)",
        )
    yield RollbackProgress(
        f"deleted {len(plan.invoices):,} draft invoice(s) and {removed:,} milestone(s) this run created",
        "done",
        removed,  # milestones deleted now (the others were already gone)
        len(plan.milestones),
    )


# --- verifying it ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FnoMilestoneRow:
    """An F&O milestone row with one of this run's ids: removed by hand, :data:`FNO_REMOVAL_PATH`."""

    data_area: str
    identifier: str  # ContractLineMilestoneIdentifier
    milestone_id: str  # ContractLineMilestoneGuid
    contract: str | None
    contract_line: str | None
    trans_status: str | None
    amount: Decimal | None


@dataclass(frozen=True)
class UndoStep:
    """A map step the journal shows done, and how to undo it by hand."""

    step: str
    title: str
    undo: str
    click_path: tuple[str, ...]
    finished: bool
    covers: tuple[str, ...] = ()  # other done steps this undo also undoes


@dataclass(frozen=True)
class RollbackReport:
    """What is left after a rollback, read from live state (and the ``rollback`` snapshot)."""

    env: str
    basis: str
    created: int  # milestones the journal shows this run created
    deleted_invoices: tuple[str, ...] = ()
    deleted_milestones: int = 0
    nothing_to_do: bool = False
    remaining_milestones: tuple[str, ...] = ()  # ours still in Dataverse
    remaining_drafts: tuple[str, ...] = ()  # ours still in Dataverse
    kept: Mapping[str, str] = field(default_factory=dict)  # milestone id -> why it stays
    missing_kept: tuple[str, ...] = ()  # milestones that existed before and are gone
    unaccounted: tuple[str, ...] = ()  # extract milestones in Dataverse neither ours nor known to have existed
    fno_rows: tuple[FnoMilestoneRow, ...] = ()
    fno_reason: str | None = None  # why F&O was not read
    fno_click_path: tuple[str, ...] = FNO_REMOVAL_PATH
    balances: Any = None  # cutover.reconcile.BalanceComparison, or None (see balances_reason)
    balances_reason: str | None = None
    map_undo: tuple[UndoStep, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def dataverse_ok(self) -> bool:
        return not self.remaining_milestones and not self.remaining_drafts and not self.missing_kept

    @property
    def fno_ok(self) -> bool:
        return self.fno_reason is None and not self.fno_rows

    @property
    def balances_ok(self) -> bool:
        return self.balances is not None and self.balances.ok

    @property
    def ok(self) -> bool:
        """Dataverse and F&O hold none of the run's milestones (and still hold those that existed
        before), and AR/GL equal the ``before`` snapshot."""
        return self.dataverse_ok and self.fno_ok and self.balances_ok

    def lines(self) -> list[str]:
        out = []
        if self.nothing_to_do:
            out.append("nothing to roll back: none of this run's milestones or draft invoices was in Dataverse")
        else:
            out.append(
                f"deleted {len(self.deleted_invoices):,} draft invoice(s) and {self.deleted_milestones:,} milestone(s)"
            )
        out.append(f"this run created {self.created:,} milestone(s) (known from: {self.basis})")
        if self.dataverse_ok:
            out.append("Dataverse: none of this run's milestones or drafts is left")
        else:
            if self.remaining_milestones:
                out.append(f"Dataverse: {len(self.remaining_milestones):,} of this run's milestone(s) still there")
            if self.remaining_drafts:
                out.append(f"Dataverse: {len(self.remaining_drafts):,} of this run's draft invoice(s) still there")
            if self.missing_kept:
                out.append(f"Dataverse: {len(self.missing_kept):,} milestone(s) that existed before are gone")
        if self.kept:
            out.append(f"kept: {len(self.kept):,} milestone(s) of the extract that this run did not create")
        if self.unaccounted:
            out.append(
                f"{len(self.unaccounted):,} milestone(s) of the extract are in Dataverse and not proven this run's: "
                "check them by hand (" + ", ".join(self.unaccounted[:5]) + (" …)" if len(self.unaccounted) > 5 else ")")
            )
        if self.fno_reason:
            out.append(f"F&O: not read — {self.fno_reason}")
        elif self.fno_rows:
            out.append(
                f"F&O: {len(self.fno_rows):,} ProjectContractLineMilestones row(s) with this run's ids remain; remove "
                "each by hand: " + " › ".join(self.fno_click_path)
            )
            out += [
                f"  {r.data_area} {r.identifier} ({r.milestone_id}) contract {r.contract} line {r.contract_line} "
                f"{r.trans_status} {r.amount}"
                for r in self.fno_rows[:20]
            ]
            if len(self.fno_rows) > 20:
                out.append(f"  … and {len(self.fno_rows) - 20:,} more")
        else:
            out.append("F&O: no milestone row with this run's ids")
        if self.balances is None:
            out.append(f"AR/GL: not compared — {self.balances_reason}")
        elif self.balances.ok:
            out.append("AR/GL: equal to the 'before' snapshot")
        else:
            s = self.balances.summary()
            out.append(
                f"AR/GL differ from 'before': {s['ar_changed_balances']} AR and {s['gl_changed_balances']} GL balance(s) "
                f"changed, {s['ar_new_vouchers']} AR and {s['gl_new_vouchers']} GL new voucher(s)"
            )
        for u in self.map_undo:
            out.append(f"undo {u.step} ({u.title}): {u.undo} — " + " › ".join(u.click_path))
        out += [f"note: {n}" for n in self.notes]
        return out


def map_undo_steps(states: Mapping[str, StepState], runbook: Runbook = RUNBOOK) -> tuple[UndoStep, ...]:
    """The map steps the journal shows done (or attested), in the order to undo them, each with
    its ``undo`` text and the click path that undoes it (the forward step that does the opposite:
    ``maps.revert-version``, ``maps.restart-three``; the map's own page for the milestone map)."""

    def find(step_id: str):
        for book in (runbook, RUNBOOK):
            try:
                return book.step(step_id)
            except KeyError:
                continue
        return None

    done = [s for s in MAP_STEPS if states.get(s) and (states[s].finished or states[s].attested_by)]
    out: list[UndoStep] = []
    for sid in done:
        if _COVERED_BY.get(sid) in done:
            continue
        step = find(sid)
        if step is None:
            continue
        via = find(_UNDO_VIA[sid]) if sid in _UNDO_VIA else None
        if via is not None:
            path = via.click_path
        else:  # the map's own page: everything before the step's action, then Run
            path = tuple(p for p in step.click_path if p not in ("Stop", "Refresh tables")) + ("Run",)
        undo = step.undo
        if sid in ("map.save-cutover-version", "map.add-transstatus"):
            undo += " (the map must be stopped to switch versions: stop it first if it runs, start it afterwards)"
        covers = tuple(c for c, by in _COVERED_BY.items() if by == sid and c in done)
        out.append(UndoStep(sid, step.title, undo, tuple(path), bool(states[sid].finished), covers))
    return tuple(out)


async def _fno_rows(session: Any, ours: set[str]) -> tuple[tuple[FnoMilestoneRow, ...], str | None]:
    if not ours:
        return (), None
    entity = _names(session)["fno_milestones"]
    rows: list[FnoMilestoneRow] = []
    select = [
        "dataAreaId",
        "ContractLineMilestoneIdentifier",
        "ContractLineMilestoneGuid",
        "ProjectContractId",
        "ContractLineId",
        "TransStatus",
        "Amount",
    ]
    try:
        async for row in session.fno.rows(entity, select=select):
            guid = str(row.get("ContractLineMilestoneGuid") or "").lower()
            if guid in ours:
                status = row.get("TransStatus")
                if isinstance(status, str) and "'" in status:
                    status = status.split("'")[1]
                amount = row.get("Amount")
                rows.append(
                    FnoMilestoneRow(
                        str(row.get("dataAreaId") or ""),
                        str(row.get("ContractLineMilestoneIdentifier") or ""),
                        guid,
                        row.get("ProjectContractId"),
                        row.get("ContractLineId"),
                        None if status is None else str(status),
                        None if amount is None else Decimal(str(amount)),
                    )
                )
    except (AuthenticationFailed, PermissionDenied, NotFound) as exc:
        return (), f"F&O answered {exc.status} on {entity}"
    return tuple(sorted(rows, key=lambda r: (r.data_area, r.identifier))), None


async def _balances(session: Any, ctx: RunContext) -> tuple[Any, str | None]:
    from .reconcile import compare_balances
    from .snapshot import SnapshotMissing, load_manifest, read_snapshot, snapshot_dir, take_snapshot

    try:
        before = load_manifest(snapshot_dir(ctx.workspace, ctx.env, "before"))
    except SnapshotMissing:
        return None, f"there is no 'before' snapshot for {ctx.env} (snapshot.before never ran)"
    await take_snapshot(
        session.fno,
        ctx.workspace,
        ctx.env,
        ROLLBACK_LABEL,
        before.legal_entities,
        retake=True,
        organization_id=before.organization_id,
    )
    ar_before, gl_before, _ = read_snapshot(ctx.workspace, ctx.env, "before")
    ar_now, gl_now, _ = read_snapshot(ctx.workspace, ctx.env, ROLLBACK_LABEL)
    return compare_balances(ar_before, ar_now, gl_before, gl_now), None


async def verify_rollback(
    session: Any,
    ctx_or_journal: RunContext | Journal,
    *,
    env: str | None = None,
    runbook: Runbook = RUNBOOK,
    record: RunRecord | None = None,
    snapshot: bool = True,
    deleted_invoices: Iterable[str] = (),
    deleted_milestones: int = 0,
    nothing_to_do: bool = False,
) -> RollbackReport:
    """Read what is left: this run's milestones and drafts in Dataverse (none), the milestones
    that existed before (all still there), F&O rows with our ids (listed with the click path),
    AR/GL against ``before`` through a ``rollback`` snapshot (``snapshot=False``: not compared),
    and the map steps to undo. Writes nothing but the snapshot below the workspace."""
    ctx = _context(session, ctx_or_journal, env)
    record = record or await _record(ctx, runbook)
    names = _names(session)
    ours = set(record.created)
    live_rows = await _read_by_id(session.dataverse, names["milestones"], ours | record.existing | record.unproven)
    there = {str(r.get(_MS_KEY) or "").lower() for r in live_rows}
    remaining = tuple(sorted(ours & there))
    missing_kept = tuple(sorted(record.existing - there))
    kept = {i: "existed before the run (the plan found it in Dataverse)" for i in sorted(record.existing & there)}
    kept.update(
        {
            i: "written by the load as an update or after a lost answer: not proven created by this run"
            for i in sorted(record.unproven & there)
        }
    )
    draft_ids = set(record.drafts)
    remaining_drafts: tuple[str, ...] = ()
    if draft_ids:
        rows = []
        ids = sorted(draft_ids)
        for start in range(0, len(ids), _GROUP):
            group = [uuid.UUID(i) for i in ids[start : start + _GROUP]]
            rows += await session.dataverse.query_all(
                names["invoices"], select=["invoiceid"], filter=odata.in_("invoiceid", group)
            )
        remaining_drafts = tuple(sorted(str(r["invoiceid"]).lower() for r in rows))
    # Drafts found (not journaled) and deleted by the run: read again by id.
    extra = sorted(set(deleted_invoices) - draft_ids)
    if extra:
        rows = await session.dataverse.query_all(
            names["invoices"], select=["invoiceid"], filter=odata.in_("invoiceid", [uuid.UUID(i) for i in extra])
        )
        remaining_drafts += tuple(sorted(str(r["invoiceid"]).lower() for r in rows))

    unaccounted: tuple[str, ...] = ()
    notes = list(record.notes)
    if ctx.inputs is not None and ctx.state.get("validated") is not None:
        extract_ids = set(ctx.state["validated"].rows["milestone_id"].str.to_lowercase().to_list())
        others = extract_ids - ours - record.existing - record.unproven
        if others:
            found = await _read_by_id(session.dataverse, names["milestones"], others)
            unaccounted = tuple(sorted(str(r.get(_MS_KEY) or "").lower() for r in found))

    fno_rows, fno_reason = await _fno_rows(session, ours)
    if snapshot:
        balances, balances_reason = await _balances(session, ctx)
    else:
        balances, balances_reason = None, "not asked (snapshot=False)"
    return RollbackReport(
        env=ctx.env,
        basis=record.basis,
        created=len(ours),
        deleted_invoices=tuple(sorted(set(deleted_invoices))),
        deleted_milestones=deleted_milestones,
        nothing_to_do=nothing_to_do,
        remaining_milestones=remaining,
        remaining_drafts=remaining_drafts,
        kept=kept,
        missing_kept=missing_kept,
        unaccounted=unaccounted,
        fno_rows=fno_rows,
        fno_reason=fno_reason,
        balances=balances,
        balances_reason=balances_reason,
        map_undo=map_undo_steps(record.steps, runbook),
        notes=tuple(notes),
    )


# --- the entry point ---------------------------------------------------------------------------------


def _report_data(report: RollbackReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "dataverse_ok": report.dataverse_ok,
        "fno_ok": report.fno_ok,
        "balances_ok": report.balances_ok,
        "basis": report.basis,
        "created": report.created,
        "deleted_invoices": list(report.deleted_invoices),
        "deleted_milestones": report.deleted_milestones,
        "nothing_to_do": report.nothing_to_do,
        "remaining_milestones": list(report.remaining_milestones),
        "fno_rows": [r.identifier for r in report.fno_rows],
        "balances": report.balances.summary() if report.balances is not None else None,
        "map_undo": [u.step for u in report.map_undo],
        "lines": report.lines(),
    }


async def rollback(
    session: Any,
    workspace: str | Path,
    env: str,
    runbook: Runbook = RUNBOOK,
    *,
    progress: Callable[[RollbackProgress], Any] | None = None,
    lock: bool = True,
    polling: Polling = Polling(timeout_s=120.0),
) -> RollbackReport:
    """Roll the run of ``env`` back and verify it: the CLI's ``cutover rollback --env NAME``.

    Takes the workspace's writer lock for ``env`` (``lock=False`` when the caller holds it),
    journals ``rollback.started``, each progress (``rollback.progress``), and
    ``rollback.finished`` (or ``rollback.refused`` / ``rollback.failed``) under step
    ``rollback``, and returns the :class:`RollbackReport` (``ok`` says whether it succeeded;
    exit 1 otherwise is the caller's choice). Raises :class:`RollbackRefused` (journaled) past
    the point of no return."""
    workspace = Path(workspace)
    held = WriterLock(workspace, env, command=f"cutover rollback --env {env}") if lock else None
    if held is not None:
        held.acquire()
    journal = Journal.open(workspace)
    try:
        ctx = _context(session, journal, env)
        record = await _record(ctx, runbook)
        journal.append(
            "rollback.started",
            env=env,
            step=ROLLBACK_STEP,
            data={"basis": record.basis, "created": len(record.created), "drafts": sorted(record.drafts)},
        )
        deleted_invoices: list[str] = []
        deleted = 0
        nothing = False
        try:
            async for event in run_rollback(session, ctx, runbook=runbook, polling=polling):
                if event.phase == "invoices":
                    deleted_invoices += list(event.ids)
                deleted = event.done if event.phase == "done" else deleted
                nothing = nothing or event.phase == "nothing"
                journal.append("rollback.progress", env=env, step=ROLLBACK_STEP, data=dataclasses.asdict(event))
                if progress is not None:
                    progress(event)
        except RollbackRefused as exc:
            journal.append("rollback.refused", env=env, step=ROLLBACK_STEP, data={"message": str(exc)})
            journal.record_head()
            raise
        except Exception as exc:
            journal.append(
                "rollback.failed", env=env, step=ROLLBACK_STEP, data={"message": f"{type(exc).__name__}: {exc}"}
            )
            journal.record_head()
            raise
        report = await verify_rollback(
            session,
            ctx,
            runbook=runbook,
            record=record,
            deleted_invoices=deleted_invoices,
            deleted_milestones=deleted,
            nothing_to_do=nothing,
        )
        journal.append("rollback.finished", env=env, step=ROLLBACK_STEP, data=_report_data(report))
        journal.record_head()
        return report
    finally:
        journal.close()
        if held is not None:
            held.release()
