"""The Dataverse Web API v9.2 subset: reads, writes, upserts, bulk actions, functions.

Each request runs in its own SAVEPOINT, so a failure leaves nothing half-written; a
`$batch` changeset wraps its requests in one more SAVEPOINT and so is atomic.

Also served (issue #8): the service document (``GET /api/data/v9.2/``), the metadata API
(``EntityDefinitions``…, see entity_metadata.py), alternate keys ``set(name='value')``, the
invoice actions of invoices.py (bound create and confirm, the unbound
``msdyn_ProjectServiceCreateInvoices``), background invoice jobs (jobs.py), dual-write's map
tables read-only, and the rehearsal switch ``map_state_hidden_from`` (403 on map state).
A query option the simulator does not implement is refused with 400 naming it (query.py).
``If-Match: *`` together with ``If-None-Match: *`` is refused with 400 — the simulator's choice.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from urllib.parse import unquote, urlsplit

from . import dualwrite, entity_metadata, errors, invoices, jobs
from .auth import Identity
from .batch import (
    MAX_BATCH_REQUESTS,
    BatchFormatError,
    BatchRequest,
    BatchResponse,
    ChangeSet,
    count_requests,
    parse_batch,
    render_batch,
)
from .errors import SimError
from .messages import ODATA_HEADERS, SimRequest, SimResponse, json_response, parse_json
from .metadata import UNBOUND_CREATE_ACTION, dataverse_metadata
from .query import SINGLE_OPTIONS, check_options, parse_options, read_one, read_page
from .schema import (
    BILLING_FIXED_PRICE,
    DATAVERSE,
    DATAVERSE_NAMESPACE,
    INVOICE_STATUS_NOT_READY,
    INVOICE_STATUS_READY,
    MILESTONES,
    TRANSACTION_CLASSIFICATION_MILESTONE,
    EntitySet,
    Field,
    Kind,
)
from .store import get_setting, money_to_db

MAX_BULK_TARGETS = 1000
# Dataverse Money columns: MinValue / MaxValue default to -922,337,203,685,477 / 922,337,203,685,477.
MONEY_LIMIT = Decimal("922337203685477")
# ConcurrencyVersionMismatch: an If-Match ETag that is not the row's current version (412).
CONCURRENCY_VERSION_MISMATCH = "0x80060882"
DEFAULT_CREATE_ACTION = "msdyn_NewInvoiceContract"
DEFAULT_CONFIRM_ACTION = "msdyn_PostInvoice"
METADATA_ROOTS = ("EntityDefinitions", "GlobalOptionSetDefinitions")
_savepoints = iter(range(1, 1 << 62))


class Savepoint:
    """A nested transaction: released on success, rolled back on any exception."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.name = f"sp{next(_savepoints)}"

    def __enter__(self) -> None:
        self.conn.execute(f"SAVEPOINT {self.name}")

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.conn.execute(f"ROLLBACK TO {self.name}")
        self.conn.execute(f"RELEASE {self.name}")


def settings(conn: sqlite3.Connection) -> dict:
    return {
        "create_action": get_setting(conn, "invoice_create_action", DEFAULT_CREATE_ACTION),
        "confirm_action": get_setting(conn, "invoice_confirm_action", DEFAULT_CONFIRM_ACTION),
        "bulk_sets": set(get_setting(conn, "bulk_action_sets", [s.name for s in DATAVERSE.values() if s.bulk_actions])),
    }


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _split_segment(segment: str) -> tuple[str, str | None]:
    """'accounts(00000000-…)' -> ('accounts', '00000000-…'); 'accounts' -> ('accounts', None)."""
    if segment.endswith(")") and "(" in segment:
        name, _, rest = segment.partition("(")
        return name, rest[:-1]
    return segment, None


def _key_pairs(raw: str) -> dict[str, str]:
    """ "name='va''lue',other=5" -> {"name": "va'lue", "other": "5"} (an OData key predicate)."""
    pairs: dict[str, str] = {}
    rest = raw.strip()
    while rest:
        name, eq, rest = rest.partition("=")
        if not eq:
            raise SimError(400, errors.ODATA_URI_ERROR, f"Bad Request - Error in query syntax: key '{raw}'.")
        rest = rest.lstrip()
        if rest.startswith("'"):
            i, value = 1, []
            while i < len(rest):
                if rest[i] == "'":
                    if rest[i + 1 : i + 2] == "'":
                        value.append("'")
                        i += 2
                        continue
                    break
                value.append(rest[i])
                i += 1
            else:
                raise SimError(400, errors.ODATA_URI_ERROR, f"Bad Request - Error in query syntax: key '{raw}'.")
            text, rest = "".join(value), rest[i + 1 :]
        else:
            text, _, rest = rest.partition(",")
            text, rest = text.strip(), "," + rest if rest else ""
        pairs[name.strip()] = text
        rest = rest.lstrip()
        if rest.startswith(","):
            rest = rest[1:]
        elif rest:
            raise SimError(400, errors.ODATA_URI_ERROR, f"Bad Request - Error in query syntax: key '{raw}'.")
    return pairs


def alternate_key(entity: EntitySet, raw: str) -> dict[str, str] | None:
    """The alternate-key values of ``set(name='value')``, or None when ``raw`` names the primary key."""
    text = raw.strip()
    if "=" not in text:
        return None
    pairs = _key_pairs(text)
    if set(pairs) == {entity.key[0]}:
        return None
    for key in entity.alternate_keys:
        if set(pairs) == set(key):
            return pairs
    known = [entity.key[0]] + [",".join(k) for k in entity.alternate_keys]
    raise SimError(
        400,
        errors.ODATA_URI_ERROR,
        f"'{', '.join(pairs)}' is not a key of {entity.type_name}; its keys: {'; '.join(known)}.",
    )


def find_by_alternate_key(conn: sqlite3.Connection, entity: EntitySet, values: dict[str, str]) -> str | None:
    where = " AND ".join(f'"{k}" = ?' for k in values)
    row = conn.execute(
        f'SELECT "{entity.key[0]}" FROM "{entity.table}" WHERE {where}', list(values.values())
    ).fetchone()
    return None if row is None else row[0]


def _parse_key(entity: EntitySet, raw: str) -> str:
    text = raw.strip()
    key_name = entity.key[0]
    if "=" in text:
        name, _, text = text.partition("=")
        if name.strip() != key_name:
            raise SimError(
                400, errors.ODATA_URI_ERROR, f"'{name.strip()}' is not a key of {entity.type_name}; use {key_name}."
            )
    try:
        return str(uuid.UUID(text.strip("'")))
    except ValueError:
        raise SimError(
            400,
            errors.ODATA_URI_ERROR,
            f"Bad Request - Error in query syntax: '{raw}' is not a valid key for {entity.type_name}: a GUID is required.",
        ) from None


def _loads(body: bytes, what: str):
    """The one guarded JSON parse (depth, size, no NaN), in Dataverse's words."""
    return parse_json(body, what)


class DataverseService:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        # Content-ID -> entity URL of the change set being executed, for "$n" in @odata.bind values.
        self._references: dict[str, str] = {}

    # --- dispatch -------------------------------------------------------------------------

    def handle(self, req: SimRequest, identity: Identity) -> SimResponse:
        """Answer one request from a client: long-running jobs that are due run first."""
        jobs.run_due(self.conn)
        return self._handle(req, identity)

    def _handle(self, req: SimRequest, identity: Identity) -> SimResponse:
        try:
            with Savepoint(self.conn):
                return self._route(req, identity)
        except SimError as exc:
            return SimResponse(exc.status, exc.dataverse_body(), {**ODATA_HEADERS, **exc.headers})

    def _route(self, req: SimRequest, identity: Identity) -> SimResponse:
        path = unquote(req.path.strip("/"))
        method = req.method.upper()
        if path == "":
            self._method(method, "GET", "the service document")
            check_options(req.params, {"$format"}, "the service document")
            return json_response(200, service_document(req.service_root, DATAVERSE.values()))
        if path == "$metadata":
            check_options(req.params, set(), "$metadata")
            s = settings(self.conn)
            return SimResponse(
                200,
                dataverse_metadata(s["create_action"], s["confirm_action"], s["bulk_sets"]).encode(),
                {"Content-Type": "application/xml", "OData-Version": "4.0"},
            )
        if path in ("WhoAmI", "WhoAmI()"):
            self._method(method, "GET", path)
            check_options(req.params, set(), "WhoAmI")
            return self._whoami(req, identity)
        if path == "$batch":
            self._method(method, "POST", path)
            check_options(req.params, set(), "$batch")
            return self._batch(req, identity)
        segments = path.split("/")
        set_name, key_text = _split_segment(segments[0])
        if set_name in METADATA_ROOTS:
            self._method(method, "GET", set_name)
            return json_response(200, entity_metadata.handle(segments, req.params, req.service_root))
        if path == UNBOUND_CREATE_ACTION or path == f"{DATAVERSE_NAMESPACE}.{UNBOUND_CREATE_ACTION}":
            self._method(method, "POST", path)
            self._require_write(identity, DATAVERSE["invoices"])
            check_options(req.params, set(), path)
            return self._create_invoices(req)
        entity = DATAVERSE.get(set_name)
        if entity is None:
            raise errors.unknown_segment(set_name)
        if entity.read_only and method != "GET":
            raise SimError(
                405,
                errors.ODATA_URI_ERROR,
                f"{entity.name} is read-only in the simulator: dual-write keeps it; change maps through the dual-write "
                "page (/_sim/maps) instead.",
                {"Allow": "GET"},
            )
        if (
            method == "GET"
            and entity.name in dualwrite.MAP_STATE_SETS
            and dualwrite.hidden_from(self.conn, identity.client_id)
        ):
            raise SimError(
                403,
                errors.PRIVILEGE_DENIED,
                f"Principal user (Id={identity.user_id}, type=8, roleCount=1, privilegeCount=412, accessMode=4), is missing "
                f"prvRead{entity.type_name} privilege on OTC=0 for entity '{entity.type_name}' (rehearsal: map state hidden from this identity).",
            )
        if method != "GET":
            self._require_write(identity, entity)
        if len(segments) > 2:
            raise errors.unknown_segment(segments[2])
        if len(segments) == 2:
            return self._action(req, entity, key_text, segments[1], identity)
        if key_text is None:
            if method == "GET":
                return self._read(req, entity)
            if method == "POST":
                return self._create(req, entity)
            raise self._not_allowed(method, set_name)
        alternate = alternate_key(entity, key_text)
        if alternate is not None:
            key = find_by_alternate_key(self.conn, entity, alternate)
            if key is None:
                if method != "PATCH":
                    raise SimError(
                        404,
                        errors.OBJECT_DOES_NOT_EXIST,
                        f"A record with the specified key values does not exist in {entity.type_name} entity ({key_text}).",
                    )
                return self._upsert(req, entity, None, alternate)
        else:
            key = _parse_key(entity, key_text)
        if method == "GET":
            return self._get(req, entity, key)
        if method == "PATCH":
            return self._upsert(req, entity, key)
        if method == "DELETE":
            return self._delete(req, entity, key)
        raise self._not_allowed(method, segments[0])

    @staticmethod
    def _require_write(identity: Identity, entity: EntitySet) -> None:
        if not identity.can_write:
            raise SimError(
                403,
                errors.PRIVILEGE_DENIED,
                f"Principal user (Id={identity.user_id}, type=8, roleCount=1, privilegeCount=412, accessMode=4), is missing "
                f"prvWrite{entity.type_name} privilege on OTC=0 for entity '{entity.type_name}'. Ask your administrator to assign a role with write access.",
            )

    @staticmethod
    def _not_allowed(method: str, what: str) -> SimError:
        return SimError(405, errors.ODATA_URI_ERROR, f"The HTTP method '{method}' is not allowed on '{what}'.")

    def _method(self, method: str, expected: str, what: str) -> None:
        if method != expected:
            raise self._not_allowed(method, what)

    # --- reads ----------------------------------------------------------------------------

    def _read(self, req: SimRequest, entity: EntitySet) -> SimResponse:
        page_pref = req.max_page_size()
        opts = parse_options(entity, req.params, page_pref)
        page = read_page(
            self.conn,
            entity,
            opts,
            base_url=req.service_root,
            set_url=req.service_root + entity.name,
            raw_query=req.query,
        )
        headers = {}
        if page_pref:
            headers["Preference-Applied"] = f"odata.maxpagesize={opts.page_size}"
        return json_response(200, page.body, records=page.rows, **headers)

    def _get(self, req: SimRequest, entity: EntitySet, key: str) -> SimResponse:
        check_options(req.params, SINGLE_OPTIONS["dataverse"], f"a single {entity.type_name}")
        select = None
        if req.params.get("$select"):
            select = parse_options(entity, {"$select": req.params["$select"]}, None).select
        body = read_one(self.conn, entity, (key,), select)
        if body is None:
            raise errors.not_found_record(entity.type_name, key)
        ctx = json.dumps(f"{req.service_root}$metadata#{entity.name}/$entity")
        return json_response(200, '{"@odata.context":' + ctx + "," + body[1:], records=1)

    def _whoami(self, req: SimRequest, identity: Identity) -> SimResponse:
        return json_response(
            200,
            {
                "@odata.context": f"{req.service_root}$metadata#{DATAVERSE_NAMESPACE}.WhoAmIResponse",
                "BusinessUnitId": get_setting(self.conn, "business_unit_id", str(uuid.UUID(int=0))),
                "UserId": identity.user_id,
                "OrganizationId": get_setting(self.conn, "organization_id", str(uuid.UUID(int=0))),
            },
            records=1,
        )

    # --- writes ---------------------------------------------------------------------------

    def _columns_from_payload(self, entity: EntitySet, payload: object, key: str | None) -> dict[str, object]:
        """Validate a JSON entity payload and turn it into column values."""
        if not isinstance(payload, dict):
            raise errors.bad_payload(
                f"Error identified in Payload provided by the user for Entity :'{entity.type_name}'. A JSON object is required."
            )
        values: dict[str, object] = {}
        for name, value in payload.items():
            if name == "@odata.type":
                if (
                    value != f"{DATAVERSE_NAMESPACE}.{entity.type_name}"
                    and value != f"#{DATAVERSE_NAMESPACE}.{entity.type_name}"
                ):
                    raise errors.bad_payload(
                        f"The @odata.type '{value}' does not match the entity set {entity.name} ({DATAVERSE_NAMESPACE}.{entity.type_name})."
                    )
                continue
            if name.endswith("@odata.bind"):
                nav = name[: -len("@odata.bind")]
                f = entity.lookup_by_navigation(nav)
                if f is None:
                    raise errors.bad_payload(
                        f"An undeclared property '{nav}' which only has property annotations in the payload but no property value was found in the payload. "
                        "In OData, only declared navigation properties and declared named streams can be represented as properties without values."
                    )
                values[f.name] = self._bind(f, value)
                continue
            if name.startswith("@"):
                continue
            f = entity.by_name.get(name)
            if f is None:
                raise SimError(
                    400,
                    errors.ODATA_URI_ERROR,
                    f"The property '{name}' does not exist on type '{entity.qualified_type}'. Make sure to only use property names that are defined by the type.",
                )
            if f.is_lookup:
                raise errors.bad_payload(
                    f"'{name}' is read-only: set the lookup with '{f.navigation}@odata.bind': '/{f.target}(<id>)'."
                )
            values[name] = _convert(entity, f, value)
        if key is not None:
            body_key = values.get(entity.key[0])
            if body_key is not None and body_key != key:
                raise errors.bad_payload(
                    f"The key in the payload ({body_key}) differs from the key in the URL ({key})."
                )
            values[entity.key[0]] = key
        return values

    def _bind(self, f: Field, value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise errors.bad_payload(
                f"The value of '{f.navigation}@odata.bind' must be an entity URL such as '/{f.target}(<id>)'."
            )
        if value.startswith("$"):  # a Content-ID reference to an earlier request of this change set
            if value[1:] not in self._references:
                raise errors.bad_payload(f"Content-ID Reference: '{value}' does not exist in the batch context.")
            value = self._references[value[1:]]
        path = urlsplit(value).path if "://" in value else value
        segment = path.rstrip("/").rsplit("/", 1)[-1]
        target_name, key_text = _split_segment(segment)
        if target_name != f.target or key_text is None:
            raise errors.bad_payload(f"'{f.navigation}@odata.bind' must point into {f.target}, not '{value}'.")
        target = DATAVERSE[f.target]
        key = self._existing_key(target, key_text)
        exists = self.conn.execute(f'SELECT 1 FROM "{target.table}" WHERE "{target.key[0]}" = ?', (key,)).fetchone()
        if not exists:
            raise errors.not_found_record(target.type_name, key)
        return key

    def _existing(self, entity: EntitySet, key: str) -> dict | None:
        cur = self.conn.execute(f'SELECT * FROM "{entity.table}" WHERE "{entity.key[0]}" = ?', (key,))
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cur.description], row))

    def write(self, entity: EntitySet, values: dict[str, object], *, mode: str) -> tuple[str, bool]:
        """Create or update one record. mode: 'create' | 'upsert' | 'update'. Returns (id, created)."""
        keyname = entity.key[0]
        key = values.get(keyname)
        if key is None:
            if mode == "update":
                raise errors.bad_payload("An update needs the record's key.")
            key = str(uuid.uuid4())
            values[keyname] = key
        current = self._existing(entity, key)
        if current is not None and mode == "create":
            raise SimError(
                412,
                errors.DUPLICATE_RECORD,
                f"A record with matching key values already exists ({entity.type_name} {key}).",
            )
        if current is None and mode == "update":
            raise errors.not_found_record(entity.type_name, key)
        if entity is MILESTONES:
            self._milestone_rules(values, current)
        now = _now()
        if current is None:
            for f in entity.fields:
                if f.required and values.get(f.name) is None:
                    raise SimError(
                        400,
                        errors.INVALID_ARGUMENT,
                        f"'{f.name}' is required to create a {entity.type_name}; the payload has no value for it.",
                    )
            cols = list(values) + ["sim_createdon", "sim_modifiedon"]
            self.conn.execute(
                f'INSERT INTO "{entity.table}"({", ".join(f"{chr(34)}{c}{chr(34)}" for c in cols)}) VALUES ({", ".join("?" for _ in cols)})',
                [*values.values(), now, now],
            )
        else:
            for f in entity.fields:
                if f.required and f.name in values and values[f.name] is None:
                    raise SimError(
                        400,
                        errors.INVALID_ARGUMENT,
                        f"'{f.name}' is required on {entity.type_name} and cannot be cleared.",
                    )
            sets = [f'"{c}" = ?' for c in values if c != keyname]
            self.conn.execute(
                f'UPDATE "{entity.table}" SET {", ".join(sets + ["sim_version = sim_version + 1", "sim_modifiedon = ?"])} WHERE "{keyname}" = ?',
                [*(v for c, v in values.items() if c != keyname), now, key],
            )
        if entity is MILESTONES:
            dualwrite.milestone_written(self.conn, key, created=current is None)
        return key, current is None

    def _milestone_rules(self, values: dict, current: dict | None) -> None:
        """Project Operations' own rules for milestones, which the runbook has to work within."""
        status_now = current["msdyn_invoicestatus"] if current else None
        if current is not None and status_now not in (None, INVOICE_STATUS_NOT_READY, INVOICE_STATUS_READY):
            raise SimError(
                400,
                errors.INVALID_ARGUMENT,
                f"Milestone {current['msdyn_contractlinescheduleofvalueid']} is already on a customer invoice (status {status_now}) and cannot be changed.",
            )
        new_status = values.get("msdyn_invoicestatus")
        if new_status is not None and new_status not in (INVOICE_STATUS_NOT_READY, INVOICE_STATUS_READY):
            raise SimError(
                400,
                errors.INVALID_ARGUMENT,
                f"Invoice status {new_status} is set by invoicing only. Create milestones as Ready for invoicing ({INVOICE_STATUS_READY}), then create and confirm a pro-forma invoice.",
            )
        if current is None:
            values.setdefault("msdyn_invoicestatus", INVOICE_STATUS_NOT_READY)
            values.setdefault("msdyn_transactionclassification", TRANSACTION_CLASSIFICATION_MILESTONE)
        line_id = values.get("_msdyn_contractlineid_value") or (current or {}).get("_msdyn_contractlineid_value")
        if line_id is None:
            return
        line = self.conn.execute(
            'SELECT msdyn_billingmethod, _salesorderid_value, _msdyn_project_value, _transactioncurrencyid_value FROM "dv_salesorderdetails" WHERE salesorderdetailid = ?',
            (line_id,),
        ).fetchone()
        if line is None:
            raise errors.not_found_record("salesorderdetail", line_id)
        if line[0] != BILLING_FIXED_PRICE:
            raise SimError(
                400,
                errors.INVALID_ARGUMENT,
                f"Contract line {line_id} is not billed at a fixed price; milestones can only be added to fixed price contract lines.",
            )
        if values.get("_msdyn_contract_value") not in (None, line[1]):
            raise SimError(
                400,
                errors.INVALID_ARGUMENT,
                f"Milestone's contract {values['_msdyn_contract_value']} is not the contract of its contract line ({line[1]}).",
            )
        values.setdefault("_msdyn_contract_value", line[1])
        if line[2] is not None:
            values.setdefault("_msdyn_project_value", line[2])
        if line[3] is not None:
            values.setdefault("_transactioncurrencyid_value", line[3])

    def _entity_url(self, req: SimRequest, entity: EntitySet, key: str) -> str:
        return f"{req.service_root}{entity.name}({key})"

    def _write_response(self, req: SimRequest, entity: EntitySet, key: str, created: bool) -> SimResponse:
        url = self._entity_url(req, entity, key)
        if req.prefer().get("return") == "representation":
            select = (
                parse_options(entity, {"$select": req.params["$select"]}, None).select
                if req.params.get("$select")
                else None
            )
            body = read_one(self.conn, entity, (key,), select)
            ctx = json.dumps(f"{req.service_root}$metadata#{entity.name}/$entity")
            return json_response(
                201 if created else 200,
                '{"@odata.context":' + ctx + "," + body[1:],
                records=1,
                writes=True,
                **{"OData-EntityId": url, "Preference-Applied": "return=representation"},
            )
        return SimResponse(204, b"", {"OData-Version": "4.0", "OData-EntityId": url}, records=1, writes=True)

    def _create(self, req: SimRequest, entity: EntitySet) -> SimResponse:
        check_options(req.params, {"$select"}, f"a {entity.type_name} create")
        values = self._columns_from_payload(entity, _loads(req.body, entity.type_name), None)
        key, _ = self.write(entity, values, mode="create")
        return self._write_response(req, entity, key, True)

    def _upsert(
        self, req: SimRequest, entity: EntitySet, key: str | None, alternate: dict[str, str] | None = None
    ) -> SimResponse:
        """PATCH: update or create. ``key`` None with ``alternate``: no row has those alternate-key
        values yet — a create that sets them (or a 404 under If-Match)."""
        check_options(req.params, {"$select"}, f"a {entity.type_name} update")
        if_match = req.headers.get("if-match", "").strip()
        if_none_match = req.headers.get("if-none-match", "").strip()
        if if_match == "*" and if_none_match == "*":
            raise SimError(
                400,
                errors.INVALID_ARGUMENT,
                "If-Match: * and If-None-Match: * cannot be sent together: one prevents the create, the other the update.",
            )
        values = self._columns_from_payload(entity, _loads(req.body, entity.type_name), key)
        if alternate is not None:
            for name, text in alternate.items():
                given = values.get(name)
                if given is not None and str(given) != text:
                    raise errors.bad_payload(
                        f"The payload's {name} ({given}) differs from the key in the URL ({text})."
                    )
                values[name] = _convert(entity, entity.by_name[name], _key_value(entity.by_name[name], text))
        mode = "upsert"
        if if_match:
            mode = "update"
            if key is None:
                raise errors.not_found_record(entity.type_name, ",".join(f"{k}={v}" for k, v in alternate.items()))
            self._check_version(entity, key, if_match)
        if if_none_match == "*":
            mode = "create"
        key, created = self.write(entity, values, mode=mode)
        return self._write_response(req, entity, key, created)

    def _check_version(self, entity: EntitySet, key: str, if_match: str) -> None:
        """Optimistic concurrency: If-Match with ETags (not '*') must name the row's current version."""
        if if_match == "*":
            return
        row = self.conn.execute(
            f'SELECT sim_version FROM "{entity.table}" WHERE "{entity.key[0]}" = ?', (key,)
        ).fetchone()
        if row is None:
            raise errors.not_found_record(entity.type_name, key)
        if f'W/"{row[0]}"' not in {tag.strip() for tag in if_match.split(",")}:
            raise SimError(
                412,
                CONCURRENCY_VERSION_MISMATCH,
                "The version of the existing record doesn't match the RowVersion property provided.",
            )

    def _delete(self, req: SimRequest, entity: EntitySet, key: str) -> SimResponse:
        check_options(req.params, set(), f"a {entity.type_name} delete")
        current = self._existing(entity, key)
        if current is None:
            raise errors.not_found_record(entity.type_name, key)
        if req.headers.get("if-match", "").strip():
            self._check_version(entity, key, req.headers["if-match"].strip())
        if entity is MILESTONES:
            self._milestone_rules({}, current)
        if entity.name == "invoices":
            invoices.delete_invoice(self.conn, key)
        self.conn.execute(f'DELETE FROM "{entity.table}" WHERE "{entity.key[0]}" = ?', (key,))
        return SimResponse(204, b"", {"OData-Version": "4.0"}, records=1, writes=True)

    # --- actions --------------------------------------------------------------------------

    def _action(
        self, req: SimRequest, entity: EntitySet, key_text: str | None, segment: str, identity: Identity
    ) -> SimResponse:
        prefix = DATAVERSE_NAMESPACE + "."
        if not segment.startswith(prefix):
            raise errors.unknown_segment(segment)
        name = segment[len(prefix) :]
        self._method(req.method.upper(), "POST", segment)
        check_options(req.params, set(), name)
        s = settings(self.conn)
        if key_text is None and name in ("CreateMultiple", "UpsertMultiple"):
            if entity.name not in s["bulk_sets"]:
                raise SimError(
                    400,
                    errors.NOT_SUPPORTED,
                    f"The '{name}' message is not supported for entities of type '{entity.type_name}'. Send the records in a $batch instead.",
                )
            return self._bulk(req, entity, name)
        if key_text is not None and entity.name == "salesorders" and name == s["create_action"]:
            key = self._existing_key(entity, key_text)
            if jobs.delay(self.conn) > 0:
                self._schedule_create(key)
                return SimResponse(204, b"", {"OData-Version": "4.0"}, records=1, writes=True)
            invoice_id = invoices.create_invoice(self.conn, key)
            body = read_one(self.conn, DATAVERSE["invoices"], (invoice_id,))
            ctx = json.dumps(f"{req.service_root}$metadata#invoices/$entity")
            return json_response(200, '{"@odata.context":' + ctx + "," + body[1:], records=1, writes=True)
        if key_text is not None and entity.name == "invoices" and name == s["confirm_action"]:
            key = self._existing_key(entity, key_text)
            if jobs.delay(self.conn) > 0:
                invoices.check_can_confirm(self.conn, key)
                if jobs.pending(self.conn, jobs.CONFIRM, key):
                    raise SimError(
                        400,
                        errors.INVALID_ARGUMENT,
                        f"Invoice {key} is already being confirmed in the background; wait for it to finish.",
                    )
                jobs.schedule(self.conn, jobs.CONFIRM, key)
            else:
                invoices.confirm_invoice(self.conn, key)
            return SimResponse(204, b"", {"OData-Version": "4.0"}, records=1, writes=True)
        raise errors.unknown_segment(segment)

    def _existing_key(self, entity: EntitySet, key_text: str) -> str:
        alternate = alternate_key(entity, key_text)
        if alternate is None:
            return _parse_key(entity, key_text)
        key = find_by_alternate_key(self.conn, entity, alternate)
        if key is None:
            raise errors.not_found_record(entity.type_name, key_text)
        return key

    def _schedule_create(self, contract_id: str) -> None:
        invoices.check_can_create(self.conn, contract_id)
        if jobs.pending(self.conn, jobs.CREATE, contract_id):
            raise SimError(
                400,
                errors.INVALID_ARGUMENT,
                f"An invoice for contract {contract_id} is already being created in the background; wait for it to finish.",
            )
        jobs.schedule(self.conn, jobs.CREATE, contract_id)

    def _create_invoices(self, req: SimRequest) -> SimResponse:
        """Unbound msdyn_ProjectServiceCreateInvoices {"ContractIds": "id1,id2"}: one draft per
        contract, all or nothing; no return value (204)."""
        payload = _loads(req.body, UNBOUND_CREATE_ACTION)
        if not isinstance(payload, dict):
            raise errors.bad_payload(f"{UNBOUND_CREATE_ACTION} needs a JSON object with 'ContractIds'.")
        unknown = set(payload) - {"ContractIds"}
        if unknown:
            raise errors.bad_payload(
                f"{UNBOUND_CREATE_ACTION} has no parameter {', '.join(sorted(unknown))}; it takes ContractIds."
            )
        ids = invoices.parse_contract_ids(payload.get("ContractIds"))
        background = jobs.delay(self.conn) > 0
        for contract_id in ids:
            if background:
                self._schedule_create(contract_id)
            else:
                invoices.create_invoice(self.conn, contract_id)
        return SimResponse(204, b"", {"OData-Version": "4.0"}, records=len(ids), writes=True)

    def _bulk(self, req: SimRequest, entity: EntitySet, name: str) -> SimResponse:
        payload = _loads(req.body, entity.type_name)
        targets = payload.get("Targets") if isinstance(payload, dict) else None
        if not isinstance(targets, list) or not targets:
            raise errors.bad_payload(f"{name} needs a non-empty 'Targets' array of {entity.type_name} records.")
        if len(targets) > MAX_BULK_TARGETS:
            raise SimError(
                400,
                errors.INVALID_ARGUMENT,
                f"{name} accepts at most {MAX_BULK_TARGETS} targets; this request has {len(targets)}.",
            )
        ids = []
        for index, target in enumerate(targets):
            if not isinstance(target, dict) or "@odata.type" not in target:
                raise errors.bad_payload(
                    f'Target {index} of {name} has no \'@odata.type\'; each target must carry "@odata.type": "{DATAVERSE_NAMESPACE}.{entity.type_name}".'
                )
            try:
                body = {k: v for k, v in target.items() if k != "@odata.id"}
                key, alternate = self._target_identity(entity, target.get("@odata.id"))
                values = self._columns_from_payload(entity, body, key)
                for field_name, text in (alternate or {}).items():
                    given = values.get(field_name)
                    if given is not None and str(given) != text:
                        raise errors.bad_payload(
                            f"The target's {field_name} ({given}) differs from its @odata.id ({text})."
                        )
                    values[field_name] = _convert(
                        entity, entity.by_name[field_name], _key_value(entity.by_name[field_name], text)
                    )
                key, _ = self.write(entity, values, mode="create" if name == "CreateMultiple" else "upsert")
            except SimError as exc:
                exc.message = f"{name} target {index}: {exc.message}"
                raise
            ids.append(key)
        if name == "UpsertMultiple":  # documented: 204 No Content
            return SimResponse(204, b"", {"OData-Version": "4.0"}, records=len(ids), writes=True)
        return json_response(
            200,
            {"@odata.context": f"{req.service_root}$metadata#{DATAVERSE_NAMESPACE}.{name}Response", "Ids": ids},
            records=len(ids),
            writes=True,
        )

    def _target_identity(self, entity: EntitySet, odata_id: object) -> tuple[str | None, dict[str, str] | None]:
        """A bulk target's ``@odata.id`` (``set(<id>)``, ``set(key='value')``, or an absolute URL):
        (primary key or None, alternate-key values or None)."""
        if odata_id is None:
            return None, None
        if not isinstance(odata_id, str):
            raise errors.bad_payload("'@odata.id' must be an entity URL such as 'set(<id>)'.")
        path = urlsplit(odata_id).path if "://" in odata_id else odata_id
        segment = unquote(path.rstrip("/").rsplit("/", 1)[-1])
        set_name, key_text = _split_segment(segment)
        if set_name != entity.name or key_text is None:
            raise errors.bad_payload(f"'@odata.id' must name a record of {entity.name}, not '{odata_id}'.")
        alternate = alternate_key(entity, key_text)
        if alternate is None:
            return _parse_key(entity, key_text), None
        return find_by_alternate_key(self.conn, entity, alternate), alternate

    # --- $batch ---------------------------------------------------------------------------

    def _batch(self, req: SimRequest, identity: Identity) -> SimResponse:
        try:
            items = parse_batch(req.body, req.headers.get("content-type", ""))
        except BatchFormatError as exc:
            raise SimError(400, errors.BAD_PAYLOAD, f"The batch request is not valid: {exc}") from None
        total = count_requests(items)
        if total > MAX_BATCH_REQUESTS:
            raise SimError(
                400,
                errors.BATCH_TOO_LARGE,
                f"The batch has {total} requests; a $batch may carry at most {MAX_BATCH_REQUESTS}.",
            )
        continue_on_error = "odata.continue-on-error" in req.prefer()
        status = 200
        out: list[BatchResponse | list[BatchResponse]] = []
        records, writes = 0, False
        inner_log: list[tuple[str, str, int]] = []
        for item in items:
            if isinstance(item, ChangeSet):
                result = self._changeset(req, item, identity, inner_log)
            else:
                resp = self._handle_inner(req, item, {}, identity)
                inner_log.append((item.method, item.url, resp.status))
                result = _as_batch_response(resp, item.content_id)
                records += resp.records
                writes = writes or resp.writes
            out.append(result)
            failed = result.status >= 400 if isinstance(result, BatchResponse) else False
            if isinstance(result, list):
                records += len(result)
                writes = True
            if failed and not continue_on_error:
                # Without odata.continue-on-error the batch itself answers with the failing request's status.
                status = result.status
                break
        body, content_type = render_batch(out)
        resp = SimResponse(
            status, body, {"Content-Type": content_type, "OData-Version": "4.0"}, records=records, writes=writes
        )
        resp.inner_requests = total
        resp.inner_log = inner_log
        return resp

    def _changeset(
        self, req: SimRequest, changeset: ChangeSet, identity: Identity, inner_log: list
    ) -> BatchResponse | list[BatchResponse]:
        responses: list[BatchResponse] = []
        references: dict[str, str] = {}
        self._references = references
        try:
            with Savepoint(self.conn):
                for inner in changeset.requests:
                    resp = self._handle_inner(req, inner, references, identity)
                    inner_log.append((inner.method, inner.url, resp.status))
                    if resp.status >= 400:
                        responses = [_as_batch_response(resp, inner.content_id)]
                        raise _ChangesetFailed
                    if inner.content_id and "OData-EntityId" in resp.headers:
                        references[inner.content_id] = resp.headers["OData-EntityId"]
                    responses.append(_as_batch_response(resp, inner.content_id))
        except _ChangesetFailed:
            return responses[0]
        finally:
            self._references = {}
        return responses

    def _handle_inner(
        self, outer: SimRequest, inner: BatchRequest, references: dict[str, str], identity: Identity
    ) -> SimResponse:
        try:
            request = self._inner(outer, inner, references)
        except SimError as exc:
            return SimResponse(exc.status, exc.dataverse_body(), {**ODATA_HEADERS, **exc.headers})
        if request.path.strip("/") == "$batch":
            return SimResponse(
                400,
                SimError(400, errors.BAD_PAYLOAD, "A $batch cannot contain another $batch.").dataverse_body(),
                dict(ODATA_HEADERS),
            )
        return self._handle(request, identity)

    def _inner(self, outer: SimRequest, inner: BatchRequest, references: dict[str, str]) -> SimRequest:
        url = inner.url
        if url.startswith("$"):
            ref, _, rest = url[1:].partition("/")
            if ref not in references:
                raise SimError(
                    400,
                    errors.BAD_PAYLOAD,
                    f"The batch references ${ref}, but no earlier request in this changeset has Content-ID {ref}.",
                )
            url = references[ref] + ("/" + rest if rest else "")
        parts = urlsplit(url)
        path = parts.path
        root_path = urlsplit(outer.service_root).path
        if path.startswith(root_path):
            path = path[len(root_path) :]
        elif path.startswith("/"):
            raise SimError(400, errors.BAD_PAYLOAD, f"Batch request URL '{inner.url}' is not under {root_path}.")
        query = [tuple(p.split("=", 1)) if "=" in p else (p, "") for p in parts.query.split("&") if p]
        query = [(unquote(k), unquote(v)) for k, v in query]
        return SimRequest(inner.method, path, query, inner.headers, inner.body, outer.service_root)


class _ChangesetFailed(Exception):
    pass


def _as_batch_response(resp: SimResponse, content_id: str | None) -> BatchResponse:
    headers = {k: v for k, v in resp.headers.items()}
    return BatchResponse(resp.status, headers, resp.body, content_id)


def _convert(entity: EntitySet, f: Field, value: object) -> object:
    """A JSON value -> the stored value of field `f`, or a 400 in Dataverse's words."""
    if value is None:
        return None

    def bad(expected: str) -> SimError:
        return errors.bad_payload(
            f"Cannot convert the literal '{value}' to the expected type '{expected}' for property '{f.name}' of {entity.qualified_type}."
        )

    kind = f.kind
    if kind in (Kind.STRING,):
        if not isinstance(value, str):
            raise bad("Edm.String")
        if f.max_length and len(value) > f.max_length:
            raise SimError(
                400,
                errors.INVALID_ARGUMENT,
                f"The length of the '{f.name}' attribute of the '{entity.type_name}' entity exceeded the maximum allowed length of '{f.max_length}'.",
            )
        return value
    if kind is Kind.GUID:
        try:
            return str(uuid.UUID(str(value)))
        except ValueError:
            raise bad("Edm.Guid") from None
    if kind in (Kind.INT, Kind.BIGINT, Kind.OPTION):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("Edm.Int32")
        if kind is Kind.OPTION and f.options and value not in f.options:
            raise SimError(
                400,
                errors.INVALID_ARGUMENT,
                f"A validation error occurred. The value {value} of '{f.name}' on record of type '{entity.type_name}' is outside the valid range. Accepted values: {', '.join(map(str, f.options))}.",
            )
        return value
    if kind is Kind.MONEY:
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            raise bad("Edm.Decimal")
        try:
            amount = Decimal(value).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)
        except (InvalidOperation, ValueError):
            raise bad("Edm.Decimal") from None
        if not -MONEY_LIMIT <= amount <= MONEY_LIMIT:
            raise SimError(
                400,
                errors.INVALID_ARGUMENT,
                f"A validation error occurred. The value {value} of '{f.name}' on record of type '{entity.type_name}' is outside the valid range. Accepted range: {-MONEY_LIMIT} to {MONEY_LIMIT}.",
            )
        return money_to_db(amount)
    if kind is Kind.DATE:
        if not isinstance(value, str):
            raise bad("Edm.Date")
        try:
            return date.fromisoformat(value).isoformat() if len(value) == 10 else _bad_date(value)
        except ValueError:
            raise bad("Edm.Date") from None
    if kind is Kind.BOOL:
        if not isinstance(value, bool):
            raise bad("Edm.Boolean")
        return int(value)
    raise bad(kind.value)


def _bad_date(value: str) -> str:
    raise ValueError(value)


def _key_value(f: Field, text: str) -> object:
    """A key value from a URL (text) as the JSON value field ``f`` takes."""
    if f.kind in (Kind.INT, Kind.BIGINT, Kind.OPTION):
        try:
            return int(text)
        except ValueError:
            raise errors.bad_payload(f"The key value '{text}' of '{f.name}' is not an integer.") from None
    return text


def service_document(root: str, sets) -> dict:
    """The OData service document: every entity set served, as ``{name, kind, url}``."""
    return {
        "@odata.context": f"{root}$metadata",
        "value": [{"name": s.name, "kind": "EntitySet", "url": s.name} for s in sets],
    }
