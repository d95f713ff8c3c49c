"""What an environment serves, read from its ``$metadata`` document (CSDL XML).

Source: OData 4.0 Part 3, "Common Schema Definition Language" (CSDL), §3 ``edmx:Edmx`` /
``edmx:DataServices``, §5 ``Schema`` (``Namespace``, ``Alias``), §6 ``EntityType`` (``Key``,
``Property``, ``NavigationProperty``, ``BaseType``), §12 ``Action`` / ``Function``
(``IsBound``: the first ``Parameter`` is the binding parameter, ``Collection(T)`` when bound
to a set), §13 ``EntityContainer`` (``EntitySet``, ``ActionImport``, ``FunctionImport``).

Why: the tool asks before it acts. Preflight checks whether an entity set, a field or an
action exists in this environment (the invoice action names vary by version); the bulk engine
checks whether a set supports ``CreateMultiple`` / ``UpsertMultiple`` (bound to a collection
of the set's type) and writes with ``$batch`` when it does not.

Rules:
- Qualified names are kept as the service writes them; a name written with the schema's
  alias (``mscrm.account``) is read as its namespace's (``Microsoft.Dynamics.CRM.account``),
  as real Dataverse ``$metadata`` does for base types and action parameters.
- A set's fields and bound actions include those of its base types (Dataverse entity types
  derive from ``crmbaseentity``); the base-type chain is followed once, so a cycle in a
  malformed document cannot loop.
- The parser reads; it never fetches. A document that is not XML raises
  :class:`xml.etree.ElementTree.ParseError` (re-exported here as :class:`ParseError`) for the
  client to report as an environment problem.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.etree.ElementTree import ParseError

__all__ = ["DATAVERSE_NAMESPACE", "ActionInfo", "EntityTypeInfo", "Metadata", "ParseError"]

#: Dataverse's schema namespace: entity types and bound actions are qualified with it.
DATAVERSE_NAMESPACE = "Microsoft.Dynamics.CRM"

_EDMX = "{http://docs.oasis-open.org/odata/ns/edmx}"
_EDM = "{http://docs.oasis-open.org/odata/ns/edm}"


@dataclass
class EntityTypeInfo:
    name: str  # qualified
    base_type: str | None
    key: tuple[str, ...]
    properties: dict[str, str]  # name -> Edm type
    navigation: set[str]


@dataclass
class ActionInfo:
    name: str
    bound_to: str | None  # qualified entity type the action is bound to (None: unbound)
    collection: bool  # bound to a collection (e.g. CreateMultiple) rather than one entity
    returns: str | None


class Metadata:
    """What `$metadata` says the environment serves: entity sets, fields, actions, functions.

    `namespace` is the last schema's namespace (Dataverse serves one)."""

    def __init__(
        self,
        namespace: str,
        entity_sets: dict[str, str],
        types: dict[str, EntityTypeInfo],
        actions: list[ActionInfo],
        functions: set[str],
    ):
        self.namespace = namespace
        self.entity_sets = entity_sets  # set name -> qualified entity type
        self.types = types
        self.actions = actions
        self.functions = functions

    @classmethod
    def parse(cls, xml: bytes | str) -> Metadata:
        root = ET.fromstring(xml)
        entity_sets: dict[str, str] = {}
        types: dict[str, EntityTypeInfo] = {}
        actions: list[ActionInfo] = []
        functions: set[str] = set()
        namespace = DATAVERSE_NAMESPACE
        for schema in root.iter(f"{_EDM}Schema"):
            ns = schema.get("Namespace", "")
            alias = schema.get("Alias")
            namespace = ns or namespace

            def qualify(name: str | None, ns=ns, alias=alias) -> str | None:
                if name is None:
                    return None
                if alias and name.startswith(alias + "."):
                    return ns + name[len(alias) :]
                return name

            for et in schema.findall(f"{_EDM}EntityType"):
                qname = f"{ns}.{et.get('Name')}"
                key = tuple(p.get("Name") for p in et.findall(f"{_EDM}Key/{_EDM}PropertyRef"))
                props = {p.get("Name"): p.get("Type", "") for p in et.findall(f"{_EDM}Property")}
                navs = {p.get("Name") for p in et.findall(f"{_EDM}NavigationProperty")}
                types[qname] = EntityTypeInfo(qname, qualify(et.get("BaseType")), key, props, navs)
            for act in schema.findall(f"{_EDM}Action"):
                params = act.findall(f"{_EDM}Parameter")
                bound_to, collection = None, False
                if act.get("IsBound") == "true" and params:
                    ptype = params[0].get("Type", "")
                    if ptype.startswith("Collection(") and ptype.endswith(")"):
                        ptype, collection = ptype[len("Collection(") : -1], True
                    bound_to = qualify(ptype)
                ret = act.find(f"{_EDM}ReturnType")
                actions.append(
                    ActionInfo(
                        act.get("Name"), bound_to, collection, qualify(ret.get("Type")) if ret is not None else None
                    )
                )
            for fn in schema.findall(f"{_EDM}Function"):
                functions.add(fn.get("Name"))
            for container in schema.findall(f"{_EDM}EntityContainer"):
                for es in container.findall(f"{_EDM}EntitySet"):
                    entity_sets[es.get("Name")] = qualify(es.get("EntityType"))
                for fi in container.findall(f"{_EDM}FunctionImport"):
                    functions.add(fi.get("Name"))
                for ai in container.findall(f"{_EDM}ActionImport"):
                    actions.append(ActionInfo(ai.get("Name"), None, False, None))
        return cls(namespace, entity_sets, types, actions, functions)

    def has_entity_set(self, name: str) -> bool:
        return name in self.entity_sets

    def entity_type(self, entity_set: str) -> EntityTypeInfo | None:
        qname = self.entity_sets.get(entity_set)
        return self.types.get(qname) if qname else None

    def fields(self, entity_set: str) -> set[str]:
        """Property and navigation-property names of the set's entity type (base types included)."""
        out: set[str] = set()
        info = self.entity_type(entity_set)
        seen: set[str] = set()
        while info is not None and info.name not in seen:
            seen.add(info.name)
            out |= set(info.properties) | info.navigation
            info = self.types.get(info.base_type) if info.base_type else None
        return out

    def has_field(self, entity_set: str, field_name: str) -> bool:
        return field_name in self.fields(entity_set)

    def has_action(self, name: str) -> bool:
        return any(a.name == name for a in self.actions)

    def has_function(self, name: str) -> bool:
        return name in self.functions

    def bound_actions(self, entity_set: str) -> set[str]:
        """Names of actions bound to the set's entity type (one entity or a collection of them)."""
        qname = self.entity_sets.get(entity_set)
        if qname is None:
            return set()
        chain: set[str] = set()
        info = self.types.get(qname)
        while info is not None and info.name not in chain:
            chain.add(info.name)
            info = self.types.get(info.base_type) if info.base_type else None
        chain.add(qname)
        return {a.name for a in self.actions if a.bound_to in chain}

    def supports_bulk(self, entity_set: str, message: str = "UpsertMultiple") -> bool:
        qname = self.entity_sets.get(entity_set)
        return any(a.name == message and a.collection and a.bound_to == qname for a in self.actions)
