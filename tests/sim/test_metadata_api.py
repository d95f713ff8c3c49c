"""Contract: the Dataverse metadata API for every table the simulator serves (issue #8, item 1).

Source: Microsoft Learn, Power Apps "Query table definitions using the Web API" / "Query schema
definitions": EntityDefinitions as a collection ($select, $filter on LogicalName) and by key
EntityDefinitions(LogicalName='…'); …/Attributes with LogicalName and AttributeType; the cast
…/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$expand=OptionSet (and
GlobalOptionSet); options as {Value, Label: {UserLocalizedLabel: {Label}}}. Option values and
labels: Microsoft's Web API entity references (see docs/architecture.md, "Domain facts").
"""

from __future__ import annotations

import pytest

from cutover.sim.schema import DATAVERSE_SETS
from tests.sim.dataverse_helpers import NOT_FOUND, NOT_SUPPORTED, URI_ERROR, error_of

PICKLIST = "Microsoft.Dynamics.CRM.PicklistAttributeMetadata"
ENTITY_KEYS = {
    "LogicalName",
    "SchemaName",
    "EntitySetName",
    "PrimaryIdAttribute",
    "PrimaryNameAttribute",
    "MetadataId",
    "LogicalCollectionName",
}


async def test_entity_definitions_list_every_served_table_with_the_documented_properties(sim):
    r = await sim.dv("GET", "EntityDefinitions")
    assert r.status_code == 200, r.text
    rows = r.json()["value"]
    assert {row["LogicalName"] for row in rows} == {s.type_name for s in DATAVERSE_SETS}
    for row in rows:
        assert ENTITY_KEYS <= set(row)
    ms = next(row for row in rows if row["LogicalName"] == "msdyn_contractlinescheduleofvalue")
    assert ms["EntitySetName"] == "msdyn_contractlinescheduleofvalues"
    assert ms["PrimaryIdAttribute"] == "msdyn_contractlinescheduleofvalueid"
    assert ms["PrimaryNameAttribute"] == "msdyn_name"


async def test_select_and_filter_on_logical_name(sim):
    r = await sim.dv(
        "GET",
        "EntityDefinitions?$select=LogicalName,EntitySetName&$filter=LogicalName eq 'invoice' or LogicalName eq 'salesorder'",
    )
    assert r.status_code == 200, r.text
    rows = r.json()["value"]
    assert sorted(row["LogicalName"] for row in rows) == ["invoice", "salesorder"]
    assert all(set(row) == {"LogicalName", "EntitySetName", "MetadataId"} for row in rows)


async def test_by_key_and_by_metadata_id(sim):
    r = await sim.dv("GET", "EntityDefinitions(LogicalName='invoice')")
    assert r.status_code == 200, r.text
    inv = r.json()
    assert inv["EntitySetName"] == "invoices" and inv["PrimaryIdAttribute"] == "invoiceid"
    again = await sim.dv("GET", f"EntityDefinitions({inv['MetadataId']})?$select=LogicalName")
    assert again.json()["LogicalName"] == "invoice"
    message = error_of(await sim.dv("GET", "EntityDefinitions(LogicalName='msdyn_nosuch')"), 404, NOT_FOUND)
    assert "msdyn_nosuch" in message


async def test_attributes_carry_logical_name_and_attribute_type(sim):
    r = await sim.dv("GET", "EntityDefinitions(LogicalName='msdyn_contractlinescheduleofvalue')/Attributes")
    assert r.status_code == 200, r.text
    types = {a["LogicalName"]: a["AttributeType"] for a in r.json()["value"]}
    assert types["msdyn_contractlinescheduleofvalueid"] == "Uniqueidentifier"
    assert types["msdyn_name"] == "String"
    assert types["msdyn_amount"] == "Money"
    assert types["msdyn_invoicestatus"] == "Picklist"
    assert types["msdyn_contractlineid"] == "Lookup"  # the lookup column, not _msdyn_contractlineid_value
    r = await sim.dv("GET", "EntityDefinitions(LogicalName='invoice')/Attributes?$select=LogicalName,AttributeType")
    types = {a["LogicalName"]: a["AttributeType"] for a in r.json()["value"]}
    assert types["statecode"] == "State" and types["statuscode"] == "Status"
    assert types["msdyn_projectinvoicestatus"] == "Picklist"


def _options(attr: dict, which: str = "OptionSet") -> dict[int, str]:
    return {o["Value"]: o["Label"]["UserLocalizedLabel"]["Label"] for o in attr[which]["Options"]}


@pytest.mark.parametrize(
    ("table", "column", "expected"),
    [
        (
            "msdyn_contractlinescheduleofvalue",
            "msdyn_invoicestatus",
            {
                192350000: "Not Ready for invoicing",
                192350001: "Ready for invoicing",
                192350002: "Customer invoice created",
                192350003: "Customer invoice posted",
            },
        ),
        ("salesorderdetail", "msdyn_billingmethod", {192350000: "Time and Material", 192350001: "Fixed Price"}),
        (
            "invoice",
            "msdyn_projectinvoicestatus",
            {192350000: "Draft", 192350001: "In Review", 192350002: "Confirmed", 192350003: "Invoice Paid"},
        ),
    ],
)
async def test_picklist_cast_expands_the_option_set_values_and_labels(sim, table, column, expected):
    r = await sim.dv(
        "GET",
        f"EntityDefinitions(LogicalName='{table}')/Attributes(LogicalName='{column}')/{PICKLIST}?$select=LogicalName&$expand=OptionSet",
    )
    assert r.status_code == 200, r.text
    assert _options(r.json()) == expected


async def test_picklist_cast_collection_and_global_option_set(sim):
    r = await sim.dv(
        "GET",
        f"EntityDefinitions(LogicalName='msdyn_contractlinescheduleofvalue')/Attributes/{PICKLIST}"
        "?$select=LogicalName&$expand=OptionSet,GlobalOptionSet",
    )
    assert r.status_code == 200, r.text
    by_name = {a["LogicalName"]: a for a in r.json()["value"]}
    assert set(by_name) == {"msdyn_invoicestatus", "msdyn_transactionclassification"}
    classification = by_name["msdyn_transactionclassification"]
    assert _options(classification, "GlobalOptionSet")[192350003] == "Milestone"
    assert _options(classification)[192350003] == "Milestone"
    assert by_name["msdyn_invoicestatus"]["GlobalOptionSet"] is None  # a local option set (assumption)
    r = await sim.dv("GET", "GlobalOptionSetDefinitions(Name='msdyn_transactionclassification')")
    assert {o["Value"] for o in r.json()["Options"]} >= {192350003, 192350004}


async def test_status_cast_says_which_state_each_status_belongs_to(sim):
    r = await sim.dv(
        "GET",
        "EntityDefinitions(LogicalName='invoice')/Attributes(LogicalName='statuscode')/"
        "Microsoft.Dynamics.CRM.StatusAttributeMetadata?$expand=OptionSet",
    )
    assert r.status_code == 200, r.text
    states = {o["Value"]: o["State"] for o in r.json()["OptionSet"]["Options"]}
    assert states[1] == 0 and states[100001] == 2


async def test_the_cast_refuses_an_attribute_of_another_type_and_unserved_options(sim):
    r = await sim.dv("GET", f"EntityDefinitions(LogicalName='invoice')/Attributes(LogicalName='name')/{PICKLIST}")
    assert "not a PicklistAttributeMetadata" in error_of(r, 404, NOT_FOUND)
    r = await sim.dv("GET", "EntityDefinitions(LogicalName='invoice')/Attributes?$expand=OptionSet")
    assert "$expand" in error_of(r, 400, NOT_SUPPORTED)
    r = await sim.dv("GET", "EntityDefinitions?$top=3")
    assert "'$top'" in error_of(r, 400, URI_ERROR)
    r = await sim.dv("POST", "EntityDefinitions", json={})
    error_of(r, 405, URI_ERROR)
