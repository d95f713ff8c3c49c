"""Steps about the migrated milestones: the extract against Dataverse and Finance and Operations.

Step texts (``<…>`` is a parameter an accountant may change):

- ``Given the invoiced milestones of the legacy extract`` / ``Given the legacy milestones that are not invoiced``
- ``When they are compared with the milestones in Dataverse`` (… ``in Finance and Operations``)
- ``When their contracts' invoices are read from Dataverse``
- ``Then none of them is missing in <side>`` / ``… is in <side> more than once``
- ``Then no other milestone is on their contracts in <side>``
- ``Then each has its legacy <fields> in <side> within the scope's tolerances``
  (or ``within an amount tolerance of <amount> and a date tolerance of <days> days``)
- ``Then the control totals per contract line, contract, legal entity and currency agree with <side>``
- ``Then every one of them reads "<status>" in <side>``
- ``Then none of them exists in Dataverse``
- ``Then every contract's migrated milestones are on its confirmed invoices``
- ``Then every contract's confirmed invoices total its invoiced milestones within the scope's control total tolerance``
  (or ``within <amount>``)

``<side>`` is ``Dataverse`` or ``Finance and Operations``. Findings name the legacy id, the
milestone and the values; the full rows go to the report as tables.
"""

from __future__ import annotations

from decimal import Decimal

import polars as pl
from pytest_bdd import given, parsers, then, when

from cutover.domain import InvoiceStatus, ProjTransStatus, deterministic_id
from cutover.errors import InputError
from cutover.reconcile import LEVELS

from ..outcomes import Finding, NotVerified
from ..recorder import money, row_list, signed
from ..scope import amount

DATAVERSE, FNO = "Dataverse", "Finance and Operations"
SIDES = {DATAVERSE: "dataverse", FNO: "fno"}
FIELD_WORDS = {
    "contract line": ("contract", "line"),
    "contract": ("contract",),
    "line": ("line",),
    "legal entity": ("legal_entity",),
    "currency": ("currency",),
    "amount": ("amount",),
    "tax": ("tax",),
    "date": ("date",),
}


def _side(words: str) -> str:
    try:
        return SIDES[words.strip()]
    except KeyError:
        raise InputError(f"{words!r} is not a side; say {DATAVERSE} or {FNO}") from None


def _readable(cutover, side: str) -> None:
    if side == "fno" and cutover.fno is None:
        raise NotVerified(cutover.fno_unreadable or "Finance and Operations could not be read")


def _fields(words: str) -> set[str]:
    text = words.replace(" and ", ", ")
    out: set[str] = set()
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part not in FIELD_WORDS:
            raise InputError(f"{part!r} is not a milestone field (known: {', '.join(FIELD_WORDS)})")
        out.update(FIELD_WORDS[part])
    return out


# --- given / when ---------------------------------------------------------------------------------


@given("the invoiced milestones of the legacy extract", target_fixture="milestones")
def _(cutover, evidence):
    extract = cutover.extract
    evidence.figure("legacy extract", str(cutover.settings.source))
    evidence.figure("extract SHA-256", cutover.source_sha256)
    evidence.figure("cutover date", cutover.cutover_date)
    evidence.figure("invoiced legacy milestones", extract.rows.height)
    totals = (
        extract.rows.group_by("legal_entity", "currency")
        .agg(pl.len().alias("milestones"), pl.col("amount").sum().alias("amount"))
        .sort("legal_entity", "currency")
    )
    evidence.table("legacy_totals", totals, "Invoiced legacy milestones per legal entity and currency")
    return extract.rows


@given("the legacy milestones that are not invoiced", target_fixture="not_invoiced")
def _(cutover, evidence):
    excluded = cutover.extract.excluded
    evidence.figure("legacy milestones not invoiced", excluded.height)
    ids = [deterministic_id(x) if x and str(x).strip() else None for x in excluded["legacy_id"].to_list()]
    return excluded.select("legacy_id", "legal_entity", "contract_number", "amount", "currency").with_columns(
        pl.Series("milestone_id", ids, dtype=pl.String)
    )


@when(parsers.parse("they are compared with the milestones in {side}"), target_fixture="reconciliation")
def _(cutover, scope, evidence, side):
    side = _side(side)
    _readable(cutover, side)
    result = cutover.reconcile(scope.milestone_tolerances(), scope.milestones_on)
    evidence.figure(
        f"milestones read from {side}", cutover.dataverse.height if side == "dataverse" else cutover.fno.height
    )
    return result


# --- completeness ---------------------------------------------------------------------------------


def _legacy_lines(frame: pl.DataFrame) -> list[str]:
    return [
        f"{r['legacy_id']} ({r['legal_entity']} {r['contract']} line {r['line']}, {r['currency']} {money(r['amount'])})"
        for r in frame.iter_rows(named=True)
    ]


@then(parsers.parse("none of them is missing in {side}"))
def _(reconciliation, evidence, side, cutover):
    side = _side(side)
    _readable(cutover, side)
    missing = reconciliation.missing_in_dataverse if side == "dataverse" else reconciliation.missing_in_fno
    evidence.figure(f"missing in {side}", missing.height)
    evidence.figure("matched", reconciliation.summary.matched)
    if missing.height:
        evidence.table(f"missing_in_{side}", missing, f"Invoiced legacy milestones missing in {side}")
        raise Finding(
            f"{missing.height:,} invoiced legacy milestone(s) are not in {side}: "
            + row_list(_legacy_lines(missing), missing.height)
        )


@then(parsers.parse("none of them is in {side} more than once"))
def _(reconciliation, evidence, side, cutover):
    side = _side(side)
    _readable(cutover, side)
    dups = reconciliation.duplicates.filter(pl.col("side") == side)
    evidence.figure(f"ids on more than one row in {side}", dups.height)
    if dups.height:
        evidence.table(f"duplicates_in_{side}", dups, f"Milestone ids on more than one row in {side}")
        lines = [f"milestone {r['milestone_id']} on {r['rows']} rows" for r in dups.iter_rows(named=True)]
        raise Finding(f"{dups.height:,} milestone(s) are in {side} more than once: " + row_list(lines, dups.height))


@then(parsers.parse("no other milestone is on their contracts in {side}"))
def _(reconciliation, evidence, side, cutover):
    side = _side(side)
    _readable(cutover, side)
    extra = reconciliation.unexpected_in_dataverse if side == "dataverse" else reconciliation.unexpected_in_fno
    evidence.figure(f"other milestones on the contracts in {side}", extra.height)
    if extra.height:
        evidence.table(
            f"unexpected_in_{side}",
            extra,
            f"Milestones on the extract's contracts in {side} that are not in the extract",
        )
        lines = [
            f"{r['milestone_id']} ({r.get('contract')} line {r.get('line')}, {money(r.get('amount'))})"
            for r in extra.iter_rows(named=True)
        ]
        raise Finding(
            f"{extra.height:,} milestone(s) on the extract's contracts in {side} are not in the extract: "
            + row_list(lines, extra.height)
        )


def _mismatch_lines(frame: pl.DataFrame, side: str) -> list[str]:
    diff = f"{side}_difference"
    out = []
    for r in frame.iter_rows(named=True):
        extra = f" (difference {r[diff]}, tolerance {r['tolerance']})" if r.get(diff) else ""
        out.append(f"{r['legacy_id']} {r['field']}: legacy {r['expected']}, {side} {r[side]}{extra}")
    return out


@then(
    parsers.re(
        r"each has its legacy (?P<fields>.+) in (?P<side>Dataverse|Finance and Operations) within "
        r"(?:the scope's tolerances|an amount tolerance of (?P<amount_tol>[0-9.]+)"
        r"(?: and a date tolerance of (?P<days>\d+) days?)?)"
    )
)
def _(cutover, scope, evidence, fields, side, amount_tol, days):
    side_name = side
    side = _side(side)
    _readable(cutover, side)
    tolerances = scope.milestone_tolerances(
        amount=amount(amount_tol, "amount tolerance") if amount_tol else None,
        tax=amount(amount_tol, "amount tolerance") if amount_tol else None,
        date=int(days) if days else None,
    )
    result = cutover.reconcile(tolerances, scope.milestones_on)
    wanted = _fields(fields)
    found = result.mismatches.filter(
        pl.col("field").is_in(sorted(wanted)) & pl.col("differs").str.contains(side)
    ).select("milestone_id", "legacy_id", "field", "expected", side, f"{side}_difference", "tolerance")
    evidence.figure("amount tolerance", tolerances.amount)
    evidence.figure("date tolerance (days)", tolerances.date)
    evidence.figure(f"field differences in {side}", found.height)
    if found.height:
        evidence.table(f"mismatches_{side}", found, f"Milestones whose values in {side_name} differ from the extract")
        raise Finding(
            f"{found['milestone_id'].n_unique():,} milestone(s) differ from the legacy extract in {side_name}: "
            + row_list(_mismatch_lines(found, side), found.height)
        )


@then(parsers.parse("the control totals per contract line, contract, legal entity and currency agree with {side}"))
def _(reconciliation, evidence, side, cutover):
    side = _side(side)
    _readable(cutover, side)
    totals = reconciliation.control_totals
    count, amount_col, diff = f"{side}_count", f"{side}_amount", f"{side}_difference"
    view = totals.select(
        "level",
        "legal_entity",
        "contract",
        "line",
        "currency",
        "legacy_count",
        count,
        "legacy_amount",
        amount_col,
        diff,
    )
    off = view.filter((pl.col("legacy_count") != pl.col(count)) | (pl.col(diff) != 0))
    evidence.table(
        "control_totals", view.filter(pl.col("level") != "contract_line"), f"Control totals, extract against {side}"
    )
    evidence.figure(f"control totals off in {side}", off.height)
    for level in LEVELS:
        evidence.figure(f"{level.replace('_', ' ')} totals compared", view.filter(pl.col("level") == level).height)
    if off.height:
        evidence.table(f"control_totals_off_{side}", off, f"Control totals that do not agree with {side}")
        lines = [
            f"{r['level'].replace('_', ' ')} {' '.join(str(r[k]) for k in ('legal_entity', 'contract', 'line') if r[k])} "
            f"{r['currency']}: extract {r['legacy_count']} for {money(r['legacy_amount'])}, {side} {r[count]} for "
            f"{money(r[amount_col])} ({signed(r[diff])})"
            for r in off.iter_rows(named=True)
        ]
        raise Finding(f"{off.height:,} control total(s) disagree: " + row_list(lines, off.height))


# --- statuses ------------------------------------------------------------------------------------


def _invoice_status(words: str) -> int:
    for status in InvoiceStatus:
        if status.label.lower() == words.strip().lower():
            return int(status)
    raise InputError(f"{words!r} is not a milestone invoice status ({', '.join(s.label for s in InvoiceStatus)})")


@then(parsers.parse('every one of them reads "{status}" in {side}'))
def _(cutover, milestones, evidence, status, side):
    side = _side(side)
    _readable(cutover, side)
    ids = milestones.select(pl.col("milestone_id").str.to_lowercase(), "legacy_id")
    if side == "dataverse":
        want = _invoice_status(status)
        live = cutover.dataverse.select(
            pl.col("milestone_id").str.to_lowercase(), pl.col("invoice_status").alias("status")
        )
        label = {int(s): s.label for s in InvoiceStatus}
        joined = ids.join(live, on="milestone_id", how="left").with_columns(
            pl.col("status")
            .replace_strict(label, default=pl.col("status").cast(pl.String), return_dtype=pl.String)
            .alias("reads")
        )
        wrong = joined.filter(pl.col("status").ne_missing(want))
    else:
        try:
            want_member = ProjTransStatus.from_member(status.strip()).member
        except ValueError:
            raise InputError(
                f"{status!r} is not an F&O TransStatus ({', '.join(m.member for m in ProjTransStatus)})"
            ) from None
        live = cutover.fno.select(pl.col("milestone_id").str.to_lowercase(), pl.col("trans_status").alias("reads"))
        joined = ids.join(live, on="milestone_id", how="left")
        wrong = joined.filter(pl.col("reads").ne_missing(want_member))
    counts = joined.group_by("reads").len().sort("reads", nulls_last=True)
    for reads, n in counts.iter_rows():
        evidence.figure(f"read {reads or 'nothing (not there)'}", n)
    evidence.figure(f'not "{status}"', wrong.height)
    if wrong.height:
        evidence.table(
            f"status_{side}",
            wrong.select("legacy_id", "milestone_id", "reads"),
            f'Milestones that do not read "{status}" in {side}',
        )
        lines = [f"{r['legacy_id']} reads {r['reads'] or 'nothing (not there)'}" for r in wrong.iter_rows(named=True)]
        raise Finding(
            f'{wrong.height:,} milestone(s) do not read "{status}" in {side}: ' + row_list(lines, wrong.height)
        )


@then("none of them exists in Dataverse")
def _(cutover, not_invoiced, evidence):
    ids = [x for x in not_invoiced["milestone_id"].to_list() if x]
    found = {str(r.get("msdyn_contractlinescheduleofvalueid", "")).lower() for r in cutover.dataverse_by_id(ids)}
    there = not_invoiced.filter(pl.col("milestone_id").is_in(sorted(found)))
    evidence.figure("not-invoiced legacy milestones found in Dataverse", there.height)
    if there.height:
        evidence.table(
            "not_invoiced_in_dataverse", there, "Legacy milestones that are not invoiced, found in Dataverse"
        )
        lines = [
            f"{r['legacy_id']} ({r['legal_entity']} {r['contract_number']}, {r['currency']} {r['amount']})"
            for r in there.iter_rows(named=True)
        ]
        raise Finding(
            f"{there.height:,} legacy milestone(s) that are not invoiced were migrated: "
            + row_list(lines, there.height)
        )


# --- invoices ------------------------------------------------------------------------------------


@when("their contracts' invoices are read from Dataverse", target_fixture="contract_invoices")
def _(cutover, milestones, evidence):
    state = cutover.invoicing
    numbers = dict(state.contract_numbers)
    migrated = milestones.select(
        pl.col("milestone_id").str.to_lowercase(),
        pl.col("contract_id").str.to_lowercase(),
        "contract_number",
        "currency",
        "amount",
    )
    ms = pl.DataFrame(
        [
            {
                "milestone_id": m.milestone_id,
                "status": m.status,
                "live_amount": format(m.amount, "f") if m.amount is not None else None,
                "contract_id": m.contract_id,
            }
            for m in state.milestones
        ],
        schema={"milestone_id": pl.String, "status": pl.Int64, "live_amount": pl.String, "contract_id": pl.String},
        orient="row",
    ).with_columns(pl.col("live_amount").cast(pl.Decimal(38, 4)))
    invoices = pl.DataFrame(
        [
            {
                "contract_id": i.contract_id,
                "invoice": i.number or i.invoice_id,
                "confirmed": i.confirmed,
                "total": format(i.total, "f") if i.total is not None else "0",
            }
            for i in state.invoices
        ],
        schema={"contract_id": pl.String, "invoice": pl.String, "confirmed": pl.Boolean, "total": pl.String},
        orient="row",
    ).with_columns(pl.col("total").cast(pl.Decimal(38, 4)))
    evidence.figure("contracts", len(cutover.contract_ids))
    evidence.figure("invoices on them", invoices.height)
    evidence.figure("confirmed invoices", int(invoices["confirmed"].sum()) if invoices.height else 0)
    return {"migrated": migrated, "milestones": ms, "invoices": invoices, "numbers": numbers}


@then("every contract's migrated milestones are on its confirmed invoices")
def _(contract_invoices, evidence):
    migrated, ms = contract_invoices["migrated"], contract_invoices["milestones"]
    joined = migrated.join(ms.select("milestone_id", "status"), on="milestone_id", how="left")
    posted = int(InvoiceStatus.POSTED)
    label = {int(s): s.label for s in InvoiceStatus}
    off = joined.filter(pl.col("status").ne_missing(posted)).with_columns(
        pl.col("status").replace_strict(label, default=pl.lit("not there"), return_dtype=pl.String).alias("reads")
    )
    evidence.figure("migrated milestones on a confirmed invoice", joined.height - off.height)
    if off.height:
        evidence.table("not_on_confirmed_invoice", off, "Migrated milestones not on a confirmed invoice")
        lines = [
            f"{r['milestone_id']} on contract {r['contract_number']} reads {r['reads']}"
            for r in off.iter_rows(named=True)
        ]
        raise Finding(
            f"{off.height:,} migrated milestone(s) are not on a confirmed invoice: " + row_list(lines, off.height)
        )


@then(
    parsers.re(
        r"every contract's confirmed invoices total its invoiced milestones within "
        r"(?:the scope's control total tolerance|(?P<tol>[0-9.]+))"
    )
)
def _(contract_invoices, scope, evidence, tol):
    tolerance = amount(tol, "tolerance") if tol else scope.control_total
    migrated, ms, invoices = (
        contract_invoices["migrated"],
        contract_invoices["milestones"],
        contract_invoices["invoices"],
    )
    per_contract = migrated.group_by("contract_id", "contract_number", "currency").agg(
        pl.len().alias("migrated_milestones"), pl.col("amount").sum().alias("migrated_amount")
    )
    posted = (
        ms.filter(pl.col("status") == int(InvoiceStatus.POSTED))
        .group_by("contract_id")
        .agg(pl.col("live_amount").sum().alias("posted_milestones_amount"))
    )
    confirmed = (
        invoices.filter(pl.col("confirmed"))
        .group_by("contract_id")
        .agg(pl.len().alias("confirmed_invoices"), pl.col("total").sum().alias("invoiced_total"))
    )
    zero = pl.lit(Decimal(0), pl.Decimal(38, 4))
    table = (
        per_contract.join(posted, on="contract_id", how="left")
        .join(confirmed, on="contract_id", how="left")
        .with_columns(
            pl.col("posted_milestones_amount").fill_null(zero),
            pl.col("invoiced_total").fill_null(zero),
            pl.col("confirmed_invoices").fill_null(0),
        )
        .with_columns((pl.col("invoiced_total") - pl.col("posted_milestones_amount")).alias("difference"))
        .sort("contract_number")
    )
    off = table.filter(
        (pl.col("difference").abs() > pl.lit(tolerance, pl.Decimal(38, 4)))
        | (pl.col("invoiced_total") < pl.col("migrated_amount"))
    )
    evidence.figure("tolerance", tolerance)
    evidence.table(
        "contract_invoices", table.drop("contract_id"), "Per contract: migrated milestones and confirmed invoices"
    )
    evidence.figure("contracts whose invoices do not add up", off.height)
    if off.height:
        lines = [
            f"contract {r['contract_number']} ({r['currency']}): confirmed invoices {money(r['invoiced_total'])}, "
            f"invoiced milestones {money(r['posted_milestones_amount'])}, migrated {money(r['migrated_amount'])}"
            for r in off.iter_rows(named=True)
        ]
        raise Finding(
            f"{off.height:,} contract(s) whose invoiced totals do not include their migrated milestones: "
            + row_list(lines, off.height)
        )
