"""The Finance and Operations OData subset: read-only entity reads with server paging.

F&O pages at 10,000 rows (or less with `Prefer: odata.maxpagesize`), accepts `$top` and
`$skip`, and returns only the caller's default company unless `cross-company=true`.
Clients may not write here: on the night, F&O changes only through dual-write.

Also (issue #8): the service document at the root; single records by their full key
(``Set(dataAreaId='usmf',Key='…')``; Microsoft: "all key fields must be supplied"), a record of
another company only with ``cross-company=true`` (our reading), 404 in F&O's error shape when
missing; and the metadata service ``/Metadata/DataEntities`` and ``/Metadata/PublicEntities``
(:meth:`FnoService.handle_metadata`; the shapes follow public clients such as d365fo-client —
not confirmed by Microsoft documentation). ``DualWriteProjectConfigurations`` answers 403 to
an identity listed in ``map_state_hidden_from``.
"""

from __future__ import annotations

import json
import sqlite3
from urllib.parse import unquote

from . import auth, dualwrite, errors, jobs
from .auth import Identity
from .dataverse_service import _key_pairs, service_document
from .errors import SimError
from .messages import SimRequest, SimResponse, json_response
from .metadata import fno_metadata
from .query import SINGLE_OPTIONS, check_options, parse_options, read_page, row_json_sql
from .reference import DEFAULT_COMPANY as _DEFAULT_LEGAL_ENTITY
from .schema import EDM_TYPES, FNO, FNO_SETS, EntitySet, Kind
from .store import get_setting

DEFAULT_COMPANY = _DEFAULT_LEGAL_ENTITY.lower()  # a dataAreaId: "usmf"


class FnoService:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def handle(self, req: SimRequest, identity: Identity | None = None) -> SimResponse:
        jobs.run_due(self.conn)
        try:
            return self._route(req, identity)
        except SimError as exc:
            return _refused(exc)

    def handle_metadata(self, req: SimRequest, identity: Identity | None = None) -> SimResponse:
        """The metadata service at ``/Metadata/…`` (``req.path`` below it): ``DataEntities`` and
        ``PublicEntities`` for the served entities, as collections and by name."""
        try:
            return json_response(200, metadata_api(req.path.strip("/"), req.params, req.service_root))
        except SimError as exc:
            return _refused(exc)

    def _identity(self, req: SimRequest, identity: Identity | None) -> Identity | None:
        return identity if identity is not None else auth.verify_token(self.conn, req.headers.get("authorization"))

    def _route(self, req: SimRequest, identity: Identity | None) -> SimResponse:
        path = unquote(req.path.strip("/"))
        if path == "":
            check_options(req.params, {"$format"}, "the service document")
            return json_response(200, service_document(req.service_root, FNO.values()))
        if path == "$metadata":
            check_options(req.params, set(), "$metadata")
            return SimResponse(
                200, fno_metadata().encode(), {"Content-Type": "application/xml", "OData-Version": "4.0"}
            )
        if "/" in path:
            raise SimError(
                404, errors.ODATA_URI_ERROR, f"Resource not found for the segment '{path.split('/', 1)[1]}'."
            )
        name, _, rest = path.partition("(")
        entity = FNO.get(name)
        if entity is not None and req.method.upper() != "GET":
            # Refused for the entity set and for a single record alike (POST, PATCH, PUT, DELETE).
            raise SimError(
                405,
                errors.ODATA_URI_ERROR,
                f"{name} is read-only here: Finance and Operations data changes only through dual-write during the cutover.",
                {"Allow": "GET"},
            )
        if entity is None:
            raise SimError(404, errors.ODATA_URI_ERROR, f"Resource not found for the segment '{name}'.")
        if entity.name in dualwrite.MAP_STATE_SETS:
            who = self._identity(req, identity)
            if dualwrite.hidden_from(self.conn, who.client_id if who else None):
                raise SimError(
                    403,
                    errors.PRIVILEGE_DENIED,
                    f"Access denied to {entity.name}: this account has no security role that grants read access "
                    "(rehearsal: map state hidden from this identity).",
                )
            dualwrite.sync_configurations(self.conn)  # settings (AsyncMode) take effect on the next read
        company = get_setting(self.conn, "fno_default_company", DEFAULT_COMPANY)
        if rest:
            if not rest.endswith(")"):
                raise SimError(400, errors.ODATA_URI_ERROR, f"Bad Request - Error in query syntax: '{path}'.")
            return self._one(req, entity, rest[:-1], company)
        opts = parse_options(entity, req.params, req.max_page_size())
        page = read_page(
            self.conn,
            entity,
            opts,
            base_url=req.service_root,
            set_url=req.service_root + entity.name,
            raw_query=req.query,
            default_company=company,
        )
        return json_response(200, page.body, records=page.rows)

    def _one(self, req: SimRequest, entity: EntitySet, key_text: str, company: str) -> SimResponse:
        """One record by its full key: ``Set(dataAreaId='usmf',Key='…')`` (every key field, as
        F&O requires); a record of another company needs ``cross-company=true``."""
        check_options(req.params, SINGLE_OPTIONS["fno"], f"a single {entity.type_name}")
        pairs = _fno_key(entity, key_text)
        cross = req.params.get("cross-company", "false").lower() == "true"
        select = None
        if req.params.get("$select"):
            select = parse_options(entity, {"$select": req.params["$select"]}, None).select
        key = tuple(pairs[k] for k in entity.key)
        body = None
        if not (entity.company_specific and not cross and str(pairs["dataAreaId"]).lower() != company.lower()):
            where = " AND ".join(f'"{k}" = ? COLLATE NOCASE' if k == "dataAreaId" else f'"{k}" = ?' for k in entity.key)
            row = self.conn.execute(
                f'SELECT {row_json_sql(entity, select or list(entity.fields))} FROM "{entity.table}" WHERE {where}', key
            ).fetchone()
            body = row[0] if row else None
        if body is None:
            shown = ",".join(f"{k}={pairs[k]!r}" for k in entity.key)
            raise SimError(
                404,
                errors.OBJECT_DOES_NOT_EXIST,
                f"No resources were found when selecting for the resource '{entity.name}' with key ({shown})"
                + (
                    ""
                    if cross or not entity.company_specific
                    else f" in company '{company}' (add cross-company=true for another company)"
                )
                + ".",
            )
        ctx = json.dumps(f"{req.service_root}$metadata#{entity.name}/$entity")
        return json_response(200, '{"@odata.context":' + ctx + "," + body[1:], records=1)


def _refused(exc: SimError) -> SimResponse:
    return SimResponse(
        exc.status,
        exc.fno_body(),
        {"Content-Type": "application/json; odata.metadata=minimal", "OData-Version": "4.0", **exc.headers},
    )


def _fno_key(entity: EntitySet, key_text: str) -> dict[str, object]:
    """Parse a key predicate; every key field is required (F&O: "all key fields must be supplied")."""
    if "=" not in key_text and len(entity.key) == 1:
        key_text = f"{entity.key[0]}={key_text}"
    pairs = _key_pairs(key_text)
    if set(pairs) != set(entity.key):
        raise SimError(
            400,
            errors.ODATA_URI_ERROR,
            f"The key of {entity.name} is ({', '.join(entity.key)}); every key field must be given, "
            f"this request gives ({', '.join(pairs) or 'none'}).",
        )
    out: dict[str, object] = {}
    for name, text in pairs.items():
        f = entity.by_name[name]
        if f.kind in (Kind.INT, Kind.BIGINT):
            try:
                out[name] = int(text)
            except ValueError:
                raise SimError(
                    400, errors.ODATA_URI_ERROR, f"The key value '{text}' of {name} is not an integer."
                ) from None
        else:
            out[name] = text
    return out


# --- the metadata service (/Metadata/…) -----------------------------------------------------------


def _public_entity(entity: EntitySet) -> dict:
    return {
        "Name": entity.type_name,
        "EntitySetName": entity.name,
        "LabelId": None,
        "IsReadOnly": True,  # on the night F&O changes only through dual-write (see the module docstring)
        "ConfigurationEnabled": True,
        "Properties": [
            {
                "Name": f.name,
                "TypeName": f.enum.qualified if f.kind is Kind.ENUM else EDM_TYPES[f.kind],
                "DataType": "Enum" if f.kind is Kind.ENUM else EDM_TYPES[f.kind].removeprefix("Edm."),
                "IsKey": f.name in entity.key,
                "IsMandatory": f.name in entity.key,
                "ConfigurationEnabled": True,
                "AllowEdit": False,
                "AllowEditOnCreate": False,
                "IsDimension": False,
            }
            for f in entity.fields
        ],
        "NavigationProperties": [],
        "PropertyGroups": [],
        "Actions": [],
    }


def _data_entity(entity: EntitySet) -> dict:
    return {
        "Name": f"{entity.type_name}Entity",
        "PublicEntityName": entity.type_name,
        "PublicCollectionName": entity.name,
        "LabelId": None,
        "DataServiceEnabled": True,
        "DataManagementEnabled": True,
        "EntityCategory": "Transaction",
        "IsReadOnly": True,
    }


def metadata_api(path: str, params: dict[str, str], root: str) -> dict:
    """``DataEntities`` / ``PublicEntities``, as collections (``$select``) or by name (``('Name')``)."""
    name, _, rest = path.partition("(")
    listing = {"DataEntities": _data_entity, "PublicEntities": _public_entity}.get(name)
    if listing is None or "/" in path:
        raise SimError(404, errors.ODATA_URI_ERROR, f"Resource not found for the segment '{path}'.")
    check_options(params, {"$select"}, f"Metadata/{name}")
    rows = [listing(s) for s in FNO_SETS]
    select = [n.strip() for n in params.get("$select", "").split(",") if n.strip()]
    for n in select:
        if rows and n not in rows[0]:
            raise SimError(400, errors.ODATA_URI_ERROR, f"Could not find a property named '{n}' on {name}.")

    def shown(row: dict) -> dict:
        return {k: row[k] for k in select} if select else row

    base = root.rstrip("/").removesuffix("/data").removesuffix("/Metadata")  # either root may be passed
    context = f"{base}/Metadata/$metadata#{name}"
    if rest:
        wanted = rest.rstrip(")").strip().strip("'")
        for row in rows:
            if row["Name"] == wanted:
                return {"@odata.context": context + "/$entity", **shown(row)}
        raise SimError(404, errors.ODATA_URI_ERROR, f"No {name} entry named '{wanted}'.")
    return {"@odata.context": context, "value": [shown(r) for r in rows]}
