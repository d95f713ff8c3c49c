"""Contract: Finance and Operations single-record reads by full key, and the metadata service
(issue #8, item 5).

Sources: Microsoft Learn, "Open Data Protocol (OData)" for finance and operations ("all key
fields must be supplied"; cross-company=true for data of other companies). That a key naming
another company needs cross-company=true is our reading. /Metadata/DataEntities and
/Metadata/PublicEntities: public clients (d365fo-client, d365fo.integrations) — not confirmed
by Microsoft documentation.
"""

from __future__ import annotations

import pytest

from cutover.sim.messages import SimRequest
from cutover.sim.schema import FNO_SETS
from tests.conftest import fixed_price_line, milestone_payload
from tests.sim.test_fno_contract import fno_error


@pytest.fixture
async def fno_milestone(sim) -> dict:
    line = fixed_price_line(sim.conn)
    r = await sim.dv("POST", "msdyn_contractlinescheduleofvalues", json=milestone_payload(line))
    assert r.status_code == 204, r.text
    rows = (await sim.fno("ProjectContractLineMilestones?cross-company=true")).json()["value"]
    return rows[-1]


async def test_a_milestone_reads_by_its_full_key(sim, fno_milestone):
    area, ident = fno_milestone["dataAreaId"], fno_milestone["ContractLineMilestoneIdentifier"]
    cross = "" if area == "usmf" else "?cross-company=true"
    r = await sim.fno(
        f"ProjectContractLineMilestones(dataAreaId='{area}',ContractLineMilestoneIdentifier='{ident}'){cross}"
    )
    assert r.status_code == 200, r.text
    row = r.json()
    assert row["ContractLineMilestoneIdentifier"] == ident and row["TransStatus"] == fno_milestone["TransStatus"]
    assert row["@odata.context"].endswith("$metadata#ProjectContractLineMilestones/$entity")
    r = await sim.fno(
        f"ProjectContractLineMilestones(dataAreaId='{area}',ContractLineMilestoneIdentifier='{ident}'){cross}"
        + ("&" if cross else "?")
        + "$select=TransStatus"
    )
    assert set(r.json()) == {"@odata.context", "dataAreaId", "ContractLineMilestoneIdentifier", "TransStatus"}


async def test_another_companys_record_needs_cross_company(sim):
    row = sim.conn.execute(
        'SELECT "dataAreaId", "RecId" FROM "fno_CustTransactions" WHERE "dataAreaId" <> \'usmf\' LIMIT 1'
    ).fetchone()
    if row is None:
        pytest.skip("the small world has no other company's AR")
    path = f"CustTransactions(dataAreaId='{row[0]}',RecId={row[1]})"
    assert "cross-company=true" in fno_error(await sim.fno(path), 404)
    r = await sim.fno(path + "?cross-company=true")
    assert r.status_code == 200 and r.json()["RecId"] == row[1]


async def test_a_missing_record_is_404_in_fno_shape(sim):
    r = await sim.fno("ProjectContractLineMilestones(dataAreaId='usmf',ContractLineMilestoneIdentifier='CLM-9999999')")
    assert "CLM-9999999" in fno_error(r, 404)


async def test_every_key_field_must_be_given(sim):
    r = await sim.fno("ProjectContractLineMilestones(ContractLineMilestoneIdentifier='CLM-0000001')")
    assert "every key field" in fno_error(r, 400)
    r = await sim.fno("CustTransactions(dataAreaId='usmf',RecId=abc)")
    assert "not an integer" in fno_error(r, 400)


async def test_single_key_entities_read_by_bare_key(sim):
    key = sim.conn.execute('SELECT "SourceKey" FROM "fno_GeneralJournalEntryBiEntities" LIMIT 1').fetchone()[0]
    r = await sim.fno(f"GeneralJournalEntryBiEntities({key})")
    assert r.status_code == 200 and r.json()["SourceKey"] == key


def _metadata(sim, path: str, query: list | None = None):
    req = SimRequest("GET", path, query or [], {}, b"", "http://sim.test/data/")
    return sim.sim.fno.handle_metadata(req)


async def test_metadata_public_entities_list_the_served_entities(sim):
    import json

    r = _metadata(sim, "PublicEntities")
    assert r.status == 200
    rows = json.loads(r.body)["value"]
    assert {row["EntitySetName"] for row in rows} == {s.name for s in FNO_SETS}
    ms = next(row for row in rows if row["EntitySetName"] == "ProjectContractLineMilestones")
    keys = [p["Name"] for p in ms["Properties"] if p["IsKey"]]
    assert keys == ["dataAreaId", "ContractLineMilestoneIdentifier"]
    status = next(p for p in ms["Properties"] if p["Name"] == "TransStatus")
    assert status["TypeName"] == "Microsoft.Dynamics.DataEntities.ProjTransStatus"
    one = json.loads(_metadata(sim, "PublicEntities('DualWriteProjectConfiguration')").body)
    assert "AsyncMode" in {p["Name"] for p in one["Properties"]}


async def test_metadata_data_entities_name_public_collections(sim):
    import json

    r = _metadata(sim, "DataEntities", [("$select", "PublicCollectionName")])
    assert {row["PublicCollectionName"] for row in json.loads(r.body)["value"]} == {s.name for s in FNO_SETS}
    assert _metadata(sim, "DataEntities", [("$filter", "x")]).status == 400
    assert _metadata(sim, "Nothing").status == 404


async def test_metadata_service_over_http(sim):
    r = await sim.client.get("/Metadata/PublicEntities", headers=await sim.auth())
    assert r.status_code == 200 and r.json()["value"]
