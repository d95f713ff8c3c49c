"""The request gateway of the API surfaces: ``/api/data/v9.2/…`` (Dataverse) and ``/data/…``
(Finance and Operations).

Every API request passes, in order: bearer-token check (401), injected faults, service
protection admission (429 + Retry-After), the service itself inside a SAVEPOINT, then the
cost model (charged to the caller's budget, optionally slept), and the request log.

:class:`Gateway` is the outermost ASGI app: it sends API paths to :func:`api_endpoint`, which
writes its own response (so a fault can cut the connection mid-answer), and everything else
to the Starlette app behind it (the admin API and the identity platform).
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from . import auth, errors
from .errors import SimError, SimulatedDrop
from .messages import SimRequest, SimResponse
from .simulator import Simulator

DATAVERSE_ROOT = "/api/data/v9.2/"
FNO_ROOT = "/data/"
TOKEN_PATH = "/_sim/token"
JSON_HEADERS = {"Content-Type": "application/json"}
logger = logging.getLogger("cutover.sim")


def is_api_path(path: str) -> bool:
    return path.startswith(DATAVERSE_ROOT) or path.startswith(FNO_ROOT)


def _unauthorized(base: str) -> Response:
    challenge = f"Bearer authorization_uri={base}{TOKEN_PATH}, resource_id={base}/"
    return Response(b"", status_code=401, headers={"WWW-Authenticate": challenge})


def _refusal(service: str, exc: SimError) -> Response:
    """A refusal before the service ran (fault, service protection), in the service's shape."""
    return Response(exc.body_for(service), status_code=exc.status, headers={**exc.headers, **JSON_HEADERS})


async def _drop(send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
        }
    )
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
        await _unauthorized(base)(scope, receive, send)
        return

    faults = sim.protection.faults
    fault = faults.pick(path)
    if faults.latency_ms and faults.applies_to(path):
        await asyncio.sleep(faults.latency_ms / 1000)
    log = dict(
        service=service,
        method=request.method,
        path=full,
        client_id=identity.client_id,
        fault=None if fault == "ok" else fault,
    )
    if fault == "429":
        sim.record(**log, status=429, records=0)
        refusal = errors.throttled(
            errors.REQUESTS_LIMIT,
            "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
            faults.retry_after,
        )
        await _refusal(service, refusal)(scope, receive, send)
        return
    if fault == "5xx":
        sim.record(**log, status=faults.error_status, records=0)
        refusal = SimError(
            faults.error_status,
            errors.UNEXPECTED,
            "The service is temporarily unavailable (simulated fault). Retry the request.",
        )
        await _refusal(service, refusal)(scope, receive, send)
        return
    if fault == "drop":
        sim.record(**log, status=0, records=0)
        await _drop(send)

    prot = sim.protection
    budget = prot.budget(service, identity.client_id)
    if prot.limits.enabled:
        try:
            budget.admit(prot.limits, prot.clock())
        except SimError as refusal:
            sim.record(**log, status=refusal.status, records=0, throttled=refusal.code)
            await _refusal(service, refusal)(scope, receive, send)
            return
    else:
        budget.concurrent += 1

    headers: dict[str, str] = {}
    for k, v in request.headers.items():  # a repeated header is one comma-separated list (RFC 9110 §5.3)
        k = k.lower()
        headers[k] = f"{headers[k]}, {v}" if k in headers else v
    sim_request = SimRequest(
        request.method, path[len(root) :], list(request.query_params.multi_items()), headers, body, base + root
    )
    cost = 0.0
    try:
        try:
            if service == "dataverse":
                result: SimResponse = sim.dataverse.handle(sim_request, identity)
            else:
                result = sim.fno.handle(sim_request)
        except Exception as exc:  # a simulator defect: answer as the real service would, and say so
            logger.exception("simulator error on %s %s", request.method, full)
            err = SimError(
                500,
                errors.UNEXPECTED,
                f"An unexpected error occurred in the simulator ({type(exc).__name__}: {exc}). This is a simulator defect; the change was rolled back.",
            )
            result = SimResponse(500, err.body_for(service), {**JSON_HEADERS, "OData-Version": "4.0"})
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
        sim.record(
            service=service,
            method=method,
            path=inner_path,
            status=status,
            client_id=identity.client_id,
            records=0,
            fault=None,
            batch=entry["seq"],
        )
    if fault == "drop-after":
        await _drop(send)
    headers = dict(result.headers)
    headers["x-ms-service-request-id"] = str(uuid.uuid4())
    if service == "dataverse":
        headers["x-ms-dop-hint"] = str(prot.dop_hint())
    await Response(result.body, status_code=result.status, headers=headers)(scope, receive, send)


class Gateway:
    """ASGI wrapper so API routes stream their own responses (and can drop connections)."""

    def __init__(self, app: Starlette):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and is_api_path(scope["path"]):
            scope["app"] = self.app
            await api_endpoint(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @property
    def state(self):
        return self.app.state
