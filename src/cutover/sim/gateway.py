"""The simulator's door, and the request gateway of the API surfaces: ``/api/data/v9.2/…``
(Dataverse), ``/data/…`` (Finance and Operations) and ``/Metadata/…`` (F&O's metadata
service); each root also without its trailing slash (the service document).

:class:`Gateway` is the outermost ASGI app. Every HTTP request, on every route, first passes:

1. the **Host check** (:mod:`cutover.sim.hosts`): a ``Host`` that is not a name the
   simulator serves is refused with 421 Misdirected Request (DNS-rebinding protection);
2. the **body cap** (:mod:`cutover.sim.jsonguard`): the body is read once, at most
   64 MiB on the API and 1 MiB elsewhere; past that, 413 (``Content-Length`` is checked
   before anything is read);
3. on the **admin surface** (``/_sim/…`` except the identity platform's protocol endpoints,
   :func:`cutover.sim.identity_platform.is_protocol_path`): the header
   ``X-Cutover-Admin: <admin token>`` (401 when missing or wrong, compared in constant time),
   and ``Content-Type: application/json`` on every POST, PUT, PATCH and DELETE and on any
   request with a body (415 otherwise) — a web page's HTML form can set neither, and a
   cross-origin ``fetch`` that sets them needs a CORS preflight the simulator never grants.

Refusals come in Dataverse's error shape (F&O's on ``/data/…``). API paths then go to
:func:`api_endpoint`, which writes its own response (so a fault can cut the connection
mid-answer), everything else to the Starlette app behind it (admin API, identity platform).

Every API request passes, in order: bearer-token check (401; a token for another audience is
401 ``error="invalid_token"``), the JSON depth guard (400), injected faults, service
protection admission (429 + Retry-After), the service itself inside a SAVEPOINT, then the
cost model (charged to the caller's budget, optionally slept), and the request log.

Links in answers start with the configured service root (:meth:`HostPolicy.root`), never
with the request's ``Host``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import uuid

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from . import auth, errors, identity_platform, jsonguard
from .batch import parse_media_type
from .errors import SimError, SimulatedDrop
from .hosts import REHEARSAL_RESOURCE
from .messages import SimRequest, SimResponse
from .simulator import Simulator

DATAVERSE_ROOT = "/api/data/v9.2/"
FNO_ROOT = "/data/"
FNO_METADATA_ROOT = "/Metadata/"  # F&O's metadata service (DataEntities, PublicEntities)
TOKEN_PATH = "/_sim/token"
ADMIN_ROOT = "/_sim"
ADMIN_HEADER = "X-Cutover-Admin"
JSON_HEADERS = {"Content-Type": "application/json"}
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
logger = logging.getLogger("cutover.sim")


def api_root(path: str) -> tuple[str, str] | None:
    """``(service, root)`` of an API path — root one of :data:`DATAVERSE_ROOT`,
    :data:`FNO_ROOT`, :data:`FNO_METADATA_ROOT` — or None. A root without its trailing slash
    (``/data``) is the service document, as with the slash."""
    for service, root in (("dataverse", DATAVERSE_ROOT), ("fno", FNO_ROOT), ("fno", FNO_METADATA_ROOT)):
        if path.startswith(root) or path == root[:-1]:
            return service, root
    return None


def is_api_path(path: str) -> bool:
    return api_root(path) is not None


def service_of(path: str) -> str | None:
    """ "dataverse", "fno", or None (not an API path)."""
    found = api_root(path)
    return found[0] if found else None


def is_admin_path(path: str) -> bool:
    """Whether ``path`` is on the admin surface (needs the admin token)."""
    return (path == ADMIN_ROOT or path.startswith(ADMIN_ROOT + "/")) and not identity_platform.is_protocol_path(path)


def _quoted(text: str) -> str:
    """``text`` made safe inside a quoted header parameter."""
    return "".join(c if c.isprintable() and c not in '"\\' else "?" for c in text)


def _unauthorized(base: str, error_description: str | None = None) -> Response:
    challenge = f"Bearer authorization_uri={base}{TOKEN_PATH}, resource_id={base}/"
    if error_description is not None:
        challenge = f'Bearer error="invalid_token", error_description="{_quoted(error_description)}", ' + challenge[7:]
    return Response(b"", status_code=401, headers={"WWW-Authenticate": challenge})


def _header(scope, name: bytes) -> bytes | None:
    for k, v in scope.get("headers") or ():
        if k.lower() == name:
            return v
    return None


async def _refuse(send, service: str | None, exc: SimError) -> None:
    """A refusal at the door, in the service's error shape (Dataverse's off the API)."""
    body = exc.body_for(service or "dataverse")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers.items()]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_body(scope, receive, limit: int) -> bytes:
    """The whole request body, at most ``limit`` bytes: a :class:`~cutover.sim.jsonguard.JsonRefused`
    (413) past it — from ``Content-Length`` before reading, else as soon as the count passes."""
    declared = _header(scope, b"content-length")
    if declared is not None:
        text = declared.decode("latin-1").strip()
        if not text.isdigit():
            raise jsonguard.JsonRefused(400, f"Content-Length '{_quoted(text)}' is not a number of bytes.")
        if int(text) > limit:
            raise jsonguard.too_large(int(text), limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionAbortedError("the client went away while sending its request")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise jsonguard.too_large(None, limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive):
    """A ``receive`` that hands out the already-read body, then defers to the real one."""
    done = False

    async def replay():
        nonlocal done
        if not done:
            done = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _admin_refusal(scope, body: bytes, sim: Simulator) -> SimError | None:
    """Why an admin request may not pass (None when it may): the token, then the media type."""
    given = _header(scope, ADMIN_HEADER.lower().encode())
    if given is None:
        return SimError(
            401,
            errors.PRIVILEGE_DENIED,
            f"The rehearsal admin surface needs the header {ADMIN_HEADER}: <admin token> (the token "
            "`python -m cutover.sim serve` prints and stores beside the database).",
        )
    if not hmac.compare_digest(given.strip(), sim.admin_token.encode()):
        return SimError(
            401, errors.PRIVILEGE_DENIED, f"The {ADMIN_HEADER} header does not carry this simulator's admin token."
        )
    if scope["method"] in BODY_METHODS or body:
        raw = _header(scope, b"content-type")
        media, _ = parse_media_type(raw.decode("latin-1") if raw else "")
        if media != "application/json":
            shown = f"'{_quoted(raw.decode('latin-1'))}'" if raw else "none"
            return SimError(
                415,
                errors.BAD_PAYLOAD,
                f"The rehearsal admin surface takes Content-Type: application/json on {scope['method']} "
                f"(and on any request with a body); this request has {shown}.",
            )
    return None


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
    service, root = api_root(path) or ("fno", FNO_ROOT)
    base = sim.hosts.root(scope)  # configured, never the request's Host
    full = path + (f"?{request.url.query}" if request.url.query else "")
    body = await request.body()
    claims = auth.token_claims(sim.conn, request.headers.get("authorization"))
    identity = auth.identity_of(sim.conn, claims) if claims is not None else None
    if identity is None:
        sim.record(service=service, method=request.method, path=full, status=401, client_id=None, records=0, fault=None)
        await _unauthorized(base)(scope, receive, send)
        return
    audience = str(claims.get("aud", ""))
    if not sim.hosts.is_own_resource(audience, scope):
        sim.record(
            service=service,
            method=request.method,
            path=full,
            status=401,
            client_id=identity.client_id,
            records=0,
            fault=None,
        )
        description = (
            f"The access token's audience '{audience}' is not this service; request a token for "
            f"{sim.hosts.root(scope)}/.default or {REHEARSAL_RESOURCE}/.default."
        )
        await _unauthorized(base, description)(scope, receive, send)
        return
    media, _ = parse_media_type(request.headers.get("content-type", ""))
    if body and not media.startswith("multipart/"):  # a $batch's parts are checked by its codec
        try:
            jsonguard.check_depth(body)
        except jsonguard.JsonRefused as refusal:
            sim.record(
                service=service,
                method=request.method,
                path=full,
                status=400,
                client_id=identity.client_id,
                records=0,
                fault=None,
            )
            await _refusal(service, SimError(400, errors.BAD_PAYLOAD, refusal.message))(scope, receive, send)
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
        request.method,
        path[len(root) :] if path.startswith(root) else "",
        list(request.query_params.multi_items()),
        headers,
        body,
        base + root,
    )
    cost = 0.0
    try:
        try:
            if service == "dataverse":
                result: SimResponse = sim.dataverse.handle(sim_request, identity)
            else:
                result = (sim.fno.handle_metadata if root == FNO_METADATA_ROOT else sim.fno.handle)(
                    sim_request, identity
                )
        except RecursionError:  # a body or query nested past what the simulator can read: the client's fault
            err = SimError(400, errors.BAD_PAYLOAD, "The request nests too deeply for the service to read it.")
            result = SimResponse(400, err.body_for(service), {**JSON_HEADERS, "OData-Version": "4.0"})
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
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sim: Simulator = self.app.state.sim
        path = scope["path"]
        service = service_of(path)
        host = _header(scope, b"host")
        host_text = host.decode("latin-1") if host is not None else ""
        if not sim.hosts.allows(host_text):
            shown = f"'{_quoted(host_text)}'" if host is not None else "missing"
            await _refuse(
                send,
                service,
                SimError(
                    421,
                    errors.INVALID_ARGUMENT,
                    f"Host {shown} is not a name this simulator serves; it answers to "
                    f"{', '.join(sim.hosts.allowed_hosts)} (DNS-rebinding protection). Use {sim.hosts.root(scope)}.",
                ),
            )
            return
        try:
            body = await read_body(scope, receive, jsonguard.API_BODY_LIMIT if service else jsonguard.ADMIN_BODY_LIMIT)
        except jsonguard.JsonRefused as refusal:
            code = errors.BAD_PAYLOAD if refusal.status == 413 else errors.INVALID_ARGUMENT
            if service:
                sim.record(
                    service=service,
                    method=scope["method"],
                    path=path,
                    status=refusal.status,
                    client_id=None,
                    records=0,
                    fault=None,
                )
            await _refuse(send, service, SimError(refusal.status, code, refusal.message, {"Connection": "close"}))
            return
        except ConnectionAbortedError:
            return
        receive = _replay(body, receive)
        if service:
            scope["app"] = self.app
            await api_endpoint(scope, receive, send)
            return
        if is_admin_path(path):
            refusal = _admin_refusal(scope, body, sim)
            if refusal is not None:
                await _refuse(send, None, refusal)
                return
        await self.app(scope, receive, send)

    @property
    def state(self):
        return self.app.state
