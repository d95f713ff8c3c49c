"""Dual-write: table maps, their versions and states, and what propagates to F&O.

Rules (DESIGN.md, "Dual-write behaviour that the runbook exists to control"):
- Milestone map running: a Dataverse milestone create/update lands in
  ProjectContractLineMilestones. A version that maps TRANSSTATUS <= msdyn_invoicestatus with
  ValueMap 4 <= 192350001 makes "Ready for invoicing" land as TransStatus 4 (Invoiced); the
  original version does not map TRANSSTATUS, so F&O keeps its own status (Registered).
  A milestone *update* whose status the running version does not map — Customer invoice
  created or posted, while the map still runs during invoicing — makes F&O build an invoice
  proposal for the on-account transaction: TransStatus InvoiceProposal (3), which it keeps
  (the simulator's reading of the risk the procedure guards against: the milestone would be
  invoiced a second time in F&O; the real intermediate states are not documented).
- Invoices map running when a pro-forma invoice is confirmed: a customer invoice is posted
  in F&O — a CustTransactions row and a balanced GL entry (AR debit, revenue credit) — and
  its milestones become Invoiced in F&O.
- Actuals map running at confirm: billed-sales actuals post a balanced GL entry.
- Not running: nothing propagates and nothing queues. Paused: changes queue, and are
  applied in order on resume.
Map configuration changes (refresh tables, save-as, choosing a version) need a stopped map,
as in the F&O dual-write page. Propagation runs inside the Dataverse write's transaction:
if F&O refuses, the Dataverse write fails too (dual-write is synchronous).

Where the map state can be read (:func:`publish`):
- F&O ``DualWriteProjectConfigurations``: two rows per map (Microsoft's live-sync
  troubleshooting guide: "2 records for every dual write mapping"), each with its own
  ProjectName (the simulator's ``<project>`` and ``<project>_reverse``; the real names are not
  documented), both naming the map's Dataverse table in ExternalEntityName; Status mirrors the
  map state in both (Running/Initializing/Resuming -> Enabled, Not running -> Disabled, Paused ->
  Queueing: our assumption); AsyncMode RequiredSync, or RequiredAsync for the invoices and
  actuals maps when the rehearsal setting ``dualwrite_async_invoicing`` is on.
- Dataverse ``msdyn_dualwriteentitymaps`` (one row per saved version, ``msdyn_mapping`` JSON) and
  ``msdyn_dualwriteruntimeconfigs`` (``msdyn_unsecure`` JSON with ``EntityMapVersion``, the
  version the map runs on): where public code (Microsoft's unsupported Dual-write-automations
  and third-party tools) reads them — not a documented contract.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from . import errors
from .adminkit import Field
from .errors import SimError
from .reference import (
    ACCOUNT_ACCRUED_REVENUE,
    ACCOUNT_AR,
    ACCOUNT_BILLED_REVENUE,
    ACCOUNT_REVENUE,
    COUNTER_CUST_RECID,
    COUNTER_GL_ENTRY,
    COUNTER_GL_LINE,
    CUST_RECID_BASE,
    DEFAULT_COMPANY,
    EXCHANGE_RATES,
    GL_ENTRY_BASE,
    GL_LINE_BASE,
    accounting_currency,
    convert,
)
from .schema import DUAL_WRITE_ASYNC_MODE, PROJ_TRANS_STATUS
from .store import get_setting, next_counter

NOT_RUNNING, INITIALIZING, RUNNING, PAUSED, RESUMING = "Not running", "Initializing", "Running", "Paused", "Resuming"
STATES = (NOT_RUNNING, INITIALIZING, RUNNING, PAUSED, RESUMING)
# DualWriteProjectConfigurations.Status: 0 Enabled, 1 Disabled, 4 Queueing
CONFIG_STATUS = {NOT_RUNNING: 1, INITIALIZING: 0, RUNNING: 0, PAUSED: 4, RESUMING: 0}

# DualWriteProjectConfigurations.AsyncMode member names (DualWriteAsyncMode enum)
REQUIRED_SYNC, REQUIRED_ASYNC = "RequiredSync", "RequiredAsync"
ASYNC_SETTING = "dualwrite_async_invoicing"
MAP_NAMESPACE = uuid.UUID("0f6f2f4e-5a43-4a55-9d3c-9d8e1f2a7b10")

# Rehearsal switch (the "blind" rehearsal): identities (client ids; "*" = every identity) that
# are refused (403) the sets where map state can be read.
HIDDEN_SETTING = "map_state_hidden_from"
MAP_STATE_SETS = ("msdyn_dualwriteentitymaps", "msdyn_dualwriteruntimeconfigs", "DualWriteProjectConfigurations")

#: Rehearsal settings of dual-write, on /_sim/settings (cutover.sim.admin.settings_table):
#: ``dualwrite_async_invoicing`` puts the invoices and actuals maps' configurations into
#: AsyncMode RequiredAsync (the asynchronous invoice integration the cutover procedure does
#: not cover); ``map_state_hidden_from`` lists client ids ("*" = all) refused map state (403).
ADMIN_SETTINGS = {
    "dualwrite_async_invoicing": Field("bool", default=False),
    HIDDEN_SETTING: Field("texts", max_length=200, sort=True, default=[]),
}

MILESTONE_MAP = "msdyn_contractlinescheduleofvalues"
ACTUALS_MAP = "msdyn_actuals"
INVOICES_MAP = "invoices"

REGISTERED = PROJ_TRANS_STATUS.members["Registered"]
INVOICED = PROJ_TRANS_STATUS.members["Invoiced"]
INVOICE_PROPOSAL = PROJ_TRANS_STATUS.members["InvoiceProposal"]
# Dataverse milestone statuses that only invoicing sets (Customer invoice created / posted).
INVOICING_STATUSES = (192350002, 192350003)


def _m(fno: str, dv: str, direction: str = "dataverse_to_fno", transform: dict | None = None) -> dict:
    return {"fno_field": fno, "dataverse_field": dv, "direction": direction, "transform": transform}


@dataclass(frozen=True)
class MapDefinition:
    name: str
    title: str
    project_name: str
    original_version: str
    mappings: tuple[dict, ...]
    internal_entity: str = ""  # DualWriteProjectConfigurations.InternalEntityName (simulator's name)


DEFAULT_MAPS = (
    MapDefinition(
        MILESTONE_MAP,
        "Project Operations integration contract line milestones (msdyn_contractlinescheduleofvalues)",
        "ProjectOperationsIntegrationContractLineMilestones_msdyn_contractlinescheduleofvalues",
        "1.0.0.5",
        (
            _m("CONTRACTLINEMILESTONEGUID", "msdyn_contractlinescheduleofvalueid"),
            _m("DESCRIPTION", "msdyn_name"),
            _m("AMOUNT", "msdyn_amount"),
            _m("TRANSACTIONDATE", "msdyn_invoicedate"),
            _m("CONTRACTLINEID", "msdyn_contractlineid.msdyn_contractlineid"),
        ),
        "ProjectContractLineMilestoneEntity",
    ),
    MapDefinition(
        ACTUALS_MAP,
        "Project Operations integration actuals (msdyn_actuals)",
        "ProjectOperationsIntegrationActuals_msdyn_actuals",
        "1.0.0.3",
        (_m("TRANSID", "msdyn_actualid"), _m("SALESAMOUNT", "msdyn_amount")),
        "ProjectOperationsIntegrationActualEntity",
    ),
    MapDefinition(
        INVOICES_MAP,
        "Project invoice proposal V2 (invoices)",
        "ProjectInvoiceProposalV2_invoices",
        "1.0.0.2",
        (_m("PROPOSALID", "invoicenumber"), _m("INVOICEAMOUNT", "totalamount")),
        "ProjectInvoiceProposalV2Entity",
    ),
)
MAP_NAMES = tuple(d.name for d in DEFAULT_MAPS)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def install_maps(conn: sqlite3.Connection) -> None:
    """Create the three maps (Running, original version) if the database has none."""
    for d in DEFAULT_MAPS:
        exists = conn.execute("SELECT 1 FROM sim_maps WHERE name = ?", (d.name,)).fetchone()
        if exists:
            continue
        conn.execute(
            "INSERT INTO sim_maps(name, title, project_name, state, active_version, original_version) VALUES (?, ?, ?, ?, ?, ?)",
            (d.name, d.title, d.project_name, RUNNING, d.original_version, d.original_version),
        )
        conn.execute(
            "INSERT INTO sim_map_versions(map_name, version, publisher, description, mappings, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                d.name,
                d.original_version,
                "Microsoft",
                "Original version shipped by Microsoft",
                json.dumps(list(d.mappings)),
                _now(),
            ),
        )
        _event(conn, d.name, "installed", f"version {d.original_version}, state {RUNNING}")
    publish(conn)


def _event(conn: sqlite3.Connection, name: str, event: str, detail: str) -> None:
    conn.execute(
        "INSERT INTO sim_map_events(at, map_name, event, detail) VALUES (?, ?, ?, ?)", (_now(), name, event, detail)
    )


def hidden_from(conn: sqlite3.Connection, client_id: str | None) -> bool:
    """Whether the rehearsal hides map state (MAP_STATE_SETS) from this identity."""
    hidden = get_setting(conn, HIDDEN_SETTING, []) or []
    return "*" in hidden or (client_id is not None and client_id in hidden)


def configuration_names(project_name: str) -> tuple[str, str]:
    """The two DualWriteProjectConfigurations rows of one map (the simulator's names)."""
    return project_name, f"{project_name}_reverse"


def publish(conn: sqlite3.Connection) -> None:
    """Mirror the maps where clients can read them: F&O's configurations, Dataverse's map tables."""
    sync_configurations(conn)
    sync_dataverse_tables(conn)


def sync_configurations(conn: sqlite3.Connection) -> None:
    """Mirror map states into F&O's DualWriteProjectConfigurations (the read-only evidence):
    two rows per map; rows of no current map (an older simulator's single row) are removed."""
    async_invoicing = bool(get_setting(conn, ASYNC_SETTING, False))
    internal = {d.name: d.internal_entity for d in DEFAULT_MAPS}
    wanted: list[str] = []
    for name, project, state in conn.execute("SELECT name, project_name, state FROM sim_maps").fetchall():
        mode = REQUIRED_ASYNC if async_invoicing and name in (INVOICES_MAP, ACTUALS_MAP) else REQUIRED_SYNC
        for row_name in configuration_names(project):
            wanted.append(row_name)
            conn.execute(
                'INSERT INTO "fno_DualWriteProjectConfigurations"("ProjectName", "InternalEntityName", "ExternalEntityName", '
                '"Status", "AsyncMode") VALUES (?, ?, ?, ?, ?) ON CONFLICT("ProjectName") DO UPDATE SET '
                '"InternalEntityName" = excluded."InternalEntityName", "ExternalEntityName" = excluded."ExternalEntityName", '
                '"Status" = excluded."Status", "AsyncMode" = excluded."AsyncMode"',
                (row_name, internal.get(name, ""), name, CONFIG_STATUS[state], DUAL_WRITE_ASYNC_MODE.members[mode]),
            )
    marks = ", ".join("?" for _ in wanted)
    conn.execute(f'DELETE FROM "fno_DualWriteProjectConfigurations" WHERE "ProjectName" NOT IN ({marks})', wanted)


def mapping_json(mappings: list[dict]) -> str:
    """A version's field mappings as ``msdyn_mapping`` text: ValueMap transforms in the
    documented ``{"transformType": "ValueMap", "valueMap": {fno: dataverse}}`` shape."""
    out = []
    for m in mappings:
        t = m.get("transform")
        out.append(
            {
                "sourceField": m["fno_field"],
                "destinationField": m["dataverse_field"],
                "syncDirection": m["direction"],
                "valueTransforms": [{"transformType": "ValueMap", "valueMap": dict(t["values"])}] if t else [],
            }
        )
    return json.dumps(out)


def _upsert_dv(conn: sqlite3.Connection, table: str, key: str, key_value: str, values: dict) -> None:
    """Insert or update one row of a dual-write Dataverse table; the ETag moves only on a change."""
    now = _now()
    cur = conn.execute(
        f'SELECT {", ".join(chr(34) + c + chr(34) for c in values)} FROM "{table}" WHERE "{key}" = ?', (key_value,)
    )
    row = cur.fetchone()
    if row is None:
        cols = [key, *values, "sim_createdon", "sim_modifiedon"]
        conn.execute(
            f'INSERT INTO "{table}"({", ".join(chr(34) + c + chr(34) for c in cols)}) VALUES ({", ".join("?" for _ in cols)})',
            (key_value, *values.values(), now, now),
        )
    elif tuple(row) != tuple(values.values()):
        sets = ", ".join(f'"{c}" = ?' for c in values)
        conn.execute(
            f'UPDATE "{table}" SET {sets}, sim_version = sim_version + 1, sim_modifiedon = ? WHERE "{key}" = ?',
            (*values.values(), now, key_value),
        )


def sync_dataverse_tables(conn: sqlite3.Connection) -> None:
    """Mirror map versions into msdyn_dualwriteentitymaps and the version each map runs on into
    msdyn_dualwriteruntimeconfigs."""
    keep_versions: list[str] = []
    for m in list_maps(conn):
        for v in m["versions"]:
            ident = str(uuid.uuid5(MAP_NAMESPACE, f"{m['name']}/{v['version']}"))
            keep_versions.append(ident)
            _upsert_dv(
                conn,
                "dv_msdyn_dualwriteentitymaps",
                "msdyn_dualwriteentitymapid",
                ident,
                {
                    "msdyn_name": m["name"],
                    "msdyn_displayname": m["title"],
                    "msdyn_version": v["version"],
                    "msdyn_description": v["description"],
                    "msdyn_mapping": mapping_json(v["mappings"]),
                    "ismanaged": int(v["publisher"] == "Microsoft"),
                },
            )
        _upsert_dv(
            conn,
            "dv_msdyn_dualwriteruntimeconfigs",
            "msdyn_dualwriteruntimeconfigid",
            str(uuid.uuid5(MAP_NAMESPACE, m["name"])),
            {
                "msdyn_name": m["name"],
                "msdyn_unsecure": json.dumps(
                    {"EntityMapName": m["name"], "EntityMapVersion": m["active_version"], "DisplayName": m["title"]}
                ),
                "statecode": 0,
            },
        )
    marks = ", ".join("?" for _ in keep_versions)
    conn.execute(
        f'DELETE FROM "dv_msdyn_dualwriteentitymaps" WHERE "msdyn_dualwriteentitymapid" NOT IN ({marks})', keep_versions
    )


def get_map(conn: sqlite3.Connection, name: str) -> dict:
    row = conn.execute(
        "SELECT name, title, project_name, state, active_version, original_version, tables_refreshed_at FROM sim_maps WHERE name = ?",
        (name,),
    ).fetchone()
    if row is None:
        raise SimError(404, errors.ODATA_URI_ERROR, f"No dual-write map named '{name}'. Maps: {', '.join(MAP_NAMES)}.")
    versions = [
        {"version": v, "publisher": p, "description": d, "mappings": json.loads(m), "created_at": c}
        for v, p, d, m, c in conn.execute(
            "SELECT version, publisher, description, mappings, created_at FROM sim_map_versions WHERE map_name = ? ORDER BY created_at, version",
            (name,),
        )
    ]
    return {
        "name": row[0],
        "title": row[1],
        "project_name": row[2],
        "state": row[3],
        "active_version": row[4],
        "original_version": row[5],
        "tables_refreshed_at": row[6],
        "versions": versions,
    }


def list_maps(conn: sqlite3.Connection) -> list[dict]:
    return [get_map(conn, n) for (n,) in conn.execute("SELECT name FROM sim_maps ORDER BY name").fetchall()]


def events(conn: sqlite3.Connection, since: int = 0) -> list[dict]:
    return [
        {"seq": s, "at": a, "map": m, "event": e, "detail": d}
        for s, a, m, e, d in conn.execute(
            "SELECT seq, at, map_name, event, detail FROM sim_map_events WHERE seq > ? ORDER BY seq", (since,)
        )
    ]


def _state(conn: sqlite3.Connection, name: str) -> str:
    return get_map(conn, name)["state"]


def _set_state(conn: sqlite3.Connection, name: str, state: str, event: str) -> None:
    conn.execute("UPDATE sim_maps SET state = ? WHERE name = ?", (state, name))
    _event(conn, name, event, f"state {state}")
    publish(conn)


def _conflict(message: str) -> SimError:
    return SimError(409, errors.INVALID_ARGUMENT, message)


def stop(conn: sqlite3.Connection, name: str) -> dict:
    state = _state(conn, name)
    if state == NOT_RUNNING:
        return get_map(conn, name)
    dropped = conn.execute("DELETE FROM sim_map_queue WHERE map_name = ?", (name,)).rowcount
    if dropped:
        _event(conn, name, "queue-discarded", f"{dropped} queued change(s) discarded by stop")
    _set_state(conn, name, NOT_RUNNING, "stopped")
    return get_map(conn, name)


def start(conn: sqlite3.Connection, name: str) -> dict:
    state = _state(conn, name)
    if state == PAUSED:
        raise _conflict(f"Map '{name}' is paused; resume it instead of starting it.")
    if state != RUNNING:
        _event(conn, name, "initializing", f"version {get_map(conn, name)['active_version']}")
        _set_state(conn, name, RUNNING, "started")
    return get_map(conn, name)


def pause(conn: sqlite3.Connection, name: str) -> dict:
    state = _state(conn, name)
    if state != RUNNING:
        raise _conflict(f"Map '{name}' is {state}; only a running map can be paused.")
    _set_state(conn, name, PAUSED, "paused")
    return get_map(conn, name)


def resume(conn: sqlite3.Connection, name: str) -> dict:
    state = _state(conn, name)
    if state != PAUSED:
        raise _conflict(f"Map '{name}' is {state}; only a paused map can be resumed.")
    _set_state(conn, name, RUNNING, "resumed")
    queued = conn.execute("SELECT seq, payload FROM sim_map_queue WHERE map_name = ? ORDER BY seq", (name,)).fetchall()
    for seq, payload in queued:
        _apply(conn, name, json.loads(payload))
        conn.execute("DELETE FROM sim_map_queue WHERE seq = ?", (seq,))
    if queued:
        _event(conn, name, "queue-applied", f"{len(queued)} queued change(s) applied")
    return get_map(conn, name)


def _require_stopped(conn: sqlite3.Connection, name: str, what: str) -> None:
    state = _state(conn, name)
    if state != NOT_RUNNING:
        raise _conflict(f"Stop map '{name}' before you {what} (it is {state}).")


def refresh_tables(conn: sqlite3.Connection, name: str) -> dict:
    _require_stopped(conn, name, "refresh its tables")
    conn.execute("UPDATE sim_maps SET tables_refreshed_at = ? WHERE name = ?", (_now(), name))
    _event(conn, name, "tables-refreshed", "")
    return get_map(conn, name)


VALID_DIRECTIONS = ("dataverse_to_fno", "fno_to_dataverse", "bidirectional")


def _validate_mapping(m: dict) -> dict:
    if not isinstance(m, dict) or not m.get("fno_field") or not m.get("dataverse_field"):
        raise SimError(400, errors.INVALID_ARGUMENT, "Each added mapping needs fno_field and dataverse_field.")
    direction = m.get("direction", "bidirectional")
    if direction not in VALID_DIRECTIONS:
        raise SimError(
            400,
            errors.INVALID_ARGUMENT,
            f"Mapping direction '{direction}' is not one of {', '.join(VALID_DIRECTIONS)}.",
        )
    transform = m.get("transform")
    if transform is not None:
        if transform.get("type") != "ValueMap" or not isinstance(transform.get("values"), dict):
            raise SimError(
                400,
                errors.INVALID_ARGUMENT,
                'Only the ValueMap transform is supported: {"type": "ValueMap", "values": {fno_value: dataverse_value}}.',
            )
        transform = {"type": "ValueMap", "values": {str(k): str(v) for k, v in transform["values"].items()}}
    return {
        "fno_field": str(m["fno_field"]),
        "dataverse_field": str(m["dataverse_field"]),
        "direction": direction,
        "transform": transform,
    }


def save_as(
    conn: sqlite3.Connection,
    name: str,
    *,
    version: str,
    description: str,
    publisher: str = "Default publisher",
    add_mappings: list[dict] | None = None,
) -> dict:
    """Save the active version plus added mappings as a new version and make it active."""
    _require_stopped(conn, name, "save a new version")
    current = get_map(conn, name)
    if any(v["version"] == version for v in current["versions"]):
        raise _conflict(f"Map '{name}' already has a version {version}; choose another version number.")
    if not version or not description:
        raise SimError(400, errors.INVALID_ARGUMENT, "Save as needs a version and a description.")
    base = next(v for v in current["versions"] if v["version"] == current["active_version"])
    mappings = list(base["mappings"]) + [_validate_mapping(m) for m in (add_mappings or [])]
    conn.execute(
        "INSERT INTO sim_map_versions(map_name, version, publisher, description, mappings, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (name, version, publisher, description, json.dumps(mappings), _now()),
    )
    conn.execute("UPDATE sim_maps SET active_version = ? WHERE name = ?", (version, name))
    _event(conn, name, "saved-as", f"version {version} ({publisher}): {description}")
    publish(conn)
    return get_map(conn, name)


def select_version(conn: sqlite3.Connection, name: str, version: str) -> dict:
    _require_stopped(conn, name, "change its table map version")
    current = get_map(conn, name)
    if not any(v["version"] == version for v in current["versions"]):
        have = ", ".join(v["version"] for v in current["versions"])
        raise SimError(404, errors.OBJECT_DOES_NOT_EXIST, f"Map '{name}' has no version {version}; versions: {have}.")
    conn.execute("UPDATE sim_maps SET active_version = ? WHERE name = ?", (version, name))
    _event(conn, name, "version-selected", f"version {version}")
    publish(conn)
    return get_map(conn, name)


# --- propagation --------------------------------------------------------------------------


def _route(conn: sqlite3.Connection, name: str, payload: dict) -> None:
    state = _state(conn, name)
    if state == RUNNING:
        _apply(conn, name, payload)
    elif state == PAUSED:
        conn.execute("INSERT INTO sim_map_queue(map_name, payload) VALUES (?, ?)", (name, json.dumps(payload)))
    # Not running: nothing propagates, nothing queues.


def milestone_written(conn: sqlite3.Connection, milestone_id: str, created: bool) -> None:
    _route(conn, MILESTONE_MAP, {"kind": "milestone", "id": milestone_id, "created": created})


def invoice_confirmed(conn: sqlite3.Connection, invoice_id: str) -> None:
    _route(conn, INVOICES_MAP, {"kind": "invoice", "id": invoice_id})
    _route(conn, ACTUALS_MAP, {"kind": "actuals", "id": invoice_id})


def _apply(conn: sqlite3.Connection, name: str, payload: dict) -> None:
    kind = payload["kind"]
    if kind == "milestone":
        _push_milestone(conn, payload["id"], payload.get("created", False))
    elif kind == "invoice":
        _post_customer_invoice(conn, payload["id"])
    elif kind == "actuals":
        _post_billed_actuals(conn, payload["id"])


def transstatus_value_map(conn: sqlite3.Connection) -> dict[str, str] | None:
    """The active milestone-map version's TRANSSTATUS <= msdyn_invoicestatus value map, if any."""
    m = get_map(conn, MILESTONE_MAP)
    version = next(v for v in m["versions"] if v["version"] == m["active_version"])
    for mapping in version["mappings"]:
        if (
            mapping["fno_field"].upper() == "TRANSSTATUS"
            and mapping["dataverse_field"].lower() == "msdyn_invoicestatus"
            and mapping["direction"] in ("dataverse_to_fno", "bidirectional")
            and mapping.get("transform")
        ):
            return mapping["transform"]["values"]
    return None


def _push_milestone(conn: sqlite3.Connection, milestone_id: str, created: bool) -> None:
    ms = conn.execute(
        "SELECT msdyn_name, msdyn_amount, msdyn_invoicedate, msdyn_invoicestatus, _msdyn_contractlineid_value "
        'FROM "dv_msdyn_contractlinescheduleofvalues" WHERE msdyn_contractlinescheduleofvalueid = ?',
        (milestone_id,),
    ).fetchone()
    if ms is None:
        return
    name, amount, date, status, line_id = ms
    line = conn.execute(
        'SELECT "dataAreaId", "ContractLineId", "ProjectContractId" FROM "fno_ProjectContractLines" WHERE "ContractLineGuid" = ?',
        (line_id,),
    ).fetchone()
    if line is None:
        raise SimError(
            400,
            errors.UNEXPECTED,
            f"Dual-write ({MILESTONE_MAP}): Finance and Operations has no project contract line for "
            f"msdyn_contractlineid {line_id}; milestone {milestone_id} was not written. Synchronize the contract line first.",
        )
    area, line_no, contract_no = line
    customer = conn.execute(
        'SELECT a.accountnumber FROM "dv_salesorderdetails" d JOIN "dv_salesorders" o ON o.salesorderid = d._salesorderid_value '
        'LEFT JOIN "dv_accounts" a ON a.accountid = o._customerid_value WHERE d.salesorderdetailid = ?',
        (line_id,),
    ).fetchone()
    value_map = transstatus_value_map(conn)
    mapped: int | None = None
    if value_map is not None:
        for fno_value, dv_value in value_map.items():
            if str(status) == dv_value:
                mapped = int(fno_value)
    existing = conn.execute(
        'SELECT "ContractLineMilestoneIdentifier", "TransStatus" FROM "fno_ProjectContractLineMilestones" WHERE "ContractLineMilestoneGuid" = ?',
        (milestone_id,),
    ).fetchone()
    when = f"{date}T12:00:00Z" if date else None
    if existing is None:
        ident = f"CLM-{next_counter(conn, 'fno_milestone_id'):07d}"
        conn.execute(
            'INSERT INTO "fno_ProjectContractLineMilestones"("dataAreaId", "ContractLineMilestoneIdentifier", "ContractLineMilestoneGuid", '
            '"ProjectContractId", "ContractLineId", "Description", "Amount", "TransactionDate", "CustomerAccountNumber", "TransStatus") '
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                area,
                ident,
                milestone_id,
                contract_no,
                line_no,
                name,
                amount,
                when,
                customer[0] if customer else None,
                mapped or REGISTERED,
            ),
        )
    else:
        conn.execute(
            'UPDATE "fno_ProjectContractLineMilestones" SET "Description" = ?, "Amount" = ?, "TransactionDate" = ?, "TransStatus" = ? '
            'WHERE "ContractLineMilestoneGuid" = ?',
            (name, amount, when, _updated_status(mapped, status, existing[1]), milestone_id),
        )


def _updated_status(mapped: int | None, dataverse_status: int | None, current: int) -> int:
    """F&O's TransStatus after a milestone update (see the module docstring)."""
    if mapped is not None:
        return mapped
    if dataverse_status in INVOICING_STATUSES:
        return INVOICE_PROPOSAL
    return current


def _invoice_facts(conn: sqlite3.Connection, invoice_id: str):
    row = conn.execute(
        "SELECT i.invoicenumber, i.totalamount, i.msdyn_invoicedate, a.accountnumber, c.cdm_companycode, cur.isocurrencycode "
        'FROM "dv_invoices" i LEFT JOIN "dv_accounts" a ON a.accountid = i._customerid_value '
        'LEFT JOIN "dv_salesorders" o ON o.salesorderid = i._salesorderid_value '
        'LEFT JOIN "dv_cdm_companies" c ON c.cdm_companyid = o._msdyn_company_value '
        'LEFT JOIN "dv_transactioncurrencies" cur ON cur.transactioncurrencyid = i._transactioncurrencyid_value '
        "WHERE i.invoiceid = ?",
        (invoice_id,),
    ).fetchone()
    if row is None:
        return None
    number, total, date, customer, company, currency = row
    date = date or get_setting(conn, "world_date") or datetime.now(UTC).date().isoformat()
    return number, total or 0, date, customer, (company or DEFAULT_COMPANY), currency


def _to_accounting(amount: int, currency: str | None, company: str) -> int:
    """A stored amount (1/10,000 units) in the transaction currency -> the accounting currency,
    at the world's fixed rates, rounded to cents as the seeded AR and GL are."""
    target = accounting_currency(company)
    if not currency or currency == target or currency not in EXCHANGE_RATES or target not in EXCHANGE_RATES:
        return amount
    if amount % 100 == 0:
        return convert(amount // 100, currency, target) * 100
    return convert(amount, currency, target)


def _gl_entry(
    conn: sqlite3.Connection,
    company: str,
    date: str,
    voucher: str,
    lines: list[tuple[str, int, str]],
    currency: str | None,
) -> None:
    """One balanced GL entry; line amounts are in the transaction currency."""
    entry = next_counter(conn, COUNTER_GL_ENTRY, start=GL_ENTRY_BASE + 1)
    conn.execute(
        'INSERT INTO "fno_GeneralJournalEntryBiEntities"("SourceKey", "AccountingDate", "SubledgerVoucher", "SubledgerVoucherDataAreaId", "JournalNumber") '
        "VALUES (?, ?, ?, ?, ?)",
        (entry, f"{date}T12:00:00Z", voucher, company.upper(), f"DW-{entry}"),
    )
    for account, amount, text in lines:
        conn.execute(
            'INSERT INTO "fno_GeneralJournalAccountEntryBiEntities"("SourceKey", "GeneralJournalEntry", "MainAccount", "LedgerAccount", '
            '"AccountingCurrencyAmount", "TransactionCurrencyAmount", "TransactionCurrencyCode", "Text") VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
            (
                next_counter(conn, COUNTER_GL_LINE, start=GL_LINE_BASE + 1),
                entry,
                account,
                f"{account}--",
                _to_accounting(amount, currency, company),
                amount,
                currency,
                text,
            ),
        )


def _post_customer_invoice(conn: sqlite3.Connection, invoice_id: str) -> None:
    facts = _invoice_facts(conn, invoice_id)
    if facts is None:
        return
    number, total, date, customer, company, currency = facts
    voucher = f"CIV-{next_counter(conn, 'fno_voucher'):08d}"
    conn.execute(
        'INSERT INTO "fno_CustTransactions"("dataAreaId", "RecId", "AccountNum", "Voucher", "TransDate", "AmountCur", "AmountMst", '
        '"CurrencyCode", "Invoice", "TransType") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        (
            company.lower(),
            next_counter(conn, COUNTER_CUST_RECID, start=CUST_RECID_BASE + 1),
            customer,
            voucher,
            f"{date}T12:00:00Z",
            total,
            _to_accounting(total, currency, company),
            currency,
            number,
            8,
        ),
    )
    _gl_entry(
        conn,
        company,
        date,
        voucher,
        [(ACCOUNT_AR, total, f"Invoice {number}"), (ACCOUNT_REVENUE, -total, f"Invoice {number}")],
        currency,
    )
    milestone_ids = [
        r[0] for r in conn.execute("SELECT milestoneid FROM sim_invoice_milestones WHERE invoiceid = ?", (invoice_id,))
    ]
    for mid in milestone_ids:
        conn.execute(
            'UPDATE "fno_ProjectContractLineMilestones" SET "TransStatus" = ? WHERE "ContractLineMilestoneGuid" = ?',
            (INVOICED, mid),
        )


def _post_billed_actuals(conn: sqlite3.Connection, invoice_id: str) -> None:
    facts = _invoice_facts(conn, invoice_id)
    if facts is None:
        return
    number, total, date, _customer, company, currency = facts
    voucher = f"PSA-{next_counter(conn, 'fno_actuals_voucher'):08d}"
    _gl_entry(
        conn,
        company,
        date,
        voucher,
        [
            (ACCOUNT_ACCRUED_REVENUE, total, f"Billed sales {number}"),
            (ACCOUNT_BILLED_REVENUE, -total, f"Billed sales {number}"),
        ],
        currency,
    )


def queued(conn: sqlite3.Connection, name: str) -> int:
    return conn.execute("SELECT count(*) FROM sim_map_queue WHERE map_name = ?", (name,)).fetchone()[0]
