"""DataverseClient against the rehearsal simulator: paging, exact money, deterministic upserts,
single writes, read-only, $metadata probe, WhoAmI, actions. Bulk writes are in test_bulk.py,
the $batch codec in test_batch.py, the CSDL parser in test_csdl.py, paging rules in test_paging.py.

No mocks: every test talks HTTP to the simulator (in-process ASGI, or a real loopback socket).
"""

from __future__ import annotations

import math
import sqlite3
import uuid
from decimal import Decimal

import pytest

from cutover import odata
from cutover.dataverse import DataverseClient, DataverseResponseError
from cutover.domain import MILESTONE_NAMESPACE, deterministic_id
from cutover.tokens import StaticToken
from cutover.transport import BadRequest, NotFound, OutcomeUnknown, ReadOnlyViolation, Transport
from tests.conftest import DV, fixed_price_line
from tests.dataverse_harness import (
    KEY,
    MILESTONE,
    MILESTONES,
    NS,
    POOL,
    READY,
    HarnessToken,
    client,
    count_rows,
    milestone,
    milestones,
    no_sleep,
    writes,
)

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
    rows = await dv.query_all(
        MILESTONES,
        select=[KEY, "msdyn_amount"],
        filter=odata.and_(
            odata.compare("msdyn_amount", "ge", Decimal("30")), odata.filter_eq("msdyn_invoicestatus", READY)
        ),
        page_size=4,
    )
    assert {r[KEY] for r in rows} == wanted and len(rows) == len(wanted)
    assert all(set(r) <= {KEY, "msdyn_amount", "@odata.etag"} for r in rows)
    quoted = await dv.query_all(
        MILESTONES, select=["msdyn_name"], filter=odata.filter_eq("msdyn_name", "O'Brien's milestone")
    )
    assert [r["msdyn_name"] for r in quoted] == ["O'Brien's milestone"]
    some = [uuid.UUID(r[KEY]) for r in records[:3]]
    assert {r[KEY] for r in await dv.query_all(MILESTONES, select=[KEY], filter=odata.in_(KEY, some))} == {
        str(u) for u in some
    }


async def test_paging_over_a_socket(socket_sim):
    """The same paging over a real loopback socket, with three identities sharing the load."""
    dv = client(socket_sim, pool=POOL[:3], chunk=40)
    records = milestones(sqlite3.connect(socket_sim.db), 150, prefix="SOCK")
    assert (await dv.bulk_upsert(MILESTONES, MILESTONE, records)).ok
    ids = [r[KEY] for page in [p async for p in dv.query(MILESTONES, select=[KEY], page_size=11)] for r in page]
    assert sorted(ids) == sorted(r[KEY] for r in records)


# --- money, ids, single records -------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount", [Decimal("0.10"), Decimal("1234567.89"), Decimal("-0.01"), Decimal("922337203685.4775")]
)
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
    """DESIGN: milestone ids are uuid5(namespace, legacy_id) — the same legacy id, the same id;
    the default namespace is the tool's milestone namespace."""
    assert deterministic_id("MS-1", NS) == str(uuid.uuid5(NS, "MS-1"))
    assert deterministic_id("MS-1", NS) != deterministic_id("MS-2", NS)
    assert deterministic_id("MS-1") == str(uuid.uuid5(MILESTONE_NAMESPACE, "MS-1")) != deterministic_id("MS-1", NS)


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
    with pytest.raises(BadRequest, match=r"rejected the request \(412") as info:
        await dv.upsert(MILESTONES, rec[KEY], {**body, "msdyn_name": "Second create"}, create_only=True)
    assert info.value.status == 412
    assert (await dv.get(MILESTONES, rec[KEY]))["msdyn_name"] == "Milestone COND-1"  # the first one stands
    missing = uuid.uuid4()
    with pytest.raises(NotFound, match="404") as info:
        await dv.upsert(MILESTONES, missing, {"msdyn_name": "x"}, update_only=True)
    assert info.value.status == 404
    assert await dv.get(MILESTONES, missing) is None  # update-only created nothing
    await dv.upsert(MILESTONES, rec[KEY], {"msdyn_name": "Renamed"}, update_only=True)
    assert (await dv.get(MILESTONES, rec[KEY]))["msdyn_name"] == "Renamed"
    assert count_rows(sim.conn) == (1, 1)


async def test_a_float_in_a_single_write_is_refused_before_anything_is_sent(sim):
    """Money is never float (DESIGN, Conventions): an upsert or an action whose body holds a
    float raises, naming where the float is, and the simulator's request log shows that no
    write reached it."""
    dv = client(sim)
    line = fixed_price_line(sim.conn)
    rec = milestone(line, "FLOAT-1")
    with pytest.raises(TypeError, match=r"float 1234\.5 at \$\.msdyn_amount"):
        await dv.upsert(MILESTONES, rec[KEY], {**{k: v for k, v in rec.items() if k != KEY}, "msdyn_amount": 1234.5})
    with pytest.raises(TypeError, match=r"float 0\.1 at \$\.Lines\[0\]\.Amount"):
        await dv.action("salesorders", line["contract_id"], "msdyn_NewInvoiceContract", {"Lines": [{"Amount": 0.1}]})
    assert await writes(sim) == []
    assert count_rows(sim.conn) == (0, 0)
    assert await dv.get(MILESTONES, rec[KEY]) is None


# --- read-only, permissions ---------------------------------------------------------------------


async def test_read_only_client_never_writes(sim):
    """Verification clients are read-only by construction: every write method raises
    ReadOnlyViolation, and the simulator's request log shows that nothing but GETs was sent."""
    dv = client(sim, read_only=True)
    assert dv.read_only
    line = fixed_price_line(sim.conn)
    rec = milestone(line, "RO-1")
    with pytest.raises(ReadOnlyViolation, match="read-only"):
        await dv.bulk_upsert(MILESTONES, MILESTONE, [rec])
    with pytest.raises(ReadOnlyViolation, match="read-only"):
        await dv.bulk_create(MILESTONES, MILESTONE, [rec])
    with pytest.raises(ReadOnlyViolation, match="read-only"):
        await dv.upsert(MILESTONES, rec[KEY], {"msdyn_name": "x"})
    with pytest.raises(ReadOnlyViolation, match="read-only"):
        await dv.action("salesorders", line["contract_id"], "msdyn_NewInvoiceContract")
    with pytest.raises(ReadOnlyViolation, match="read-only"):
        await dv.unbound_action("SomeAction", {})
    assert (await dv.whoami())["OrganizationId"]
    assert await dv.query_all(MILESTONES) == []
    log = await sim.log()
    assert log and {e["method"] for e in log} == {"GET"}
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
    await sim.admin(
        "PUT", "settings", json={"invoice_create_action": "x", "invoice_confirm_action": "msdyn_ConfirmInvoice"}
    )
    md = await client(sim).metadata()
    assert md.has_action("x") and not md.has_action("msdyn_NewInvoiceContract")
    assert md.bound_actions("salesorders") == {"x"} and md.bound_actions("invoices") == {"msdyn_ConfirmInvoice"}


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
    assert all(line["contract_id"] == contract for line in lines)
    records = [
        milestone(line, f"INV-{i}-{n}", amount=Decimal("1000.10") * (n + 1))
        for i, line in enumerate(lines)
        for n in range(2)
    ]
    assert (await dv.bulk_upsert(MILESTONES, MILESTONE, records)).ok
    invoice = await dv.action("salesorders", contract, "msdyn_NewInvoiceContract")
    assert invoice["totalamount"] == sum(r["msdyn_amount"] for r in records) == Decimal("9000.90")
    statuses = await dv.query_all(
        MILESTONES, select=["msdyn_invoicestatus"], filter=odata.filter_eq("_msdyn_contract_value", uuid.UUID(contract))
    )
    assert [s["msdyn_invoicestatus"] for s in statuses] == [192350002] * 6
    assert await dv.action("invoices", invoice["invoiceid"], "msdyn_PostInvoice") is None
    statuses = await dv.query_all(
        MILESTONES, select=["msdyn_invoicestatus"], filter=odata.in_(KEY, [uuid.UUID(r[KEY]) for r in records])
    )
    assert [s["msdyn_invoicestatus"] for s in statuses] == [192350003] * 6


async def test_unknown_action_is_an_error_naming_the_segment(sim):
    """An action the environment does not have (wrong name in the profile) fails clearly."""
    dv = client(sim)
    with pytest.raises(NotFound, match="Microsoft.Dynamics.CRM.msdyn_Nope"):
        await dv.action("salesorders", fixed_price_line(sim.conn)["contract_id"], "msdyn_Nope")


# --- lost answers and answers that are not the Web API -------------------------------------


async def test_a_create_only_write_whose_answer_is_lost_is_outcome_unknown_not_a_duplicate_error(socket_sim):
    """If-None-Match: * is not idempotent: resent after a lost answer it would meet our own
    record and answer 412. The client says the outcome is unknown instead, and sends it once."""
    db = sqlite3.connect(socket_sim.db)
    line = fixed_price_line(db)
    await socket_sim.admin("PUT", "faults", json={"script": ["drop-after"], "path_contains": MILESTONES})
    t = Transport(
        f"{socket_sim.client.base_url}{DV}",
        HarnessToken(socket_sim),
        environment="rehearsal",
        client=socket_sim.client,
        sleep=no_sleep,
    )
    record = milestone(line, "LOST-1")
    mid = record[KEY]
    with pytest.raises(OutcomeUnknown, match="may or may not have been applied"):
        await DataverseClient(t).upsert(MILESTONES, mid, record, create_only=True)
    patches = [e for e in await socket_sim.log() if e["method"] == "PATCH"]
    assert len(patches) == 1
    assert (
        db.execute(
            f"SELECT count(*) FROM dv_{MILESTONES} WHERE msdyn_contractlinescheduleofvalueid = ?", (mid,)
        ).fetchone()[0]
        == 1
    )


async def test_an_answer_that_is_not_the_web_api_is_a_clear_service_error():
    """A proxy or captive portal answering 200 with HTML: a DataverseResponseError that names
    the URL to check, not a JSON traceback. (The simulator cannot impersonate a proxy, so this
    one uses httpx's MockTransport.)"""
    import httpx

    proxy = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>Please sign in to the Wi-Fi</html>"))
    async with httpx.AsyncClient(transport=proxy) as http:
        dv = DataverseClient(
            Transport("https://org.example/api/data/v9.2/", StaticToken("t"), environment="sbx", client=http)
        )
        with pytest.raises(DataverseResponseError, match="not JSON"):
            await dv.whoami()
        with pytest.raises(DataverseResponseError, match="the profile's Dataverse URL is the organization URL") as info:
            await dv.query_all(MILESTONES)
        assert info.value.exit_code == 3 and "https://org.example/api/data/v9.2/" in str(info.value)


async def test_delete_is_idempotent_and_refused_by_a_read_only_client(sim):
    """DELETE set(key): True when it removed the record, False when it was not there; a
    read-only client refuses before sending (the request log shows no DELETE)."""
    import uuid as _uuid

    from cutover.dataverse import DataverseClient
    from cutover.tokens import StaticToken
    from cutover.transport import ReadOnlyViolation, Transport
    from tests.conftest import DV, fixed_price_line, milestone_payload

    line = fixed_price_line(sim.conn)
    key = str(_uuid.uuid4())
    r = await sim.dv("PATCH", f"msdyn_contractlinescheduleofvalues({key})", json=milestone_payload(line, amount=100))
    assert r.status_code in (200, 204), r.text
    token = await sim.token()
    writer = DataverseClient(
        Transport(f"{sim.client.base_url}{DV}", StaticToken(token), environment="t", client=sim.client)
    )
    reader = DataverseClient(
        Transport(f"{sim.client.base_url}{DV}", StaticToken(token), environment="t", read_only=True, client=sim.client)
    )
    seen = len(await sim.log())
    with pytest.raises(ReadOnlyViolation, match="read-only"):
        await reader.delete("msdyn_contractlinescheduleofvalues", key)
    assert not [e for e in (await sim.log())[seen:] if e["method"] == "DELETE"]
    assert await writer.delete("msdyn_contractlinescheduleofvalues", key) is True
    assert await writer.delete("msdyn_contractlinescheduleofvalues", key) is False
    assert (await sim.dv("GET", f"msdyn_contractlinescheduleofvalues({key})")).status_code == 404
