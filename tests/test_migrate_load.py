"""The milestone load against the simulator (in-process ASGI, and one over a real socket):
every valid row once with exact amounts, statuses and lookups; a re-run writes nothing; the
map check gate; throttling storms and 5xx; conflicts untouched; per-record failures named;
guards before any write; what reached F&O.

No mocks: the sessions talk HTTP to the simulator; the assertions read its tables and its
request log, as an operator would look at Dataverse and F&O."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import polars as pl
import pytest

from cutover.config import FingerprintMismatch, Profile
from cutover.errors import UsageError
from cutover.events import ChunkLoaded, MigrationFinished, Notice, PhaseFinished, Progress, RecordFailed, as_dict
from cutover.migrate import MapVersionRefused, plan_migration, read_back, read_existing, run_migration
from cutover.source.model import MONEY, ValidatedExtract
from tests.test_migrate_plan import POOL, harness_session, subset, validated_from_world

MILESTONE_MAP = "msdyn_contractlinescheduleofvalues"
TRANSSTATUS = {
    "fno_field": "TRANSSTATUS",
    "dataverse_field": "msdyn_invoicestatus",
    "direction": "dataverse_to_fno",
    "transform": {"type": "ValueMap", "values": {"4": "192350001"}},
}


async def cutover_map(h) -> None:
    """The runbook's map steps: stop the milestone map, add TRANSSTATUS, save as the cutover version, start."""
    for op, body in (
        ("stop", {}),
        ("save-as", {"version": "1.0.0.6", "description": "cutover", "add_mappings": [TRANSSTATUS]}),
        ("start", {}),
    ):
        r = await h.admin("POST", f"maps/{MILESTONE_MAP}/{op}", json=body)
        assert r.status_code == 200, r.text


async def migrate(session, validated: ValidatedExtract, **kw) -> tuple[list, object]:
    plan = plan_migration(validated, await read_existing(session))
    events = [e async for e in run_migration(session, plan, **kw)]
    assert isinstance(events[-1], MigrationFinished)
    return events, events[-1].outcome


def milestones_in(db) -> pl.DataFrame:
    conn = db if isinstance(db, sqlite3.Connection) else sqlite3.connect(db)
    cur = conn.execute(
        "SELECT msdyn_contractlinescheduleofvalueid, msdyn_name, msdyn_amount, msdyn_tax, msdyn_invoicedate, "
        "msdyn_invoicestatus, msdyn_transactionclassification, _msdyn_contractlineid_value, _msdyn_contract_value, "
        "_msdyn_project_value, _transactioncurrencyid_value FROM dv_msdyn_contractlinescheduleofvalues"
    )
    names = [
        "milestone_id", "name", "amount_units", "tax_units", "date", "status", "classification",
        "line_id", "contract_id", "project_id", "currency_id",
    ]  # fmt: skip
    return pl.DataFrame(cur.fetchall(), schema=names, orient="row")


def check_landed_once(db, validated: ValidatedExtract) -> None:
    """Every valid row exactly once, amounts exact, Ready for invoicing, Milestone, lookups bound."""
    got = milestones_in(db)
    assert got.height == got["milestone_id"].n_unique() == validated.rows.height
    want = validated.rows.select(
        "milestone_id",
        (pl.col("amount") * 10000).cast(pl.Int64).alias("amount_units"),
        (pl.col("tax_amount") * 10000).cast(pl.Int64).alias("tax_units"),
        "line_id",
        "contract_id",
        "project_id",
        "currency_id",
        pl.col("milestone_name").alias("name"),
    )
    joined = want.join(got, on="milestone_id", how="left", suffix="_dv")
    for col in ("amount_units", "tax_units", "line_id", "contract_id", "project_id", "currency_id", "name"):
        assert (joined[col] == joined[f"{col}_dv"]).all(), col
    assert set(got["status"]) == {192350001} and set(got["classification"]) == {192350003}


async def last_seq(h) -> int:
    log = await h.log()
    return log[-1]["seq"] if log else 0


async def writes_since(h, since: int) -> list[dict]:
    return [
        e for e in await h.log(since) if e["method"] in ("POST", "PATCH", "PUT", "DELETE") and "/_sim/" not in e["path"]
    ]


# --- a clean load, and a re-run -----------------------------------------------------------------


async def test_clean_load_lands_every_valid_row_once_and_a_rerun_writes_nothing(sim):
    validated = validated_from_world(sim.db)
    session = harness_session(sim, pool=POOL)
    events, outcome = await migrate(session, validated, skip_map_check=True)
    assert outcome.ok and outcome.created == 150 and outcome.updated == 0 and not outcome.failures
    assert outcome.planned["excluded"] == 50
    check_landed_once(sim.conn, validated)
    assert any(isinstance(e, Notice) and "skipped" in e.message for e in events)
    loaded = [e for e in events if isinstance(e, ChunkLoaded)]
    assert sum(e.succeeded for e in loaded) == 150 and loaded[-1].done == 150
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress[-1].done == progress[-1].total == 150 and progress[-1].failed == 0
    assert all(isinstance(as_dict(e)["event"], str) for e in events)

    # F&O: the map runs its original version, so they arrived as Registered — visible at once
    back = await read_back(session, validated)
    assert back.ok and back.found == 150 and back.lines_ok == back.lines.height
    assert back.fno_statuses == {"Registered": 150} and not back.all_invoiced_in_fno
    assert any("arrived as Registered, not Invoiced" in line for line in back.summary())

    since = await last_seq(sim)
    events, again = await migrate(session, validated, skip_map_check=True)
    assert again.written == 0 and again.ok and "nothing to write: 150" in again.summary()
    assert await writes_since(sim, since) == []


async def test_on_the_cutover_map_version_milestones_arrive_in_fno_as_invoiced(sim):
    await cutover_map(sim)
    validated = subset(validated_from_world(sim.db), 40)
    session = harness_session(sim)
    events, outcome = await migrate(session, validated)
    assert outcome.map_check.is_cutover and outcome.map_check.version == "1.0.0.6"
    assert any(
        isinstance(e, PhaseFinished) and e.phase == "map-check" and "runs a cutover version" in e.detail for e in events
    )
    back = await read_back(session, validated)
    assert back.fno_statuses == {"Invoiced": 40} and back.all_invoiced_in_fno


async def test_money_arrives_exact(sim):
    validated = subset(validated_from_world(sim.db), 2)
    rows = validated.rows.with_columns(pl.Series("amount", [Decimal("1234567.89"), Decimal("0.10")], dtype=MONEY))
    validated = ValidatedExtract(rows, validated.excluded, [], 2, validated.cutover_date)
    session = harness_session(sim)
    _, outcome = await migrate(session, validated, skip_map_check=True)
    assert outcome.ok
    ids = rows["milestone_id"].to_list()
    got = {r["msdyn_contractlinescheduleofvalueid"]: r["msdyn_amount"] for r in await session.dataverse.query_all(
        "msdyn_contractlinescheduleofvalues", select=["msdyn_contractlinescheduleofvalueid", "msdyn_amount"]
    )}  # fmt: skip
    assert got[ids[0]] == Decimal("1234567.89") and got[ids[1]] == Decimal("0.10")
    units = dict(
        sim.conn.execute(
            "SELECT msdyn_contractlinescheduleofvalueid, msdyn_amount FROM dv_msdyn_contractlinescheduleofvalues"
        )
    )
    assert units == {ids[0]: 12345678900, ids[1]: 1000}


# --- the map check gate -------------------------------------------------------------------------


async def test_a_plain_world_is_refused_without_skip_map_check_and_nothing_is_written(sim):
    validated = subset(validated_from_world(sim.db), 10)
    session = harness_session(sim)
    since = await last_seq(sim)
    with pytest.raises(MapVersionRefused, match="Registered, not Invoiced") as info:
        await migrate(session, validated)
    assert info.value.exit_code == 1 and info.value.check.version == "1.0.0.5"
    assert await writes_since(sim, since) == []


async def test_an_unreadable_map_version_is_not_verified_and_the_load_goes_on(sim):
    await sim.admin("PUT", "settings", json={"map_state_hidden_from": ["*"]})
    validated = subset(validated_from_world(sim.db), 10)
    events, outcome = await migrate(harness_session(sim), validated)
    assert outcome.ok and outcome.created == 10 and not outcome.map_check.verified
    assert any(isinstance(e, Notice) and e.level == "warning" and "not verified" in e.message for e in events)


# --- faults -------------------------------------------------------------------------------------


async def test_a_throttling_storm_and_5xx_still_land_everything_once(sim):
    """30 % of requests answered 429 and 5 % 503: creates whose answer was a 503 are read back
    (never resent blindly) and settled; every row lands exactly once."""
    await sim.admin("PUT", "faults", json={"throttle_rate": 0.3, "error_rate": 0.05, "retry_after": 0, "seed": 11})
    validated = validated_from_world(sim.db)
    session = harness_session(sim, pool=POOL[:2])
    _, outcome = await migrate(session, validated, skip_map_check=True, chunk=10)
    assert outcome.ok, [str(f) for f in outcome.failures]
    assert outcome.throttled >= 3
    check_landed_once(sim.conn, validated)
    log = await sim.log()
    assert len([e for e in log if e["status"] == 429]) == outcome.throttled


async def test_lost_answers_on_creates_are_read_back_not_resent_blindly(sim):
    """Every CreateMultiple answered 503 once (the write may or may not have happened): the
    load reads those ids back, confirms what landed and sends only what had not."""
    await sim.admin(
        "PUT", "faults", json={"script": ["5xx", "ok", "5xx"], "path_contains": "CreateMultiple", "seed": 1}
    )
    validated = subset(validated_from_world(sim.db), 60)
    _, outcome = await migrate(harness_session(sim), validated, skip_map_check=True, chunk=20)
    assert outcome.ok and outcome.created == 60
    assert outcome.resent_after_read_back == 40  # the two 503s were refused before anything was written
    check_landed_once(sim.conn, validated)


# --- conflicts and per-record failures -----------------------------------------------------------


async def test_a_conflicting_posted_milestone_is_reported_and_left_untouched(sim):
    validated = subset(validated_from_world(sim.db), 20)
    session = harness_session(sim)
    await migrate(session, subset(validated, 5), skip_map_check=True)
    victim = validated.rows["milestone_id"][2]
    sim.conn.execute(
        "UPDATE dv_msdyn_contractlinescheduleofvalues SET msdyn_invoicestatus = 192350003, msdyn_amount = 10000 "
        "WHERE msdyn_contractlinescheduleofvalueid = ?",
        (victim,),
    )
    sim.conn.commit()
    events, outcome = await migrate(session, validated, skip_map_check=True)
    assert outcome.created == 15 and outcome.conflicts == 1 and not outcome.ok and not outcome.failures
    row = sim.conn.execute(
        "SELECT msdyn_invoicestatus, msdyn_amount FROM dv_msdyn_contractlinescheduleofvalues WHERE msdyn_contractlinescheduleofvalueid = ?",
        (victim,),
    ).fetchone()
    assert row == (192350003, 10000)


async def test_a_bad_record_carries_the_service_code_and_the_rest_lands(sim):
    validated = subset(validated_from_world(sim.db), 30)
    tm = sim.conn.execute(
        "SELECT salesorderdetailid, _salesorderid_value FROM dv_salesorderdetails WHERE msdyn_billingmethod = 192350000 LIMIT 1"
    ).fetchone()
    rows = validated.rows.with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(pl.lit(tm[0])).otherwise(pl.col("line_id")).alias("line_id"),
        pl.when(pl.int_range(pl.len()) == 7).then(pl.lit(tm[1])).otherwise(pl.col("contract_id")).alias("contract_id"),
    )
    bad = ValidatedExtract(rows, validated.excluded, [], 30, validated.cutover_date)
    events, outcome = await migrate(harness_session(sim), bad, skip_map_check=True)
    assert outcome.created == 29 and len(outcome.failures) == 1
    f = outcome.failures[0]
    assert (f.legacy_id, f.row, f.status, f.code) == (rows["legacy_id"][7], rows["_row"][7], 400, "0x80040203")
    assert "fixed price" in f.message
    assert [e.legacy_id for e in events if isinstance(e, RecordFailed)] == [f.legacy_id]


# --- guards -------------------------------------------------------------------------------------


async def test_production_needs_the_name_typed_again_before_anything_is_sent(sim):
    base = str(sim.client.base_url)
    prod = Profile(
        name="prod", kind="production", dataverse_url="https://contoso.crm.dynamics.com",
        fno_url="https://contoso.operations.dynamics.com", tenant="contoso.onmicrosoft.com",
        client_id="cutover-rehearsal", auth="client-secret", secret_env="CUTOVER_SECRET",
    )  # fmt: skip
    session = harness_session(sim, profile=prod)
    assert session.dataverse.base_url.startswith(base)
    validated = subset(validated_from_world(sim.db), 5)
    since = await last_seq(sim)
    for confirm in (None, "production"):
        with pytest.raises(UsageError, match="--confirm-production prod"):
            await migrate(session, validated, skip_map_check=True, confirm_production=confirm)
    assert await writes_since(sim, since) == []
    _, outcome = await migrate(session, validated, skip_map_check=True, confirm_production="prod")
    assert outcome.created == 5


async def test_the_pinned_organization_guard_applies_before_any_write(sim):
    base = str(sim.client.base_url)
    pinned = Profile(
        name="r",
        kind="rehearsal",
        dataverse_url=base,
        fno_url=base,
        pinned_org_id="11111111-2222-3333-4444-555555555555",
    )
    validated = subset(validated_from_world(sim.db), 5)
    since = await last_seq(sim)
    with pytest.raises(FingerprintMismatch):
        await migrate(harness_session(sim, profile=pinned), validated, skip_map_check=True)
    assert await writes_since(sim, since) == []


# --- over a real socket -------------------------------------------------------------------------


async def test_a_pool_of_four_over_a_socket_lands_every_row_once(socket_sim):
    validated = validated_from_world(socket_sim.db)
    session = harness_session(socket_sim, pool=POOL)
    _, outcome = await migrate(session, validated, skip_map_check=True, chunk=25)
    assert outcome.ok and outcome.created == 150
    check_landed_once(socket_sim.db, validated)
    used = {e["client_id"] for e in await socket_sim.log() if "CreateMultiple" in e["path"]}
    assert used == {w[0] for w in POOL}
