"""CSDL `$metadata` documents, generated from the schema so they list exactly what is served."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from .schema import DATAVERSE_NAMESPACE, DATAVERSE_SETS, EDM_TYPES, FNO_ENUMS, FNO_NAMESPACE, FNO_SETS, EntitySet, Kind

#: The unbound "Create invoices" action of Microsoft's 2021 reference (see invoices.py).
UNBOUND_CREATE_ACTION = "msdyn_ProjectServiceCreateInvoices"


def _edm(field) -> str:
    if field.kind is Kind.ENUM:
        return field.enum.qualified
    return EDM_TYPES[field.kind]


def _entity_type(entity: EntitySet, ns: str) -> list[str]:
    out = [f"<EntityType Name={quoteattr(entity.type_name)}>", "<Key>"]
    out += [f"<PropertyRef Name={quoteattr(k)}/>" for k in entity.key]
    out.append("</Key>")
    for f in entity.fields:
        nullable = "" if f.name not in entity.key else ' Nullable="false"'
        extra = ' Scale="Variable"' if f.kind is Kind.MONEY else ""
        out.append(f"<Property Name={quoteattr(f.name)} Type={quoteattr(_edm(f))}{nullable}{extra}/>")
    for f in entity.fields:
        if f.navigation:
            target = next(s for s in DATAVERSE_SETS if s.name == f.target)
            out.append(
                f"<NavigationProperty Name={quoteattr(f.navigation)} Type={quoteattr(f'{ns}.{target.type_name}')}/>"
            )
    out.append("</EntityType>")
    return out


def dataverse_metadata(create_action: str, confirm_action: str, bulk_sets: set[str]) -> str:
    ns = DATAVERSE_NAMESPACE
    body: list[str] = []
    for s in DATAVERSE_SETS:
        body += _entity_type(s, ns)
    body.append(
        '<ComplexType Name="WhoAmIResponse"><Property Name="BusinessUnitId" Type="Edm.Guid" Nullable="false"/>'
        '<Property Name="UserId" Type="Edm.Guid" Nullable="false"/><Property Name="OrganizationId" Type="Edm.Guid" Nullable="false"/></ComplexType>'
    )
    body.append(
        '<Function Name="WhoAmI"><ReturnType Type="mscrm.WhoAmIResponse" Nullable="false"/></Function>'.replace(
            "mscrm", ns
        )
    )
    for s in DATAVERSE_SETS:
        if s.name in bulk_sets:
            for action in ("CreateMultiple", "UpsertMultiple"):
                body.append(
                    f'<Action Name="{action}" IsBound="true"><Parameter Name="entityset" Type="Collection({ns}.{s.type_name})" Nullable="false"/>'
                    f'<Parameter Name="Targets" Type="Collection({ns}.{s.type_name})" Nullable="false"/></Action>'
                )
    body.append(
        f'<Action Name={quoteattr(create_action)} IsBound="true"><Parameter Name="entity" Type="{ns}.salesorder" Nullable="false"/><ReturnType Type="{ns}.invoice"/></Action>'
    )
    body.append(
        f'<Action Name={quoteattr(confirm_action)} IsBound="true"><Parameter Name="entity" Type="{ns}.invoice" Nullable="false"/></Action>'
    )
    # Microsoft's 2021 action reference: unbound, ContractIds (Edm.String, comma-separated), no return value.
    body.append(
        f'<Action Name="{UNBOUND_CREATE_ACTION}"><Parameter Name="ContractIds" Type="Edm.String" Nullable="false"/></Action>'
    )
    container = ['<EntityContainer Name="System">']
    container += [f'<EntitySet Name="{s.name}" EntityType="{ns}.{s.type_name}"/>' for s in DATAVERSE_SETS]
    container.append(f'<FunctionImport Name="WhoAmI" Function="{ns}.WhoAmI"/>')
    container.append(f'<ActionImport Name="{UNBOUND_CREATE_ACTION}" Action="{ns}.{UNBOUND_CREATE_ACTION}"/>')
    container.append("</EntityContainer>")
    return _document(ns, body + container)


def fno_metadata() -> str:
    ns = FNO_NAMESPACE
    body: list[str] = []
    for enum in FNO_ENUMS:
        body.append(f"<EnumType Name={quoteattr(enum.name)}>")
        body += [f'<Member Name={quoteattr(m)} Value="{v}"/>' for m, v in enum.members.items()]
        body.append("</EnumType>")
    for s in FNO_SETS:
        body += _entity_type(s, ns)
    body.append('<EntityContainer Name="Resources">')
    body += [f'<EntitySet Name="{s.name}" EntityType="{ns}.{s.type_name}"/>' for s in FNO_SETS]
    body.append("</EntityContainer>")
    return _document(ns, body)


def _document(ns: str, body: list[str]) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">'
        f'<edmx:DataServices><Schema Namespace="{ns}" Alias="mscrm" xmlns="http://docs.oasis-open.org/odata/ns/edm">'
        + "".join(body)
        + "</Schema></edmx:DataServices></edmx:Edmx>"
    )
