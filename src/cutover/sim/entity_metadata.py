"""The Dataverse metadata API for every table the simulator serves.

Source: Microsoft Learn, Power Apps "Query table definitions using the Web API" and "Query
schema definitions" (``EntityDefinitions`` as a collection with ``$select``/``$filter``, by key
``EntityDefinitions(LogicalName='…')`` or by ``MetadataId``; ``…/Attributes``; the typed cast
``…/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$expand=OptionSet`` (and
``GlobalOptionSet``); option sets carry ``Options: [{Value, Label: {UserLocalizedLabel:
{Label}}}]``).

Served:
- ``EntityDefinitions`` ``[(key)]`` with ``$select``, ``$filter`` (``eq``/``ne`` joined by
  ``and``/``or``, no parentheses) and ``$expand=Attributes[($select=…)]``;
- ``EntityDefinitions(key)/Attributes[(key)]`` with ``$select``/``$filter``;
- the casts ``…/Attributes[(key)]/Microsoft.Dynamics.CRM.{Picklist,State,Status,…}AttributeMetadata``
  with ``$expand=OptionSet`` / ``GlobalOptionSet``;
- ``GlobalOptionSetDefinitions[(Name='…')]`` for the option sets the simulator marks global.
Any other option is refused with 400 naming it.

The simulator's own choices: ``SchemaName`` equals the logical name (real schema names differ
in case); ``MetadataId`` values are stable uuid5s; which option sets are global
(:data:`GLOBAL_OPTION_SETS`) is our assumption; labels are the English ones of Microsoft's
references (see docs/architecture.md, "Domain facts").
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from . import errors
from .errors import SimError
from .query import check_options
from .schema import DATAVERSE_NAMESPACE, DATAVERSE_SETS, EntitySet, Field, Kind

METADATA_NAMESPACE = uuid.UUID("4c3c6f1e-2d0b-4b7e-8a53-6f7d2a9c1e55")
LANGUAGE = 1033

# (table logical name, column) -> [(value, label)]; statuscode options carry their statecode.
OPTION_LABELS: dict[tuple[str, str], list[tuple[int, str]]] = {
    ("msdyn_contractlinescheduleofvalue", "msdyn_invoicestatus"): [
        (192350000, "Not Ready for invoicing"),
        (192350001, "Ready for invoicing"),
        (192350002, "Customer invoice created"),
        (192350003, "Customer invoice posted"),
    ],
    ("msdyn_contractlinescheduleofvalue", "msdyn_transactionclassification"): [
        (690970000, "Commission"),
        (690970001, "Additional"),
        (690970002, "Tax"),
        (192350000, "Time"),
        (192350001, "Expense"),
        (192350002, "Material"),
        (192350003, "Milestone"),
        (192350004, "Fee"),
    ],
    ("salesorderdetail", "msdyn_billingmethod"): [(192350000, "Time and Material"), (192350001, "Fixed Price")],
    ("salesorder", "msdyn_ordertype"): [
        (192350000, "Item based"),
        (192350001, "Work based"),
        (690970002, "Service-Maintenance Based"),
    ],
    ("invoice", "msdyn_projectinvoicestatus"): [
        (192350000, "Draft"),
        (192350001, "In Review"),
        (192350002, "Confirmed"),
        (192350003, "Invoice Paid"),
    ],
    ("invoice", "statecode"): [(0, "Active"), (1, "Closed"), (2, "Paid"), (3, "Canceled")],
    ("invoice", "statuscode"): [
        (1, "New"),
        (2, "Partially Shipped"),
        (4, "Billed"),
        (5, "Booked (applies to services)"),
        (6, "Installed (applies to services)"),
        (7, "Canceled (deprecated)"),
        (100001, "Complete"),
        (100002, "Partial"),
        (100003, "Canceled"),
    ],
    ("msdyn_dualwriteruntimeconfig", "statecode"): [(0, "Active"), (1, "Inactive")],
}
STATUS_STATES: dict[tuple[str, str], dict[int, int]] = {
    ("invoice", "statuscode"): {1: 0, 2: 0, 4: 0, 5: 0, 6: 0, 7: 1, 100001: 2, 100002: 2, 100003: 3},
}
#: Option sets the simulator treats as global (shared by several tables): an assumption.
GLOBAL_OPTION_SETS = {
    ("msdyn_contractlinescheduleofvalue", "msdyn_transactionclassification"): "msdyn_transactionclassification",
    ("salesorderdetail", "msdyn_billingmethod"): "msdyn_billingmethod",
}

_TYPE_CLASS = {
    "Uniqueidentifier": "UniqueIdentifierAttributeMetadata",
    "String": "StringAttributeMetadata",
    "Memo": "MemoAttributeMetadata",
    "Integer": "IntegerAttributeMetadata",
    "BigInt": "BigIntAttributeMetadata",
    "Money": "MoneyAttributeMetadata",
    "DateTime": "DateTimeAttributeMetadata",
    "Picklist": "PicklistAttributeMetadata",
    "State": "StateAttributeMetadata",
    "Status": "StatusAttributeMetadata",
    "Boolean": "BooleanAttributeMetadata",
    "Lookup": "LookupAttributeMetadata",
    "Customer": "LookupAttributeMetadata",
}
_CAST_TYPES = {f"{DATAVERSE_NAMESPACE}.{c}" for c in _TYPE_CLASS.values()}


def _label(text: str) -> dict:
    one = {"Label": text, "LanguageCode": LANGUAGE}
    return {"LocalizedLabels": [one], "UserLocalizedLabel": one}


def _id(*parts: str) -> str:
    return str(uuid.uuid5(METADATA_NAMESPACE, "/".join(parts)))


def attribute_name(f: Field) -> str:
    """The column's logical name: a lookup stored as ``_x_value`` is attribute ``x``."""
    if f.is_lookup and f.name.startswith("_") and f.name.endswith("_value"):
        return f.name[1:-6]
    return f.name


def attribute_type(entity: EntitySet, f: Field) -> str:
    if f.is_lookup:
        return "Customer" if attribute_name(f) == "customerid" else "Lookup"
    if f.kind is Kind.OPTION:
        return {"statecode": "State", "statuscode": "Status"}.get(f.name, "Picklist")
    return {
        Kind.GUID: "Uniqueidentifier",
        Kind.STRING: "String" if f.max_length else "Memo",
        Kind.INT: "Integer",
        Kind.BIGINT: "BigInt",
        Kind.MONEY: "Money",
        Kind.DATE: "DateTime",
        Kind.DATETIME: "DateTime",
        Kind.BOOL: "Boolean",
    }[f.kind]


def _words(name: str) -> str:
    return name.removeprefix("msdyn_").replace("_", " ").strip().capitalize()


def option_set(entity: EntitySet, f: Field) -> dict:
    key = (entity.type_name, f.name)
    labelled = OPTION_LABELS.get(key) or [(v, str(v)) for v in f.options]
    kind = attribute_type(entity, f)
    options = []
    for value, text in labelled:
        opt: dict = {"Value": value, "Label": _label(text), "Description": _label("")}
        if kind == "Status":
            opt["State"] = STATUS_STATES.get(key, {}).get(value, 0)
        options.append(opt)
    name = GLOBAL_OPTION_SETS.get(key, f"{entity.type_name}_{f.name}")
    return {
        "MetadataId": _id("optionset", name),
        "Name": name,
        "IsGlobal": key in GLOBAL_OPTION_SETS,
        "OptionSetType": kind if kind in ("State", "Status") else "Picklist",
        "DisplayName": _label(_words(f.name)),
        "Options": options,
    }


def attribute(entity: EntitySet, f: Field) -> dict:
    kind = attribute_type(entity, f)
    name = attribute_name(f)
    out: dict = {
        "@odata.type": f"#{DATAVERSE_NAMESPACE}.{_TYPE_CLASS[kind]}",
        "LogicalName": name,
        "SchemaName": name,
        "AttributeType": kind,
        "AttributeTypeName": {"Value": f"{kind}Type"},
        "MetadataId": _id(entity.type_name, name),
        "EntityLogicalName": entity.type_name,
        "IsPrimaryId": name == entity.key[0],
        "IsPrimaryName": name == entity.primary_name,
        "RequiredLevel": {"Value": "ApplicationRequired" if f.required else "None"},
        "DisplayName": _label(f.label or _words(name)),
    }
    if f.max_length:
        out["MaxLength"] = f.max_length
    if f.is_lookup:
        target = next(s for s in DATAVERSE_SETS if s.name == f.target)
        out["Targets"] = [target.type_name]
    if kind == "DateTime":
        out["Format"] = "DateOnly" if f.kind is Kind.DATE else "DateAndTime"
    return out


def entity_definition(entity: EntitySet) -> dict:
    return {
        "MetadataId": _id(entity.type_name),
        "LogicalName": entity.type_name,
        "SchemaName": entity.type_name,
        "EntitySetName": entity.name,
        "LogicalCollectionName": entity.name,
        "PrimaryIdAttribute": entity.key[0],
        "PrimaryNameAttribute": entity.primary_name,
        "DisplayName": _label(entity.display_name or _words(entity.type_name)),
        "IsCustomEntity": False,
        "Keys": [
            {"LogicalName": "_".join(k), "KeyAttributes": list(k), "EntityLogicalName": entity.type_name}
            for k in entity.alternate_keys
        ],
    }


# --- a small $filter for metadata: prop eq|ne literal, joined by and / or -----------------------

_CLAUSE = re.compile(
    r"\s*([A-Za-z]+)\s+(eq|ne)\s+('(?:[^']|'')*'|true|false|null|-?\d+|[\w.]+'[^']*')\s*", re.IGNORECASE
)


@dataclass
class _Cond:
    prop: str
    op: str
    value: object


def _literal(text: str) -> object:
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "null":
        return None
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text.split("'", 1)[1].rstrip("'")  # Microsoft.Dynamics.CRM.AttributeTypeCode'Picklist'


def _parse_filter(text: str) -> list[list[_Cond]]:
    """Disjunction of conjunctions; 400 for anything this little grammar cannot read."""
    groups: list[list[_Cond]] = [[]]
    pos = 0
    while True:
        m = _CLAUSE.match(text, pos)
        if not m:
            raise SimError(
                400,
                errors.ODATA_URI_ERROR,
                f"The simulator's metadata $filter reads 'Property eq|ne literal' joined by and/or; cannot read '{text[pos:]}'.",
            )
        groups[-1].append(_Cond(m.group(1), m.group(2).lower(), _literal(m.group(3))))
        pos = m.end()
        if pos >= len(text):
            return groups
        joiner = re.match(r"(and|or)\s+", text[pos:], re.IGNORECASE)
        if not joiner:
            raise SimError(400, errors.ODATA_URI_ERROR, f"Syntax error in $filter at '{text[pos:]}'.")
        if joiner.group(1).lower() == "or":
            groups.append([])
        pos += joiner.end()


def _matches(row: dict, groups: list[list[_Cond]], what: str) -> bool:
    for group in groups:
        ok = True
        for c in group:
            if c.prop not in row:
                raise errors.unknown_property(c.prop, f"{DATAVERSE_NAMESPACE}.{what}")
            value = row[c.prop]
            if isinstance(value, str) and isinstance(c.value, str):
                equal = value.lower() == c.value.lower()
            else:
                equal = value == c.value
            ok = ok and (equal if c.op == "eq" else not equal)
        if ok:
            return True
    return False


def _select(row: dict, select: str | None, what: str, always: tuple[str, ...] = ("MetadataId",)) -> dict:
    if not select:
        return row
    names = [n.strip() for n in select.split(",") if n.strip()]
    for n in names:
        if n not in row:
            raise errors.unknown_property(n, f"{DATAVERSE_NAMESPACE}.{what}")
    keep = {k: row[k] for k in ("@odata.type", *always) if k in row}
    keep.update({n: row[n] for n in names})
    return keep


def _expand(text: str | None, allowed: set[str]) -> dict[str, str | None]:
    """'OptionSet' / 'Attributes($select=LogicalName)' -> {name: inner $select or None}."""
    out: dict[str, str | None] = {}
    if not text:
        return out
    for item in re.findall(r"[A-Za-z]+(?:\([^)]*\))?", text):
        name, _, inner = item.partition("(")
        if name not in allowed:
            raise SimError(
                400,
                errors.NOT_SUPPORTED,
                f"The query option '$expand={name}' is not supported here; this resource expands {', '.join(sorted(allowed)) or 'nothing'}.",
            )
        inner = inner.rstrip(")")
        sel = None
        if inner:
            k, _, v = inner.partition("=")
            if k.strip() != "$select":
                raise SimError(
                    400, errors.NOT_SUPPORTED, f"The query option '{k.strip()}' inside $expand is not supported."
                )
            sel = v
        out[name] = sel
    return out


def _check(params: dict[str, str], allowed: set[str]) -> None:
    check_options(params, allowed, "the metadata API")


# --- routing --------------------------------------------------------------------------------


def _key(text: str, prop: str) -> tuple[str, str]:
    """ "LogicalName='x'" -> ('LogicalName', 'x'); a bare GUID -> ('MetadataId', guid)."""
    m = re.fullmatch(rf"\s*{prop}\s*=\s*'((?:[^']|'')*)'\s*", text)
    if m:
        return prop, m.group(1).replace("''", "'")
    try:
        return "MetadataId", str(uuid.UUID(text.strip()))
    except ValueError:
        raise SimError(
            400, errors.ODATA_URI_ERROR, f"'{text}' is not a key here: use {prop}='…' or the MetadataId."
        ) from None


def _split(segment: str) -> tuple[str, str | None]:
    if segment.endswith(")") and "(" in segment:
        name, _, rest = segment.partition("(")
        return name, rest[:-1]
    return segment, None


def _find_entity(key_text: str) -> EntitySet:
    prop, value = _key(key_text, "LogicalName")
    for s in DATAVERSE_SETS:
        if (prop == "LogicalName" and s.type_name == value.lower()) or (
            prop == "MetadataId" and _id(s.type_name) == value
        ):
            return s
    raise SimError(404, errors.OBJECT_DOES_NOT_EXIST, f"Could not find an entity with {prop} = '{value}'.")


def _find_attribute(entity: EntitySet, key_text: str) -> Field:
    prop, value = _key(key_text, "LogicalName")
    for f in entity.fields:
        name = attribute_name(f)
        if (prop == "LogicalName" and name == value.lower()) or (
            prop == "MetadataId" and _id(entity.type_name, name) == value
        ):
            return f
    raise SimError(
        404,
        errors.OBJECT_DOES_NOT_EXIST,
        f"Could not find an attribute with {prop} = '{value}' on entity '{entity.type_name}'.",
    )


def _with_option_sets(entity: EntitySet, f: Field, row: dict, expand: dict[str, str | None]) -> dict:
    for name, sel in expand.items():
        if name == "OptionSet":
            row["OptionSet"] = _select(option_set(entity, f), sel, "OptionSetMetadata")
        elif name == "GlobalOptionSet":
            gos = option_set(entity, f) if (entity.type_name, f.name) in GLOBAL_OPTION_SETS else None
            row["GlobalOptionSet"] = _select(gos, sel, "OptionSetMetadata") if gos else None
    return row


def handle(segments: list[str], params: dict[str, str], root: str) -> dict:
    """Answer one GET under ``EntityDefinitions`` or ``GlobalOptionSetDefinitions``."""
    head, head_key = _split(segments[0])
    if head == "GlobalOptionSetDefinitions":
        return _global_option_sets(segments, head_key, params, root)
    if len(segments) == 1:
        expand_allowed = {"Attributes"}
        _check(params, {"$select", "$filter", "$expand"} if head_key is None else {"$select", "$expand"})
        expand = _expand(params.get("$expand"), expand_allowed)

        def render(s: EntitySet) -> dict:
            row = _select(entity_definition(s), params.get("$select"), "EntityMetadata")
            if "Attributes" in expand:
                row["Attributes"] = [
                    _select(attribute(s, f), expand["Attributes"], "AttributeMetadata") for f in s.fields
                ]
            return row

        if head_key is None:
            groups = _parse_filter(params["$filter"]) if params.get("$filter") else None
            rows = [
                render(s)
                for s in DATAVERSE_SETS
                if groups is None or _matches(entity_definition(s), groups, "EntityMetadata")
            ]
            return {"@odata.context": f"{root}$metadata#EntityDefinitions", "value": rows}
        entity = _find_entity(head_key)
        return {"@odata.context": f"{root}$metadata#EntityDefinitions/$entity", **render(entity)}
    entity = _find_entity(head_key) if head_key is not None else None
    if entity is None:
        raise SimError(400, errors.ODATA_URI_ERROR, "Name one entity: EntityDefinitions(LogicalName='…')/Attributes.")
    attr_name, attr_key = _split(segments[1])
    if attr_name != "Attributes":
        raise errors.unknown_segment(segments[1])
    cast = None
    if len(segments) == 3:
        cast = segments[2]
        if cast not in _CAST_TYPES:
            raise errors.unknown_segment(cast)
    elif len(segments) > 3:
        raise errors.unknown_segment(segments[3])
    cast_kinds = {k for k, c in _TYPE_CLASS.items() if f"{DATAVERSE_NAMESPACE}.{c}" == cast} if cast else None
    has_options = bool(cast_kinds and cast_kinds & {"Picklist", "State", "Status"})
    allowed = {"$select"} | ({"$expand"} if has_options else set()) | ({"$filter"} if attr_key is None else set())
    _check(params, allowed)
    expand = _expand(params.get("$expand"), {"OptionSet", "GlobalOptionSet"} if has_options else set())
    ctx = f"{root}$metadata#EntityDefinitions('{_id(entity.type_name)}')/Attributes"
    if cast:
        ctx += f"/{cast}"

    def render(f: Field) -> dict:
        row = _select(attribute(entity, f), params.get("$select"), "AttributeMetadata", ("MetadataId",))
        return _with_option_sets(entity, f, row, expand)

    if attr_key is not None:
        f = _find_attribute(entity, attr_key)
        if cast_kinds is not None and attribute_type(entity, f) not in cast_kinds:
            raise SimError(
                404,
                errors.OBJECT_DOES_NOT_EXIST,
                f"Attribute '{attribute_name(f)}' of '{entity.type_name}' is not a {cast.rsplit('.', 1)[-1]}.",
            )
        return {"@odata.context": ctx + "/$entity", **render(f)}
    fields = [f for f in entity.fields if cast_kinds is None or attribute_type(entity, f) in cast_kinds]
    groups = _parse_filter(params["$filter"]) if params.get("$filter") else None
    rows = [render(f) for f in fields if groups is None or _matches(attribute(entity, f), groups, "AttributeMetadata")]
    return {"@odata.context": ctx, "value": rows}


def _global_option_sets(segments: list[str], key_text: str | None, params: dict[str, str], root: str) -> dict:
    if len(segments) > 1:
        raise errors.unknown_segment(segments[1])
    _check(params, {"$select"})
    by_name = {}
    for (table, column), name in GLOBAL_OPTION_SETS.items():
        entity = next(s for s in DATAVERSE_SETS if s.type_name == table)
        by_name[name] = {
            "@odata.type": f"#{DATAVERSE_NAMESPACE}.OptionSetMetadata",
            **option_set(entity, entity.by_name[column]),
        }
    if key_text is None:
        return {
            "@odata.context": f"{root}$metadata#GlobalOptionSetDefinitions",
            "value": [_select(v, params.get("$select"), "OptionSetMetadataBase") for v in by_name.values()],
        }
    prop, value = _key(key_text, "Name")
    for name, row in by_name.items():
        if (prop == "Name" and name == value) or (prop == "MetadataId" and row["MetadataId"] == value):
            return {
                "@odata.context": f"{root}$metadata#GlobalOptionSetDefinitions/$entity",
                **_select(row, params.get("$select"), "OptionSetMetadataBase"),
            }
    raise SimError(404, errors.OBJECT_DOES_NOT_EXIST, f"Could not find an option set with {prop} = '{value}'.")
