"""Contract: nothing is silently ignored; service documents; bulk targets by @odata.id; the
If-Match/If-None-Match pair (issue #8, items 2-4, and issue #7).

Sources (Microsoft Learn, Power Apps Web API): "Page results" ("Don't use $top with Prefer:
odata.maxpagesize. If you include both, $top is ignored."); "Use bulk operation messages" and the
UpsertMultiple Web API reference (each target identified by @odata.id — primary key or an
alternate key — answers 204 No Content; CreateMultiple answers Ids; an error rolls the request
back on standard tables); OData 4.01 service document (JSON format §5: {name, kind, url}).
Refusing unimplemented options, and 400 for If-Match: * with If-None-Match: *, are the
simulator's choices (docs/architecture.md, "The simulator").
"""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import fixed_price_line
from tests.sim.dataverse_helpers import (
    INVALID_ARGUMENT,
    MILESTONE_KEY,
    MILESTONE_TYPE,
    MILESTONES,
    NOT_SUPPORTED,
    URI_ERROR,
    body,
    bulk,
    count,
    error_of,
    target,
)


@pytest.fixture
def line(sim) -> dict:
    return fixed_price_line(sim.conn)


# --- service documents ---------------------------------------------------------------------------


async def test_dataverse_service_document_lists_the_entity_sets(sim):
    r = await sim.dv("GET", "")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["@odata.context"].endswith("/api/data/v9.2/$metadata")
    names = {v["name"] for v in doc["value"]}
    assert {"invoices", MILESTONES, "msdyn_dualwriteentitymaps"} <= names
    assert all(v["kind"] == "EntitySet" and v["url"] == v["name"] for v in doc["value"])


async def test_fno_service_document_lists_the_entity_sets(sim):
    r = await sim.fno("")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["@odata.context"].endswith("/data/$metadata")
    assert {"ProjectContractLineMilestones", "DualWriteProjectConfigurations"} <= {v["name"] for v in doc["value"]}
    assert all(v["kind"] == "EntitySet" for v in doc["value"])


async def test_fno_service_document_without_the_trailing_slash(sim):
    r = await sim.client.get("/data", headers=await sim.auth())
    assert r.status_code == 200 and r.json()["value"]


# --- nothing is silently ignored -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "named", "code"),
    [
        ("sql=SELECT 1", "'sql'", URI_ERROR),
        ("$apply=aggregate(msdyn_amount with sum as total)", "'$apply'", NOT_SUPPORTED),
        ("$expand=msdyn_contract", "'$expand'", NOT_SUPPORTED),
        ("$search=cutover", "'$search'", NOT_SUPPORTED),
        ("$levels=2", "'$levels'", URI_ERROR),
        ("cross-company=true", "'cross-company'", URI_ERROR),
        ("$format=xml", "$format=xml", URI_ERROR),
    ],
)
async def test_dataverse_refuses_options_it_does_not_implement(sim, query, named, code):
    r = await sim.dv("GET", f"{MILESTONES}?{query}")
    assert named in error_of(r, 400, code)


async def test_single_record_reads_and_writes_refuse_unknown_options(sim, line):
    ids = (await bulk(sim, "CreateMultiple", [target(line, "one")])).json()["Ids"]
    error_of(await sim.dv("GET", f"{MILESTONES}({ids[0]})?$expand=msdyn_contract"), 400, NOT_SUPPORTED)
    assert "'$top'" in error_of(await sim.dv("GET", f"{MILESTONES}({ids[0]})?$top=1"), 400, URI_ERROR)
    r = await sim.dv("PATCH", f"{MILESTONES}({ids[0]})?dryrun=true", json={"msdyn_name": "renamed"})
    assert "'dryrun'" in error_of(r, 400, URI_ERROR)
    assert body(await sim.dv("GET", f"{MILESTONES}({ids[0]})"))["msdyn_name"] == "one"  # nothing changed
    assert "'$filter'" in error_of(await sim.dv("GET", "WhoAmI?$filter=x"), 400, URI_ERROR)


async def test_fno_refuses_unknown_options_but_keeps_its_own(sim):
    assert (await sim.fno("CustTransactions?cross-company=true&$top=1")).status_code == 200
    r = await sim.fno("CustTransactions?sql=drop")
    assert r.status_code == 400 and "'sql'" in r.json()["error"]["message"]
    r = await sim.fno("CustTransactions?$apply=groupby((AccountNum))")
    assert r.status_code == 400 and "'$apply'" in r.json()["error"]["message"]


async def test_top_is_ignored_together_with_maxpagesize(sim, line):
    await bulk(sim, "CreateMultiple", [target(line, f"m{i}") for i in range(12)])
    total = await count(sim, MILESTONES)
    r = await sim.dv("GET", f"{MILESTONES}?$top=3&$select=msdyn_name", headers={"Prefer": "odata.maxpagesize=5"})
    data = r.json()
    assert len(data["value"]) == 5 and "$top" not in data["@odata.nextLink"]
    seen = len(data["value"])
    while "@odata.nextLink" in data:
        data = (
            await sim.client.get(data["@odata.nextLink"], headers={**await sim.auth(), "Prefer": "odata.maxpagesize=5"})
        ).json()
        seen += len(data["value"])
    assert seen == total
    r = await sim.dv("GET", f"{MILESTONES}?$top=3&$select=msdyn_name")  # without maxpagesize $top applies
    assert len(r.json()["value"]) == 3


# --- If-Match: * with If-None-Match: * (issue #7) ------------------------------------------------


async def test_if_match_and_if_none_match_together_are_refused(sim, line):
    key = str(uuid.uuid4())
    r = await sim.dv(
        "PATCH",
        f"{MILESTONES}({key})",
        json={"msdyn_name": "x", "msdyn_ContractLineId@odata.bind": f"/salesorderdetails({line['line_id']})"},
        headers={"If-Match": "*", "If-None-Match": "*"},
    )
    assert "If-None-Match" in error_of(r, 400, INVALID_ARGUMENT)
    assert (await sim.dv("GET", f"{MILESTONES}({key})")).status_code == 404


# --- UpsertMultiple / CreateMultiple with @odata.id ------------------------------------------------


async def test_upsert_multiple_targets_by_odata_id_answer_204_and_land(sim, line):
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    targets = [
        {**target(line, "by id"), "@odata.id": f"{MILESTONES}({a})"},
        {**target(line, "by both"), "@odata.id": f"{MILESTONES}({b})", MILESTONE_KEY: b},
    ]
    r = await bulk(sim, "UpsertMultiple", targets)
    assert r.status_code == 204 and r.content == b""
    assert body(await sim.dv("GET", f"{MILESTONES}({a})"))["msdyn_name"] == "by id"
    targets[0]["msdyn_name"] = "updated"
    await bulk(sim, "UpsertMultiple", targets[:1])
    assert body(await sim.dv("GET", f"{MILESTONES}({a})"))["msdyn_name"] == "updated"


async def test_odata_id_and_body_key_must_agree(sim, line):
    before = await count(sim, MILESTONES)
    bad = {**target(line, "clash"), "@odata.id": f"{MILESTONES}({uuid.uuid4()})", MILESTONE_KEY: str(uuid.uuid4())}
    r = await bulk(sim, "UpsertMultiple", [target(line, "fine"), bad], expect=None)
    assert "target 1" in error_of(r, 400)
    assert await count(sim, MILESTONES) == before  # the whole request rolled back


async def test_create_multiple_by_odata_id_answers_the_ids(sim, line):
    key = str(uuid.uuid4())
    r = await bulk(sim, "CreateMultiple", [{**target(line, "made"), "@odata.id": f"{MILESTONES}({key})"}])
    assert r.json()["Ids"] == [key]


async def test_upsert_multiple_by_alternate_key(sim):
    """Accounts carry the alternate key accountnumber (the simulator's choice of key)."""
    assert (await sim.admin("PUT", "settings", json={"bulk_action_sets": [MILESTONES, "accounts"]})).status_code == 200
    existing = sim.conn.execute("SELECT accountid, accountnumber FROM dv_accounts LIMIT 1").fetchone()
    targets = [
        {
            "@odata.type": "Microsoft.Dynamics.CRM.account",
            "@odata.id": f"accounts(accountnumber='{existing[1]}')",
            "name": "Renamed",
        },
        {
            "@odata.type": "Microsoft.Dynamics.CRM.account",
            "@odata.id": "accounts(accountnumber='ZZ-NEW')",
            "name": "New one",
        },
    ]
    r = await bulk(sim, "UpsertMultiple", targets, entity_set="accounts")
    assert r.status_code == 204
    assert body(await sim.dv("GET", f"accounts({existing[0]})"))["name"] == "Renamed"
    created = body(await sim.dv("GET", "accounts(accountnumber='ZZ-NEW')"))
    assert created["name"] == "New one" and created["accountnumber"] == "ZZ-NEW"


async def test_odata_id_of_another_set_is_refused(sim, line):
    bad = {**target(line, "x"), "@odata.id": f"accounts({uuid.uuid4()})", "@odata.type": MILESTONE_TYPE}
    r = await bulk(sim, "UpsertMultiple", [bad], expect=None)
    assert "@odata.id" in error_of(r, 400)
