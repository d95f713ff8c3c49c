"""Contract of the simulated dual-write engine: what reaches Finance and Operations, per map
and map state, and what the cutover procedure relies on.

Rules: DESIGN.md "Dual-write behaviour that the runbook exists to control", the Domain facts
on DualWriteProjectConfigurations, and the steps of Microsoft's cutover procedure
("Migrate fully invoiced billing milestones at cutover", seeds/003).
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from cutover.sim.seed import convert
from tests.conftest import SimHarness, fixed_price_line, milestone_payload

MILESTONES = "msdyn_contractlinescheduleofvalues"
ACTUALS = "msdyn_actuals"
INVOICES = "invoices"
THREE_MAPS = (MILESTONES, ACTUALS, INVOICES)
CREATE_ACTION = "Microsoft.Dynamics.CRM.msdyn_NewInvoiceContract"
CONFIRM_ACTION = "Microsoft.Dynamics.CRM.msdyn_PostInvoice"
READY, CREATED, POSTED = 192350001, 192350002, 192350003


def transstatus_mapping(direction: str = "dataverse_to_fno") -> dict:
    """Step 3 of the procedure: TRANSSTATUS <= msdyn_invoicestatus, ValueMap 4 <= 192350001."""
    return {
        "fno_field": "TRANSSTATUS",
        "dataverse_field": "msdyn_invoicestatus",
        "direction": direction,
        "transform": {"type": "ValueMap", "values": {"4": "192350001"}},
    }


async def op(sim: SimHarness, name: str, operation: str, expect: int = 200, **body) -> dict:
    r = await sim.admin("POST", f"maps/{name}/{operation}", json=body or None)
    assert r.status_code == expect, f"{operation} {name}: {r.status_code} {r.text}"
    return r.json()


async def make_cutover_version(sim: SimHarness, direction: str = "dataverse_to_fno", version: str = "1.0.0.6") -> None:
    """Procedure steps 2-4: stop, refresh tables, add the TRANSSTATUS mapping, save as, start."""
    await op(sim, MILESTONES, "stop")
    await op(sim, MILESTONES, "refresh-tables")
    await op(
        sim,
        MILESTONES,
        "save-as",
        version=version,
        description="Cutover version",
        publisher="Default publisher",
        add_mappings=[transstatus_mapping(direction)],
    )
    await op(sim, MILESTONES, "start")


async def create_milestone(sim: SimHarness, line: dict, amount: int | Decimal = 1000, **kw) -> str:
    """Create a milestone; the amount goes over the wire as exact decimal text."""
    payload = milestone_payload(line, amount=0, **kw)
    payload["msdyn_amount"] = "@amount@"
    text = json.dumps(payload).replace('"@amount@"', str(amount))
    r = await sim.dv("POST", MILESTONES, content=text, headers={"Content-Type": "application/json"})
    assert r.status_code == 204, r.text
    return r.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")


async def fno_rows(sim: SimHarness, path: str) -> list[dict]:
    """Every row of an F&O read, all companies, following nextLinks; numbers as Decimal."""
    sep = "&" if "?" in path else "?"
    r = await sim.fno(f"{path}{sep}cross-company=true")
    rows: list[dict] = []
    while True:
        assert r.status_code == 200, r.text
        body = json.loads(r.text, parse_float=Decimal)
        rows += body["value"]
        if "@odata.nextLink" not in body:
            return rows
        r = await sim.client.get(body["@odata.nextLink"], headers=await sim.auth())


async def fno_milestones(sim: SimHarness) -> dict[str, dict]:
    """F&O's ProjectContractLineMilestones by ContractLineMilestoneGuid."""
    return {row["ContractLineMilestoneGuid"]: row for row in await fno_rows(sim, "ProjectContractLineMilestones")}


async def books(sim: SimHarness) -> dict:
    """What the AR / GL snapshot looks at, read through F&O OData: row sets and sums."""
    ar = await fno_rows(sim, "CustTransactions?$select=dataAreaId,RecId,AmountCur,AmountMst")
    gl = await fno_rows(sim, "GeneralJournalAccountEntryBiEntities?$select=SourceKey,AccountingCurrencyAmount")
    entries = await fno_rows(sim, "GeneralJournalEntryBiEntities?$select=SourceKey")
    return {
        "ar_keys": {(r["dataAreaId"], r["RecId"]) for r in ar},
        "ar_cur": sum(r["AmountCur"] for r in ar),
        "ar_mst": sum(r["AmountMst"] for r in ar),
        "gl_keys": {r["SourceKey"] for r in gl},
        "gl_sum": sum(r["AccountingCurrencyAmount"] for r in gl),
        "entry_keys": {r["SourceKey"] for r in entries},
    }


async def invoice_contract(sim: SimHarness, contract_id: str) -> dict:
    """Create (action bound to salesorder) and confirm (action bound to invoice) one pro-forma invoice."""
    r = await sim.dv("POST", f"salesorders({contract_id})/{CREATE_ACTION}")
    assert r.status_code == 200, r.text
    invoice = json.loads(r.text, parse_float=Decimal)
    r = await sim.dv("POST", f"invoices({invoice['invoiceid']})/{CONFIRM_ACTION}")
    assert r.status_code == 204, r.text
    return invoice


async def dv_statuses(sim: SimHarness, ids: list[str]) -> list[int]:
    out = []
    for mid in ids:
        r = await sim.dv("GET", f"{MILESTONES}({mid})?$select=msdyn_invoicestatus")
        assert r.status_code == 200, r.text
        out.append(r.json()["msdyn_invoicestatus"])
    return out


async def map_state(sim: SimHarness, name: str) -> dict:
    r = await sim.admin("GET", f"maps/{name}")
    assert r.status_code == 200
    return r.json()


# --- the milestone map, by version -------------------------------------------------------------


async def test_running_original_map_lands_a_ready_milestone_as_registered(sim):
    """Milestone map running with its original version: the milestone lands in
    ProjectContractLineMilestones, but TRANSSTATUS is not mapped, so F&O keeps Registered (DESIGN)."""
    line = fixed_price_line(sim.conn)
    mid = await create_milestone(sim, line, name="M1 kickoff", amount=Decimal("1234.5"), date="2026-10-31")
    row = (await fno_milestones(sim))[mid]
    assert row["TransStatus"] == "Registered"
    assert row["Amount"] == Decimal("1234.50")
    assert row["ContractLineId"] == f"{line['contract_number']}-{line['line_number']}"
    assert row["ProjectContractId"] == line["contract_number"]
    assert row["TransactionDate"].startswith("2026-10-31")
    assert row["dataAreaId"] == "usmf"


async def test_cutover_version_lands_a_ready_milestone_as_invoiced(sim):
    """With the cutover version (TRANSSTATUS <= msdyn_invoicestatus, Dataverse to F&O, ValueMap
    4 <= 192350001; procedure step 3), Ready for invoicing lands as TransStatus 4 Invoiced."""
    await make_cutover_version(sim)
    mid = await create_milestone(sim, fixed_price_line(sim.conn), status=READY)
    assert (await fno_milestones(sim))[mid]["TransStatus"] == "Invoiced"


async def test_cutover_version_does_not_invoice_a_not_ready_milestone(sim):
    """The value map only maps 192350001: a Not ready for invoicing milestone stays Registered."""
    await make_cutover_version(sim)
    mid = await create_milestone(sim, fixed_price_line(sim.conn), status=192350000)
    assert (await fno_milestones(sim))[mid]["TransStatus"] == "Registered"


async def test_transstatus_mapped_the_wrong_way_does_not_invoice(sim):
    """Procedure step 3 demands direction "Dataverse to Finance and Operations apps": mapped
    F&O to Dataverse, the status does not flow to F&O and the milestone stays Registered."""
    await make_cutover_version(sim, direction="fno_to_dataverse")
    mid = await create_milestone(sim, fixed_price_line(sim.conn), status=READY)
    assert (await fno_milestones(sim))[mid]["TransStatus"] == "Registered"


async def test_an_update_lands_on_the_same_fno_row(sim):
    """A milestone create/update lands in F&O (DESIGN): an upsert of the same milestone updates
    its one F&O row, it never adds a second."""
    line = fixed_price_line(sim.conn)
    mid = await create_milestone(sim, line, amount=100)
    r = await sim.dv("PATCH", f"{MILESTONES}({mid})", json={"msdyn_amount": 250, "msdyn_name": "Renamed"})
    assert r.status_code == 204, r.text
    rows = await fno_milestones(sim)
    assert len(rows) == 1
    assert rows[mid]["Amount"] == Decimal("250.00")
    assert rows[mid]["Description"] == "Renamed"


# --- the milestone map, by state -------------------------------------------------------------


async def test_stopped_map_propagates_nothing_and_queues_nothing(sim):
    """Not running: nothing propagates and nothing queues (DESIGN). The Dataverse write succeeds."""
    await op(sim, MILESTONES, "stop")
    mid = await create_milestone(sim, fixed_price_line(sim.conn))
    assert (await sim.dv("GET", f"{MILESTONES}({mid})")).status_code == 200
    assert await fno_milestones(sim) == {}
    assert (await map_state(sim, MILESTONES))["queued"] == 0
    await op(sim, MILESTONES, "start")
    assert await fno_milestones(sim) == {}


async def test_paused_map_queues_and_applies_in_order_once_on_resume(sim):
    """Paused: changes queue up and apply on resume (DESIGN): nothing in F&O while paused; on resume
    each milestone lands once, in the order written, with its latest values."""
    await op(sim, MILESTONES, "pause")
    ids = [
        await create_milestone(sim, fixed_price_line(sim.conn, i), name=f"Paused {i}", amount=100 * (i + 1))
        for i in range(3)
    ]
    r = await sim.dv("PATCH", f"{MILESTONES}({ids[0]})", json={"msdyn_amount": 999})
    assert r.status_code == 204
    assert await fno_milestones(sim) == {}
    assert (await map_state(sim, MILESTONES))["queued"] == 4

    resumed = await op(sim, MILESTONES, "resume")
    assert resumed["state"] == "Running"
    rows = await fno_milestones(sim)
    assert set(rows) == set(ids)
    by_identifier = sorted(rows.values(), key=lambda row: row["ContractLineMilestoneIdentifier"])
    assert [row["ContractLineMilestoneGuid"] for row in by_identifier] == ids
    assert rows[ids[0]]["Amount"] == Decimal("999.00")
    assert (await map_state(sim, MILESTONES))["queued"] == 0
    await op(sim, MILESTONES, "resume", expect=409)
    assert len(await fno_milestones(sim)) == 3


async def test_stopping_a_paused_map_discards_its_queue(sim):
    """Stopping a paused map: a stopped map queues nothing, so what was queued is dropped and
    never lands, not even after a restart."""
    await op(sim, MILESTONES, "pause")
    await create_milestone(sim, fixed_price_line(sim.conn))
    assert (await map_state(sim, MILESTONES))["queued"] == 1
    await op(sim, MILESTONES, "stop")
    assert (await map_state(sim, MILESTONES))["queued"] == 0
    events = (await sim.admin("GET", "maps/events")).json()
    assert any(e["map"] == MILESTONES and e["event"] == "queue-discarded" for e in events)
    await op(sim, MILESTONES, "start")
    assert await fno_milestones(sim) == {}


async def test_a_paused_map_cannot_be_started_only_resumed(sim):
    """A paused map resumes (applying its queue); "start" is refused so the queue is not skipped."""
    await op(sim, MILESTONES, "pause")
    await op(sim, MILESTONES, "start", expect=409)
    await op(sim, MILESTONES, "pause", expect=409)
    assert (await map_state(sim, MILESTONES))["state"] == "Paused"


# --- the whole procedure ---------------------------------------------------------------------


async def test_the_correct_procedure_leaves_ar_and_gl_exactly_unchanged(sim):
    """Microsoft's procedure, in order (cutover version, migrate Ready for invoicing, stop the three
    maps, create + confirm invoices, revert the version, restart the maps): milestones end Customer
    invoice posted in Dataverse and Invoiced in F&O, and AR and GL are exactly as before
    ("customer balances in Accounts receivable and General Ledger must not be impacted")."""
    before = await books(sim)
    await make_cutover_version(sim)
    lines = [fixed_price_line(sim.conn, i) for i in (0, 1, 3, 4)]  # two contracts, two companies
    ids = [
        await create_milestone(sim, line, name=f"Invoiced {i}", amount=Decimal("1000.25") * (i + 1))
        for i, line in enumerate(lines)
    ]
    assert {mid: row["TransStatus"] for mid, row in (await fno_milestones(sim)).items()} == dict.fromkeys(
        ids, "Invoiced"
    )

    for name in THREE_MAPS:
        await op(sim, name, "stop")
    invoices = [await invoice_contract(sim, cid) for cid in sorted({line["contract_id"] for line in lines})]
    assert len(invoices) == 2
    assert sum(inv["totalamount"] for inv in invoices) == sum(Decimal("1000.25") * (i + 1) for i in range(4))
    await op(sim, MILESTONES, "version", version="1.0.0.5")
    for name in THREE_MAPS:
        await op(sim, name, "start")

    after = await books(sim)
    assert after == before
    assert await dv_statuses(sim, ids) == [POSTED] * 4
    assert {mid: row["TransStatus"] for mid, row in (await fno_milestones(sim)).items()} == dict.fromkeys(
        ids, "Invoiced"
    )
    summary = (await sim.admin("GET", "")).json()["maps"]
    assert summary[MILESTONES] == {"state": "Running", "active_version": "1.0.0.5"}
    assert all(summary[name]["state"] == "Running" for name in THREE_MAPS)


# --- the mistakes ----------------------------------------------------------------------------


async def _migrate_and_stop(sim: SimHarness, lines: list[dict], keep_running: tuple[str, ...] = ()) -> list[str]:
    await make_cutover_version(sim)
    ids = [await create_milestone(sim, line, amount=Decimal("2500.10") + i) for i, line in enumerate(lines)]
    for name in THREE_MAPS:
        if name not in keep_running:
            await op(sim, name, "stop")
    return ids


def _new(before: dict, after: dict, key: str) -> set:
    return after[key] - before[key]


async def test_invoices_map_left_running_posts_a_customer_invoice(sim):
    """The mistake the procedure guards against: the invoices map running at confirm posts a
    customer invoice in F&O (DESIGN): one new CustTransactions row for exactly the invoice total,
    and a balanced GL entry, AR 130100 debit and revenue credit."""
    line = fixed_price_line(sim.conn, 0)
    await _migrate_and_stop(sim, [line, fixed_price_line(sim.conn, 1)], keep_running=(INVOICES,))
    before = await books(sim)
    invoice = await invoice_contract(sim, line["contract_id"])
    after = await books(sim)

    (new_ar,) = _new(before, after, "ar_keys")
    total = invoice["totalamount"]
    assert total == Decimal("2500.10") + Decimal("2501.10")
    assert after["ar_cur"] - before["ar_cur"] == total
    (ar_row,) = await fno_rows(sim, f"CustTransactions?$filter=RecId eq {new_ar[1]}")
    assert ar_row["AmountCur"] == total and ar_row["AmountMst"] == total
    assert ar_row["Invoice"] == invoice["invoicenumber"]
    assert ar_row["AccountNum"] == "US-001" and ar_row["dataAreaId"] == "usmf"

    (entry,) = _new(before, after, "entry_keys")
    gl = await fno_rows(sim, f"GeneralJournalAccountEntryBiEntities?$filter=GeneralJournalEntry eq {entry}")
    assert {row["SourceKey"] for row in gl} == _new(before, after, "gl_keys")
    assert sorted((row["MainAccount"], row["AccountingCurrencyAmount"]) for row in gl) == [
        ("130100", total),
        ("401100", -total),
    ]
    assert after["gl_sum"] == before["gl_sum"]
    (header,) = await fno_rows(sim, f"GeneralJournalEntryBiEntities?$filter=SourceKey eq {entry}")
    assert header["SubledgerVoucher"] == ar_row["Voucher"]


async def test_a_foreign_currency_invoice_posts_in_both_currencies(sim):
    """A customer invoice posted for a EUR contract of usmf carries AmountCur in EUR and AmountMst
    in the company's accounting currency (USD) at the world's rates, as the seeded AR does; GL lines
    are in accounting currency and balance."""
    contract = sim.conn.execute(
        "SELECT o.salesorderid FROM dv_salesorders o JOIN dv_transactioncurrencies c ON c.transactioncurrencyid = o._transactioncurrencyid_value "
        "JOIN dv_cdm_companies co ON co.cdm_companyid = o._msdyn_company_value WHERE c.isocurrencycode = 'EUR' AND co.cdm_companycode = 'USMF' "
        "ORDER BY o.ordernumber LIMIT 1"
    ).fetchone()[0]
    index = next(i for i in range(60) if fixed_price_line(sim.conn, i)["contract_id"] == contract)
    await _migrate_and_stop(sim, [fixed_price_line(sim.conn, index)], keep_running=(INVOICES,))
    before = await books(sim)
    invoice = await invoice_contract(sim, contract)
    after = await books(sim)

    (new_ar,) = _new(before, after, "ar_keys")
    (ar_row,) = await fno_rows(sim, f"CustTransactions?$filter=RecId eq {new_ar[1]}")
    total = invoice["totalamount"]
    expected_mst = Decimal(convert(int(total * 100), "EUR", "USD")) / 100
    assert ar_row["CurrencyCode"] == "EUR"
    assert ar_row["AmountCur"] == total
    assert ar_row["AmountMst"] == expected_mst != total
    gl = await fno_rows(
        sim,
        f"GeneralJournalAccountEntryBiEntities?$filter=GeneralJournalEntry eq {next(iter(_new(before, after, 'entry_keys')))}",
    )
    assert sorted((row["MainAccount"], row["AccountingCurrencyAmount"]) for row in gl) == [
        ("130100", expected_mst),
        ("401100", -expected_mst),
    ]


async def test_a_posting_continues_the_seeded_numbering(sim):
    """Keys of new postings follow the existing ones, as F&O allocates them (seed.py: "Counters
    left at the last value used (store.next_counter continues after them)"): the new
    CustTransactions RecId and GL entry and line SourceKeys are above every seeded one."""
    line = fixed_price_line(sim.conn, 0)
    await _migrate_and_stop(sim, [line], keep_running=(INVOICES,))
    before = await books(sim)
    await invoice_contract(sim, line["contract_id"])
    after = await books(sim)
    (new_ar,) = _new(before, after, "ar_keys")
    assert new_ar[1] == max(rec for _, rec in before["ar_keys"]) + 1
    assert min(_new(before, after, "entry_keys")) == max(before["entry_keys"]) + 1
    assert min(_new(before, after, "gl_keys")) == max(before["gl_keys"]) + 1


async def test_actuals_map_left_running_posts_billed_sales_to_gl_only(sim):
    """Actuals map running at confirm: billed-sales actuals post to GL (DESIGN): one balanced GL
    entry for the invoice total, no AR row and no line on the AR account."""
    line = fixed_price_line(sim.conn, 0)
    await _migrate_and_stop(sim, [line], keep_running=(ACTUALS,))
    before = await books(sim)
    invoice = await invoice_contract(sim, line["contract_id"])
    after = await books(sim)

    assert after["ar_keys"] == before["ar_keys"]
    assert after["ar_cur"] == before["ar_cur"]
    (entry,) = _new(before, after, "entry_keys")
    gl = await fno_rows(sim, f"GeneralJournalAccountEntryBiEntities?$filter=GeneralJournalEntry eq {entry}")
    amounts = sorted(row["AccountingCurrencyAmount"] for row in gl)
    assert amounts == [-invoice["totalamount"], invoice["totalamount"]]
    assert "130100" not in {row["MainAccount"] for row in gl}
    assert after["gl_sum"] == before["gl_sum"]


async def test_both_maps_left_running_post_invoice_and_actuals(sim):
    """Invoices and actuals maps running at confirm: one AR row and two GL entries."""
    line = fixed_price_line(sim.conn, 0)
    await _migrate_and_stop(sim, [line], keep_running=(INVOICES, ACTUALS))
    before = await books(sim)
    await invoice_contract(sim, line["contract_id"])
    after = await books(sim)
    assert len(_new(before, after, "ar_keys")) == 1
    assert len(_new(before, after, "entry_keys")) == 2
    assert len(_new(before, after, "gl_keys")) == 4


async def test_a_paused_invoices_map_posts_on_resume(sim):
    """Pausing is not stopping: a paused invoices map queues the confirmation and posts the
    customer invoice when resumed (DESIGN: "Paused map: changes queue and apply on resume")."""
    line = fixed_price_line(sim.conn, 0)
    await _migrate_and_stop(sim, [line], keep_running=(INVOICES,))
    await op(sim, INVOICES, "pause")
    before = await books(sim)
    invoice = await invoice_contract(sim, line["contract_id"])
    assert await books(sim) == before
    assert (await map_state(sim, INVOICES))["queued"] == 1

    await op(sim, INVOICES, "resume")
    after = await books(sim)
    assert len(_new(before, after, "ar_keys")) == 1
    assert after["ar_cur"] - before["ar_cur"] == invoice["totalamount"]


async def test_invoicing_with_the_milestone_map_running_moves_the_fno_row_to_an_invoice_proposal(sim):
    """Skipping the stop of the milestone map (issue #11: "statuses moved on in F&O"): the invoice
    steps' status changes (Customer invoice created / posted) flow to F&O as updates of the same
    milestone; the value map has nothing for them, so F&O builds an invoice proposal for the
    on-account transaction — still one row, now InvoiceProposal: it would be invoiced twice."""
    line = fixed_price_line(sim.conn, 0)
    mid = (await _migrate_and_stop(sim, [line], keep_running=(MILESTONES,)))[0]
    await invoice_contract(sim, line["contract_id"])
    rows = await fno_milestones(sim)
    assert list(rows) == [mid]
    assert rows[mid]["TransStatus"] == "InvoiceProposal"
    assert await dv_statuses(sim, [mid]) == [POSTED]


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "operation, body",
    [
        ("refresh-tables", {}),
        ("save-as", {"version": "1.0.0.6", "description": "cutover", "add_mappings": [transstatus_mapping()]}),
        ("version", {"version": "1.0.0.5"}),
    ],
)
async def test_configuring_a_running_map_is_refused(sim, operation, body):
    """Procedure step 2: "Click the Stop button and wait until system stops the map. Then click
    Refresh tables" — configuration needs a stopped map: on a running map it is a 409 and
    nothing changes."""
    before = await map_state(sim, MILESTONES)
    r = await sim.admin("POST", f"maps/{MILESTONES}/{operation}", json=body)
    assert r.status_code == 409, r.text
    assert "Stop" in r.json()["error"]["message"]
    after = await map_state(sim, MILESTONES)
    assert (after["active_version"], after["tables_refreshed_at"], len(after["versions"])) == (
        before["active_version"],
        before["tables_refreshed_at"],
        len(before["versions"]),
    )


async def test_configuring_a_paused_map_is_refused(sim):
    """Paused is not stopped: save-as on a paused map is a 409 too."""
    await op(sim, MILESTONES, "pause")
    await op(sim, MILESTONES, "save-as", expect=409, version="1.0.0.6", description="cutover")


async def test_save_as_an_existing_version_is_refused(sim):
    """Save as needs a new version number: reusing the original's is a 409."""
    await op(sim, MILESTONES, "stop")
    await op(
        sim,
        MILESTONES,
        "save-as",
        expect=409,
        version="1.0.0.5",
        description="cutover",
        add_mappings=[transstatus_mapping()],
    )
    assert [v["version"] for v in (await map_state(sim, MILESTONES))["versions"]] == ["1.0.0.5"]


async def test_save_as_keeps_the_original_and_activates_the_new_version(sim):
    """Save as (procedure step 4) keeps the original version and makes the cutover version, with the
    added mapping, the active one; "Table map version" (revert step) selects the original again."""
    await make_cutover_version(sim)
    m = await map_state(sim, MILESTONES)
    assert m["active_version"] == "1.0.0.6" and m["original_version"] == "1.0.0.5"
    cutover = next(v for v in m["versions"] if v["version"] == "1.0.0.6")
    assert cutover["description"] == "Cutover version" and cutover["publisher"] == "Default publisher"
    assert transstatus_mapping() in cutover["mappings"]
    assert m["tables_refreshed_at"]
    await op(sim, MILESTONES, "stop")
    reverted = await op(sim, MILESTONES, "version", version="1.0.0.5")
    assert reverted["active_version"] == "1.0.0.5"
    await op(sim, MILESTONES, "start")
    mid = await create_milestone(sim, fixed_price_line(sim.conn))
    assert (await fno_milestones(sim))[mid]["TransStatus"] == "Registered"


async def test_selecting_an_unknown_version_is_a_404(sim):
    """Only a version the map has can be selected."""
    await op(sim, MILESTONES, "stop")
    r = await sim.admin("POST", f"maps/{MILESTONES}/version", json={"version": "9.9.9.9"})
    assert r.status_code == 404
    assert "1.0.0.5" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "mapping",
    [
        {"fno_field": "TRANSSTATUS", "dataverse_field": "msdyn_invoicestatus", "direction": "sideways"},
        {
            "fno_field": "TRANSSTATUS",
            "dataverse_field": "msdyn_invoicestatus",
            "transform": {"type": "Default", "value": "4"},
        },
        {"fno_field": "TRANSSTATUS"},
    ],
)
async def test_a_malformed_added_mapping_is_a_400(sim, mapping):
    """Added mappings need both fields, a sync direction and (if any) a ValueMap transform."""
    await op(sim, MILESTONES, "stop")
    await op(sim, MILESTONES, "save-as", expect=400, version="1.0.0.6", description="cutover", add_mappings=[mapping])
    assert (await map_state(sim, MILESTONES))["active_version"] == "1.0.0.5"


async def test_an_unknown_map_is_a_404(sim):
    """Only the three maps of the procedure exist."""
    r = await sim.admin("POST", "maps/msdyn_projects/stop")
    assert r.status_code == 404
    assert MILESTONES in r.json()["error"]["message"]


async def test_dual_write_project_configurations_mirror_map_states(sim):
    """DualWriteProjectConfigurations.Status (the only read-only evidence of map state, DESIGN):
    Running reads Enabled (0), Not running Disabled (1), Paused Queueing (4) — on both rows of
    a map (issue #8: two rows per map, grouped by ExternalEntityName)."""

    async def status() -> dict[str, set[str]]:
        r = await sim.fno("DualWriteProjectConfigurations")
        assert r.status_code == 200
        out: dict[str, set[str]] = {}
        for row in r.json()["value"]:
            out.setdefault(row["ExternalEntityName"], set()).add(row["Status"])
        return out

    assert await status() == dict.fromkeys((MILESTONES, ACTUALS, INVOICES), {"Enabled"})
    await op(sim, MILESTONES, "stop")
    await op(sim, ACTUALS, "pause")
    assert await status() == {MILESTONES: {"Disabled"}, ACTUALS: {"Queueing"}, INVOICES: {"Enabled"}}
    r = await sim.fno(
        "DualWriteProjectConfigurations?$filter=Status eq Microsoft.Dynamics.DataEntities.DualWriteProjectStatus'Disabled'"
    )
    assert [row["ExternalEntityName"] for row in r.json()["value"]] == [MILESTONES, MILESTONES]
    await op(sim, MILESTONES, "start")
    await op(sim, ACTUALS, "resume")
    assert await status() == dict.fromkeys((MILESTONES, ACTUALS, INVOICES), {"Enabled"})


async def test_the_event_list_records_each_step(sim):
    """The map's event list records each operator step of procedure steps 2-4 and the revert,
    in order, so a rehearsal can show what was done."""
    since = max([e["seq"] for e in (await sim.admin("GET", "maps/events")).json()] + [0])
    await make_cutover_version(sim)
    await op(sim, MILESTONES, "stop")
    await op(sim, MILESTONES, "version", version="1.0.0.5")
    await op(sim, MILESTONES, "start")
    events = (await sim.admin("GET", f"maps/events?since={since}")).json()
    assert all(e["map"] == MILESTONES for e in events)
    assert [e["event"] for e in events] == [
        "stopped",
        "tables-refreshed",
        "saved-as",
        "initializing",
        "started",
        "stopped",
        "version-selected",
        "initializing",
        "started",
    ]
    assert "1.0.0.6" in events[2]["detail"] and "Cutover version" in events[2]["detail"]


# --- synchronous ---------------------------------------------------------------------------


async def test_dual_write_is_synchronous_an_fno_refusal_fails_the_milestone_write(sim):
    """Dual-write is synchronous (dualwrite.py, after DESIGN): when F&O cannot take the milestone
    (its contract line is missing there) the Dataverse create fails too and leaves no row."""
    line = fixed_price_line(sim.conn)
    sim.conn.execute('DELETE FROM "fno_ProjectContractLines" WHERE "ContractLineGuid" = ?', (line["line_id"],))
    r = await sim.dv("POST", MILESTONES, json=milestone_payload(line, name="Orphan"))
    assert r.status_code >= 400
    assert "Dual-write" in r.json()["error"]["message"]
    r = await sim.dv("GET", f"{MILESTONES}?$filter=msdyn_name eq 'Orphan'")
    assert r.json()["value"] == []
    assert await fno_milestones(sim) == {}
    log = await sim.log()
    assert [(e["method"], e["status"] >= 400) for e in log if e["method"] == "POST"] == [("POST", True)]


async def test_with_the_map_stopped_f_and_o_is_not_consulted(sim):
    """The same missing contract line does not matter while the map is stopped: nothing propagates."""
    line = fixed_price_line(sim.conn)
    sim.conn.execute('DELETE FROM "fno_ProjectContractLines" WHERE "ContractLineGuid" = ?', (line["line_id"],))
    await op(sim, MILESTONES, "stop")
    await create_milestone(sim, line, name="Orphan")
    r = await sim.dv("GET", f"{MILESTONES}?$filter=msdyn_name eq 'Orphan'")
    assert len(r.json()["value"]) == 1
