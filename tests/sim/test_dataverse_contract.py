"""Contract tests: the simulator's Dataverse Web API behaves as Microsoft documents it.

Each test checks one documented behaviour, seen from the client's side (status codes, error
codes and messages, amounts, counts, what the request log shows). Sources, all Microsoft
Learn, "Dataverse Web API" unless said otherwise:
  "Create a table row", "Retrieve a table row", "Update and delete table rows" (incl. "Upsert a
  table row"), "Perform conditional operations", "Query data" (select-columns, filter-rows,
  order-rows, page-results, count-rows), "Compose HTTP requests and handle errors",
  "Web API types and operations" ($metadata), "WhoAmI function", "Service protection",
  Microsoft identity platform "OAuth 2.0 client credentials flow" and its AADSTS error codes;
  Project Operations milestone rules as listed in DESIGN.md ("Domain facts").
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest

from cutover.sim.seed import organization_id
from tests.conftest import DV, READER, WRITER, fixed_price_line, milestone_payload
from tests.sim.dataverse_helpers import (
    BAD_PAYLOAD,
    CREATED,
    DUPLICATE,
    INVALID_ARGUMENT,
    MILESTONE_KEY,
    MILESTONES,
    NOT_FOUND,
    NOT_READY,
    POSTED,
    PRIVILEGE,
    READY,
    TIME_AND_MATERIAL,
    URI_ERROR,
    VERSION_MISMATCH,
    body,
    bulk,
    count,
    error_of,
    line_by_method,
    milestone_json,
    target,
    walk,
)

ENTITY_SETS = (
    "cdm_companies",
    "transactioncurrencies",
    "accounts",
    "msdyn_projects",
    "salesorders",
    "salesorderdetails",
    "msdyn_contractlinescheduleofvalues",
    "invoices",
    "invoicedetails",
    # issue #8: dual-write's map tables, read-only (where public code reads map versions)
    "msdyn_dualwriteentitymaps",
    "msdyn_dualwriteruntimeconfigs",
)


@pytest.fixture
def line(sim) -> dict:
    return fixed_price_line(sim.conn)


async def create(sim, payload: dict) -> str:
    r = await sim.dv("POST", MILESTONES, json=payload)
    assert r.status_code == 204, r.text
    return re.search(r"\(([0-9a-f-]{36})\)$", r.headers["OData-EntityId"]).group(1)


async def get(sim, key: str, query: str = "") -> dict:
    r = await sim.dv("GET", f"{MILESTONES}({key}){query}")
    assert r.status_code == 200, r.text
    return body(r)


# --- create, retrieve, delete ------------------------------------------------------------------


async def test_create_answers_204_with_odata_entityid_and_no_body(sim, line):
    """'Create a table row': a POST answers 204 No Content; the URI of the new row is in the OData-EntityId header."""
    before = await count(sim, MILESTONES)
    r = await sim.dv("POST", MILESTONES, json=milestone_payload(line, name="Kick-off"))
    assert r.status_code == 204
    assert r.content == b""
    m = re.fullmatch(
        r"http://sim\.test/api/data/v9\.2/msdyn_contractlinescheduleofvalues\(([0-9a-f-]{36})\)",
        r.headers["OData-EntityId"],
    )
    assert m, r.headers["OData-EntityId"]
    assert (await get(sim, m.group(1)))["msdyn_name"] == "Kick-off"
    assert await count(sim, MILESTONES) == before + 1


async def test_create_with_return_representation_answers_201_with_the_row(sim, line):
    """'Create with data returned': Prefer: return=representation answers 201 Created with the row and Preference-Applied."""
    r = await sim.dv(
        "POST",
        MILESTONES,
        json=milestone_payload(line, name="Design sign-off", amount=2500),
        headers={"Prefer": "return=representation"},
    )
    assert r.status_code == 201
    assert r.headers["Preference-Applied"] == "return=representation"
    row = body(r)
    assert row["@odata.context"].endswith("$metadata#msdyn_contractlinescheduleofvalues/$entity")
    assert row["msdyn_name"] == "Design sign-off"
    assert row["msdyn_amount"] == Decimal("2500")
    assert row["@odata.etag"].startswith('W/"')
    assert r.headers["OData-EntityId"].endswith(f"({row[MILESTONE_KEY]})")


async def test_create_with_return_representation_honours_select(sim, line):
    """'Create with data returned': append $select to control which properties come back."""
    r = await sim.dv(
        "POST",
        f"{MILESTONES}?$select=msdyn_name",
        json=milestone_payload(line, name="Only the name"),
        headers={"Prefer": "return=representation"},
    )
    assert r.status_code == 201
    row = body(r)
    assert set(row) == {"@odata.context", "@odata.etag", "msdyn_name", MILESTONE_KEY}


async def test_a_client_chosen_id_is_kept(sim, line):
    """'Create a table row': the primary key value may be set by the client on create."""
    key = str(uuid.uuid4())
    r = await sim.dv("POST", MILESTONES, json={**milestone_payload(line), MILESTONE_KEY: key})
    assert r.status_code == 204
    assert r.headers["OData-EntityId"].endswith(f"({key})")
    assert (await get(sim, key))[MILESTONE_KEY] == key


async def test_retrieve_by_key_returns_the_row_with_etag_and_context(sim, line):
    """'Retrieve a table row': GET set(id) answers 200 with @odata.context, @odata.etag and the columns."""
    key = await create(sim, milestone_payload(line, name="Go-live", amount=1000, date="2026-11-15"))
    r = await sim.dv("GET", f"{MILESTONES}({key})")
    assert r.status_code == 200
    row = body(r)
    assert row["@odata.context"] == f"http://sim.test{DV}$metadata#{MILESTONES}/$entity"
    assert row[MILESTONE_KEY] == key
    assert row["msdyn_invoicedate"] == "2026-11-15"
    assert row["_msdyn_contractlineid_value"] == line["line_id"]
    assert re.fullmatch(r'W/"\d+"', row["@odata.etag"])


async def test_retrieve_by_key_with_select(sim, line):
    """'Retrieve a table row': $select limits the columns; the key and @odata.etag always come back."""
    key = await create(sim, milestone_payload(line))
    row = await get(sim, key, "?$select=msdyn_amount")
    assert set(row) == {"@odata.context", "@odata.etag", "msdyn_amount", MILESTONE_KEY}


async def test_retrieve_missing_row_is_404_object_does_not_exist(sim):
    """'Compose HTTP requests and handle errors': a missing row answers 404 with code 0x80040217 naming the id."""
    missing = str(uuid.uuid4())
    r = await sim.dv("GET", f"{MILESTONES}({missing})")
    message = error_of(r, 404, NOT_FOUND)
    assert missing in message


async def test_missing_row_message_has_the_documented_wording(sim):
    """'Perform conditional operations' (Prevent create in upsert) shows the 404 message as '<table> With Id = <id> Does Not Exist'."""
    missing = str(uuid.uuid4())
    r = await sim.dv("GET", f"{MILESTONES}({missing})")
    assert error_of(r, 404, NOT_FOUND) == f"msdyn_contractlinescheduleofvalue With Id = {missing} Does Not Exist"


async def test_delete_answers_204_and_the_row_is_gone(sim, line):
    """'Basic delete': DELETE set(id) answers 204; afterwards the row is not found."""
    key = await create(sim, milestone_payload(line))
    before = await count(sim, MILESTONES)
    r = await sim.dv("DELETE", f"{MILESTONES}({key})")
    assert r.status_code == 204
    error_of(await sim.dv("GET", f"{MILESTONES}({key})"), 404, NOT_FOUND)
    assert await count(sim, MILESTONES) == before - 1


async def test_delete_of_a_missing_row_is_404(sim):
    """'Basic delete': if the row isn't found, the response is 404."""
    error_of(await sim.dv("DELETE", f"{MILESTONES}({uuid.uuid4()})"), 404, NOT_FOUND)


# --- upsert and conditional operations ------------------------------------------------------------


async def test_upsert_patch_creates_then_updates(sim, line):
    """'Upsert a table row': PATCH set(id) creates the row if it does not exist (204), else updates it (204)."""
    key = str(uuid.uuid4())
    before = await count(sim, MILESTONES)
    r = await sim.dv("PATCH", f"{MILESTONES}({key})", json=milestone_payload(line, name="First"))
    assert r.status_code == 204
    assert r.headers["OData-EntityId"].endswith(f"({key})")
    first = await get(sim, key)
    r = await sim.dv("PATCH", f"{MILESTONES}({key})", json={"msdyn_name": "Second"})
    assert r.status_code == 204
    second = await get(sim, key)
    assert second["msdyn_name"] == "Second"
    assert second["msdyn_amount"] == first["msdyn_amount"]  # untouched columns keep their values
    assert second["@odata.etag"] != first["@odata.etag"]
    assert await count(sim, MILESTONES) == before + 1


async def test_upsert_with_return_representation_is_201_on_create_and_200_on_update(sim, line):
    """'Update with data returned': PATCH with Prefer: return=representation answers 200 (201 when the upsert created the row)."""
    key = str(uuid.uuid4())
    prefer = {"Prefer": "return=representation"}
    r = await sim.dv("PATCH", f"{MILESTONES}({key})", json=milestone_payload(line, name="Created"), headers=prefer)
    assert r.status_code == 201 and body(r)["msdyn_name"] == "Created"
    r = await sim.dv("PATCH", f"{MILESTONES}({key})?$select=msdyn_name", json={"msdyn_name": "Updated"}, headers=prefer)
    assert r.status_code == 200
    assert set(body(r)) == {"@odata.context", "@odata.etag", "msdyn_name", MILESTONE_KEY}
    assert body(r)["msdyn_name"] == "Updated"


async def test_if_match_star_on_a_missing_row_is_404_and_creates_nothing(sim, line):
    """'Prevent create in upsert': PATCH with If-Match: * answers 404 when the row does not exist."""
    key = str(uuid.uuid4())
    before = await count(sim, MILESTONES)
    r = await sim.dv("PATCH", f"{MILESTONES}({key})", json=milestone_payload(line), headers={"If-Match": "*"})
    assert key in error_of(r, 404, NOT_FOUND)
    assert await count(sim, MILESTONES) == before


async def test_if_match_star_on_an_existing_row_updates_it(sim, line):
    """'Prevent create in upsert': when the row is found, the update happens and the answer is 204."""
    key = await create(sim, milestone_payload(line, name="Before"))
    r = await sim.dv("PATCH", f"{MILESTONES}({key})", json={"msdyn_name": "After"}, headers={"If-Match": "*"})
    assert r.status_code == 204
    assert (await get(sim, key))["msdyn_name"] == "After"


async def test_if_none_match_star_on_an_existing_row_is_412_and_leaves_it_unchanged(sim, line):
    """'Prevent update in upsert': PATCH with If-None-Match: * answers 412 'A record with matching key values already exists.'"""
    key = await create(sim, milestone_payload(line, name="Original", amount=100))
    before = await count(sim, MILESTONES)
    r = await sim.dv(
        "PATCH",
        f"{MILESTONES}({key})",
        json={"msdyn_name": "Overwritten", "msdyn_amount": 1},
        headers={"If-None-Match": "*"},
    )
    assert "A record with matching key values already exists" in error_of(r, 412, DUPLICATE)
    row = await get(sim, key)
    assert (row["msdyn_name"], row["msdyn_amount"]) == ("Original", Decimal("100"))
    assert await count(sim, MILESTONES) == before


async def test_if_none_match_star_on_a_missing_row_creates_it(sim, line):
    """'Prevent update in upsert': if the row isn't found, it is created and the answer is 204."""
    key = str(uuid.uuid4())
    r = await sim.dv("PATCH", f"{MILESTONES}({key})", json=milestone_payload(line), headers={"If-None-Match": "*"})
    assert r.status_code == 204
    assert (await get(sim, key))[MILESTONE_KEY] == key


async def test_post_with_an_existing_id_is_412_and_writes_nothing(sim, line):
    """'Create a table row' with a client id: creating a row whose key exists fails with 412 code 0x80040237."""
    key = await create(sim, milestone_payload(line, name="Keep me"))
    before = await count(sim, MILESTONES)
    r = await sim.dv("POST", MILESTONES, json={**milestone_payload(line, name="Duplicate"), MILESTONE_KEY: key})
    error_of(r, 412, DUPLICATE)
    assert await count(sim, MILESTONES) == before
    assert (await get(sim, key))["msdyn_name"] == "Keep me"


async def test_if_match_with_a_stale_etag_is_412_on_update_and_delete(sim, line):
    """'Apply optimistic concurrency': If-Match with an ETag that is no longer current answers 412
    'The version of the existing record doesn't match the RowVersion property provided.'; the current ETag succeeds."""
    key = await create(sim, milestone_payload(line, name="v1"))
    stale = (await get(sim, key))["@odata.etag"]
    assert (
        await sim.dv("PATCH", f"{MILESTONES}({key})", json={"msdyn_name": "v2"}, headers={"If-Match": stale})
    ).status_code == 204
    r = await sim.dv("PATCH", f"{MILESTONES}({key})", json={"msdyn_name": "v3"}, headers={"If-Match": stale})
    assert "RowVersion" in error_of(r, 412, VERSION_MISMATCH)
    error_of(await sim.dv("DELETE", f"{MILESTONES}({key})", headers={"If-Match": stale}), 412, VERSION_MISMATCH)
    current = await get(sim, key)
    assert current["msdyn_name"] == "v2"
    assert (
        await sim.dv("DELETE", f"{MILESTONES}({key})", headers={"If-Match": current["@odata.etag"]})
    ).status_code == 204


async def test_if_match_with_an_etag_never_creates(sim, line):
    """'Perform conditional operations': If-Match makes the PATCH an update; a missing row answers 404, nothing is created."""
    key = str(uuid.uuid4())
    before = await count(sim, MILESTONES)
    r = await sim.dv("PATCH", f"{MILESTONES}({key})", json=milestone_payload(line), headers={"If-Match": 'W/"1"'})
    error_of(r, 404, NOT_FOUND)
    assert await count(sim, MILESTONES) == before


# --- reads: $select $filter $orderby $top $count ------------------------------------------------


async def test_select_returns_only_the_selected_columns_the_key_and_etag(sim, line):
    """'Select columns': only the $select-ed columns come back, plus the primary key and @odata.etag."""
    await create(sim, milestone_payload(line))
    r = await sim.dv("GET", f"{MILESTONES}?$select=msdyn_name,msdyn_amount")
    rows = body(r)["value"]
    assert rows
    for row in rows:
        assert set(row) == {"@odata.etag", "msdyn_name", "msdyn_amount", MILESTONE_KEY}


async def test_filter_on_a_lookup_value(sim):
    """'Filter rows': a lookup is filtered by its _<name>_value property, e.g. _msdyn_contract_value eq <guid>."""
    line_a, line_b = fixed_price_line(sim.conn, 0), fixed_price_line(sim.conn, 3)
    assert line_a["contract_id"] != line_b["contract_id"]
    await bulk(
        sim, "CreateMultiple", [target(line_a, f"A{i}") for i in range(4)] + [target(line_b, f"B{i}") for i in range(3)]
    )
    r = await sim.dv("GET", f"{MILESTONES}?$filter=_msdyn_contract_value eq {line_b['contract_id']}")
    rows = body(r)["value"]
    assert sorted(row["msdyn_name"] for row in rows) == ["B0", "B1", "B2"]
    assert {row["_msdyn_contract_value"] for row in rows} == {line_b["contract_id"]}


async def test_filter_with_and_on_option_and_money(sim, line):
    """'Filter rows': comparison operators on choice and money columns combine with 'and'."""
    await bulk(
        sim,
        "CreateMultiple",
        [
            target(line, "small ready", 50),
            target(line, "big ready", 500),
            target(line, "big not ready", 500, status=NOT_READY),
            target(line, "exact", 100),
        ],
    )
    r = await sim.dv("GET", f"{MILESTONES}?$filter=msdyn_invoicestatus eq {READY} and msdyn_amount ge 100")
    assert sorted(row["msdyn_name"] for row in body(r)["value"]) == ["big ready", "exact"]
    r = await sim.dv("GET", f"{MILESTONES}?$filter=startswith(msdyn_name,'BIG')")
    assert sorted(row["msdyn_name"] for row in body(r)["value"]) == ["big not ready", "big ready"]


async def test_orderby_desc(sim, line):
    """'Order rows': $orderby=<column> desc sorts descending."""
    await bulk(sim, "CreateMultiple", [target(line, f"m{a}", a) for a in (30, 10, 50, 20, 40)])
    r = await sim.dv("GET", f"{MILESTONES}?$select=msdyn_amount&$orderby=msdyn_amount desc")
    assert [row["msdyn_amount"] for row in body(r)["value"]] == [Decimal(a) for a in (50, 40, 30, 20, 10)]


async def test_top_limits_the_rows_and_gives_no_nextlink(sim, line):
    """'Query data': $top limits the number of results; there is no next page."""
    await bulk(sim, "CreateMultiple", [target(line, f"m{i}") for i in range(10)])
    r = await sim.dv("GET", f"{MILESTONES}?$top=3&$orderby=msdyn_name")
    data = body(r)
    assert [row["msdyn_name"] for row in data["value"]] == ["m0", "m1", "m2"]
    assert "@odata.nextLink" not in data


async def test_count_counts_every_matching_row_irrespective_of_page_size(sim, line):
    """'Count rows': @odata.count is the number of rows matching the filter, irrespective of the page size requested."""
    await bulk(sim, "CreateMultiple", [target(line, f"m{i}", status=READY if i % 3 else NOT_READY) for i in range(30)])
    r = await sim.dv(
        "GET",
        f"{MILESTONES}?$count=true&$filter=msdyn_invoicestatus eq {READY}",
        headers={"Prefer": "odata.maxpagesize=5"},
    )
    data = body(r)
    assert data["@odata.count"] == 20
    assert len(data["value"]) == 5


async def test_count_stops_at_5000(sim, line):
    """'Count rows': $count=true counts up to 5,000; beyond that @odata.count is 5000 and
    @Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded is true."""
    for batch in range(6):
        r = await bulk(sim, "UpsertMultiple", [target(line, f"b{batch}-{i}", 1) for i in range(1000)])
        assert r.status_code == 204  # UpsertMultiple: 204 No Content (issue #8)
    r = await sim.dv("GET", f"{MILESTONES}?$count=true&$select=msdyn_name", headers={"Prefer": "odata.maxpagesize=10"})
    data = body(r)
    assert data["@odata.count"] == 5000
    assert data["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] is True


# --- paging -------------------------------------------------------------------------------------


async def test_maxpagesize_gives_pages_with_nextlink_and_preference_applied(sim, line):
    """'Page results': Prefer: odata.maxpagesize=N returns N rows, Preference-Applied echoes it, @odata.nextLink leads on."""
    await bulk(sim, "CreateMultiple", [target(line, f"m{i}") for i in range(5)])
    r = await sim.dv("GET", f"{MILESTONES}?$select=msdyn_name", headers={"Prefer": "odata.maxpagesize=2"})
    assert r.headers["Preference-Applied"] == "odata.maxpagesize=2"
    data = body(r)
    assert len(data["value"]) == 2
    assert data["@odata.nextLink"].startswith(f"http://sim.test{DV}{MILESTONES}?")
    assert "$skiptoken=" in data["@odata.nextLink"]
    assert "$select=msdyn_name" in data["@odata.nextLink"]


async def test_page_walk_returns_every_row_exactly_once(sim, line):
    """'Page results': following @odata.nextLink with the same maxpagesize until there is none returns every row, once."""
    r = await bulk(sim, "CreateMultiple", [target(line, f"m{i:03d}", i % 17) for i in range(300)])
    created = r.json()["Ids"]
    pages = await walk(sim, f"{DV}{MILESTONES}?$select=msdyn_name", 7)
    ids = [row[MILESTONE_KEY] for page in pages for row in page["value"]]
    assert len(pages) == 43  # ceil(300 / 7)
    assert all(len(p["value"]) == 7 for p in pages[:-1]) and len(pages[-1]["value"]) == 300 - 42 * 7
    assert len(ids) == len(set(ids)) == 300
    assert set(ids) == set(created)


async def test_page_walk_with_orderby_returns_every_row_once_in_order(sim, line):
    """'Page results' with 'Order rows': paging a sorted query (many equal sort values) keeps the order and never repeats or skips a row."""
    r = await bulk(sim, "CreateMultiple", [target(line, f"m{i:03d}", i % 17) for i in range(300)])
    created = r.json()["Ids"]
    pages = await walk(sim, f"{DV}{MILESTONES}?$select=msdyn_amount&$orderby=msdyn_amount desc", 7)
    rows = [row for page in pages for row in page["value"]]
    assert len(rows) == 300 and {row[MILESTONE_KEY] for row in rows} == set(created)
    amounts = [row["msdyn_amount"] for row in rows]
    assert amounts == sorted(amounts, reverse=True)


async def test_page_walk_with_filter_and_count(sim):
    """'Page results' with 'Filter rows' and 'Count rows': every page of a filtered query holds only matching rows, and all of them."""
    line_a, line_b = fixed_price_line(sim.conn, 0), fixed_price_line(sim.conn, 3)
    await bulk(sim, "CreateMultiple", [target(line_a if i % 2 else line_b, f"m{i}") for i in range(100)])
    pages = await walk(sim, f"{DV}{MILESTONES}?$count=true&$filter=_msdyn_contract_value eq {line_a['contract_id']}", 9)
    rows = [row for page in pages for row in page["value"]]
    assert pages[0]["@odata.count"] == 50
    assert len({row[MILESTONE_KEY] for row in rows}) == len(rows) == 50
    assert {row["_msdyn_contract_value"] for row in rows} == {line_a["contract_id"]}


async def test_maxpagesize_above_5000_is_capped_at_5000(sim, line):
    """'Page results': you can't request a page size larger than 5,000."""
    for batch in range(6):
        assert (
            await bulk(sim, "UpsertMultiple", [target(line, f"b{batch}-{i}", 1) for i in range(1000)])
        ).status_code == 204
    r = await sim.dv("GET", f"{MILESTONES}?$select=msdyn_name", headers={"Prefer": "odata.maxpagesize=20000"})
    assert r.headers["Preference-Applied"] == "odata.maxpagesize=5000"
    data = body(r)
    assert len(data["value"]) == 5000
    assert "@odata.nextLink" in data


async def test_skip_is_not_supported(sim):
    """'Page results': Dataverse doesn't support the $skip query option (400)."""
    error_of(await sim.dv("GET", f"{MILESTONES}?$skip=10"), 400, URI_ERROR)


async def test_expand_is_refused(sim):
    """DESIGN.md simulator subset: $expand is not served; the simulator answers 400 and points to _<name>_value."""
    message = error_of(await sim.dv("GET", f"{MILESTONES}?$expand=msdyn_contract"), 400)
    assert "_value" in message


@pytest.mark.parametrize("option", ["$apply=groupby((msdyn_name))", "$search=kick", "$levels=2"])
async def test_unknown_system_query_option_is_400(sim, option):
    """OData 4.0 'System query options': a $-option the service does not support answers 400."""
    error_of(await sim.dv("GET", f"{MILESTONES}?{option}"), 400)


async def test_bad_maxpagesize_is_400(sim):
    """'Page results': odata.maxpagesize takes a number of rows."""
    error_of(await sim.dv("GET", MILESTONES, headers={"Prefer": "odata.maxpagesize=lots"}), 400)


async def test_two_prefer_headers_are_both_honoured(sim, line):
    """'Count rows' example: a request may carry Prefer: odata.maxpagesize=3 and Prefer: odata.include-annotations=...
    as two headers (RFC 7240 §2); both preferences apply."""
    await bulk(sim, "CreateMultiple", [target(line, f"m{i}") for i in range(5)])
    headers = [
        ("Authorization", f"Bearer {await sim.token()}"),
        ("Prefer", "odata.maxpagesize=3"),
        ("Prefer", 'odata.include-annotations="*"'),
    ]
    r = await sim.client.get(f"{DV}{MILESTONES}", headers=headers)
    assert r.status_code == 200
    assert len(r.json()["value"]) == 3


# --- bad input --------------------------------------------------------------------------------


async def test_malformed_json_body_is_400_and_writes_nothing(sim):
    """'Compose HTTP requests and handle errors': a body that is not valid JSON answers 400 with the error shape."""
    before = await count(sim, MILESTONES)
    r = await sim.dv("POST", MILESTONES, content=b'{"msdyn_name": "x",', headers={"Content-Type": "application/json"})
    assert "not valid JSON" in error_of(r, 400, BAD_PAYLOAD)
    assert await count(sim, MILESTONES) == before


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_unknown_entity_set_is_404_resource_not_found(sim, method):
    """OData URL conventions: an unknown entity set answers 404 'Resource not found for the segment ...'."""
    r = await sim.dv(method, "msdyn_milestones", **({"json": {"msdyn_name": "x"}} if method == "POST" else {}))
    assert error_of(r, 404, URI_ERROR) == "Resource not found for the segment 'msdyn_milestones'."


async def test_unknown_property_in_payload_is_400(sim, line):
    """'Create a table row': a property that is not on the type answers 400 naming the property and the type."""
    before = await count(sim, MILESTONES)
    r = await sim.dv("POST", MILESTONES, json={**milestone_payload(line), "msdyn_amount_base": 5})
    message = error_of(r, 400, URI_ERROR)
    assert (
        "The property 'msdyn_amount_base' does not exist on type 'Microsoft.Dynamics.CRM.msdyn_contractlinescheduleofvalue'"
        in message
    )
    assert await count(sim, MILESTONES) == before


@pytest.mark.parametrize(
    "query", ["$select=msdyn_name,msdyn_nosuch", "$filter=msdyn_nosuch eq 1", "$orderby=msdyn_nosuch"]
)
async def test_unknown_property_in_query_options_is_400(sim, query):
    """'Query data': an unknown column in $select, $filter or $orderby answers 400 'Could not find a property named ...'."""
    message = error_of(await sim.dv("GET", f"{MILESTONES}?{query}"), 400, URI_ERROR)
    assert "Could not find a property named 'msdyn_nosuch'" in message


@pytest.mark.parametrize(
    "column, value, edm",
    [
        ("msdyn_amount", "1000.00", "Edm.Decimal"),
        ("msdyn_amount", True, "Edm.Decimal"),
        ("msdyn_invoicestatus", "192350001", "Edm.Int32"),
        ("msdyn_invoicestatus", 192350001.0, "Edm.Int32"),
        ("msdyn_invoicedate", "2026-02-30", "Edm.Date"),
        ("msdyn_invoicedate", "31/10/2026", "Edm.Date"),
        ("msdyn_invoicedate", 20261031, "Edm.Date"),
        ("msdyn_name", 42, "Edm.String"),
    ],
)
async def test_wrong_type_for_a_column_is_400_naming_the_column(sim, line, column, value, edm):
    """'Compose HTTP requests and handle errors': a value that cannot convert to the column's type answers 400 naming type and column."""
    before = await count(sim, MILESTONES)
    r = await sim.dv("POST", MILESTONES, json={**milestone_payload(line), column: value})
    message = error_of(r, 400, BAD_PAYLOAD)
    assert edm in message and column in message
    assert await count(sim, MILESTONES) == before


async def test_bad_guid_key_is_400(sim):
    """OData URL conventions: a key that is not a GUID answers 400."""
    message = error_of(await sim.dv("GET", f"{MILESTONES}(not-a-guid)"), 400, URI_ERROR)
    assert "GUID" in message


async def test_option_value_out_of_range_is_400(sim, line):
    """'Choices': a value that is not one of the column's options answers 400 'outside the valid range'."""
    before = await count(sim, MILESTONES)
    r = await sim.dv("POST", MILESTONES, json=milestone_payload(line, status=192350009))
    message = error_of(r, 400, INVALID_ARGUMENT)
    assert "The value 192350009 of 'msdyn_invoicestatus'" in message and "outside the valid range" in message
    assert await count(sim, MILESTONES) == before


async def test_money_out_of_range_is_400(sim, line):
    """'Currency columns': a Money value outside -922,337,203,685,477 .. 922,337,203,685,477 answers 400, not a server error."""
    before = await count(sim, MILESTONES)
    r = await sim.dv(
        "POST",
        MILESTONES,
        content=milestone_json(line, "1000000000000000"),
        headers={"Content-Type": "application/json"},
    )
    message = error_of(r, 400, INVALID_ARGUMENT)
    assert "'msdyn_amount'" in message and "outside the valid range" in message and "922337203685477" in message
    assert await count(sim, MILESTONES) == before


async def test_lookup_bound_to_a_missing_row_is_404_and_writes_nothing(sim, line):
    """'Associate table rows on create': @odata.bind to a row that does not exist answers 404 code 0x80040217."""
    before = await count(sim, MILESTONES)
    missing = str(uuid.uuid4())
    payload = {**milestone_payload(line), "msdyn_ContractLineId@odata.bind": f"/salesorderdetails({missing})"}
    assert missing in error_of(await sim.dv("POST", MILESTONES, json=payload), 404, NOT_FOUND)
    assert await count(sim, MILESTONES) == before


async def test_lookup_bound_with_wrong_navigation_property_case_is_400(sim, line):
    """'Associate table rows on create': the navigation property name is case sensitive; 'msdyn_contractlineid@odata.bind'
    answers 400 'An undeclared property ... which only has property annotations in the payload'."""
    payload = milestone_payload(line)
    payload["msdyn_contractlineid@odata.bind"] = payload.pop("msdyn_ContractLineId@odata.bind")
    message = error_of(await sim.dv("POST", MILESTONES, json=payload), 400)
    assert "undeclared property 'msdyn_contractlineid'" in message


async def test_lookup_bound_into_the_wrong_set_is_400(sim, line):
    """'Associate table rows on create': the bound URL must address the lookup's target table."""
    payload = {**milestone_payload(line), "msdyn_ContractLineId@odata.bind": f"/salesorders({line['contract_id']})"}
    error_of(await sim.dv("POST", MILESTONES, json=payload), 400)


async def test_writing_a_lookup_value_property_directly_is_400(sim, line):
    """'Lookup properties': _<name>_value is read-only; set the lookup with <navigation property>@odata.bind."""
    payload = milestone_payload(line)
    del payload["msdyn_ContractLineId@odata.bind"]
    payload["_msdyn_contractlineid_value"] = line["line_id"]
    message = error_of(await sim.dv("POST", MILESTONES, json=payload), 400)
    assert "msdyn_ContractLineId@odata.bind" in message


@pytest.mark.parametrize(
    "expr",
    [
        "msdyn_amount eq",
        "msdyn_amount = 5",
        "(msdyn_amount eq 5",
        "msdyn_name eq 'unterminated",
        "msdyn_amount eq 'ten'",
    ],
)
async def test_bad_filter_is_400(sim, expr):
    """'Filter rows': a $filter that does not parse, or compares incompatible types, answers 400."""
    error_of(await sim.dv("GET", f"{MILESTONES}?$filter={expr}"), 400, URI_ERROR)


async def test_a_required_column_missing_on_create_is_400(sim, line):
    """'Create a table row': a create without a value for a required column fails; nothing is written."""
    before = await count(sim, MILESTONES)
    payload = milestone_payload(line)
    del payload["msdyn_name"]
    assert "msdyn_name" in error_of(await sim.dv("POST", MILESTONES, json=payload), 400)
    assert await count(sim, MILESTONES) == before


async def test_string_longer_than_max_length_is_400(sim, line):
    """'Execute batch operations' error example: a string longer than the column's maximum length is refused."""
    message = error_of(await sim.dv("POST", MILESTONES, json=milestone_payload(line, name="x" * 101)), 400)
    assert "maximum allowed length of '100'" in message


# --- money exactness ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["0.10", "1234567.89", "0.0001", "-250.5", "922337203685477", "99999999.9999"])
async def test_money_round_trips_exactly(sim, line, text):
    """'Currency columns' + DESIGN.md: Money reads back as a JSON number with exactly the value written, never a float approximation."""
    r = await sim.dv(
        "POST", MILESTONES, content=milestone_json(line, text), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 204, r.text
    key = r.headers["OData-EntityId"][-37:-1]
    got = await sim.dv("GET", f"{MILESTONES}({key})?$select=msdyn_amount")
    number = re.search(r'"msdyn_amount":\s*([^,}]+)', got.text).group(1)
    assert "e" not in number.lower() and '"' not in number  # plain JSON number text
    assert Decimal(number) == Decimal(text)
    assert body(got)["msdyn_amount"] == Decimal(text)
    found = await sim.dv("GET", f"{MILESTONES}?$filter=msdyn_amount eq {text}&$select=msdyn_amount")
    assert [row[MILESTONE_KEY] for row in body(found)["value"]] == [key]


@pytest.mark.parametrize(
    "text, stored",
    [("1.23445", "1.2344"), ("1.23455", "1.2346"), ("0.00005", "0"), ("0.00015", "0.0002"), ("10.99999", "11")],
)
async def test_money_with_five_decimals_rounds_half_even_to_four(sim, line, text, stored):
    """'Currency columns': Money keeps at most 4 decimal places; extra digits round half to even."""
    r = await sim.dv(
        "POST",
        MILESTONES,
        content=milestone_json(line, text),
        headers={"Content-Type": "application/json", "Prefer": "return=representation"},
    )
    assert r.status_code == 201, r.text
    assert body(r)["msdyn_amount"] == Decimal(stored)


# --- Project Operations milestone rules -----------------------------------------------------------


@pytest.mark.parametrize("status", [CREATED, POSTED])
async def test_milestone_cannot_be_created_as_invoiced(sim, line, status):
    """DESIGN.md 'Domain facts': 192350002 / 192350003 are set by invoicing only; a create with them is refused."""
    before = await count(sim, MILESTONES)
    message = error_of(await sim.dv("POST", MILESTONES, json=milestone_payload(line, status=status)), 400)
    assert str(status) in message
    assert await count(sim, MILESTONES) == before


async def test_milestone_cannot_be_moved_to_an_invoiced_status_by_update(sim, line):
    """DESIGN.md 'Domain facts': a PATCH cannot set Customer invoice posted either."""
    key = await create(sim, milestone_payload(line))
    error_of(await sim.dv("PATCH", f"{MILESTONES}({key})", json={"msdyn_invoicestatus": POSTED}), 400)
    assert (await get(sim, key))["msdyn_invoicestatus"] == READY


async def test_milestone_on_a_time_and_material_line_is_refused(sim):
    """Project Operations: billing milestones exist only on fixed-price contract lines."""
    tm = await line_by_method(sim, TIME_AND_MATERIAL)
    before = await count(sim, MILESTONES)
    message = error_of(await sim.dv("POST", MILESTONES, json=milestone_payload(tm)), 400)
    assert "fixed price" in message and tm["line_id"] in message
    assert await count(sim, MILESTONES) == before


async def test_milestone_takes_contract_project_and_currency_from_its_line(sim, line):
    """Project Operations: a milestone bound only to its contract line gets the line's contract, project and currency."""
    detail = body(await sim.dv("GET", f"salesorderdetails({line['line_id']})"))
    key = await create(sim, milestone_payload(line))
    row = await get(sim, key)
    assert row["_msdyn_contract_value"] == detail["_salesorderid_value"] == line["contract_id"]
    assert row["_msdyn_project_value"] == detail["_msdyn_project_value"] is not None
    assert row["_transactioncurrencyid_value"] == detail["_transactioncurrencyid_value"] is not None


async def test_milestone_defaults_to_not_ready_and_the_milestone_classification(sim, line):
    """DESIGN.md 'Domain facts': transaction classification Milestone = 192350003; a new milestone is Not ready (192350000) unless told."""
    payload = milestone_payload(line)
    del payload["msdyn_invoicestatus"]
    row = await get(sim, await create(sim, payload))
    assert (row["msdyn_invoicestatus"], row["msdyn_transactionclassification"]) == (NOT_READY, 192350003)


async def test_milestone_bound_to_another_contract_than_its_line_is_refused(sim, line):
    """Project Operations: a milestone's contract is the contract of its contract line."""
    other = fixed_price_line(sim.conn, 3)
    payload = {**milestone_payload(line), "msdyn_contract@odata.bind": f"/salesorders({other['contract_id']})"}
    error_of(await sim.dv("POST", MILESTONES, json=payload), 400)


async def test_every_dataverse_response_carries_a_dop_hint(sim, line):
    """'Service protection API limits': responses carry x-ms-dop-hint, the recommended degree of parallelism (a positive integer)."""
    for r in (
        await sim.dv("GET", "WhoAmI"),
        await sim.dv("POST", MILESTONES, json=milestone_payload(line)),
        await sim.dv("GET", f"{MILESTONES}(not-a-guid)"),
    ):
        assert int(r.headers["x-ms-dop-hint"]) >= 1


# --- WhoAmI and $metadata -----------------------------------------------------------------------


async def test_whoami_answers_the_seeded_organization_and_the_callers_user(sim):
    """'WhoAmI function': GET WhoAmI returns BusinessUnitId, UserId and OrganizationId."""
    writer = (await sim.dv("GET", "WhoAmI")).json()
    reader = (await sim.dv("GET", "WhoAmI()", who=READER)).json()
    assert writer["OrganizationId"] == reader["OrganizationId"] == organization_id(1)
    assert writer["UserId"] != reader["UserId"]
    assert uuid.UUID(writer["BusinessUnitId"])
    assert writer["@odata.context"].endswith("$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse")


def _metadata(text: str) -> tuple[set[str], set[str]]:
    ns = {"edm": "http://docs.oasis-open.org/odata/ns/edm"}
    root = ET.fromstring(text)
    sets = {e.get("Name") for e in root.iterfind(".//edm:EntityContainer/edm:EntitySet", ns)}
    actions = {e.get("Name") for e in root.iterfind(".//edm:Action", ns)}
    return sets, actions


async def test_metadata_lists_every_entity_set_and_the_actions(sim):
    """'Web API service documents' ($metadata): the CSDL lists the entity sets, the bound bulk actions and the invoice actions."""
    r = await sim.dv("GET", "$metadata")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    sets, actions = _metadata(r.text)
    assert sets == set(ENTITY_SETS)
    assert {"CreateMultiple", "UpsertMultiple", "msdyn_NewInvoiceContract", "msdyn_PostInvoice"} <= actions


async def test_metadata_reflects_renamed_actions_and_bulk_settings(sim):
    """DESIGN.md: the invoice action names are environment settings checked against $metadata; bulk actions appear only where configured."""
    r = await sim.admin(
        "PUT",
        "settings",
        json={
            "invoice_create_action": "contoso_CreateInvoices",
            "invoice_confirm_action": "contoso_ConfirmInvoice",
            "bulk_action_sets": [],
        },
    )
    assert r.status_code == 200
    _, actions = _metadata((await sim.dv("GET", "$metadata")).text)
    assert {"contoso_CreateInvoices", "contoso_ConfirmInvoice"} <= actions
    assert not actions & {"msdyn_NewInvoiceContract", "msdyn_PostInvoice", "CreateMultiple", "UpsertMultiple"}


# --- authentication and authorisation ---------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer nonsense", "Basic Y3V0b3Zlcjpw", "Bearer sim.e30.AAAA"])
async def test_no_or_bad_token_is_401_with_www_authenticate(sim, authorization):
    """'Authenticate to Dataverse with the Web API': a request without a valid bearer token answers 401 with a WWW-Authenticate challenge."""
    headers = {"Authorization": authorization} if authorization else {}
    r = await sim.client.get(f"{DV}WhoAmI", headers=headers)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer ")
    assert "authorization_uri=" in r.headers["WWW-Authenticate"]
    assert (await sim.log())[-1]["status"] == 401


async def test_tampered_token_is_401(sim):
    """Microsoft identity platform: a token whose signature does not verify is not accepted."""
    token = await sim.token()
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    r = await sim.client.get(f"{DV}WhoAmI", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


@pytest.mark.parametrize(
    "method, path_kind, payload",
    [
        ("POST", "set", True),
        ("PATCH", "row", True),
        ("DELETE", "row", False),
        ("POST", "bulk", False),
        ("POST", "action", False),
    ],
)
async def test_read_only_identity_gets_403_on_every_write(sim, line, method, path_kind, payload):
    """'Security roles and privileges': a user without the write privilege gets 403, code 0x80040220; nothing is written."""
    key = await create(sim, milestone_payload(line, name="untouched"))
    path = {
        "set": MILESTONES,
        "row": f"{MILESTONES}({key})",
        "bulk": f"{MILESTONES}/Microsoft.Dynamics.CRM.CreateMultiple",
        "action": f"salesorders({line['contract_id']})/Microsoft.Dynamics.CRM.msdyn_NewInvoiceContract",
    }[path_kind]
    kw = {
        "json": {"msdyn_name": "changed"} if payload else ({"Targets": [target(line)]} if path_kind == "bulk" else {})
    }
    before = await count(sim, MILESTONES)
    r = await sim.dv(method, path, who=READER, **kw)
    assert "prvWrite" in error_of(r, 403, PRIVILEGE)
    assert await count(sim, MILESTONES) == before
    assert (await get(sim, key))["msdyn_name"] == "untouched"
    assert await count(sim, "invoices") == 0


async def test_read_only_identity_can_read(sim, line):
    """'Security roles and privileges': the read-only identity can read."""
    key = await create(sim, milestone_payload(line))
    assert (await sim.dv("GET", f"{MILESTONES}({key})", who=READER)).status_code == 200
    assert (await sim.dv("GET", f"{MILESTONES}?$top=1", who=READER)).status_code == 200
    assert (await sim.dv("GET", "$metadata", who=READER)).status_code == 200


def _form(client_id=WRITER[0], secret=WRITER[1], scope="http://sim.test/.default", grant="client_credentials") -> dict:
    form = {"grant_type": grant, "client_id": client_id, "client_secret": secret, "scope": scope}
    return {k: v for k, v in form.items() if v is not None}


async def test_token_endpoint_issues_a_bearer_token(sim):
    """Identity platform 'client credentials flow': a successful request answers token_type Bearer, expires_in and access_token."""
    r = await sim.client.post("/_sim/token", data=_form())
    assert r.status_code == 200
    data = r.json()
    assert data["token_type"] == "Bearer" and data["expires_in"] > 0 and data["access_token"]
    assert (
        await sim.client.get(f"{DV}WhoAmI", headers={"Authorization": f"Bearer {data['access_token']}"})
    ).status_code == 200


@pytest.mark.parametrize(
    "form, status, error, aadsts",
    [
        (_form(secret="wrong"), 401, "invalid_client", "AADSTS7000215"),
        (_form(client_id="no-such-app"), 400, "unauthorized_client", "AADSTS700016"),
        (_form(scope=None), 400, "invalid_request", "AADSTS900144"),
        (_form(grant="password"), 400, "unsupported_grant_type", "AADSTS70003"),
    ],
)
async def test_token_endpoint_errors(sim, form, status, error, aadsts):
    """Identity platform error codes: wrong secret 401 invalid_client AADSTS7000215; unknown client 400 unauthorized_client
    AADSTS700016; missing scope 400 invalid_request AADSTS900144; unsupported grant 400 AADSTS70003."""
    r = await sim.client.post("/_sim/token", data=form)
    assert r.status_code == status
    data = r.json()
    assert data["error"] == error
    assert data["error_description"].startswith(aadsts + ":")
    assert data["error_codes"] == [int(aadsts[6:])]
    assert "access_token" not in data


# --- over a real socket --------------------------------------------------------------------------


@pytest.mark.socket
async def test_socket_create_retrieve_and_errors(socket_sim):
    """'Create a table row' / 'Retrieve a table row' over a real HTTP connection (uvicorn)."""
    line = await line_by_method(socket_sim, 192350001)
    r = await socket_sim.dv(
        "POST", MILESTONES, content=milestone_json(line, "1234567.89"), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 204
    url = r.headers["OData-EntityId"]
    assert url.startswith(str(socket_sim.client.base_url).rstrip("/") + DV)
    got = await socket_sim.client.get(url, headers=await socket_sim.auth())
    assert body(got)["msdyn_amount"] == Decimal("1234567.89")
    error_of(await socket_sim.dv("GET", f"{MILESTONES}({uuid.uuid4()})"), 404, NOT_FOUND)
    assert (await socket_sim.client.get(f"{DV}WhoAmI")).status_code == 401


@pytest.mark.socket
async def test_socket_page_walk_returns_every_row_exactly_once(socket_sim):
    """'Page results' over a real HTTP connection: the absolute @odata.nextLink URLs work and every row comes back once."""
    line = await line_by_method(socket_sim, 192350001)
    r = await bulk(socket_sim, "CreateMultiple", [target(line, f"m{i:03d}", i % 5) for i in range(120)])
    created = set(r.json()["Ids"])
    pages = await walk(socket_sim, f"{DV}{MILESTONES}?$select=msdyn_amount&$orderby=msdyn_amount", 11)
    rows = [row for page in pages for row in page["value"]]
    assert len(pages) == 11
    assert len(rows) == 120 and {row[MILESTONE_KEY] for row in rows} == created
    assert [row["msdyn_amount"] for row in rows] == sorted(row["msdyn_amount"] for row in rows)
