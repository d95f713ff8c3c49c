"""The simulator as one ASGI application (Starlette) over one SQLite file.

Routes:
  /api/data/v9.2/…  Dataverse Web API subset          (bearer token required)
  /data/…           Finance and Operations OData     (bearer token required)
  /_sim/token       stand-in identity platform (client credentials)
  /_sim/…           rehearsal admin: maps, maintenance, version, faults, limits, request log

Every API request passes, in order: bearer-token check (401), injected faults, service
protection admission (429 + Retry-After), the service itself inside a SAVEPOINT, then the
cost model (charged to the caller's budget, optionally slept), and the request log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
import uuid
from collections import deque
from dataclasses import fields
from pathlib import Path
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import auth, dualwrite, errors
from . import identity_platform
from .dataverse_service import DataverseService
from .errors import SimError
from .fno_service import FnoService
from .messages import SimRequest, SimResponse
from .protection import CostModel, Faults, Limits, Protection, Throttled
from .store import connect, get_setting, set_setting

DATAVERSE_ROOT = "/api/data/v9.2/"
FNO_ROOT = "/data/"
REQUEST_LOG_LIMIT = 200_000
logger = logging.getLogger("cutover.sim")
DEFAULT_FNO_VERSION = "10.0.40"


class SimulatedDrop(ConnectionResetError):
    """Raised to cut a connection mid-response (fault injection)."""


class Simulator:
    """State of one running simulator: its database, services, knobs and request log."""

    def __init__(self, conn: sqlite3.Connection, limits: Limits | None = None):
        self.conn = conn
        auth.ensure_identities(conn)
        dualwrite.install_maps(conn)
        self.dataverse = DataverseService(conn)
        self.fno = FnoService(conn)
        self.protection = Protection(limits)
        self.log: deque[dict] = deque(maxlen=REQUEST_LOG_LIMIT)
        self.seq = 0

    def record(self, **entry) -> dict:
        self.seq += 1
        entry = {"seq": self.seq, "at": time.time(), **entry}
        self.log.append(entry)
        return entry


def _error(status: int, message: str, code: str = errors.INVALID_ARGUMENT) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _sim(request: Request) -> Simulator:
    return request.app.state.sim


# --- API gateway ------------------------------------------------------------------------------


def _unauthorized(service: str, base: str) -> Response:
    challenge = f'Bearer authorization_uri={base}/_sim/token, resource_id={base}/'
    return Response(b"", status_code=401, headers={"WWW-Authenticate": challenge})


def _throttle_response(service: str, code: str, message: str, retry_after: int) -> Response:
    exc = SimError(429, code, message)
    body = exc.dataverse_body() if service == "dataverse" else exc.fno_body()
    return Response(body, status_code=429, headers={"Retry-After": str(retry_after), "Content-Type": "application/json"})


async def _drop(send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")]})
    await send({"type": "http.response.body", "body": b'{"value":[', "more_body": True})
    raise SimulatedDrop("simulated dropped connection")


async def api_endpoint(scope, receive, send) -> None:
    request = Request(scope, receive)
    sim: Simulator = request.app.state.sim
    path = request.url.path
    service, root = ("dataverse", DATAVERSE_ROOT) if path.startswith(DATAVERSE_ROOT) else ("fno", FNO_ROOT)
    base = f"{request.url.scheme}://{request.url.netloc}"
    full = path + (f"?{request.url.query}" if request.url.query else "")
    body = await request.body()
    identity = auth.verify_token(sim.conn, request.headers.get("authorization"))
    if identity is None:
        sim.record(service=service, method=request.method, path=full, status=401, client_id=None, records=0, fault=None)
        await _unauthorized(service, base)(scope, receive, send)
        return

    faults = sim.protection.faults
    fault = faults.pick(path)
    if faults.latency_ms and faults.applies_to(path):
        await asyncio.sleep(faults.latency_ms / 1000)
    log = dict(service=service, method=request.method, path=full, client_id=identity.client_id, fault=None if fault == "ok" else fault)
    if fault == "429":
        sim.record(**log, status=429, records=0)
        await _throttle_response(service, errors.REQUESTS_LIMIT, "Number of requests exceeded the limit of 6000 over time window of 300 seconds.", faults.retry_after)(scope, receive, send)
        return
    if fault == "5xx":
        sim.record(**log, status=faults.error_status, records=0)
        exc = SimError(faults.error_status, errors.UNEXPECTED, "The service is temporarily unavailable (simulated fault). Retry the request.")
        await Response(exc.dataverse_body() if service == "dataverse" else exc.fno_body(), status_code=faults.error_status, headers={"Content-Type": "application/json"})(scope, receive, send)
        return
    if fault == "drop":
        sim.record(**log, status=0, records=0)
        await _drop(send)

    prot = sim.protection
    budget = prot.budget(service, identity.client_id)
    if prot.limits.enabled:
        try:
            budget.admit(prot.limits, prot.clock())
        except Throttled as t:
            sim.record(**log, status=429, records=0, throttled=t.code)
            await _throttle_response(service, t.code, t.message, t.retry_after)(scope, receive, send)
            return
    else:
        budget.concurrent += 1

    headers: dict[str, str] = {}
    for k, v in request.headers.items():  # a repeated header is one comma-separated list (RFC 9110 §5.3)
        k = k.lower()
        headers[k] = f"{headers[k]}, {v}" if k in headers else v
    sim_request = SimRequest(request.method, path[len(root):], list(request.query_params.multi_items()), headers, body, base + root)
    cost = 0.0
    try:
        try:
            if service == "dataverse":
                result: SimResponse = sim.dataverse.handle(sim_request, identity)
            else:
                result = sim.fno.handle(sim_request)
        except Exception as exc:  # a simulator defect: answer as the real service would, and say so
            logger.exception("simulator error on %s %s", request.method, full)
            err = SimError(500, errors.UNEXPECTED, f"An unexpected error occurred in the simulator ({type(exc).__name__}: {exc}). This is a simulator defect; the change was rolled back.")
            result = SimResponse(500, err.dataverse_body() if service == "dataverse" else err.fno_body(), {"Content-Type": "application/json", "OData-Version": "4.0"})
        cost = prot.cost.cost(result.writes, result.records)
        if result.inner_requests > 1:
            cost += prot.cost.read_base * (result.inner_requests - 1)
        if prot.cost.latency_factor:
            await asyncio.sleep(cost * prot.cost.latency_factor)
    finally:
        budget.finish(prot.clock(), cost)
    if result.inner_requests > 1:
        now = prot.clock()
        budget.starts.extend([now] * (result.inner_requests - 1))
    entry = sim.record(**log, status=result.status, records=result.records)
    for method, inner_path, status in result.inner_log:
        sim.record(service=service, method=method, path=inner_path, status=status, client_id=identity.client_id, records=0, fault=None, batch=entry["seq"])
    if fault == "drop-after":
        await _drop(send)
    headers = dict(result.headers)
    headers["x-ms-service-request-id"] = str(uuid.uuid4())
    if service == "dataverse":
        headers["x-ms-dop-hint"] = str(prot.dop_hint())
    await Response(result.body, status_code=result.status, headers=headers)(scope, receive, send)


# --- identity -----------------------------------------------------------------------------------


async def token_endpoint(request: Request) -> JSONResponse:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return JSONResponse({"error": "invalid_request", "error_description": "AADSTS900144: The request body must be application/x-www-form-urlencoded."}, status_code=400)
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
    try:
        return JSONResponse(auth.issue_token(_sim(request).conn, form))
    except auth.TokenError as exc:
        return JSONResponse(exc.body(), status_code=exc.status)


# --- admin surface ---------------------------------------------------------------------------


async def _json_body(request: Request) -> dict:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise SimError(400, errors.BAD_PAYLOAD, f"Request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SimError(400, errors.BAD_PAYLOAD, "Request body must be a JSON object.")
    return data


def admin(handler):
    async def wrapped(request: Request) -> Response:
        try:
            result = await handler(request)
        except SimError as exc:
            return _error(exc.status, exc.message, exc.code)
        except (TypeError, ValueError) as exc:
            return _error(400, str(exc))
        return result if isinstance(result, Response) else JSONResponse(result)

    return wrapped


@admin
async def summary(request: Request) -> dict:
    sim = _sim(request)
    from .schema import ALL_SETS

    counts = {s.name: sim.conn.execute(f'SELECT count(*) FROM "{s.table}"').fetchone()[0] for s in ALL_SETS}
    return {
        "organization_id": get_setting(sim.conn, "organization_id"),
        "seed": get_setting(sim.conn, "seed"),
        "scale": get_setting(sim.conn, "scale"),
        "world_date": get_setting(sim.conn, "world_date"),
        "maintenance_mode": bool(get_setting(sim.conn, "maintenance_mode", False)),
        "fno_version": get_setting(sim.conn, "fno_version", DEFAULT_FNO_VERSION),
        "maps": {m["name"]: {"state": m["state"], "active_version": m["active_version"]} for m in dualwrite.list_maps(sim.conn)},
        "counts": counts,
        "endpoints": {"dataverse": DATAVERSE_ROOT, "fno": FNO_ROOT, "token": "/_sim/token"},
    }


@admin
async def maps_list(request: Request) -> list:
    return dualwrite.list_maps(_sim(request).conn)


@admin
async def map_get(request: Request) -> dict:
    conn = _sim(request).conn
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
    conn = _sim(request).conn
    name, op = request.path_params["name"], request.path_params["op"]
    body = await _json_body(request)
    conn.execute("BEGIN IMMEDIATE")
    try:
        if op in MAP_OPERATIONS:
            result = MAP_OPERATIONS[op](conn, name)
        elif op == "save-as":
            result = dualwrite.save_as(
                conn, name, version=str(body.get("version", "")), description=str(body.get("description", "")),
                publisher=str(body.get("publisher", "Default publisher")), add_mappings=body.get("add_mappings"),
            )
        elif op == "version":
            result = dualwrite.select_version(conn, name, str(body.get("version", "")))
        else:
            raise SimError(404, errors.ODATA_URI_ERROR, f"Unknown map operation '{op}'. Use stop, start, pause, resume, refresh-tables, save-as or version.")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


@admin
async def map_events(request: Request) -> list:
    return dualwrite.events(_sim(request).conn, int(request.query_params.get("since", 0)))


@admin
async def generate_mapping(request: Request) -> dict:
    conn = _sim(request).conn
    body = await _json_body(request)
    entity = body.get("entity") or "Project Operations integration contract line milestones"
    done = get_setting(conn, "fno_generated_mappings", {})
    done[entity] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    set_setting(conn, "fno_generated_mappings", done)
    return {"generated_mappings": done}


def _setting_endpoint(key: str, field: str, default, cast):
    @admin
    async def endpoint(request: Request) -> dict:
        conn = _sim(request).conn
        if request.method == "PUT":
            body = await _json_body(request)
            if field not in body:
                raise SimError(400, errors.INVALID_ARGUMENT, f"Send {{\"{field}\": …}}.")
            set_setting(conn, key, cast(body[field]))
        return {field: get_setting(conn, key, default)}

    return endpoint


def _update_dataclass(obj, body: dict) -> None:
    names = {f.name for f in fields(obj)}
    unknown = set(body) - names
    if unknown:
        raise SimError(400, errors.INVALID_ARGUMENT, f"Unknown setting(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}.")
    for k, v in body.items():
        setattr(obj, k, type(getattr(obj, k))(v) if not isinstance(getattr(obj, k), list) else list(v))


@admin
async def faults_endpoint(request: Request) -> dict:
    prot = _sim(request).protection
    if request.method == "PUT":
        body = await _json_body(request)
        current = prot.faults.to_dict()
        names = set(current)
        unknown = set(body) - names
        if unknown:
            raise SimError(400, errors.INVALID_ARGUMENT, f"Unknown fault setting(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}.")
        prot.faults = Faults(**{**Faults().to_dict(), **body})
    elif request.method == "DELETE":
        prot.faults = Faults()
    return prot.faults.to_dict()


@admin
async def protection_endpoint(request: Request) -> dict:
    prot = _sim(request).protection
    if request.method == "PUT":
        body = await _json_body(request)
        if "scale" in body:
            prot.limits = Limits.scaled(float(body.pop("scale")))
        _update_dataclass(prot.limits, body.pop("limits", {}) if "limits" in body else {k: body.pop(k) for k in list(body) if k in {f.name for f in fields(Limits)}})
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
    sim = _sim(request)
    if request.method == "DELETE":
        sim.log.clear()
        return {"cleared": True, "next_seq": sim.seq + 1}
    since = int(request.query_params.get("since", 0))
    service = request.query_params.get("service")
    return [e for e in sim.log if e["seq"] > since and (service is None or e["service"] == service)]


@admin
async def settings_endpoint(request: Request) -> dict:
    conn = _sim(request).conn
    keys = {
        "invoice_create_action": str, "invoice_confirm_action": str, "bulk_action_sets": list,
        "token_lifetime": int, "fno_default_company": str,
    }
    if request.method == "PUT":
        body = await _json_body(request)
        unknown = set(body) - set(keys)
        if unknown:
            raise SimError(400, errors.INVALID_ARGUMENT, f"Unknown setting(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(keys))}.")
        for k, v in body.items():
            set_setting(conn, k, keys[k](v))
    from .dataverse_service import settings

    s = settings(conn)
    return {
        "invoice_create_action": s["create_action"], "invoice_confirm_action": s["confirm_action"],
        "bulk_action_sets": sorted(s["bulk_sets"]), "token_lifetime": get_setting(conn, "token_lifetime", auth.DEFAULT_TOKEN_LIFETIME),
        "fno_default_company": get_setting(conn, "fno_default_company", "usmf"),
    }


@admin
async def identities_endpoint(request: Request) -> list:
    conn = _sim(request).conn
    if request.method == "POST":
        body = await _json_body(request)
        if not body.get("client_id") or not body.get("client_secret"):
            raise SimError(400, errors.INVALID_ARGUMENT, "An identity needs client_id and client_secret.")
        auth.add_identity(conn, body["client_id"], body["client_secret"], body.get("display_name", body["client_id"]), bool(body.get("can_write", True)))
        conn.execute("UPDATE sim_identities SET secret_expired = ? WHERE client_id = ?", (int(bool(body.get("secret_expired", False))), body["client_id"]))
    return auth.list_identities(conn)


async def index(request: Request) -> JSONResponse:
    return JSONResponse({
        "service": "cutover rehearsal simulator",
        "dataverse": DATAVERSE_ROOT, "fno": FNO_ROOT, "token": "/_sim/token", "admin": "/_sim/",
    })


class _Gateway:
    """ASGI wrapper so API routes stream their own responses (and can drop connections)."""

    def __init__(self, app: Starlette):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and (scope["path"].startswith(DATAVERSE_ROOT) or scope["path"].startswith(FNO_ROOT)):
            scope["app"] = self.app
            await api_endpoint(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @property
    def state(self):
        return self.app.state


def create_app(db: str | Path | sqlite3.Connection, limits: Limits | None = None) -> _Gateway:
    """Build the simulator over a database file (or an open connection)."""
    conn = db if isinstance(db, sqlite3.Connection) else connect(db)
    routes = [
        Route("/", index),
        Route("/_sim/", summary),
        Route("/_sim/token", token_endpoint, methods=["POST"]),
        Route("/_sim/maps", maps_list),
        Route("/_sim/maps/events", map_events),
        Route("/_sim/maps/{name}", map_get),
        Route("/_sim/maps/{name}/{op}", map_operation, methods=["POST"]),
        Route("/_sim/fno/generate-mapping", generate_mapping, methods=["POST"]),
        Route("/_sim/maintenance", _setting_endpoint("maintenance_mode", "enabled", False, bool), methods=["GET", "PUT"]),
        Route("/_sim/version", _setting_endpoint("fno_version", "version", DEFAULT_FNO_VERSION, str), methods=["GET", "PUT"]),
        Route("/_sim/faults", faults_endpoint, methods=["GET", "PUT", "DELETE"]),
        Route("/_sim/protection", protection_endpoint, methods=["GET", "PUT", "DELETE"]),
        Route("/_sim/requests", requests_endpoint, methods=["GET", "DELETE"]),
        Route("/_sim/settings", settings_endpoint, methods=["GET", "PUT"]),
        Route("/_sim/identities", identities_endpoint, methods=["GET", "POST"]),
        # stand-ins for login.microsoftonline.com (see sim/identity_platform.py)
        Route("/_sim/login/approve", identity_platform.approve, methods=["POST"]),
        Route("/_sim/login/device-codes", identity_platform.device_codes, methods=["GET"]),
        Route("/_sim/login/certificates", identity_platform.certificates, methods=["GET", "POST"]),
        Route("/_sim/login/revoke", identity_platform.revoke, methods=["POST"]),
        Route("/_sim/login/settings", identity_platform.settings_endpoint, methods=["GET", "PUT"]),
        Route("/_sim/login/requests", identity_platform.requests_endpoint, methods=["GET", "DELETE"]),
        Route("/_sim/login/{tenant}/v2.0/.well-known/openid-configuration", identity_platform.openid_configuration, methods=["GET"]),
        Route("/_sim/login/{tenant}/discovery/instance", identity_platform.instance_discovery, methods=["GET"]),
        Route("/_sim/login/{tenant}/oauth2/v2.0/devicecode", identity_platform.devicecode, methods=["POST"]),
        Route("/_sim/login/{tenant}/oauth2/v2.0/token", identity_platform.token, methods=["POST"]),
        Route("/_sim/login/{tenant}/oauth2/v2.0/authorize", identity_platform.authorize, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.sim = Simulator(conn, limits)
    return _Gateway(app)

