"""The rehearsal admin API, ``/_sim/…`` (no token): summary, dual-write maps, F&O mapping
generation, maintenance mode, F&O version, injected faults, service-protection limits, the
API request log, simulator settings and identities.

Every endpoint is an :func:`cutover.sim.adminkit.admin` endpoint: JSON in, JSON out, refusals
in Dataverse's error shape. :data:`ROUTES` is what :func:`cutover.sim.app.create_app` mounts.
"""

from __future__ import annotations

import time
from dataclasses import fields

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from . import auth, dualwrite, errors
from .adminkit import admin, conn_of, json_body, log_answer, query_int, reject_unknown, simulator_of
from .dataverse_service import settings as dataverse_settings
from .errors import SimError
from .fno_service import DEFAULT_COMPANY
from .gateway import DATAVERSE_ROOT, FNO_ROOT, TOKEN_PATH
from .protection import CostModel, Faults, Limits
from .schema import ALL_SETS
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
    body = await json_body(request)
    conn.execute("BEGIN IMMEDIATE")
    try:
        if op in MAP_OPERATIONS:
            result = MAP_OPERATIONS[op](conn, name)
        elif op == "save-as":
            result = dualwrite.save_as(
                conn,
                name,
                version=str(body.get("version", "")),
                description=str(body.get("description", "")),
                publisher=str(body.get("publisher", "Default publisher")),
                add_mappings=body.get("add_mappings"),
            )
        elif op == "version":
            result = dualwrite.select_version(conn, name, str(body.get("version", "")))
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
    body = await json_body(request)
    entity = body.get("entity") or "Project Operations integration contract line milestones"
    done = get_setting(conn, "fno_generated_mappings", {})
    done[entity] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    set_setting(conn, "fno_generated_mappings", done)
    return {"generated_mappings": done}


# --- settings, faults, limits ----------------------------------------------------------------


def setting_endpoint(key: str, field: str, default, cast):
    """``GET`` / ``PUT {"<field>": …}`` of one stored setting."""

    @admin
    async def endpoint(request: Request) -> dict:
        conn = conn_of(request)
        if request.method == "PUT":
            body = await json_body(request)
            if field not in body:
                raise SimError(400, errors.INVALID_ARGUMENT, f'Send {{"{field}": …}}.')
            set_setting(conn, key, cast(body[field]))
        return {field: get_setting(conn, key, default)}

    return endpoint


def _update_dataclass(obj, body: dict) -> None:
    reject_unknown(body, {f.name for f in fields(obj)})
    for k, v in body.items():
        setattr(obj, k, type(getattr(obj, k))(v) if not isinstance(getattr(obj, k), list) else list(v))


@admin
async def faults_endpoint(request: Request) -> dict:
    prot = simulator_of(request).protection
    if request.method == "PUT":
        body = await json_body(request)
        reject_unknown(body, prot.faults.to_dict(), "fault setting")
        prot.faults = Faults(**{**Faults().to_dict(), **body})
    elif request.method == "DELETE":
        prot.faults = Faults()
    return prot.faults.to_dict()


@admin
async def protection_endpoint(request: Request) -> dict:
    prot = simulator_of(request).protection
    if request.method == "PUT":
        body = await json_body(request)
        if "scale" in body:
            prot.limits = Limits.scaled(float(body.pop("scale")))
        limit_names = {f.name for f in fields(Limits)}
        _update_dataclass(
            prot.limits,
            body.pop("limits", {}) if "limits" in body else {k: body.pop(k) for k in list(body) if k in limit_names},
        )
        _update_dataclass(prot.cost, body.pop("cost", {}))
        if body:
            raise SimError(400, errors.INVALID_ARGUMENT, f"Unknown setting(s) {', '.join(sorted(body))}.")
        prot.budgets.clear()
    elif request.method == "DELETE":
        prot.limits, prot.cost = Limits(), CostModel()
        prot.budgets.clear()
    return prot.describe()


@admin
async def requests_endpoint(request: Request) -> dict | list:
    return log_answer(request, simulator_of(request).requests, service=request.query_params.get("service"))


SETTING_TYPES = {
    "invoice_create_action": str,
    "invoice_confirm_action": str,
    "bulk_action_sets": list,
    "token_lifetime": int,
    "fno_default_company": str,
}


@admin
async def settings_endpoint(request: Request) -> dict:
    conn = conn_of(request)
    if request.method == "PUT":
        body = await json_body(request)
        reject_unknown(body, SETTING_TYPES)
        for k, v in body.items():
            set_setting(conn, k, SETTING_TYPES[k](v))
    s = dataverse_settings(conn)
    return {
        "invoice_create_action": s["create_action"],
        "invoice_confirm_action": s["confirm_action"],
        "bulk_action_sets": sorted(s["bulk_sets"]),
        "token_lifetime": get_setting(conn, "token_lifetime", auth.DEFAULT_TOKEN_LIFETIME),
        "fno_default_company": get_setting(conn, "fno_default_company", DEFAULT_COMPANY),
    }


@admin
async def identities_endpoint(request: Request) -> list:
    conn = conn_of(request)
    if request.method == "POST":
        body = await json_body(request)
        if not body.get("client_id") or not body.get("client_secret"):
            raise SimError(400, errors.INVALID_ARGUMENT, "An identity needs client_id and client_secret.")
        auth.add_identity(
            conn,
            body["client_id"],
            body["client_secret"],
            body.get("display_name", body["client_id"]),
            bool(body.get("can_write", True)),
        )
        conn.execute(
            "UPDATE sim_identities SET secret_expired = ? WHERE client_id = ?",
            (int(bool(body.get("secret_expired", False))), body["client_id"]),
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
    Route("/_sim/maintenance", setting_endpoint("maintenance_mode", "enabled", False, bool), methods=["GET", "PUT"]),
    Route(
        "/_sim/version", setting_endpoint("fno_version", "version", DEFAULT_FNO_VERSION, str), methods=["GET", "PUT"]
    ),
    Route("/_sim/faults", faults_endpoint, methods=["GET", "PUT", "DELETE"]),
    Route("/_sim/protection", protection_endpoint, methods=["GET", "PUT", "DELETE"]),
    Route("/_sim/requests", requests_endpoint, methods=["GET", "DELETE"]),
    Route("/_sim/settings", settings_endpoint, methods=["GET", "PUT"]),
    Route("/_sim/identities", identities_endpoint, methods=["GET", "POST"]),
]
