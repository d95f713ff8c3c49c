"""Contract of the simulated Finance and Operations OData surface (`/data/…`).

Every rule here is one of DESIGN.md's Domain facts for Finance and Operations: server-driven
paging at 10,000 rows with `@odata.nextLink`, `cross-company=true`, enum literals, the entities
and their fields, money as exact decimals, and "read-only for clients" (the simulator section).
"""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from cutover.sim import seed as seeding
from cutover.sim.schema import FNO_ENUMS, FNO_SETS, MONEY_SCALE
from cutover.sim.store import connect
from tests.conftest import FNO, SimHarness, fixed_price_line, harness_app, harness_client, milestone_payload

ENUM_INVOICED = "Microsoft.Dynamics.DataEntities.ProjTransStatus'Invoiced'"
ENUM_REGISTERED = "Microsoft.Dynamics.DataEntities.ProjTransStatus'Registered'"
TRANSSTATUS_MAPPING = {
    "fno_field": "TRANSSTATUS",
    "dataverse_field": "msdyn_invoicestatus",
    "direction": "dataverse_to_fno",
    "transform": {"type": "ValueMap", "values": {"4": "192350001"}},
}


def fno_error(r: httpx.Response, status: int) -> str:
    """Assert F&O's OData error shape (empty code, an innererror) with this status; return the message."""
    assert r.status_code == status, (r.status_code, r.text)
    err = r.json()["error"]
    assert err["code"] == "" and err["innererror"]["message"] == err["message"], err
    return err["message"]


def body_of(r: httpx.Response) -> dict:
    """A response body with every JSON number read as an exact Decimal."""
    return json.loads(r.text, parse_float=Decimal)


async def walk(sim: SimHarness, path: str, page_size: int | None = None) -> tuple[list[dict], list[int]]:
    """Read a collection the way a client must: follow @odata.nextLink to the end.

    Returns all rows and the size of every page served."""
    headers = {"Prefer": f"odata.maxpagesize={page_size}"} if page_size else {}
    r = await sim.fno(path, headers=headers)
    rows: list[dict] = []
    pages: list[int] = []
    for _ in range(1000):
        assert r.status_code == 200, r.text
        body = body_of(r)
        rows += body["value"]
        pages.append(len(body["value"]))
        link = body.get("@odata.nextLink")
        if not link:
            return rows, pages
        r = await sim.client.get(link, headers={**await sim.auth(), **headers})
    raise AssertionError("the page walk did not end after 1000 pages")


def sql_set(conn: sqlite3.Connection, sql: str, *params) -> set:
    return {tuple(row) if len(row) > 1 else row[0] for row in conn.execute(sql, params)}


# --- server-driven paging --------------------------------------------------------------------


@pytest.fixture(scope="module")
def gl_25k_world(tmp_path_factory) -> Path:
    """A world with 25,000 GL account entry lines: more than two full F&O pages."""
    path = tmp_path_factory.mktemp("gl25k") / "world.sqlite"
    conn = connect(path)
    try:
        seeding.seed_world(
            conn, dataclasses.replace(seeding.SCALES["small"], gl_lines=25_000), seed=3, scale_name="gl25k"
        )
    finally:
        conn.close()
    return path


async def test_fno_serves_at_most_10000_rows_a_page_and_a_walk_returns_every_gl_line_once(gl_25k_world):
    """F&O pages server-side at 10,000 rows with @odata.nextLink (DESIGN: Domain facts, F&O);
    following the links returns each of the 25,000 GL lines exactly once."""
    app = harness_app(gl_25k_world)
    try:
        async with harness_client(app) as client:
            sim = SimHarness(client, gl_25k_world, app)
            rows, pages = await walk(
                sim, "GeneralJournalAccountEntryBiEntities?$select=SourceKey,AccountingCurrencyAmount"
            )
            expected = sql_set(app.state.sim.conn, 'SELECT "SourceKey" FROM "fno_GeneralJournalAccountEntryBiEntities"')
    finally:
        app.state.sim.conn.close()
    assert pages == [10_000, 10_000, 5_000]
    keys = [row["SourceKey"] for row in rows]
    assert len(keys) == len(set(keys)) == 25_000
    assert set(keys) == expected


async def test_a_client_cannot_get_more_than_10000_rows_in_one_page(gl_25k_world):
    """The 10,000-row page is the server's cap: asking for a bigger page still gets 10,000 and a
    nextLink (DESIGN: "at most 10,000 rows a page")."""
    app = harness_app(gl_25k_world)
    try:
        async with harness_client(app) as client:
            sim = SimHarness(client, gl_25k_world, app)
            r = await sim.fno(
                "GeneralJournalAccountEntryBiEntities?$select=SourceKey", headers={"Prefer": "odata.maxpagesize=50000"}
            )
    finally:
        app.state.sim.conn.close()
    body = r.json()
    assert len(body["value"]) == 10_000
    assert "@odata.nextLink" in body


async def test_a_small_page_walk_returns_each_gl_line_exactly_once(sim):
    """Smaller pages (Prefer: odata.maxpagesize) still cover the table exactly once: 5,000 lines
    in pages of 777 are 7 pages, no row skipped or repeated (DESIGN: follow @odata.nextLink)."""
    rows, pages = await walk(sim, "GeneralJournalAccountEntryBiEntities?$select=SourceKey", page_size=777)
    keys = [row["SourceKey"] for row in rows]
    assert pages == [777] * 6 + [5000 - 6 * 777]
    assert len(keys) == len(set(keys))
    assert set(keys) == sql_set(sim.conn, 'SELECT "SourceKey" FROM "fno_GeneralJournalAccountEntryBiEntities"')


async def test_a_cross_company_page_walk_returns_each_customer_transaction_exactly_once(sim):
    """CustTransactions is keyed by (dataAreaId, RecId): a cross-company walk in small pages returns
    every row of every company exactly once."""
    rows, pages = await walk(sim, "CustTransactions?cross-company=true&$select=dataAreaId,RecId", page_size=37)
    keys = [(row["dataAreaId"], row["RecId"]) for row in rows]
    assert len(pages) == -(-500 // 37)
    assert len(keys) == len(set(keys)) == 500
    assert set(keys) == sql_set(sim.conn, 'SELECT "dataAreaId", "RecId" FROM "fno_CustTransactions"')


async def test_an_ordered_page_walk_keeps_the_order_and_returns_each_row_once(sim):
    """With $orderby the pages continue the order: AmountMst descending across 10 pages, each row once."""
    rows, pages = await walk(
        sim,
        "CustTransactions?cross-company=true&$orderby=AmountMst desc&$select=dataAreaId,RecId,AmountMst",
        page_size=50,
    )
    assert pages == [50] * 10
    amounts = [row["AmountMst"] for row in rows]
    assert amounts == sorted(amounts, reverse=True)
    keys = [(row["dataAreaId"], row["RecId"]) for row in rows]
    assert len(set(keys)) == 500


async def test_next_links_keep_the_filter(sim):
    """A nextLink continues the same query: a filtered walk in small pages returns exactly the
    filtered rows (here the AR control account 130100), not the rest of the table."""
    rows, pages = await walk(
        sim,
        "GeneralJournalAccountEntryBiEntities?$filter=MainAccount eq '130100'&$select=SourceKey,MainAccount",
        page_size=100,
    )
    expected = sql_set(
        sim.conn,
        """SELECT "SourceKey" FROM "fno_GeneralJournalAccountEntryBiEntities" WHERE "MainAccount" = '130100'""",
    )
    assert len(pages) > 1
    assert {row["MainAccount"] for row in rows} == {"130100"}
    assert [row["SourceKey"] for row in rows] == sorted(expected)


# --- companies -------------------------------------------------------------------------------


async def test_without_cross_company_only_the_default_company_is_served(sim):
    """F&O answers for the caller's default company (usmf) unless `cross-company=true` (DESIGN)."""
    rows, _ = await walk(sim, "CustTransactions?$select=dataAreaId,RecId")
    usmf = sql_set(sim.conn, """SELECT "dataAreaId", "RecId" FROM "fno_CustTransactions" WHERE "dataAreaId" = 'usmf'""")
    assert {row["dataAreaId"] for row in rows} == {"usmf"}
    assert {(row["dataAreaId"], row["RecId"]) for row in rows} == usmf
    assert 0 < len(usmf) < 500


async def test_cross_company_serves_every_company(sim):
    """`?cross-company=true` reads across legal entities: both seeded companies, all 500 rows."""
    rows, _ = await walk(sim, "CustTransactions?cross-company=true&$select=dataAreaId,RecId")
    assert {row["dataAreaId"] for row in rows} == {"usmf", "demf"}
    assert len(rows) == 500


async def test_cross_company_with_a_data_area_filter_serves_that_company(sim):
    """`cross-company=true` with `dataAreaId eq 'demf'` (the documented pattern) gives that company's
    rows only."""
    rows, _ = await walk(
        sim, "CustTransactions?cross-company=true&$filter=dataAreaId eq 'demf'&$select=dataAreaId,RecId"
    )
    demf = sql_set(sim.conn, """SELECT "dataAreaId", "RecId" FROM "fno_CustTransactions" WHERE "dataAreaId" = 'demf'""")
    assert {(row["dataAreaId"], row["RecId"]) for row in rows} == demf
    assert len(demf) > 0


async def test_another_company_filtered_without_cross_company_gives_nothing(sim):
    """Without cross-company the default company still applies: asking for demf finds no rows."""
    r = await sim.fno("CustTransactions?$filter=dataAreaId eq 'demf'")
    assert r.status_code == 200
    assert r.json()["value"] == []


async def test_the_default_company_is_a_setting(sim):
    """The default company is the caller's (a setting of the simulator): switched to demf, the
    same request without cross-company serves demf."""
    assert (await sim.admin("PUT", "settings", json={"fno_default_company": "demf"})).status_code == 200
    rows, _ = await walk(sim, "CustTransactions?$select=dataAreaId")
    assert {row["dataAreaId"] for row in rows} == {"demf"}


# --- $filter ----------------------------------------------------------------------------------


async def _migrate_two_ways(sim: SimHarness) -> tuple[list[str], list[str]]:
    """Two milestones land Registered (original map version), three land Invoiced (cutover version)."""
    registered, invoiced = [], []
    for i in range(2):
        r = await sim.dv(
            "POST",
            "msdyn_contractlinescheduleofvalues",
            json=milestone_payload(fixed_price_line(sim.conn, i), name=f"Original {i}"),
        )
        assert r.status_code == 204, r.text
        registered.append(r.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")"))
    name = "msdyn_contractlinescheduleofvalues"
    assert (await sim.admin("POST", f"maps/{name}/stop")).status_code == 200
    r = await sim.admin(
        "POST",
        f"maps/{name}/save-as",
        json={"version": "1.0.0.6", "description": "cutover", "add_mappings": [TRANSSTATUS_MAPPING]},
    )
    assert r.status_code == 200, r.text
    assert (await sim.admin("POST", f"maps/{name}/start")).status_code == 200
    for i in range(3):
        r = await sim.dv(
            "POST",
            "msdyn_contractlinescheduleofvalues",
            json=milestone_payload(fixed_price_line(sim.conn, 3 + i), name=f"Cutover {i}"),
        )
        assert r.status_code == 204, r.text
        invoiced.append(r.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")"))
    return registered, invoiced


async def test_enum_literal_filter_selects_invoiced_milestones(sim):
    """`TransStatus eq Microsoft.Dynamics.DataEntities.ProjTransStatus'Invoiced'` (DESIGN's enum
    literal) selects exactly the milestones that arrived as Invoiced."""
    registered, invoiced = await _migrate_two_ways(sim)
    r = await sim.fno(f"ProjectContractLineMilestones?cross-company=true&$filter=TransStatus eq {ENUM_INVOICED}")
    assert r.status_code == 200, r.text
    assert sorted(row["ContractLineMilestoneGuid"] for row in r.json()["value"]) == sorted(invoiced)
    r = await sim.fno(f"ProjectContractLineMilestones?cross-company=true&$filter=TransStatus eq {ENUM_REGISTERED}")
    assert sorted(row["ContractLineMilestoneGuid"] for row in r.json()["value"]) == sorted(registered)


async def test_an_enum_literal_of_an_unknown_member_is_a_400(sim):
    """An enum literal naming no member of ProjTransStatus is a bad request, not an empty result."""
    r = await sim.fno(
        "ProjectContractLineMilestones?$filter=TransStatus eq Microsoft.Dynamics.DataEntities.ProjTransStatus'Paid'"
    )
    message = fno_error(r, 400)
    assert "'Paid' is not a member of" in message and "ProjTransStatus" in message


async def test_enum_values_are_served_as_member_names(sim):
    """F&O serves enums by member name (DESIGN: enum literals; schema: served as member names):
    TransType 2 reads as Sales, 15 as Payment."""
    rows, _ = await walk(sim, "CustTransactions?cross-company=true&$select=dataAreaId,RecId,TransType")
    stored = {
        (a, rec): t
        for a, rec, t in sim.conn.execute('SELECT "dataAreaId", "RecId", "TransType" FROM "fno_CustTransactions"')
    }
    names = {2: "Sales", 15: "Payment"}
    assert {row["TransType"] for row in rows} == {"Sales", "Payment"}
    assert all(row["TransType"] == names[stored[(row["dataAreaId"], row["RecId"])]] for row in rows)


async def test_date_range_filter_selects_the_quarter(sim):
    """A date-time range `TransDate ge … and TransDate lt …` selects exactly the rows in range."""
    rows, _ = await walk(
        sim,
        "CustTransactions?cross-company=true&$filter=TransDate ge 2026-01-01T00:00:00Z and TransDate lt 2026-04-01T00:00:00Z&$select=dataAreaId,RecId,TransDate",
        page_size=40,
    )
    expected = sql_set(
        sim.conn,
        """SELECT "dataAreaId", "RecId" FROM "fno_CustTransactions" WHERE "TransDate" >= '2026-01-01' AND "TransDate" < '2026-04-01'""",
    )
    assert 0 < len(expected) < 500
    assert {(row["dataAreaId"], row["RecId"]) for row in rows} == expected
    assert len(rows) == len(expected)


async def test_dataareaid_filter_combines_with_other_conditions(sim):
    """`dataAreaId eq 'demf' and TransType eq …'Payment'` (cross-company) gives demf payments only."""
    rows, _ = await walk(
        sim,
        "CustTransactions?cross-company=true&$filter=dataAreaId eq 'demf' and TransType eq Microsoft.Dynamics.DataEntities.LedgerTransType'Payment'&$select=dataAreaId,RecId,TransType,AmountCur",
    )
    expected = sql_set(
        sim.conn,
        """SELECT "dataAreaId", "RecId" FROM "fno_CustTransactions" WHERE "dataAreaId" = 'demf' AND "TransType" = 15""",
    )
    assert len(expected) > 0
    assert {(row["dataAreaId"], row["RecId"]) for row in rows} == expected
    assert all(row["AmountCur"] < 0 for row in rows)


# --- $top / $skip ---------------------------------------------------------------------------


async def test_top_and_skip_select_a_window_of_the_ordered_rows(sim):
    """F&O accepts `$top` and `$skip`: rows 11–15 by RecId."""
    r = await sim.fno("CustTransactions?cross-company=true&$orderby=RecId&$skip=10&$top=5&$select=RecId")
    assert r.status_code == 200, r.text
    expected = [
        row[0]
        for row in sim.conn.execute('SELECT "RecId" FROM "fno_CustTransactions" ORDER BY "RecId" LIMIT 5 OFFSET 10')
    ]
    assert [row["RecId"] for row in r.json()["value"]] == expected
    assert "@odata.nextLink" not in r.json()


async def test_top_is_honoured_across_pages(sim):
    """`$top=25` with pages of 10: 10 + 10 + 5 rows, then no more links."""
    rows, pages = await walk(sim, "CustTransactions?cross-company=true&$top=25&$select=RecId", page_size=10)
    assert pages == [10, 10, 5]
    assert len({row["RecId"] for row in rows}) == 25


# --- values --------------------------------------------------------------------------------


async def test_money_is_served_as_exact_decimal_text(sim):
    """Money is exact (DESIGN Conventions: Decimal, never float): every AmountCur / AmountMst reads
    back as decimal text equal to the stored amount, never in exponent form."""
    r = await sim.fno("CustTransactions?cross-company=true&$select=dataAreaId,RecId,AmountCur,AmountMst")
    stored = {
        (a, rec): (cur, mst)
        for a, rec, cur, mst in sim.conn.execute(
            'SELECT "dataAreaId", "RecId", "AmountCur", "AmountMst" FROM "fno_CustTransactions"'
        )
    }
    literals = re.findall(r'"Amount(?:Cur|Mst)":(-?[0-9.eE+]+)', r.text)
    assert len(literals) == 1000
    assert all(re.fullmatch(r"-?\d+\.\d{2,4}", text) for text in literals)
    for row in body_of(r)["value"]:
        cur, mst = stored[(row["dataAreaId"], row["RecId"])]
        assert row["AmountCur"] == Decimal(cur) / MONEY_SCALE
        assert row["AmountMst"] == Decimal(mst) / MONEY_SCALE


async def test_a_foreign_currency_transaction_keeps_both_amounts(sim):
    """AmountCur is in the transaction currency and AmountMst in the accounting currency: for a
    EUR customer of usmf they differ, and both are exact."""
    row = sim.conn.execute(
        """SELECT "RecId", "AmountCur", "AmountMst" FROM "fno_CustTransactions" WHERE "dataAreaId" = 'usmf' AND "CurrencyCode" = 'EUR' LIMIT 1"""
    ).fetchone()
    r = await sim.fno(f"CustTransactions?$filter=RecId eq {row[0]}&$select=RecId,AmountCur,AmountMst,CurrencyCode")
    (served,) = body_of(r)["value"]
    assert served["CurrencyCode"] == "EUR"
    assert served["AmountCur"] == Decimal(row[1]) / MONEY_SCALE
    assert served["AmountMst"] == Decimal(row[2]) / MONEY_SCALE
    assert served["AmountCur"] != served["AmountMst"]


# --- read-only, unknown entities, $metadata ------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "CustTransactions"),
        ("PATCH", "CustTransactions"),
        ("PATCH", "CustTransactions(dataAreaId='usmf',RecId=5637144578)"),
        ("DELETE", "CustTransactions(dataAreaId='usmf',RecId=5637144578)"),
        ("POST", "ProjectContractLineMilestones"),
        ("PATCH", "ProjectContractLineMilestones(dataAreaId='usmf',ContractLineMilestoneIdentifier='CLM-0000001')"),
    ],
)
async def test_clients_cannot_write_to_fno(sim, method, path):
    """F&O is read-only for clients (DESIGN: "/data/… read-only for clients"; on the night F&O
    changes only through dual-write): every write answers 405 and changes nothing."""
    before = sim.conn.execute('SELECT count(*), sum("AmountCur") FROM "fno_CustTransactions"').fetchone()
    r = await sim.fno(path, method=method, json={"dataAreaId": "usmf", "AccountNum": "US-001", "AmountCur": 1})
    assert r.status_code == 405, r.text
    assert "read-only" in r.json()["error"]["message"]
    assert sim.conn.execute('SELECT count(*), sum("AmountCur") FROM "fno_CustTransactions"').fetchone() == before
    assert sim.conn.execute('SELECT count(*) FROM "fno_ProjectContractLineMilestones"').fetchone()[0] == 0
    log = await sim.log()
    assert (log[-1]["method"], log[-1]["status"]) == (method, 405)


async def test_an_unknown_entity_is_a_404(sim):
    """An entity set F&O does not have answers 404 with an OData error naming the segment."""
    r = await sim.fno("CustTransactionz")
    assert r.status_code == 404
    assert "CustTransactionz" in r.json()["error"]["message"]


async def test_an_unknown_field_in_select_is_a_400(sim):
    """Selecting a field the entity does not have is a bad request naming the field."""
    r = await sim.fno("CustTransactions?$select=AmountUSD")
    assert "Could not find a property named 'AmountUSD'" in fno_error(r, 400)


async def test_metadata_lists_the_entities_and_the_enums(sim):
    """`$metadata` lists every served entity set (those the runbook reads, DESIGN) and the enums
    with their documented values (ProjTransStatus 1 Registered … 4 Invoiced; Status 0/1/4)."""
    r = await sim.fno("$metadata")
    assert r.status_code == 200
    text = r.text
    for name in (
        "ProjectContractLineMilestones",
        "CustTransactions",
        "GeneralJournalAccountEntryBiEntities",
        "GeneralJournalEntryBiEntities",
        "DualWriteProjectConfigurations",
    ):
        assert f'<EntitySet Name="{name}"' in text
    assert {s.name for s in FNO_SETS} == set(re.findall(r'<EntitySet Name="([^"]+)"', text))

    def members(enum: str) -> dict[str, str]:
        block = re.search(rf'<EnumType Name="{enum}">(.*?)</EnumType>', text)
        assert block, f"$metadata has no enum {enum}"
        return dict(re.findall(r'<Member Name="([^"]+)" Value="(\d+)"/>', block.group(1)))

    assert members("ProjTransStatus") == {"Registered": "1", "Posted": "2", "InvoiceProposal": "3", "Invoiced": "4"}
    assert members("DualWriteProjectStatus") == {"Enabled": "0", "Disabled": "1", "Queueing": "4"}
    assert {e.name for e in FNO_ENUMS} <= set(re.findall(r'<EnumType Name="([^"]+)"', text))
    assert 'Name="TransStatus" Type="Microsoft.Dynamics.DataEntities.ProjTransStatus"' in text


async def test_fno_requires_a_bearer_token(sim):
    """Every API route answers 401 without a bearer token the identity endpoint issued (DESIGN)."""
    r = await sim.client.get(FNO + "CustTransactions")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = await sim.client.get(FNO + "CustTransactions", headers={"Authorization": "Bearer sim.forged.token"})
    assert r.status_code == 401
