"""DataverseClient against the rehearsal simulator: paging, exact money, deterministic upserts,
bulk writes with per-record outcomes and fallbacks, throttling, read-only, $metadata, actions.

No mocks: every test talks HTTP to the simulator (in-process ASGI, or a real loopback socket).
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import uuid
from decimal import Decimal

import pytest

from cutover import odata
from cutover.dataverse import (
    BatchPart,
    DataverseClient,
    Metadata,
    decode_batch,
    deterministic_id,
    encode_batch,
)
from cutover.transport import AdaptiveLimit, NotFound, PermissionDenied, ReadOnlyViolation, Transport
from tests.conftest import DV, READER, WRITER, fixed_price_line

MILESTONES = "msdyn_contractlinescheduleofvalues"
MILESTONE = "msdyn_contractlinescheduleofvalue"
KEY = "msdyn_contractlinescheduleofvalueid"
NS = uuid.UUID("0b7c1f8e-6a51-4c33-9d0e-8f6c2b7a9e11")
READY = 192350001
POOL = [WRITER, ("cutover-rehearsal-2", "rehearsal-secret-2"), ("cutover-rehearsal-3", "rehearsal-secret-3"), ("cutover-rehearsal-4", "rehearsal-secret-4")]


class HarnessToken:
    """Tokens from the simulator's own token endpoint."""

    def __init__(self, harness, who=WRITER):
        self.harness, self.who = harness, who

    async def token(self, *, force_refresh: bool = False) -> str:
        if force_refresh and self.harness._tokens:
            self.harness._tokens.pop(self.who[0], None)
        return await self.harness.token(*self.who)


async def no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


def transport(h, *, who=WRITER, read_only=False, **kw) -> Transport:
    kw.setdefault("sleep", no_sleep)
    return Transport(f"{h.client.base_url}{DV}", HarnessToken(h, who), environment="rehearsal", read_only=read_only, client=h.client, **kw)


def client(h, *, pool=(WRITER,), read_only=False, **kw) -> DataverseClient:
    chunk = kw.pop("chunk", 250)
    return DataverseClient([transport(h, who=w, read_only=read_only, **kw) for w in pool], chunk=chunk)


def milestone(line: dict, legacy_id: str, *, amount: Decimal = Decimal("100.00"), status: int = READY, name: str | None = None, line_id: str | None = None) -> dict:
    return {
        KEY: deterministic_id(NS, legacy_id),
        "msdyn_name": name or f"Milestone {legacy_id}",
        "msdyn_amount": amount,
        "msdyn_invoicedate": "2026-10-31",
        "msdyn_invoicestatus": status,
        "msdyn_ContractLineId@odata.bind": f"/salesorderdetails({line_id or line['line_id']})",
    }


def milestones(conn, n: int, prefix: str = "LEG", lines: int = 6) -> list[dict]:
    fp = [fixed_price_line(conn, i) for i in range(lines)]
    return [milestone(fp[i % lines], f"{prefix}-{i:05d}", amount=Decimal(i) + Decimal("0.25")) for i in range(n)]


def count_rows(db_or_conn, where: str = "1=1") -> tuple[int, int]:
    conn = db_or_conn if isinstance(db_or_conn, sqlite3.Connection) else sqlite3.connect(db_or_conn)
    return conn.execute(f"SELECT count(*), count(DISTINCT {KEY}) FROM dv_{MILESTONES} WHERE {where}").fetchone()


def tm_line(conn) -> str:
    return conn.execute("SELECT salesorderdetailid FROM dv_salesorderdetails WHERE msdyn_billingmethod = 192350000 LIMIT 1").fetchone()[0]


# --- paging -------------------------------------------------------------------------------------


async def test_paging_returns_every_row_once_without_skip(sim):
    """Dataverse paging (DESIGN: Prefer odata.maxpagesize + @odata.nextLink, $skip unsupported):
    300 milestones read with 7 rows a page come back exactly once each, in ceil(300/7) pages,
    and no request used $skip."""
    dv = client(sim)
    records = milestones(sim.conn, 300)
    assert (await dv.bulk_upsert(MILESTONES, MILESTONE, records)).ok
    since = (await sim.log())[-1]["seq"]
    pages = [page async for page in dv.query(MILESTONES, select=[KEY, "msdyn_name"], page_size=7)]
    ids = [row[KEY] for page in pages for row in page]
    assert len(ids) == 300 and set(ids) == {r[KEY] for r in records}
    assert len(pages) == math.ceil(300 / 7) and all(len(p) <= 7 for p in pages)
    gets = [e for e in await sim.log(since) if e["method"] == "GET"]
    assert len(gets) == len(pages)
    assert not any("$skip=" in e["path"] for e in gets) and all("$skiptoken=" in e["path"] for e in gets[1:])


async def test_paging_with_filter_select_and_quoted_values(sim):
    """A filter built with cutover.odata (quoted values, `in`, and) narrows the rows; $select
    limits the columns; pages still hold every matching row once."""
    dv = client(sim)
    line = fixed_price_line(sim.conn)
    records = milestones(sim.conn, 60)
    records.append(milestone(line, "QUOTE-1", name="O'Brien's milestone"))
    assert (await dv.bulk_upsert(MILESTONES, MILESTONE, records)).ok
    wanted = {r[KEY] for r in records if r["msdyn_amount"] >= Decimal("30")}
    rows = await dv.query_all(MILESTONES, select=[KEY, "msdyn_amount"], filter=odata.and_(odata.compare("msdyn_amount", "ge", Decimal("30")), odata.filter_eq("msdyn_invoicestatus", READY)), page_size=4)
    assert {r[KEY] for r in rows} == wanted and len(rows) == len(wanted)
    assert all(set(r) <= {KEY, "msdyn_amount", "@odata.etag"} for r in rows)
    quoted = await dv.query_all(MILESTONES, select=["msdyn_name"], filter=odata.filter_eq("msdyn_name", "O'Brien's milestone"))
    assert [r["msdyn_name"] for r in quoted] == ["O'Brien's milestone"]
    some = [uuid.UUID(r[KEY]) for r in records[:3]]
    assert {r[KEY] for r in await dv.query_all(MILESTONES, select=[KEY], filter=odata.in_(KEY, some))} == {str(u) for u in some}


# --- money, ids, single records -------------------------------------------------------------------


@pytest.mark.parametrize("amount", [Decimal("0.10"), Decimal("1234567.89"), Decimal("-0.01"), Decimal("922337203685.4775")])
async def test_money_round_trips_exactly_as_decimal(sim, amount):
    """Money is Decimal, never float (DESIGN, Conventions): what is written is what is read,
    digit for digit, through both the single upsert and the bulk path."""
    dv = client(sim)
    line = fixed_price_line(sim.conn)
    one = milestone(line, f"MONEY-{amount}", amount=amount)
    await dv.upsert(MILESTONES, one[KEY], {k: v for k, v in one.items() if k != KEY})
    two = milestone(line, f"MONEY-BULK-{amount}", amount=amount)
    assert (await dv.bulk_upsert(MILESTONES, MILESTONE, [two])).ok
    for rec in (one, two):
        got = await dv.get(MILESTONES, rec[KEY], select=["msdyn_amount"])
        assert isinstance(got["msdyn_amount"], Decimal)
        assert got["msdyn_amount"] == amount and str(got["msdyn_amount"]).rstrip("0") == str(amount).rstrip("0")


def test_deterministic_id_is_uuid5_of_the_legacy_id():
    """DESIGN: milestone ids are uuid5(NAMESPACE, legacy_id) — the same legacy id, the same id."""
    assert deterministic_id(NS, "MS-1") == str(uuid.uuid5(NS, "MS-1")) == DataverseClient.deterministic_id(NS, "MS-1")
    assert deterministic_id(NS, "MS-1") != deterministic_id(NS, "MS-2")


async def test_rerunning_a_bulk_upsert_never_duplicates(sim):
    """Re-running the load (deterministic ids, upsert) updates in place: still 120 rows, once each,
    with the second run's values."""
    dv = client(sim, chunk=50)
    records = milestones(sim.conn, 120)
    assert (await dv.bulk_upsert(MILESTONES, MILESTONE, records)).ok
    again = [{**r, "msdyn_amount": Decimal("7.77")} for r in records]
    result = await dv.bulk_upsert(MILESTONES, MILESTONE, again)
    assert result.ok and sorted(result.succeeded) == sorted(r[KEY] for r in records)
    assert count_rows(sim.conn) == (120, 120)
    assert sim.conn.execute(f"SELECT count(*) FROM dv_{MILESTONES} WHERE msdyn_amount = 77700").fetchone()[0] == 120


async def test_get_returns_none_for_a_missing_record_and_raises_for_a_missing_set(sim):
    """get(): 404 "Does Not Exist" is an answer (None); an unknown entity set is an error."""
    dv = client(sim)
    assert await dv.get(MILESTONES, uuid.uuid4()) is None
    line = fixed_price_line(sim.conn)
    got = await dv.get("salesorderdetails", line["line_id"], select=["lineitemnumber", "_salesorderid_value"])
    assert got["_salesorderid_value"] == line["contract_id"]
    with pytest.raises(NotFound, match="segment"):
        await dv.get("nosuchset", uuid.uuid4())


async def test_conditional_upserts(sim):
    """If-None-Match: * creates only (412 when present); If-Match: * updates only (404 when missing)."""
    dv = client(sim)
    rec = milestone(fixed_price_line(sim.conn), "COND-1")
    body = {k: v for k, v in rec.items() if k != KEY}
    await dv.upsert(MILESTONES, rec[KEY], body, create_only=True)
    with pytest.raises(Exception, match="412"):
        await dv.upsert(MILESTONES, rec[KEY], body, create_only=True)
    with pytest.raises(NotFound):
        await dv.upsert(MILESTONES, uuid.uuid4(), {"msdyn_name": "x"}, update_only=True)
    await dv.upsert(MILESTONES, rec[KEY], {"msdyn_name": "Renamed"}, update_only=True)
    assert (await dv.get(MILESTONES, rec[KEY]))["msdyn_name"] == "Renamed"
    assert count_rows(sim.conn) == (1, 1)


# --- bulk outcomes ------------------------------------------------------------------------------


def _with_bad_records(conn) -> tuple[list[dict], dict[int, tuple[int, str, str]]]:
    """100 milestones, three of them wrong in the ways people get them wrong."""
    records = milestones(conn, 100, prefix="BAD")
    records[13]["msdyn_invoicestatus"] = 7  # not an option value
    records[57]["msdyn_ContractLineId@odata.bind"] = f"/salesorderdetails({uuid.uuid4()})"  # no such line
    records[88]["msdyn_ContractLineId@odata.bind"] = f"/salesorderdetails({tm_line(conn)})"  # time & material line
    expected = {
        13: (400, "0x80040203", "outside the valid range"),
        57: (404, "0x80040217", "Does Not Exist"),
        88: (400, "0x80040203", "fixed price"),
    }
    return records, expected


def _check_bad_records(result, records, expected) -> None:
    assert len(result.succeeded) == 97 and result.total == 100
    assert [f.index for f in result.failures] == sorted(expected)
    for f in result.failures:
        status, code, text = expected[f.index]
        assert (f.status, f.code, f.key) == (status, code, records[f.index][KEY])
        assert text in f.message
        assert f"record {f.index} ({MILESTONE} {records[f.index][KEY]}): {status} {code}" in str(f)
    assert set(result.succeeded) == {r[KEY] for i, r in enumerate(records) if i not in expected}


async def test_bulk_partial_failure_names_each_bad_record_and_lands_the_rest(sim):
    """UpsertMultiple is all-or-nothing; one bad record must not hide the others nor stop them:
    the chunk is bisected and the small part with the bad records goes as a $batch with
    odata.continue-on-error. Each bad record is reported with its own status, code and message;
    the 97 good ones land."""
    dv = client(sim, chunk=100)
    records, expected = _with_bad_records(sim.conn)
    result = await dv.bulk_upsert(MILESTONES, MILESTONE, records)
    _check_bad_records(result, records, expected)
    assert count_rows(sim.conn) == (97, 97)
    assert result.bulk_requests > 1 and result.batch_requests >= 1 and not result.used_batch_fallback


async def test_set_without_bulk_support_falls_back_to_batch_with_the_same_outcomes(sim):
    """Where a table does not support UpsertMultiple (400 "message is not supported"), the client
    writes the records as $batch PATCH upserts instead, transparently, with the same per-record
    outcomes; it stops trying the bulk message after learning it is unsupported."""
    await sim.admin("PUT", "settings", json={"bulk_action_sets": []})
    dv = client(sim, chunk=100)
    records, expected = _with_bad_records(sim.conn)
    result = await dv.bulk_upsert(MILESTONES, MILESTONE, records)
    _check_bad_records(result, records, expected)
    assert result.used_batch_fallback
    log = await sim.log()
    assert len([e for e in log if "UpsertMultiple" in e["path"]]) == 1
    assert len([e for e in log if e["path"].endswith("$batch")]) == 1
    # the second load already knows: no more bulk attempts
    assert (await dv.bulk_upsert(MILESTONES, MILESTONE, milestones(sim.conn, 10, prefix="MORE"))).ok
    assert len([e for e in await sim.log() if "UpsertMultiple" in e["path"]]) == 1
    assert count_rows(sim.conn) == (107, 107)


async def test_metadata_probe_sends_sets_without_bulk_support_straight_to_batch(sim):
    """Once $metadata was read, a set whose bulk action is absent is written with $batch
    without a failed UpsertMultiple first."""
    await sim.admin("PUT", "settings", json={"bulk_action_sets": []})
    dv = client(sim)
    assert not (await dv.metadata()).supports_bulk(MILESTONES)
    assert (await dv.bulk_upsert(MILESTONES, MILESTONE, milestones(sim.conn, 30))).ok
    assert not [e for e in await sim.log() if "UpsertMultiple" in e["path"]]
    assert count_rows(sim.conn) == (30, 30)


async def test_bulk_create_reports_duplicates_per_record(sim):
    """CreateMultiple creates; a record that already exists fails alone (0x80040237) and the rest land."""
    dv = client(sim, chunk=40)
    records = milestones(sim.conn, 40, prefix="CREATE")
    assert (await dv.bulk_upsert(MILESTONES, MILESTONE, records[5:6])).ok
    result = await dv.bulk_create(MILESTONES, MILESTONE, records)
    assert [(f.index, f.status, f.code) for f in result.failures] == [(5, 412, "0x80040237")]
    assert len(result.succeeded) == 39 and count_rows(sim.conn) == (40, 40)


async def test_records_without_ids_or_with_repeated_ids_are_refused_before_sending(sim):
    """An upsert needs its deterministic id; the same id twice in one load is a mapping error."""
    dv = client(sim)
    records = milestones(sim.conn, 5)
    records.append(dict(records[1]))
    del records[2][KEY]
    result = await dv.bulk_upsert(MILESTONES, MILESTONE, records)
    assert {(f.index, f.code) for f in result.failures} == {(2, "MissingKey"), (5, "DuplicateKey")}
    assert "record 1" in [f for f in result.failures if f.index == 5][0].message
    assert count_rows(sim.conn) == (4, 4)


# --- throttling and faults ------------------------------------------------------------------------


async def test_429_storm_during_bulk_upsert_loses_no_write(sim):
    """Service protection: 30 % of requests throttled (429, Retry-After) during a 2,000-record
    load; every 429 is waited out and retried, so all 2,000 land, once each, all reported success."""
    await sim.admin("PUT", "faults", json={"throttle_rate": 0.3, "retry_after": 0, "seed": 5})
    dv = client(sim, pool=POOL[:2], chunk=50)
    records = milestones(sim.conn, 2000, prefix="STORM")
    progress: list[int] = []
    result = await dv.bulk_upsert(MILESTONES, MILESTONE, records, on_progress=lambda done, total: progress.append(done))
    assert result.ok and len(result.succeeded) == 2000
    assert count_rows(sim.conn) == (2000, 2000)
    throttled = sum(t.stats.throttled for t in dv.pool)
    assert throttled >= 5 and throttled == len([e for e in await sim.log() if e["status"] == 429])
    assert progress[-1] == 2000 and progress == sorted(progress)


async def test_5xx_during_bulk_is_retried_without_duplicates(sim):
    """Upserts to deterministic ids are idempotent, so a 503 is retried; nothing is duplicated."""
    await sim.admin("PUT", "faults", json={"error_rate": 0.4, "seed": 3, "path_contains": "UpsertMultiple"})
    dv = client(sim, chunk=25)
    records = milestones(sim.conn, 500, prefix="FLAKY")
    result = await dv.bulk_upsert(MILESTONES, MILESTONE, records)
    assert result.ok
    assert sum(t.stats.retried for t in dv.pool) >= 3
    assert count_rows(sim.conn) == (500, 500)


async def test_dropped_connections_after_commit_over_a_socket_do_not_duplicate(socket_sim):
    """Over a real socket, connections dropped after the server committed a chunk: the client
    retries the (idempotent) chunk and the rows exist once."""
    await socket_sim.admin("PUT", "faults", json={"drop_after_rate": 0.3, "seed": 9, "path_contains": "UpsertMultiple"})
    dv = client(socket_sim, chunk=20)
    records = milestones(sqlite3.connect(socket_sim.db), 200, prefix="DROP")
    result = await dv.bulk_upsert(MILESTONES, MILESTONE, records)
    assert result.ok
    assert sum(t.stats.retried for t in dv.pool) >= 2
    assert count_rows(socket_sim.db) == (200, 200)


async def test_paging_over_a_socket(socket_sim):
    """The same paging over a real loopback socket, with three identities sharing the load."""
    dv = client(socket_sim, pool=POOL[:3], chunk=40)
    records = milestones(sqlite3.connect(socket_sim.db), 150, prefix="SOCK")
    assert (await dv.bulk_upsert(MILESTONES, MILESTONE, records)).ok
    ids = [r[KEY] for page in [p async for p in dv.query(MILESTONES, select=[KEY], page_size=11)] for r in page]
    assert sorted(ids) == sorted(r[KEY] for r in records)


async def test_a_pool_spreads_chunks_over_its_identities(sim):
    """Each application user has its own service-protection budget: a pool of 4 sends chunks
    under all four identities."""
    dv = client(sim, pool=POOL, chunk=10)
    assert (await dv.bulk_upsert(MILESTONES, MILESTONE, milestones(sim.conn, 400))).ok
    used = {e["client_id"] for e in await sim.log() if "UpsertMultiple" in e["path"]}
    assert used == {w[0] for w in POOL}
    assert count_rows(sim.conn) == (400, 400)


async def test_real_limits_throttle_a_pool_and_every_record_still_lands(sim):
    """With the documented limits scaled down (requests per window), bulk writes are throttled
    by the service itself and waited out (Retry-After), losing nothing."""
    await sim.admin("PUT", "protection", json={"limits": {"window_seconds": 1.0, "max_requests": 6}})
    dv = client(sim, chunk=20, limit=AdaptiveLimit(start=8), sleep=asyncio.sleep)
    result = await dv.bulk_upsert(MILESTONES, MILESTONE, milestones(sim.conn, 300))
    assert result.ok and count_rows(sim.conn) == (300, 300)
    assert dv.pool[0].stats.throttled >= 1


# --- read-only, permissions ---------------------------------------------------------------------


async def test_read_only_client_never_writes(sim):
    """Verification clients are read-only by construction: every write method raises
    ReadOnlyViolation, and the simulator's request log shows that nothing but GETs was sent."""
    dv = client(sim, read_only=True)
    assert dv.read_only
    line = fixed_price_line(sim.conn)
    rec = milestone(line, "RO-1")
    with pytest.raises(ReadOnlyViolation):
        await dv.bulk_upsert(MILESTONES, MILESTONE, [rec])
    with pytest.raises(ReadOnlyViolation):
        await dv.bulk_create(MILESTONES, MILESTONE, [rec])
    with pytest.raises(ReadOnlyViolation):
        await dv.upsert(MILESTONES, rec[KEY], {"msdyn_name": "x"})
    with pytest.raises(ReadOnlyViolation):
        await dv.action("salesorders", line["contract_id"], "msdyn_NewInvoiceContract")
    with pytest.raises(ReadOnlyViolation):
        await dv.unbound_action("SomeAction", {})
    assert (await dv.whoami())["OrganizationId"]
    assert await dv.query_all(MILESTONES) == []
    log = await sim.log()
    assert log and {e["method"] for e in log} == {"GET"}


async def test_missing_privilege_stops_the_load_with_the_fix(sim):
    """An identity without write privilege: the load stops with PermissionDenied naming the fix
    (not 100 identical per-record failures), and its partial result is attached."""
    dv = client(sim, pool=[READER], chunk=10)
    with pytest.raises(PermissionDenied, match="security role") as info:
        await dv.bulk_upsert(MILESTONES, MILESTONE, milestones(sim.conn, 100))
    partial = info.value.bulk_result
    assert partial.total == 100 and not partial.succeeded and len(partial.failures) == 100
    assert count_rows(sim.conn) == (0, 0)


# --- $metadata, WhoAmI, actions ---------------------------------------------------------------------


async def test_metadata_probe_answers_true_and_false(sim):
    """Preflight: does this entity set / field / action exist? ($metadata, read once, cached)."""
    dv = client(sim)
    md = await dv.metadata()
    assert md.has_entity_set(MILESTONES) and md.has_entity_set("salesorders")
    assert not md.has_entity_set("msdyn_contractlinescheduleofvalue")  # the logical name is not the set
    assert md.has_field(MILESTONES, "msdyn_amount") and md.has_field(MILESTONES, "msdyn_ContractLineId")
    assert md.has_field(MILESTONES, "_msdyn_contractlineid_value")
    assert not md.has_field(MILESTONES, "msdyn_amount_base") and not md.has_field("nosuchset", "x")
    assert md.has_action("msdyn_NewInvoiceContract") and md.has_action("msdyn_PostInvoice")
    assert md.bound_actions("salesorders") == {"msdyn_NewInvoiceContract"}
    assert md.bound_actions("invoices") == {"msdyn_PostInvoice"}
    assert md.supports_bulk(MILESTONES, "UpsertMultiple") and md.supports_bulk(MILESTONES, "CreateMultiple")
    assert md.has_function("WhoAmI")
    await dv.metadata()
    assert len([e for e in await sim.log() if "$metadata" in e["path"]]) == 1


async def test_metadata_probe_sees_renamed_invoice_actions(sim):
    """The invoice action names vary by version (DESIGN): a renamed action is found under its new
    name, and the old name is reported missing."""
    await sim.admin("PUT", "settings", json={"invoice_create_action": "x", "invoice_confirm_action": "msdyn_ConfirmInvoice"})
    md = await client(sim).metadata()
    assert md.has_action("x") and not md.has_action("msdyn_NewInvoiceContract")
    assert md.bound_actions("salesorders") == {"x"} and md.bound_actions("invoices") == {"msdyn_ConfirmInvoice"}


def test_metadata_follows_base_types_and_aliases():
    """Real Dataverse types derive from crmbaseentity and refer to types by the mscrm alias."""
    xml = (
        '<?xml version="1.0"?><edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices>'
        '<Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" xmlns="http://docs.oasis-open.org/odata/ns/edm">'
        '<EntityType Name="crmbaseentity" Abstract="true"><Property Name="createdon" Type="Edm.DateTimeOffset"/></EntityType>'
        '<EntityType Name="account" BaseType="mscrm.crmbaseentity"><Key><PropertyRef Name="accountid"/></Key>'
        '<Property Name="accountid" Type="Edm.Guid"/><NavigationProperty Name="parentaccountid" Type="mscrm.account"/></EntityType>'
        '<Action Name="Merge" IsBound="true"><Parameter Name="entity" Type="mscrm.account"/></Action>'
        '<EntityContainer Name="System"><EntitySet Name="accounts" EntityType="Microsoft.Dynamics.CRM.account"/></EntityContainer>'
        "</Schema></edmx:DataServices></edmx:Edmx>"
    )
    md = Metadata.parse(xml)
    assert md.has_field("accounts", "createdon") and md.has_field("accounts", "parentaccountid")
    assert md.bound_actions("accounts") == {"Merge"} and not md.supports_bulk("accounts")


async def test_whoami_identifies_the_organization_and_the_user(sim):
    """WhoAmI gives the organization id the fingerprint guard pins, and each identity's own user id."""
    org = (await sim.admin("GET", "")).json()["organization_id"]
    one = await client(sim).whoami()
    two = await client(sim, pool=[POOL[1]]).whoami()
    assert set(one) == {"OrganizationId", "UserId", "BusinessUnitId"}
    assert one["OrganizationId"] == two["OrganizationId"] == org
    assert one["UserId"] != two["UserId"]
    uuid.UUID(one["BusinessUnitId"])


async def test_invoice_actions_after_migrating_milestones(sim):
    """Bound actions: "Create invoices" on a contract turns its Ready-for-invoicing milestones into
    one draft invoice for their total; "Confirm" on the invoice posts them (192350003)."""
    dv = client(sim)
    lines = [fixed_price_line(sim.conn, i) for i in range(3)]
    contract = lines[0]["contract_id"]
    assert all(l["contract_id"] == contract for l in lines)
    records = [milestone(l, f"INV-{i}-{n}", amount=Decimal("1000.10") * (n + 1)) for i, l in enumerate(lines) for n in range(2)]
    assert (await dv.bulk_upsert(MILESTONES, MILESTONE, records)).ok
    invoice = await dv.action("salesorders", contract, "msdyn_NewInvoiceContract")
    assert invoice["totalamount"] == sum(r["msdyn_amount"] for r in records) == Decimal("9000.90")
    statuses = await dv.query_all(MILESTONES, select=["msdyn_invoicestatus"], filter=odata.filter_eq("_msdyn_contract_value", uuid.UUID(contract)))
    assert [s["msdyn_invoicestatus"] for s in statuses] == [192350002] * 6
    assert await dv.action("invoices", invoice["invoiceid"], "msdyn_PostInvoice") is None
    statuses = await dv.query_all(MILESTONES, select=["msdyn_invoicestatus"], filter=odata.in_(KEY, [uuid.UUID(r[KEY]) for r in records]))
    assert [s["msdyn_invoicestatus"] for s in statuses] == [192350003] * 6


async def test_unknown_action_is_an_error_naming_the_segment(sim):
    """An action the environment does not have (wrong name in the profile) fails clearly."""
    dv = client(sim)
    with pytest.raises(NotFound, match="Microsoft.Dynamics.CRM.msdyn_Nope"):
        await dv.action("salesorders", fixed_price_line(sim.conn)["contract_id"], "msdyn_Nope")


# --- the $batch codec -------------------------------------------------------------------------------


def test_batch_encoding_is_multipart_mixed_with_one_request_per_part():
    """OData $batch: multipart/mixed parts of Content-Type application/http, binary transfer
    encoding, each an HTTP/1.1 request line, headers, blank line, body; closed by --boundary--."""
    body, ctype = encode_batch([
        BatchPart("PATCH", "https://org/api/data/v9.2/accounts(00000000-0000-0000-0000-000000000001)", b'{"name":"A"}', content_id="1"),
        BatchPart("GET", "https://org/api/data/v9.2/WhoAmI"),
    ], boundary="batch_x")
    assert ctype == "multipart/mixed; boundary=batch_x"
    text = body.decode()
    assert text.startswith("--batch_x\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\nPATCH https://org/api/data/v9.2/accounts(")
    assert '\r\n\r\n{"name":"A"}\r\n--batch_x\r\n' in text and text.endswith("--batch_x--\r\n")
    with pytest.raises(ValueError):
        encode_batch([BatchPart("GET", "x")] * 1001)


def test_batch_answer_decoding_handles_changesets_and_errors():
    """A Dataverse batch answer (as documented) with a changeset and an error part decodes into
    per-request statuses, Content-IDs, headers and bodies, in order."""
    answer = (
        "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n"
        "--changesetresponse_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n"
        "HTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\nOData-EntityId: https://org/api/data/v9.2/tasks(aaaaaaaa-0000-0000-0000-000000000001)\r\n\r\n\r\n"
        "--changesetresponse_2--\r\n"
        "--batchresponse_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        'HTTP/1.1 400 Bad Request\r\nContent-Type: application/json; odata.metadata=minimal\r\n\r\n{"error":{"code":"0x80040203","message":"bad --batchresponse_1 inside"}}\r\n'
        "--batchresponse_1--\r\n"
    ).encode()
    parts = decode_batch(answer, "multipart/mixed; boundary=batchresponse_1")
    assert [(p.status, p.content_id) for p in parts] == [(204, "1"), (400, None)]
    assert parts[0].headers["odata-entityid"].endswith("0001)")
    assert odata.loads(parts[1].body)["error"]["code"] == "0x80040203"


async def test_a_failing_progress_callback_stops_the_load_without_hanging(sim):
    """A progress callback that fails (a closed screen, a dropped SSH session) stops the load
    promptly with that error and the outcomes so far — it must never leave the load hanging."""
    records = milestones(sim.conn, 120, prefix="PROG")
    calls = []

    def on_progress(done: int, total: int) -> None:
        calls.append(done)
        raise RuntimeError("screen closed")

    with pytest.raises(RuntimeError, match="screen closed") as info:
        await asyncio.wait_for(client(sim).bulk_upsert(MILESTONES, MILESTONE, records, chunk=1, on_progress=on_progress), timeout=20)
    assert len(calls) == 1
    result = info.value.bulk_result
    assert result.total == 120 and len(result.succeeded) + len(result.failures) == 120


async def test_a_create_only_write_whose_answer_is_lost_is_outcome_unknown_not_a_duplicate_error(socket_sim):
    """If-None-Match: * is not idempotent: resent after a lost answer it would meet our own
    record and answer 412. The client says the outcome is unknown instead, and sends it once."""
    from cutover.transport import OutcomeUnknown

    db = sqlite3.connect(socket_sim.db)
    line = fixed_price_line(db)
    await socket_sim.admin("PUT", "faults", json={"script": ["drop-after"], "path_contains": MILESTONES})
    t = Transport(f"{socket_sim.client.base_url}{DV}", HarnessToken(socket_sim), environment="rehearsal", client=socket_sim.client, sleep=no_sleep)
    record = milestone(line, "LOST-1")
    mid = record[KEY]
    with pytest.raises(OutcomeUnknown):
        await DataverseClient(t).upsert(MILESTONES, mid, record, create_only=True)
    patches = [e for e in await socket_sim.log() if e["method"] == "PATCH"]
    assert len(patches) == 1
    assert db.execute(f"SELECT count(*) FROM dv_{MILESTONES} WHERE msdyn_contractlinescheduleofvalueid = ?", (mid,)).fetchone()[0] == 1


async def test_an_answer_that_is_not_the_web_api_is_a_clear_service_error():
    """A proxy or captive portal answering 200 with HTML: a DataverseResponseError that names
    the URL to check, not a JSON traceback. (The simulator cannot impersonate a proxy, so this
    one uses httpx's MockTransport.)"""
    import httpx

    from cutover.dataverse import DataverseResponseError
    from cutover.transport import StaticToken

    proxy = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>Please sign in to the Wi-Fi</html>"))
    async with httpx.AsyncClient(transport=proxy) as http:
        dv = DataverseClient(Transport("https://org.example/api/data/v9.2/", StaticToken("t"), environment="sbx", client=http))
        with pytest.raises(DataverseResponseError, match="not JSON"):
            await dv.whoami()
        with pytest.raises(DataverseResponseError):
            await dv.query_all(MILESTONES)
