"""The $metadata (CSDL) parser, cutover.csdl: entity sets, fields with base types, actions
bound to an entity or a collection, functions, aliases. What the simulator's $metadata says
is probed through the client in test_dataverse_client.py."""

from __future__ import annotations

import pytest

from cutover.csdl import Metadata, ParseError

HEAD = '<?xml version="1.0"?><edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices>'
TAIL = "</edmx:DataServices></edmx:Edmx>"


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


def test_metadata_sees_bulk_messages_functions_and_imports():
    """CreateMultiple / UpsertMultiple bound to a collection of the set's type make the set
    bulk-capable; the same action bound to one entity does not; function imports and action
    imports are listed."""
    xml = (
        HEAD
        + '<Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" xmlns="http://docs.oasis-open.org/odata/ns/edm">'
        '<EntityType Name="task"><Key><PropertyRef Name="activityid"/></Key><Property Name="activityid" Type="Edm.Guid"/></EntityType>'
        '<EntityType Name="note"><Key><PropertyRef Name="annotationid"/></Key><Property Name="annotationid" Type="Edm.Guid"/></EntityType>'
        '<Action Name="CreateMultiple" IsBound="true"><Parameter Name="entityset" Type="Collection(mscrm.task)"/>'
        '<ReturnType Type="mscrm.CreateMultipleResponse"/></Action>'
        '<Action Name="UpsertMultiple" IsBound="true"><Parameter Name="entity" Type="mscrm.note"/></Action>'
        '<Function Name="WhoAmI"/>'
        '<EntityContainer Name="System"><EntitySet Name="tasks" EntityType="mscrm.task"/>'
        '<EntitySet Name="annotations" EntityType="Microsoft.Dynamics.CRM.note"/>'
        '<FunctionImport Name="RetrieveVersion" Function="mscrm.RetrieveVersion"/><ActionImport Name="Publish" Action="mscrm.Publish"/>'
        "</EntityContainer></Schema>" + TAIL
    )
    md = Metadata.parse(xml)
    assert md.namespace == "Microsoft.Dynamics.CRM"
    assert md.supports_bulk("tasks", "CreateMultiple") and not md.supports_bulk("tasks", "UpsertMultiple")
    assert not md.supports_bulk("annotations", "UpsertMultiple") and md.bound_actions("annotations") == {
        "UpsertMultiple"
    }
    assert md.entity_type("tasks").key == ("activityid",) and md.entity_type("nosuchset") is None
    assert md.has_function("WhoAmI") and md.has_function("RetrieveVersion") and md.has_action("Publish")
    assert [a.returns for a in md.actions if a.name == "CreateMultiple"] == [
        "Microsoft.Dynamics.CRM.CreateMultipleResponse"
    ]


def test_a_base_type_cycle_does_not_loop():
    """A malformed document whose types derive from each other still answers."""
    xml = (
        HEAD + '<Schema Namespace="N" xmlns="http://docs.oasis-open.org/odata/ns/edm">'
        '<EntityType Name="a" BaseType="N.b"><Property Name="x" Type="Edm.String"/></EntityType>'
        '<EntityType Name="b" BaseType="N.a"><Property Name="y" Type="Edm.String"/></EntityType>'
        '<EntityContainer Name="C"><EntitySet Name="as" EntityType="N.a"/></EntityContainer></Schema>' + TAIL
    )
    md = Metadata.parse(xml)
    assert md.fields("as") == {"x", "y"} and md.bound_actions("as") == set()


def test_a_document_that_is_not_xml_raises_parse_error():
    with pytest.raises(ParseError, match="line 1"):
        Metadata.parse("<html>sign in</html")
