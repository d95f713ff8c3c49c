"""Planning the milestone load (pure, polars) — and the helpers the other migrate tests share:
validated rows built from the seeded world (its tables and its legacy extract CSV), a session
over the in-process simulator.

Planning: against an empty environment every invoiced row is to be created; against what a
load left behind everything is identical; a changed amount is an update; a changed milestone
already on a customer invoice, or a look-alike milestone under another id, is a conflict;
records carry exact Decimal money, the status and classification codes, and every lookup."""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from cutover.config import Profile
from cutover.dataverse import DataverseClient
from cutover.domain import deterministic_id
from cutover.errors import InputError
from cutover.fno import FnoClient
from cutover.migrate import EXISTING_SCHEMA, KEY, existing_frame, milestone_records, plan_migration
from cutover.session import Session
from cutover.source.model import MONEY, RAW_SCHEMA, VALID_SCHEMA, Problem, ValidatedExtract
from cutover.transport import Transport
from tests.conftest import FNO, WRITER
from tests.dataverse_harness import POOL, HarnessToken, no_sleep

CUTOVER_DATE = "2026-12-01"


# --- shared helpers ---------------------------------------------------------------------------


def extract_path(db: Path) -> Path:
    """The legacy extract the `world_db` fixture copies beside the database."""
    return db.with_name("world.csv")


def validated_from_world(db: Path, csv: Path | None = None) -> ValidatedExtract:
    """The seeded extract as validation would hand it over: invoiced rows typed, with the
    Dataverse ids they resolve to (read straight from the simulator's tables)."""
    csv = csv or extract_path(db)
    raw = pl.read_csv(csv, infer_schema=False).with_row_index("_row", offset=2)
    raw = raw.with_columns(pl.col("_row").cast(pl.Int64), pl.lit(csv.name).alias("_file"))
    conn = sqlite3.connect(db)
    try:
        lines = pl.DataFrame(
            conn.execute(
                "SELECT o.ordernumber, d.lineitemnumber, d.salesorderdetailid, o.salesorderid, d._msdyn_project_value, "
                "d._transactioncurrencyid_value FROM dv_salesorderdetails d JOIN dv_salesorders o "
                "ON o.salesorderid = d._salesorderid_value"
            ).fetchall(),
            schema=["contract_number", "contract_line", "line_id", "contract_id", "project_id", "currency_id"],
            orient="row",
        )
        companies = pl.DataFrame(
            conn.execute("SELECT cdm_companycode, cdm_companyid FROM dv_cdm_companies").fetchall(),
            schema=["legal_entity", "company_id"],
            orient="row",
        )
        customers = pl.DataFrame(
            conn.execute("SELECT accountnumber, accountid FROM dv_accounts").fetchall(),
            schema=["customer_account", "customer_id"],
            orient="row",
        )
    finally:
        conn.close()
    invoiced = raw.filter(pl.col("legacy_status") == "Invoiced")
    excluded = raw.filter(pl.col("legacy_status") != "Invoiced").select(list(RAW_SCHEMA)).cast(RAW_SCHEMA)
    rows = (
        invoiced.with_columns(
            pl.col("contract_line").cast(pl.Int64),
            pl.col("milestone_date").str.to_date(),
            pl.col("amount").str.to_decimal(scale=4).cast(MONEY),
            pl.col("tax_amount").str.to_decimal(scale=4).cast(MONEY),
            pl.col("legacy_id").map_elements(deterministic_id, return_dtype=pl.String).alias("milestone_id"),
        )
        .join(lines, on=["contract_number", "contract_line"], how="left")
        .join(companies, on="legal_entity", how="left")
        .join(customers, on="customer_account", how="left")
        .select(list(VALID_SCHEMA))
        .cast(VALID_SCHEMA)
    )
    assert rows["line_id"].null_count() == 0
    return ValidatedExtract(rows, excluded, [], raw.height, CUTOVER_DATE)


def subset(validated: ValidatedExtract, n: int) -> ValidatedExtract:
    return ValidatedExtract(validated.rows.head(n), validated.excluded, [], validated.rows_read, validated.cutover_date)


def harness_session(h, *, pool=(WRITER,), read_only: bool = False, profile: Profile | None = None, **kw) -> Session:
    """A Session over a simulator harness (in-process or socket), as open_session would build it."""
    base = str(h.client.base_url).rstrip("/")
    profile = profile or Profile(name="rehearsal", kind="rehearsal", dataverse_url=base, fno_url=base)
    kw.setdefault("sleep", no_sleep)
    dv = [
        Transport(
            f"{base}/api/data/v9.2/",
            HarnessToken(h, who),
            environment=profile.name,
            read_only=read_only,
            client=h.client,
            **kw,
        )
        for who in pool
    ]
    fno = Transport(f"{base}{FNO}", HarnessToken(h, pool[0]), environment=profile.name, client=h.client, **kw)
    return Session(
        profile, Path("."), DataverseClient(dv), FnoClient(fno), None, dv[0].base_url, fno.base_url, [*dv, fno]
    )


__all__ = ["POOL", "extract_path", "harness_session", "subset", "validated_from_world"]


# --- planning ---------------------------------------------------------------------------------


@pytest.fixture
def validated(world_db: Path) -> ValidatedExtract:
    return validated_from_world(world_db)


def _existing_from(validated: ValidatedExtract, **changes) -> pl.DataFrame:
    """What Dataverse would hold after loading `validated` (optionally with changed values)."""
    rows = [
        {
            KEY: r["milestone_id"],
            "msdyn_name": r["milestone_name"],
            "msdyn_amount": r["amount"],
            "msdyn_tax": r["tax_amount"],
            "msdyn_invoicedate": r["milestone_date"].isoformat(),
            "msdyn_invoicestatus": 192350001,
            "_msdyn_contractlineid_value": r["line_id"].upper(),  # Dataverse's case does not matter
            "_msdyn_contract_value": r["contract_id"],
            "_msdyn_project_value": r["project_id"],
            "_transactioncurrencyid_value": r["currency_id"],
        }
        for r in validated.rows.iter_rows(named=True)
    ]
    for index, values in changes.items():
        rows[int(index.lstrip("r"))].update(values)
    return existing_frame(rows)


def test_clean_environment_plans_every_invoiced_row_for_creation(validated: ValidatedExtract):
    plan = plan_migration(validated, None)
    assert plan.create.height == validated.rows.height == 150
    assert plan.counts() == {"create": 150, "update": 0, "identical": 0, "conflicts": 0, "excluded": 50}
    assert "150 to create" in plan.summary() and "50 excluded" in plan.summary()
    assert plan.create["legacy_id"].n_unique() == 150


def test_after_a_load_everything_is_identical_and_nothing_is_written(validated: ValidatedExtract):
    plan = plan_migration(validated, _existing_from(validated))
    assert plan.counts()["identical"] == 150 and plan.nothing_to_write


def test_changed_values_are_updates_and_invoiced_changes_are_conflicts(validated: ValidatedExtract):
    existing = _existing_from(
        validated,
        r3={"msdyn_amount": Decimal("1.00")},
        r4={"msdyn_invoicestatus": 192350000},
        r5={"msdyn_amount": Decimal("2.00"), "msdyn_invoicestatus": 192350003},
        r6={"msdyn_invoicestatus": 192350003},  # invoiced since, with the same values: done
    )
    plan = plan_migration(validated, existing)
    assert plan.counts() == {"create": 0, "update": 2, "identical": 147, "conflicts": 1, "excluded": 50}
    ids = validated.rows["milestone_id"].to_list()
    assert dict(zip(plan.update["milestone_id"], plan.update["changes"])) == {ids[3]: "amount", ids[4]: "status"}
    conflict = plan.conflicts.row(0, named=True)
    assert conflict["milestone_id"] == ids[5] and conflict["rule"] == "milestone.invoiced"
    assert "already on a customer invoice" in conflict["reason"] and "amount" in conflict["reason"]


def test_a_lookalike_under_another_id_is_a_conflict_not_a_second_milestone(validated: ValidatedExtract):
    first = validated.rows.row(0, named=True)
    other = existing_frame(
        [
            {
                KEY: "00000000-0000-0000-0000-0000000000aa",
                "msdyn_name": first["milestone_name"],
                "msdyn_amount": first["amount"],
                "msdyn_invoicedate": first["milestone_date"].isoformat(),
                "msdyn_invoicestatus": 192350001,
                "_msdyn_contractlineid_value": first["line_id"],
            }
        ]
    )
    plan = plan_migration(validated, other)
    assert plan.counts()["create"] == 149 and plan.conflicts.height == 1
    assert plan.conflicts["rule"].to_list() == ["milestone.lookalike"]
    assert "00000000-0000-0000-0000-0000000000aa" in plan.conflicts["reason"][0]


def test_an_extract_with_problems_cannot_be_planned(validated: ValidatedExtract):
    bad = ValidatedExtract(
        validated.rows,
        validated.excluded,
        [Problem("x.csv", 2, "amount", "1.234", "amount.scale", "too many decimals")],
        1,
        "",
    )
    with pytest.raises(InputError, match="1 problem"):
        plan_migration(bad, None)


def test_records_carry_exact_money_codes_and_every_lookup(validated: ValidatedExtract):
    rows = validated.rows.head(2).with_columns(
        pl.Series("amount", [Decimal("1234567.89"), Decimal("0.10")], dtype=MONEY),
        pl.Series("currency", ["USD", "JPY"]),
        pl.Series("tax_amount", [Decimal("0"), Decimal("5")], dtype=MONEY),
    )
    rows = rows.with_columns(
        pl.when(pl.col("currency") == "JPY").then(Decimal("10")).otherwise(pl.col("amount")).cast(MONEY).alias("amount")
    )
    first, second = milestone_records(rows)
    r = rows.row(0, named=True)
    assert first == {
        KEY: r["milestone_id"],
        "msdyn_name": r["milestone_name"],
        "msdyn_amount": Decimal("1234567.89"),
        "msdyn_tax": Decimal("0.00"),
        "msdyn_invoicedate": r["milestone_date"].isoformat(),
        "msdyn_invoicestatus": 192350001,
        "msdyn_transactionclassification": 192350003,
        "msdyn_ContractLineId@odata.bind": f"/salesorderdetails({r['line_id']})",
        "msdyn_contract@odata.bind": f"/salesorders({r['contract_id']})",
        "msdyn_project@odata.bind": f"/msdyn_projects({r['project_id']})",
        "transactioncurrencyid@odata.bind": f"/transactioncurrencies({r['currency_id']})",
    }
    assert str(first["msdyn_amount"]) == "1234567.89"
    assert str(second["msdyn_amount"]) == "10" and str(second["msdyn_tax"]) == "5"  # JPY: no decimals
    assert not any(isinstance(v, float) for rec in (first, second) for v in rec.values())


def test_existing_frame_reads_web_api_rows_exactly():
    frame = existing_frame(
        [
            {
                KEY: "A0000000-0000-0000-0000-000000000001",
                "msdyn_amount": Decimal("0.10"),
                "msdyn_invoicedate": "2026-01-31",
            }
        ]
    )
    assert frame.schema == pl.Schema(EXISTING_SCHEMA)
    row = frame.row(0, named=True)
    assert row["amount"] == Decimal("0.10") and row["date"] == dt.date(2026, 1, 31)
    assert row["milestone_id"] == "a0000000-0000-0000-0000-000000000001"
