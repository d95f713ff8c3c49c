"""The rehearsal admin API, ``/_sim/…``: summary, dual-write maps, F&O mapping generation,
maintenance mode, F&O version, injected faults, service-protection limits, the API request
log, simulator settings and identities.

Every request needs ``X-Cutover-Admin: <admin token>`` and, on POST/PUT/DELETE,
``Content-Type: application/json`` (checked by :class:`cutover.sim.gateway.Gateway`).

Every endpoint is an :func:`cutover.sim.adminkit.admin` endpoint: JSON in, JSON out, refusals
in Dataverse's error shape. Every body is checked against a table of :class:`~cutover.sim.adminkit.Field`
declarations (JSON type and range) before anything changes: an unknown field, a string where
a boolean or number belongs, ``NaN``, a zero or negative window or lifetime are 400 naming the
field. The ``/_sim/settings`` table is :data:`SETTINGS`; a simulator module may add its own
settings by declaring ``ADMIN_SETTINGS = {"name": Field(...)}`` (see :func:`settings_table`),
so a new setting declares its type, range and default in one place.
:data:`ROUTES` is what :func:`cutover.sim.app.create_app` mounts.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from . import auth, dualwrite, errors
from .adminkit import (
    Bool,
    Field,
    Int,
    Number,
    Object,
    Objects,
    Text,
    Texts,
    admin,
    conn_of,
    json_body,
    log_answer,
    query_int,
    require,
    simulator_of,
    validate,
)
from .dataverse_service import DEFAULT_CONFIRM_ACTION, DEFAULT_CREATE_ACTION
from .dataverse_service import settings as dataverse_settings
from .errors import SimError
from .fno_service import DEFAULT_COMPANY
from .gateway import DATAVERSE_ROOT, FNO_ROOT, TOKEN_PATH
from .protection import FAULT_KINDS, CostModel, Faults, Limits
from .schema import ALL_SETS, DATAVERSE
from .store import get_setting, set_setting

DEFAULT_FNO_VERSION = "10.0.40"


async def index(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "service": "cutover rehearsal simulator",
            "dataverse": DATAVERSE_ROOT,
            "fno": FNO_ROOT,
            "token": TOKEN_PATH,
            "admin": "/_sim/",
        }
    )


@admin
async def summary(request: Request) -> dict:
    conn = conn_of(request)
    counts = {s.name: conn.execute(f'SELECT count(*) FROM "{s.table}"').fetchone()[0] for s in ALL_SETS}
    return {
        "organization_id": get_setting(conn, "organization_id"),
        "seed": get_setting(conn, "seed"),
        "scale": get_setting(conn, "scale"),
        "world_date": get_setting(conn, "world_date"),
        "maintenance_mode": bool(get_setting(conn, "maintenance_mode", False)),
        "fno_version": get_setting(conn, "fno_version", DEFAULT_FNO_VERSION),
        "maps": {
            m["name"]: {"state": m["state"], "active_version": m["active_version"]} for m in dualwrite.list_maps(conn)
        },
        "counts": counts,
        "endpoints": {"dataverse": DATAVERSE_ROOT, "fno": FNO_ROOT, "token": TOKEN_PATH},
    }


# --- dual-write maps -------------------------------------------------------------------------


@admin
async def maps_list(request: Request) -> list:
    return dualwrite.list_maps(conn_of(request))


@admin
async def map_get(request: Request) -> dict:
    conn = conn_of(request)
    m = dualwrite.get_map(conn, request.path_params["name"])
    m["queued"] = dualwrite.queued(conn, m["name"])
    return m


_VERSION = Text(nonempty=True, max_length=64)
#: The body each map operation takes (stop, start … take none).
MAP_BODIES: dict[str, Mapping[str, Field]] = {
    "save-as": {
        "version": _VERSION,
        "description": Text(nonempty=True, max_length=1000),
        "publisher": Text(nonempty=True, max_length=200),
        "add_mappings": Objects(max_length=500),
    },
    "version": {"version": _VERSION},
}

MAP_OPERATIONS = {
    "stop": dualwrite.stop,
    "start": dualwrite.start,
    "pause": dualwrite.pause,
    "resume": dualwrite.resume,
    "refresh-tables": dualwrite.refresh_tables,
}


@admin
async def map_operation(request: Request) -> dict:
    conn = conn_of(request)
    name, op = request.path_params["name"], request.path_params["op"]
    body = validate(await json_body(request), MAP_BODIES.get(op, {}))
    if op in ("save-as", "version"):
        require(body, "version")
    if op == "save-as":
        require(body, "description")
    conn.execute("BEGIN IMMEDIATE")
    try:
        if op in MAP_OPERATIONS:
            result = MAP_OPERATIONS[op](conn, name)
        elif op == "save-as":
            result = dualwrite.save_as(
                conn,
                name,
                version=body["version"],
                description=body["description"],
                publisher=body.get("publisher", "Default publisher"),
                add_mappings=body.get("add_mappings"),
            )
        elif op == "version":
            result = dualwrite.select_version(conn, name, body["version"])
        else:
            raise SimError(
                404,
                errors.ODATA_URI_ERROR,
                f"Unknown map operation '{op}'. Use stop, start, pause, resume, refresh-tables, save-as or version.",
            )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


@admin
async def map_events(request: Request) -> list:
    return dualwrite.events(conn_of(request), query_int(request, "since"))


@admin
async def generate_mapping(request: Request) -> dict:
    conn = conn_of(request)
    body = validate(await json_body(request), {"entity": Text(nonempty=True, max_length=200)})
    entity = body.get("entity", "Project Operations integration contract line milestones")
    done = get_setting(conn, "fno_generated_mappings", {})
    done[entity] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    set_setting(conn, "fno_generated_mappings", done)
    return {"generated_mappings": done}


# --- settings, faults, limits ----------------------------------------------------------------


def setting_endpoint(key: str, field: str, spec: Field):
    """``GET`` / ``PUT {"<field>": …}`` of one stored setting, checked by ``spec``."""

    @admin
    async def endpoint(request: Request) -> dict:
        conn = conn_of(request)
        if request.method == "PUT":
            body = validate(await json_body(request), {field: spec})
            require(body, field)
            set_setting(conn, key, body[field])
        return {field: spec.read(conn, key)}

    return endpoint


_RATE = Number(minimum=0, maximum=1)
#: ``PUT /_sim/faults``: the fields of :class:`~cutover.sim.protection.Faults`.
FAULTS: dict[str, Field] = {
    "latency_ms": Number(minimum=0, maximum=600_000),
    "error_rate": _RATE,
    "error_status": Int(minimum=500, maximum=599),
    "throttle_rate": _RATE,
    "retry_after": Int(minimum=0, maximum=86_400),
    "drop_rate": _RATE,
    "drop_after_rate": _RATE,
    "path_contains": Text(max_length=500),
    "seed": Int(minimum=-(2**63), maximum=2**63 - 1),
    "script": Texts(choices=FAULT_KINDS, max_length=100_000),
}
#: ``PUT /_sim/protection``: :class:`~cutover.sim.protection.Limits` …
LIMITS: dict[str, Field] = {
    "window_seconds": Number(above=0, maximum=86_400),
    "max_requests": Int(minimum=1, maximum=10**9),
    "max_execution_seconds": Number(above=0, maximum=10**9),
    "max_concurrent": Int(minimum=1, maximum=100_000),
    "enabled": Bool(),
}
#: … and :class:`~cutover.sim.protection.CostModel` (seconds).
COST: dict[str, Field] = {
    "read_base": Number(minimum=0, maximum=3600),
    "read_per_record": Number(minimum=0, maximum=3600),
    "write_base": Number(minimum=0, maximum=3600),
    "write_per_record": Number(minimum=0, maximum=3600),
    "latency_factor": Number(minimum=0, maximum=100),
}
PROTECTION: dict[str, Field] = {
    "scale": Number(above=0, maximum=1000),
    "limits": Object(LIMITS),
    "cost": Object(COST),
    **LIMITS,
}


@admin
async def faults_endpoint(request: Request) -> dict:
    prot = simulator_of(request).protection
    if request.method == "PUT":
        body = validate(await json_body(request), FAULTS, "fault setting")
        prot.faults = Faults(**{**Faults().to_dict(), **body})
    elif request.method == "DELETE":
        prot.faults = Faults()
    return prot.faults.to_dict()


@admin
async def protection_endpoint(request: Request) -> dict:
    prot = simulator_of(request).protection
    if request.method == "PUT":
        body = validate(await json_body(request), PROTECTION, "setting")
        top = {k: v for k, v in body.items() if k in LIMITS}
        if top and "limits" in body:
            raise SimError(
                400, errors.INVALID_ARGUMENT, f"Send {', '.join(sorted(top))} inside limits or beside it, not both."
            )
        limits = Limits.scaled(body["scale"]) if "scale" in body else prot.limits
        for k, v in {**top, **body.get("limits", {})}.items():
            setattr(limits, k, float(v) if isinstance(getattr(Limits(), k), float) else v)
        for k, v in body.get("cost", {}).items():
            setattr(prot.cost, k, float(v))
        prot.limits = limits
        prot.budgets.clear()
    elif request.method == "DELETE":
        prot.limits, prot.cost = Limits(), CostModel()
        prot.budgets.clear()
    return prot.describe()


@admin
async def requests_endpoint(request: Request) -> dict | list:
    return log_answer(request, simulator_of(request).requests, service=request.query_params.get("service"))


#: ``/_sim/settings``: every stored simulator setting, its JSON type, range and default — the
#: one place a setting is declared (plus ``ADMIN_SETTINGS`` of simulator modules, see
#: :func:`settings_table`).
SETTINGS: dict[str, Field] = {
    "invoice_create_action": Field("text", nonempty=True, max_length=128, default=DEFAULT_CREATE_ACTION),
    "invoice_confirm_action": Field("text", nonempty=True, max_length=128, default=DEFAULT_CONFIRM_ACTION),
    "bulk_action_sets": Field(
        "texts", choices=tuple(DATAVERSE), sort=True, default=lambda conn: sorted(dataverse_settings(conn)["bulk_sets"])
    ),
    "token_lifetime": Int(minimum=1, maximum=30 * 86_400, default=auth.DEFAULT_TOKEN_LIFETIME),
    "fno_default_company": Text(nonempty=True, max_length=10, default=DEFAULT_COMPANY),
    # Read by cutover.sim.jobs: invoice create/confirm run that many seconds later (0: at once).
    "background_delay_s": Number(minimum=0, maximum=3600, default=0),
}


def settings_table() -> dict[str, Field]:
    """:data:`SETTINGS` plus the ``ADMIN_SETTINGS`` every loaded ``cutover.sim`` module declares."""
    table = dict(SETTINGS)
    for name, module in list(sys.modules.items()):
        if name.startswith("cutover.sim.") and isinstance(extra := getattr(module, "ADMIN_SETTINGS", None), Mapping):
            table.update(extra)
    return table


@admin
async def settings_endpoint(request: Request) -> dict:
    conn = conn_of(request)
    table = settings_table()
    if request.method == "PUT":
        body = validate(await json_body(request), table, "setting")
        for k, v in body.items():
            set_setting(conn, k, v)
    return {name: field.read(conn, name) for name, field in table.items()}


IDENTITY: dict[str, Field] = {
    "client_id": Text(nonempty=True, max_length=200),
    "client_secret": Text(nonempty=True, max_length=500),
    "display_name": Text(nonempty=True, max_length=200),
    "can_write": Bool(),
    "secret_expired": Bool(),
}


@admin
async def identities_endpoint(request: Request) -> list:
    conn = conn_of(request)
    if request.method == "POST":
        body = validate(await json_body(request), IDENTITY)
        require(body, "client_id", "client_secret")
        auth.add_identity(
            conn,
            body["client_id"],
            body["client_secret"],
            body.get("display_name", body["client_id"]),
            body.get("can_write", True),
        )
        conn.execute(
            "UPDATE sim_identities SET secret_expired = ? WHERE client_id = ?",
            (int(body.get("secret_expired", False)), body["client_id"]),
        )
    return auth.list_identities(conn)


ROUTES = [
    Route("/", index),
    Route("/_sim/", summary),
    Route("/_sim/maps", maps_list),
    Route("/_sim/maps/events", map_events),
    Route("/_sim/maps/{name}", map_get),
    Route("/_sim/maps/{name}/{op}", map_operation, methods=["POST"]),
    Route("/_sim/fno/generate-mapping", generate_mapping, methods=["POST"]),
    Route(
        "/_sim/maintenance",
        setting_endpoint("maintenance_mode", "enabled", Bool(default=False)),
        methods=["GET", "PUT"],
    ),
    Route(
        "/_sim/version",
        setting_endpoint("fno_version", "version", Text(nonempty=True, max_length=32, default=DEFAULT_FNO_VERSION)),
        methods=["GET", "PUT"],
    ),
    Route("/_sim/faults", faults_endpoint, methods=["GET", "PUT", "DELETE"]),
    Route("/_sim/protection", protection_endpoint, methods=["GET", "PUT", "DELETE"]),
    Route("/_sim/requests", requests_endpoint, methods=["GET", "DELETE"]),
    Route("/_sim/settings", settings_endpoint, methods=["GET", "PUT"]),
    Route("/_sim/identities", identities_endpoint, methods=["GET", "POST"]),
]
