"""Contract: dual-write configuration as F&O exposes it, map versions readable in Dataverse, and
the rehearsal switches (issue #8, items 7 and 8).

Sources: FO-docs "Troubleshoot live synchronization issues" ("There will be 2 records for every
dual write mapping"); F&O $metadata of DualWriteProjectConfigurations (ProjectName, Status
DualWriteProjectStatus, AsyncMode DualWriteAsyncMode 0 RequiredSync, 1 RequiredAsync, 2
PreferredSync, 3 None; enums served as member names); Project Operations "asynchronous invoice
integration" (preview, invoices and actuals). Map tables msdyn_dualwriteentitymap /
msdyn_dualwriteruntimeconfig: public code that reads them (Microsoft's unsupported
Dual-write-automations) — not a documented contract. The Status <-> map state correspondence and
"stopped only when every row reads Disabled" are our assumptions.
"""

from __future__ import annotations

import json

from tests.sim.dataverse_helpers import PRIVILEGE, URI_ERROR, error_of

MILESTONES, ACTUALS, INVOICES = "msdyn_contractlinescheduleofvalues", "msdyn_actuals", "invoices"
TRANSSTATUS = {
    "fno_field": "TRANSSTATUS",
    "dataverse_field": "msdyn_invoicestatus",
    "direction": "dataverse_to_fno",
    "transform": {"type": "ValueMap", "values": {"4": "192350001"}},
}


async def configurations(sim, who=None) -> list[dict]:
    r = await sim.fno("DualWriteProjectConfigurations", **({"who": who} if who else {}))
    assert r.status_code == 200, r.text
    return r.json()["value"]


def stopped(rows: list[dict], table: str) -> bool:
    """The rule of docs/architecture.md: a map reads as stopped only when every row reads Disabled."""
    mine = [r for r in rows if r["ExternalEntityName"] == table]
    return bool(mine) and all(r["Status"] == "Disabled" for r in mine)


async def test_two_rows_per_map_each_with_its_own_project_name(sim):
    rows = await configurations(sim)
    assert len(rows) == 6 and len({r["ProjectName"] for r in rows}) == 6
    for table in (MILESTONES, ACTUALS, INVOICES):
        assert sum(r["ExternalEntityName"] == table for r in rows) == 2
    assert {r["AsyncMode"] for r in rows} == {"RequiredSync"}
    assert {r["Status"] for r in rows} == {"Enabled"}


async def test_a_stopped_map_reads_disabled_on_both_rows(sim):
    assert not stopped(await configurations(sim), MILESTONES)
    assert (await sim.admin("POST", f"maps/{MILESTONES}/stop")).status_code == 200
    rows = await configurations(sim)
    assert stopped(rows, MILESTONES) and not stopped(rows, INVOICES)


async def test_async_invoicing_setting_puts_invoices_and_actuals_into_required_async(sim):
    assert (await sim.admin("PUT", "settings", json={"dualwrite_async_invoicing": True})).status_code == 200
    modes = {(r["ExternalEntityName"], r["AsyncMode"]) for r in await configurations(sim)}
    assert modes == {(MILESTONES, "RequiredSync"), (ACTUALS, "RequiredAsync"), (INVOICES, "RequiredAsync")}
    r = await sim.fno(
        "DualWriteProjectConfigurations?$filter=AsyncMode eq Microsoft.Dynamics.DataEntities.DualWriteAsyncMode'RequiredAsync'"
    )
    assert len(r.json()["value"]) == 4
    r = await sim.admin("PUT", "settings", json={"dualwrite_async_invoicing": "yes"})
    assert r.status_code == 400 and "dualwrite_async_invoicing" in r.json()["error"]["message"]


async def test_map_versions_are_readable_and_follow_save_as_and_version_switch(sim):
    r = await sim.dv("GET", f"msdyn_dualwriteentitymaps?$filter=msdyn_name eq '{MILESTONES}'")
    assert [row["msdyn_version"] for row in r.json()["value"]] == ["1.0.0.5"]

    async def running() -> str:
        r = await sim.dv("GET", f"msdyn_dualwriteruntimeconfigs?$filter=msdyn_name eq '{MILESTONES}'")
        [row] = r.json()["value"]
        return json.loads(row["msdyn_unsecure"])["EntityMapVersion"]

    assert await running() == "1.0.0.5"
    await sim.admin("POST", f"maps/{MILESTONES}/stop")
    r = await sim.admin(
        "POST",
        f"maps/{MILESTONES}/save-as",
        json={"version": "1.0.0.6", "description": "cutover", "add_mappings": [TRANSSTATUS]},
    )
    assert r.status_code == 200, r.text
    rows = (
        await sim.dv("GET", f"msdyn_dualwriteentitymaps?$filter=msdyn_name eq '{MILESTONES}'&$orderby=msdyn_version")
    ).json()["value"]
    assert [row["msdyn_version"] for row in rows] == ["1.0.0.5", "1.0.0.6"]
    mapping = json.loads(rows[1]["msdyn_mapping"])
    trans = next(m for m in mapping if m["sourceField"] == "TRANSSTATUS")
    assert trans["valueTransforms"] == [{"transformType": "ValueMap", "valueMap": {"4": "192350001"}}]
    assert not any(m["sourceField"] == "TRANSSTATUS" for m in json.loads(rows[0]["msdyn_mapping"]))
    assert await running() == "1.0.0.6"
    assert (await sim.admin("POST", f"maps/{MILESTONES}/version", json={"version": "1.0.0.5"})).status_code == 200
    assert await running() == "1.0.0.5"


async def test_map_tables_are_read_only(sim):
    r = await sim.dv("POST", "msdyn_dualwriteentitymaps", json={"msdyn_name": "x"})
    assert "read-only" in error_of(r, 405, URI_ERROR)
    row = (await sim.dv("GET", "msdyn_dualwriteruntimeconfigs?$top=1")).json()["value"][0]
    r = await sim.dv(
        "PATCH", f"msdyn_dualwriteruntimeconfigs({row['msdyn_dualwriteruntimeconfigid']})", json={"statecode": 1}
    )
    error_of(r, 405, URI_ERROR)
    r = await sim.dv("DELETE", f"msdyn_dualwriteruntimeconfigs({row['msdyn_dualwriteruntimeconfigid']})")
    error_of(r, 405, URI_ERROR)


async def test_map_state_can_be_hidden_from_an_identity(sim):
    reader = ("cutover-verify", "verify-secret")
    r = await sim.admin("PUT", "settings", json={"map_state_hidden_from": ["cutover-verify"]})
    assert r.status_code == 200, r.text
    for path in ("msdyn_dualwriteentitymaps", "msdyn_dualwriteruntimeconfigs"):
        error_of(await sim.dv("GET", path, who=reader), 403, PRIVILEGE)
    r = await sim.fno("DualWriteProjectConfigurations", who=reader)
    assert r.status_code == 403 and r.json()["error"]["innererror"]
    # others still read it, and the hidden identity reads everything else
    assert len(await configurations(sim)) == 6
    assert (await sim.dv("GET", "invoices?$top=1", who=reader)).status_code == 200
    assert (await sim.admin("PUT", "settings", json={"map_state_hidden_from": ["*"]})).status_code == 200
    assert (await sim.fno("DualWriteProjectConfigurations")).status_code == 403
