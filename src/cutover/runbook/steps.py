"""The cutover runbook as data: the steps of docs/architecture.md, in order.

:data:`CUTOVER` is the procedure through ``snapshot.after`` (what a rehearsal runs);
:data:`RUNBOOK` adds ``verify`` and ``signoff`` (:mod:`.verify_steps`).

Each step names its probes (read-only evidence, :mod:`.probes`) and actions (thin adapters
over the operations: :mod:`cutover.source`, :mod:`cutover.migrate`, :mod:`cutover.snapshot`,
:mod:`cutover.invoicing`). An action never trusts ``ctx.state`` to survive a resume: what a step
needs from an earlier one (the validated extract) is derived again from the run's inputs
(:func:`validated`), which is cheap and gives the same answer.

The click paths are the ones Microsoft's procedure describes, written as the operator sees
them in Finance and Operations (Data management › Dual-write). A rehearsal performs the
manual steps itself through the simulator's admin surface (:mod:`cutover.rehearsal`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..dualwrite_state import MILESTONE_MAP, THREE_MAPS
from ..errors import ChecksFailed, UsageError
from .model import Evidence, Kind, Probe, Runbook, Step
from .probes import (
    cutover_version_running,
    invoice_integration_async,
    maps_running,
    milestone_map_stopped,
    original_version_running,
    record_original_version,
    three_maps_running,
    three_maps_stopped,
)

if TYPE_CHECKING:
    from ..engine import RunContext

DUAL_WRITE = ("Finance and Operations", "Data management", "Dual-write")
MILESTONE_MAP_TITLE = "Project Operations integration contract line milestones (msdyn_contractlinescheduleofvalues)"
THREE_MAP_TITLES = (
    "Project Operations integration contract line milestones (msdyn_contractlinescheduleofvalues)",
    "Project Operations integration actuals (msdyn_actuals)",
    "Project invoice proposal V2 (invoices)",
)


def all_of(*probes: Probe) -> Probe:
    """A probe that holds when every probe holds: the first ``failed`` wins, then any
    ``not-verified``; figures are merged."""

    async def probe(ctx: RunContext) -> Evidence:
        results = [await p(ctx) for p in probes]
        figures: dict[str, Any] = {}
        for r in results:
            figures.update(r.figures)
        for status in ("failed", "not-verified"):
            hits = [r for r in results if r.status == status]
            if hits:
                return Evidence(status, "; ".join(r.summary for r in hits), figures)
        return Evidence.ok("; ".join(r.summary for r in results), **figures)

    return probe


# --- what the steps share ---------------------------------------------------------------------


def _need_session(ctx: RunContext) -> Any:
    if ctx.session is None:
        raise UsageError("this step needs an open environment")
    return ctx.session


def _need_inputs(ctx: RunContext):
    if ctx.inputs is None:
        raise UsageError("this run has no legacy extract", fix="run with --source FILE (and --mapping FILE if needed)")
    return ctx.inputs


async def validated(ctx: RunContext):
    """The run's extract, read and validated against the environment (cached for this process)."""
    cached = ctx.state.get("validated")
    if cached is not None:
        return cached
    from ..source import load_and_validate

    inputs = _need_inputs(ctx)
    _raw, result = await load_and_validate(
        Path(inputs.extract_path), _need_session(ctx), inputs.mapping_path, inputs.cutover_date
    )
    ctx.state["validated"] = result
    return result


def _migrated(result) -> Any:
    return result.rows.select("milestone_id", "contract_id", "amount")


def _legal_entities(result) -> list[str]:
    return sorted(set(result.rows["legal_entity"].to_list()))


# --- preflight ----------------------------------------------------------------------------------


async def _identify(ctx: RunContext) -> AsyncIterator[Any]:
    from ..config import pin_fingerprint

    session = _need_session(ctx)
    org = await session.organization_id()
    if ctx.profile.pinned_org_id is None:
        pinned = pin_fingerprint(ctx.workspace, ctx.env, org)
        ctx.state["organization_id"] = pinned.pinned_org_id
        yield f"first contact: profile '{ctx.env}' pinned to organization {org}"
    else:
        ctx.state["organization_id"] = await session.check_fingerprint(org)
        yield f"organization {org} is the one the profile is pinned to"


async def _environment_matches(ctx: RunContext) -> Evidence:
    session = _need_session(ctx)
    org = await session.organization_id()
    pinned = ctx.state.get("organization_id") or ctx.profile.pinned_org_id
    if pinned and pinned.lower() == org:
        return Evidence.ok(f"organization {org}", organization_id=org)
    return Evidence.failed(
        f"WhoAmI answered organization {org}, the profile is pinned to {pinned}", organization_id=org
    )


async def _validate_source(ctx: RunContext) -> AsyncIterator[Any]:
    from ..source import write_problems

    ctx.state.pop("validated", None)
    result = await validated(ctx)
    for line in result.summary().lines():
        yield line
    if result.problems:
        folder = ctx.workspace / "runs"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        path = write_problems(result.problems, folder / f"extract-problems-{stamp}.csv")
        raise ChecksFailed(
            f"the extract has {len(result.problems):,} problem(s); nothing was written",
            where=str(_need_inputs(ctx).extract_path),
            fix=f"correct the rows listed in {path} in the legacy system, export again and start a new run",
        )


async def _source_is_loadable(ctx: RunContext) -> Evidence:
    result = await validated(ctx)
    if result.loadable:
        return Evidence.ok(
            f"{result.rows.height:,} invoiced milestones to migrate, {result.excluded.height:,} not invoiced left out",
            to_migrate=result.rows.height,
            excluded=result.excluded.height,
            notes=list(result.notes),
        )
    return Evidence.failed(f"{len(result.problems):,} problem(s) in the extract")


async def _metadata(ctx: RunContext) -> AsyncIterator[Any]:
    from ..invoicing import InvoiceActions, check_invoice_actions

    session = _need_session(ctx)
    meta = await session.dataverse.metadata()
    needed = [
        ctx.profile.entity_set(k) for k in ("milestones", "contracts", "contract_lines", "invoices", "invoice_lines")
    ]
    missing = [s for s in needed if not meta.has_entity_set(s)]
    if missing:
        raise ChecksFailed(
            f"the environment's $metadata has no entity set {', '.join(missing)}",
            fix="check the profile's entity_names and that Project Operations is installed",
        )
    yield f"entity sets present: {', '.join(needed)}"
    await check_invoice_actions(session.dataverse, InvoiceActions.from_profile(ctx.profile))
    yield (
        f"invoice actions present: {ctx.profile.invoice_create_action} ({ctx.profile.invoice_create_style}), "
        f"{ctx.profile.invoice_confirm_action}"
    )
    ctx.state["metadata_checked"] = True


async def _metadata_checked(ctx: RunContext) -> Evidence:
    if ctx.state.get("metadata_checked"):
        return Evidence.ok("tables and invoice actions present")
    return Evidence.not_verified("metadata not read in this process")


# --- snapshots ------------------------------------------------------------------------------------


def _snapshot_action(label: str):
    async def action(ctx: RunContext) -> AsyncIterator[Any]:
        from ..snapshot import SnapshotExists, load_manifest, snapshot_dir, take_snapshot

        session = _need_session(ctx)
        folder = snapshot_dir(ctx.workspace, ctx.env, label)
        if (folder / "manifest.json").exists():
            manifest = load_manifest(folder)  # verifies every file's hash
            yield f"snapshot '{label}' already taken at {manifest.finished_utc:%Y-%m-%d %H:%M:%S} UTC; kept"
            return
        result = await validated(ctx)
        try:
            manifest = await take_snapshot(
                session.fno,
                ctx.workspace,
                ctx.env,
                label,
                _legal_entities(result),
                organization_id=ctx.state.get("organization_id") or ctx.profile.pinned_org_id,
            )
        except SnapshotExists:
            manifest = load_manifest(folder)
        yield {
            "message": f"snapshot '{label}': {manifest.ar_rows:,} AR and {manifest.gl_rows:,} GL rows",
            "manifest": str(folder / "manifest.json"),
        }

    return action


def _snapshot_taken(label: str) -> Probe:
    async def probe(ctx: RunContext) -> Evidence:
        from ..journal import file_sha256
        from ..snapshot import SnapshotMissing, load_manifest, snapshot_dir

        folder = snapshot_dir(ctx.workspace, ctx.env, label)
        try:
            manifest = load_manifest(folder)
        except SnapshotMissing:
            return Evidence.failed(f"no snapshot '{label}' in {folder}")
        return Evidence.ok(
            f"snapshot '{label}' with {manifest.ar_rows:,} AR and {manifest.gl_rows:,} GL rows",
            manifest_sha256=manifest.sha256 or file_sha256(folder / "manifest.json"),
        )

    return probe


# --- migration ----------------------------------------------------------------------------------


async def _migrate(ctx: RunContext) -> AsyncIterator[Any]:
    from ..events import MigrationFinished
    from ..migrate import plan_migration, read_existing, run_migration

    session = _need_session(ctx)
    result = await validated(ctx)
    plan = plan_migration(result, await read_existing(session))
    # Journaled before anything is written: which ids this run creates and which existed
    # already, so a rollback deletes exactly the run's own milestones (cutover.rollback).
    yield {
        "message": f"plan: {plan.summary()}",
        "created_ids": plan.create["milestone_id"].to_list(),
        "existing_ids": plan.update["milestone_id"].to_list() + plan.identical["milestone_id"].to_list(),
    }
    outcome = None
    # The engine already confirmed a production write and checked the organization; the gate
    # checked the map version, so the load's own map check would only repeat it.
    async for event in run_migration(session, plan, confirm_production=ctx.env, skip_map_check=True):
        if isinstance(event, MigrationFinished):
            outcome = event.outcome
            yield {"message": outcome.summary()}
        else:
            yield event
    if outcome is not None and not outcome.ok:
        raise ChecksFailed(
            f"the load finished with {len(outcome.failures):,} failed record(s) and {outcome.conflicts:,} conflict(s)",
            fix="read the failures above; correct the cause and run again: finished records are not written twice",
        )


async def _all_in_dataverse(ctx: RunContext) -> Evidence:
    from ..migrate import read_back

    back = await read_back(_need_session(ctx), await validated(ctx))
    ctx.state["read_back"] = back
    if back.ok:
        return Evidence.ok(
            f"{back.found:,} of {back.expected:,} milestones in Dataverse, every line's totals match", found=back.found
        )
    return Evidence.failed(
        f"{back.found:,} of {back.expected:,} milestones in Dataverse; missing: {', '.join(back.missing[:10])}",
        found=back.found,
        expected=back.expected,
    )


async def _read_fno(ctx: RunContext) -> AsyncIterator[Any]:
    from ..migrate import read_back

    back = await read_back(_need_session(ctx), await validated(ctx))
    ctx.state["read_back"] = back
    statuses = ", ".join(f"{n:,} {s}" for s, n in sorted((back.fno_statuses or {}).items())) or "none"
    yield {
        "message": f"in Finance and Operations: {statuses}; {back.fno_missing:,} not there",
        "statuses": back.fno_statuses,
    }


async def _invoiced_in_fno(ctx: RunContext) -> Evidence:
    back = ctx.state.get("read_back")
    if back is None:
        from ..migrate import read_back

        back = await read_back(_need_session(ctx), await validated(ctx))
    verdict = back.all_invoiced_in_fno
    statuses = dict(back.fno_statuses or {})
    if verdict is None:
        return Evidence.not_verified(back.fno_reason or "Finance and Operations could not be read")
    if verdict:
        return Evidence.ok(
            f"all {back.expected:,} milestones reached Finance and Operations as Invoiced", statuses=statuses
        )
    other = ", ".join(f"{n:,} as {s}" for s, n in sorted(statuses.items()) if s != "Invoiced")
    return Evidence.failed(
        f"milestones arrived {other or 'incompletely'}, not Invoiced ({back.fno_missing:,} missing): "
        "the cutover version of the milestone map was not running when they were created",
        statuses=statuses,
    )


# --- invoicing ----------------------------------------------------------------------------------


async def _create_invoices(ctx: RunContext) -> AsyncIterator[Any]:
    from ..invoicing import create_invoices, prepare_invoicing

    session = _need_session(ctx)
    plan = await prepare_invoicing(session, _migrated(await validated(ctx)))
    async for payload in create_invoices(session, plan, stop_attested=True):
        yield payload


async def _confirm_invoices(ctx: RunContext) -> AsyncIterator[Any]:
    from ..invoicing import confirm_invoices, prepare_invoicing

    session = _need_session(ctx)
    plan = await prepare_invoicing(session, _migrated(await validated(ctx)))
    async for payload in confirm_invoices(session, plan, stop_attested=True):
        yield payload


def _invoices_reached(actions: tuple[str, ...], what: str) -> Probe:
    async def probe(ctx: RunContext) -> Evidence:
        from ..invoicing import invoice_state

        state = await invoice_state(_need_session(ctx), _migrated(await validated(ctx)))
        counts = state.counts()
        behind = [c for c in state.contracts if c.action not in actions]
        if state.contracts and not behind:
            return Evidence.ok(f"{len(state.contracts):,} contract(s): {what}", **counts)
        names = ", ".join(
            f"{c.contract_number or c.contract_id} ({c.action}{': ' + c.reason if c.reason else ''})"
            for c in behind[:10]
        )
        return Evidence.failed(f"{len(behind):,} contract(s) not yet {what}: {names}", **counts)

    return probe


_drafts_exist = _invoices_reached(("confirm", "done"), "a draft invoice holding exactly its migrated milestones")
_all_confirmed = _invoices_reached(("done",), "invoice confirmed, milestones Customer invoice posted")


# --- the runbook ---------------------------------------------------------------------------------

CUTOVER = Runbook(
    (
        Step(
            "preflight.environment",
            "Connect and identify the environment",
            Kind.AUTO,
            what="Sign in, ask Dataverse who we are (WhoAmI) and compare the organization with the one the profile is pinned to.",
            action=_identify,
            check=_environment_matches,
            done_when="the organization id equals the pinned one",
        ),
        Step(
            "preflight.version",
            "Finance and Operations is 10.0.24 or later",
            Kind.ATTEST,
            what="The cutover version of the milestone map needs Finance 10.0.24 or later; the version is not readable over OData.",
            done_when="attested",
        ),
        Step(
            "preflight.maintenance",
            "The environment is in maintenance mode",
            Kind.ATTEST,
            what="Nobody else may change milestones, invoices or the ledger while the cutover runs.",
            done_when="attested",
        ),
        Step(
            "preflight.source",
            "Validate the legacy extract",
            Kind.AUTO,
            depends_on=("preflight.environment",),
            what="Read the extract, check every row and cross-check contracts, lines, customers and currencies against Dataverse and F&O. Nothing is written.",
            action=_validate_source,
            check=_source_is_loadable,
            done_when="zero validation problems",
        ),
        Step(
            "preflight.metadata",
            "Tables, columns and invoice actions exist",
            Kind.AUTO,
            depends_on=("preflight.environment",),
            what="Read $metadata: the entity sets the run writes and the invoice actions named in the profile.",
            action=_metadata,
            check=_metadata_checked,
            done_when="all present",
        ),
        Step(
            "snapshot.before",
            "AR and GL snapshot before",
            Kind.AUTO,
            depends_on=("preflight.source",),
            what="Read every customer transaction and general-ledger line of the extract's legal entities into Parquet, with control totals.",
            action=_snapshot_action("before"),
            check=_snapshot_taken("before"),
            done_when="Parquet files and manifest written",
        ),
        Step(
            "map.generate-mapping",
            "Generate the milestone entity's target mapping",
            Kind.MANUAL,
            depends_on=("snapshot.before",),
            what="Refresh the F&O entity's mapping so TRANSSTATUS can be mapped.",
            click_path=(
                "Finance and Operations",
                "Data management",
                "Data entities",
                "Project Operations integration contract line milestones",
                "Modify target mappings",
                "Generate mapping",
            ),
            check=record_original_version,
            undo="nothing to undo",
        ),
        Step(
            "map.stop-milestones",
            "Stop the milestone map and refresh its tables",
            Kind.MANUAL,
            depends_on=("map.generate-mapping",),
            what="The map must be stopped before its mapping can change.",
            click_path=(*DUAL_WRITE, MILESTONE_MAP_TITLE, "Stop", "Refresh tables"),
            check=milestone_map_stopped,
            done_when="the map reads stopped, else attested",
            undo="start the map again",
        ),
        Step(
            "map.add-transstatus",
            "Map TRANSSTATUS to the invoice status",
            Kind.MANUAL,
            depends_on=("map.stop-milestones",),
            what="Add the field mapping TRANSSTATUS ⇐ msdyn_invoicestatus (Dataverse to F&O) with the value map 4 ⇐ 192350001, so Ready for invoicing lands as Invoiced.",
            click_path=(
                *DUAL_WRITE,
                MILESTONE_MAP_TITLE,
                "Add mapping",
                "TRANSSTATUS ⇐ msdyn_invoicestatus, direction Dataverse → F&O",
                "Transform: ValueMap 4 ⇐ 192350001",
            ),
            undo="remove the mapping (or go back to the original version)",
        ),
        Step(
            "map.save-cutover-version",
            "Save the cutover version and start the map",
            Kind.MANUAL,
            depends_on=("map.add-transstatus",),
            what="Save the changed map as a new version (Default publisher, description 'cutover') and start it.",
            click_path=(
                *DUAL_WRITE,
                MILESTONE_MAP_TITLE,
                "Save as",
                "Publisher: Default publisher; description: cutover",
                "Run",
            ),
            check=all_of(cutover_version_running, maps_running((MILESTONE_MAP,))),
            done_when="running on a cutover version, where readable",
            undo="switch the map back to its original version",
        ),
        Step(
            "migrate.milestones",
            "Create the milestones as Ready for invoicing",
            Kind.AUTO,
            depends_on=("map.save-cutover-version",),
            what="Load every valid invoiced row as a milestone (status Ready for invoicing), in bulk, exactly once.",
            gate=cutover_version_running,
            gate_rule="no migration before the cutover version of the milestone map runs",
            action=_migrate,
            check=_all_in_dataverse,
            done_when="every valid row in Dataverse, once",
            writes=True,
            undo="`cutover rollback` deletes this run's milestones",
        ),
        Step(
            "migrate.verify-fno",
            "The milestones reached F&O as Invoiced",
            Kind.AUTO,
            depends_on=("migrate.milestones",),
            what="Read ProjectContractLineMilestones: every migrated milestone must read TransStatus Invoiced — proof that the cutover version ran.",
            action=_read_fno,
            check=_invoiced_in_fno,
            done_when="all migrated rows Invoiced",
        ),
        Step(
            "maps.stop-three",
            "Stop the milestone, actuals and invoices maps",
            Kind.MANUAL,
            depends_on=("migrate.verify-fno",),
            what="With any of the three running, confirming the pro-forma invoices would post customer invoices and actuals into the ledger a second time.",
            click_path=(*DUAL_WRITE, "Select: " + "; ".join(THREE_MAP_TITLES), "Stop"),
            check=three_maps_stopped,
            done_when="each reads stopped, else attested",
            undo="start the three maps again",
        ),
        Step(
            "invoice.create",
            "Create the pro-forma invoices",
            Kind.AUTO,
            depends_on=("maps.stop-three",),
            what="One draft invoice per contract, holding exactly its migrated milestones.",
            gate=all_of(three_maps_stopped, invoice_integration_async),
            gate_rule="no invoice before the three maps are stopped and the invoice integration is synchronous",
            action=_create_invoices,
            check=_drafts_exist,
            done_when="one draft per contract covering its migrated milestones",
            writes=True,
            undo="`cutover rollback` deletes the drafts",
        ),
        Step(
            "invoice.confirm",
            "Confirm the invoices",
            Kind.AUTO,
            depends_on=("invoice.create",),
            what="Confirm every draft; the milestones become Customer invoice posted. This cannot be undone.",
            gate=all_of(three_maps_stopped, invoice_integration_async),
            gate_rule="no confirmation while any of the three maps runs",
            action=_confirm_invoices,
            check=_all_confirmed,
            done_when="invoices Confirmed, milestones Customer invoice posted",
            writes=True,
            point_of_no_return=True,
        ),
        Step(
            "maps.revert-version",
            "Put the milestone map back on its original version",
            Kind.MANUAL,
            depends_on=("invoice.confirm",),
            what="The cutover version must not stay: new milestones would land as Invoiced.",
            click_path=(*DUAL_WRITE, MILESTONE_MAP_TITLE, "Version", "the version that ran before the cutover"),
            check=original_version_running,
            done_when="original version, else attested",
        ),
        Step(
            "maps.restart-three",
            "Start the three maps again",
            Kind.MANUAL,
            depends_on=("maps.revert-version",),
            what="Back to normal operation.",
            gate=_all_confirmed,
            gate_rule="no map restart before every invoice is confirmed",
            click_path=(*DUAL_WRITE, "Select: " + "; ".join(THREE_MAP_TITLES), "Run"),
            check=three_maps_running,
            done_when="each reads running, else attested",
        ),
        Step(
            "snapshot.after",
            "AR and GL snapshot after",
            Kind.AUTO,
            depends_on=("maps.restart-three",),
            what="The same read as before; the validation suite compares the two.",
            action=_snapshot_action("after"),
            check=_snapshot_taken("after"),
            done_when="files written",
        ),
    )
)


def _with_verification(runbook: Runbook) -> Runbook:
    from .verify_steps import VERIFY_STEPS

    return runbook.extended(*VERIFY_STEPS)


#: The whole night: the cutover through ``snapshot.after``, then ``verify`` (the validation suite
#: and its evidence pack) and ``signoff`` (two named approvers).
RUNBOOK = _with_verification(CUTOVER)
LAST_CUTOVER_STEP = CUTOVER.ids[-1]

__all__ = ["CUTOVER", "LAST_CUTOVER_STEP", "RUNBOOK", "THREE_MAPS", "all_of", "validated"]
