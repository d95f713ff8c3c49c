"""Stand-ins for the Microsoft identity platform (``login.microsoftonline.com``), served under
``/_sim/login/…`` so that msal itself runs in every rehearsal and test.

msal insists on an https authority, so a client hands msal an ``http_client`` that rewrites
``https://login.microsoftonline.com/<rest>`` to ``<simulator>/_sim/login/<rest>``. Every URL
this module *publishes* (OpenID discovery document, device-code verification page) is therefore
written as the real ``https://login.microsoftonline.com/…`` URL, exactly as the real service
would, and the rewriting client brings the requests back here.

What is served (documented behaviour of the Microsoft identity platform, v2.0 endpoints):

``POST /_sim/token``
    The simulator's own one-step client-credentials endpoint (form ``grant_type``,
    ``client_id``, ``client_secret``, ``scope``; no tenant), answered with the short OAuth error
    body (``error``, ``error_description``, ``error_codes``). It predates the ``/_sim/login``
    stand-in and checks secrets with the same code (:func:`cutover.sim.auth.issue_token`).

``GET  /_sim/login/{tenant}/v2.0/.well-known/openid-configuration``
    OpenID Connect discovery ("OpenID Connect on the Microsoft identity platform": *Fetch the
    OpenID configuration document*). ``issuer``, ``authorization_endpoint``, ``token_endpoint``,
    ``device_authorization_endpoint`` … carry the tenant id (a GUID). An unknown tenant answers
    400 ``invalid_tenant`` / ``AADSTS90002: Tenant '…' not found``.
``GET  /_sim/login/{tenant}/discovery/instance``
    Instance discovery (msal calls it only for authorities it does not know; clients of this
    simulator pass ``instance_discovery=False``, it is here for completeness).
``POST /_sim/login/{tenant}/oauth2/v2.0/devicecode``
    Device authorization request ("Microsoft identity platform and the OAuth 2.0 device
    authorization grant flow"): form ``client_id``, ``scope`` → ``device_code``, ``user_code``,
    ``verification_uri``, ``expires_in`` (default 900 s = the documented 15 minutes),
    ``interval`` (default 5 s), ``message``.
``POST /_sim/login/{tenant}/oauth2/v2.0/token``
    * ``client_credentials`` ("OAuth 2.0 client credentials flow"): with ``client_secret`` (form
      or HTTP Basic) — checked exactly as ``/_sim/token`` checks it, same AADSTS errors — or
      with a ``client_assertion`` (a JWT signed by a certificate registered on the application:
      header ``x5t#S256`` or ``x5t``, ``aud`` = the token endpoint, ``iss`` = ``sub`` =
      client id; RS256 or PS256, verified with PyJWT/cryptography). The scope must be
      ``<resource>/.default`` (AADSTS1002012 otherwise).
    * ``urn:ietf:params:oauth:grant-type:device_code``: ``authorization_pending`` (AADSTS70016)
      until approved, ``authorization_declined``, ``expired_token`` (AADSTS70020),
      ``bad_verification_code``; once approved: ``access_token`` + ``refresh_token`` +
      ``id_token`` (an HS256 JWT with ``oid``, ``tid``, ``preferred_username`` — msal decodes
      it, without validation, to build the account) + ``client_info`` (base64url JSON
      ``{"uid", "utid"}``, sent when the request carries ``client_info=1`` as msal's does).
    * ``refresh_token``: a new access token for any resource of the same tenant (refresh
      tokens of the identity platform are not bound to one resource), with a rotated refresh
      token. A malformed, foreign or forged refresh token is ``invalid_grant`` AADSTS70000,
      an expired one AADSTS700082, a revoked one AADSTS50173.
    Access tokens are minted by :func:`cutover.sim.auth.mint_access_token`, so the API accepts
    them exactly like ``/_sim/token`` ones. The identity is the client id for application
    flows and the user (e.g. ``operator@contoso.com``, created on first approval, may write)
    for the device code flow.
``GET  /_sim/login/{tenant}/oauth2/v2.0/authorize``
    Interactive (browser) sign-in is not simulated: 400 telling the caller to use device code.

Resources: every token endpoint above refuses a scope whose resource is not this simulator
(its own root under a name it serves and the port it serves, e.g. ``http://127.0.0.1:PORT``,
or the stable rehearsal resource ``https://rehearsal.cutover.local``) with 400
``invalid_resource`` AADSTS500011, as the identity platform answers a resource principal it
does not know — so a profile with a wrong URL fails at sign-in, with a clear message, not at
its first API call. The API checks a token's audience as well (401 ``invalid_token``).

Admin surface (the admin token in ``X-Cutover-Admin`` and ``Content-Type: application/json``,
like the rest of ``/_sim/``, checked by :class:`cutover.sim.gateway.Gateway`; bodies, answers
and refusals as every admin endpoint's, see :mod:`cutover.sim.adminkit`). The protocol
endpoints above need no admin token (:func:`is_protocol_path`):

``POST /_sim/login/approve`` ``{"user_code", "user": "operator@contoso.com", "deny": false,
"can_write": true}``
    The operator signs in on their phone: approves (or declines) a pending device code.
``GET  /_sim/login/device-codes``   pending device codes (user code, client id, scope, seconds left).
``GET|POST /_sim/login/certificates`` ``{"client_id", "certificate": "<PEM>"}``
    Register a certificate's public part on an application (as "Certificates & secrets" does).
``POST /_sim/login/revoke`` ``{"user": …}``  revokes every refresh token issued to the user so far.
``GET|PUT /_sim/login/settings`` ``tenants``, ``device_code_lifetime``,
    ``device_code_interval``, ``refresh_token_lifetime``.
``GET|DELETE /_sim/login/requests``
    The identity platform's own request log (endpoint, grant type, client id, status, error
    code; never a secret or token). Kept apart from ``/_sim/requests`` so that the API request
    log still shows only Dataverse and F&O traffic.

Tenants: by default the simulator knows exactly one tenant, ``contoso.onmicrosoft.com``, whose
id is :data:`DEFAULT_TENANT_ID` (``uuid5`` of the domain, so the same for every seed). It
answers to either its domain or its id, and ``common`` / ``organizations`` resolve to it.
``PUT /_sim/login/settings {"tenants": [{"id": …, "domain": …}, …]}`` replaces the list.

This module imports nothing from ``cutover`` outside ``cutover.sim``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import secrets
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote_plus

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from . import auth, errors
from .adminkit import (
    Bool,
    Field,
    Int,
    Objects,
    Text,
    admin,
    conn_of,
    json_body,
    log_answer,
    require,
    simulator_of,
    validate,
)
from .errors import AUTHORITY_HOST, OAuthError, SimError
from .simulator import RequestLog
from .store import get_setting, set_setting

TENANT_NAMESPACE = uuid.UUID("0b5c3f0e-6f0d-4d1c-8a53-3a4f3e0c7d21")
DEFAULT_TENANT_DOMAIN = "contoso.onmicrosoft.com"
DEFAULT_TENANT_ID = str(uuid.uuid5(TENANT_NAMESPACE, DEFAULT_TENANT_DOMAIN))
DEFAULT_USER = "operator@contoso.com"
VERIFICATION_URI = "https://microsoft.com/devicelogin"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
ID_TOKEN_LIFETIME = 3600
ALIASES = ("common", "organizations")

SETTINGS_KEY = "identity_platform"
CERTIFICATES_KEY = "identity_platform_certificates"
REVOKED_KEY = "identity_platform_revoked"
DEFAULT_SETTINGS = {
    "tenants": [{"id": DEFAULT_TENANT_ID, "domain": DEFAULT_TENANT_DOMAIN}],
    "device_code_lifetime": 900,  # "the user has 15 minutes to sign in" (device code flow doc)
    "device_code_interval": 5,
    "refresh_token_lifetime": 90 * 86400,  # the documented 90-day inactivity lifetime
}
REQUEST_LOG_LIMIT = 10_000


# --- state ---------------------------------------------------------------------------------


@dataclass
class DeviceCode:
    device_code: str
    user_code: str
    client_id: str
    tenant_id: str
    scopes: list[str]
    expires_at: float
    interval: int
    state: str = "pending"  # pending | approved | declined
    user: str | None = None


@dataclass
class PlatformState:
    """In-memory state of the stand-in: pending device codes (short-lived by nature, like the
    real ones; a simulator restart forgets them) and the identity request log."""

    device_codes: dict[str, DeviceCode] = field(default_factory=dict)
    log: RequestLog = field(default_factory=lambda: RequestLog(REQUEST_LOG_LIMIT))

    def by_user_code(self, user_code: str) -> DeviceCode | None:
        wanted = _norm_user_code(user_code)
        for dc in self.device_codes.values():
            if _norm_user_code(dc.user_code) == wanted:
                return dc
        return None

    def record(self, **entry) -> None:
        self.log.record(**entry)


def _norm_user_code(code: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", str(code).upper())


def _state(request: Request) -> PlatformState:
    st = getattr(request.app.state, "identity_platform", None)
    if st is None:
        st = PlatformState()
        request.app.state.identity_platform = st
    return st


# --- settings and tenants ------------------------------------------------------------------


def settings(conn: sqlite3.Connection) -> dict:
    stored = get_setting(conn, SETTINGS_KEY, {}) or {}
    return {**DEFAULT_SETTINGS, **stored}


def resolve_tenant(conn: sqlite3.Connection, name: str) -> dict | None:
    """The tenant ``{"id", "domain"}`` that ``name`` (id, domain, ``common`` or ``organizations``)
    designates, or None when the simulator does not know it."""
    tenants = settings(conn)["tenants"]
    if not tenants:
        return None
    lowered = name.lower()
    if lowered in ALIASES:
        return tenants[0]
    for t in tenants:
        if lowered in (str(t["id"]).lower(), str(t.get("domain", "")).lower()):
            return t
    return None


def _tenant_not_found(name: str) -> OAuthError:
    return OAuthError(
        400,
        "invalid_tenant",
        f"AADSTS90002: Tenant '{name}' not found. Check to make sure you have the correct tenant ID and are signing "
        "into the correct cloud. Check with your subscription administrator, this may happen if there are no active "
        "subscriptions for the tenant.",
    )


def _tenant_or_raise(conn: sqlite3.Connection, name: str, error: str = "invalid_tenant") -> dict:
    tenant = resolve_tenant(conn, name)
    if tenant is None:
        exc = _tenant_not_found(name)
        exc.error = error
        raise exc
    return tenant


def _endpoints(segment: str) -> dict[str, str]:
    base = f"{AUTHORITY_HOST}/{segment}"
    return {
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "jwks_uri": f"{AUTHORITY_HOST}/{segment}/discovery/v2.0/keys",
    }


def openid_configuration_for(conn: sqlite3.Connection, name: str) -> dict:
    """The discovery document for tenant ``name`` (raises OAuthError for an unknown one)."""
    tenant = _tenant_or_raise(conn, name)
    segment = name.lower() if name.lower() in ALIASES else tenant["id"]
    issuer_tenant = "{tenantid}" if name.lower() in ALIASES else tenant["id"]
    return {
        **_endpoints(segment),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{AUTHORITY_HOST}/{issuer_tenant}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "name",
            "tid",
            "ver",
            "oid",
            "preferred_username",
        ],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }


# --- certificates --------------------------------------------------------------------------


def register_certificate(conn: sqlite3.Connection, client_id: str, certificate_pem: str | bytes) -> dict:
    """Register the public part of a certificate on application ``client_id`` (what uploading a
    .cer/.pem under *App registrations > Certificates & secrets* does). Returns its thumbprints
    (hex, lower case)."""
    if auth.get_identity(conn, client_id) is None:
        raise ValueError(f"No application '{client_id}' is registered; add it under /_sim/identities first.")
    data = certificate_pem.encode() if isinstance(certificate_pem, str) else certificate_pem
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise ValueError(
            f"Not a PEM certificate ({exc}). Send the public certificate, -----BEGIN CERTIFICATE-----."
        ) from None
    entry = {
        "thumbprint_sha1": cert.fingerprint(hashes.SHA1()).hex(),
        "thumbprint_sha256": cert.fingerprint(hashes.SHA256()).hex(),
        "certificate": data.decode("ascii"),
    }
    registry = get_setting(conn, CERTIFICATES_KEY, {}) or {}
    entries = [e for e in registry.get(client_id, []) if e["thumbprint_sha256"] != entry["thumbprint_sha256"]]
    entries.append(entry)
    registry[client_id] = entries
    set_setting(conn, CERTIFICATES_KEY, registry)
    return {
        "client_id": client_id,
        "thumbprint_sha1": entry["thumbprint_sha1"],
        "thumbprint_sha256": entry["thumbprint_sha256"],
    }


def list_certificates(conn: sqlite3.Connection) -> list[dict]:
    registry = get_setting(conn, CERTIFICATES_KEY, {}) or {}
    return [
        {"client_id": cid, "thumbprint_sha1": e["thumbprint_sha1"], "thumbprint_sha256": e["thumbprint_sha256"]}
        for cid, entries in sorted(registry.items())
        for e in entries
    ]


def _thumbprint_from_header(header: dict) -> tuple[str, str] | None:
    for name, kind in (("x5t#S256", "thumbprint_sha256"), ("x5t", "thumbprint_sha1")):
        if header.get(name):
            raw = str(header[name])
            try:
                return kind, base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).hex()
            except (binascii.Error, ValueError):
                return None
    return None


def _check_client_assertion(conn: sqlite3.Connection, form: dict, tenant: dict, token_endpoint_names: set[str]) -> None:
    """Verify a certificate client assertion ("Microsoft identity platform application
    authentication certificate credentials"): signed by a certificate registered on the app,
    ``aud`` the token endpoint, ``iss`` and ``sub`` the client id, within its validity."""
    client_id = form["client_id"]
    if form.get("client_assertion_type") != JWT_BEARER:
        raise OAuthError(400, "invalid_request", f"AADSTS50027: client_assertion_type must be '{JWT_BEARER}'.")
    assertion = form.get("client_assertion", "")
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        raise OAuthError(401, "invalid_client", "AADSTS50027: JWT token is invalid or malformed.") from None
    found = _thumbprint_from_header(header)
    registry = (get_setting(conn, CERTIFICATES_KEY, {}) or {}).get(client_id, [])
    match = next((e for e in registry if found and e[found[0]] == found[1]), None)
    if match is None:
        shown = found[1].upper() if found else "none"
        raise OAuthError(
            401,
            "invalid_client",
            "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on "
            f"application. [Reason - The key was not found., Thumbprint of key used by client: '{shown}']",
        )
    cert = x509.load_pem_x509_certificate(match["certificate"].encode("ascii"))
    audiences = sorted(
        {f"{AUTHORITY_HOST}/{n}/oauth2/v2.0/token" for n in token_endpoint_names}
        | {f"{AUTHORITY_HOST}/{tenant['id']}/v2.0"}
    )
    try:
        claims = jwt.decode(
            assertion,
            cert.public_key(),
            algorithms=["RS256", "PS256"],
            audience=audiences,
            issuer=client_id,
            options={"require": ["exp", "aud", "iss", "sub"]},
            leeway=300,
        )
    except jwt.InvalidSignatureError:
        raise OAuthError(
            401, "invalid_client", "AADSTS700027: Client assertion contains an invalid signature."
        ) from None
    except jwt.ExpiredSignatureError:
        raise OAuthError(
            401, "invalid_client", "AADSTS700024: Client assertion is not within its valid time range."
        ) from None
    except jwt.InvalidAudienceError:
        raise OAuthError(
            401,
            "invalid_client",
            f"AADSTS700212: The audience of the client assertion must be the token endpoint, {audiences[-1]}.",
        ) from None
    except jwt.InvalidIssuerError:
        raise OAuthError(
            401,
            "invalid_client",
            "AADSTS700021: Client assertion application identifier doesn't match 'client_id' parameter.",
        ) from None
    except jwt.PyJWTError as exc:
        raise OAuthError(
            401, "invalid_client", f"AADSTS50027: JWT token is invalid or malformed ({type(exc).__name__})."
        ) from None
    if claims.get("sub") != client_id:
        raise OAuthError(
            401,
            "invalid_client",
            "AADSTS700021: Client assertion application identifier doesn't match 'client_id' parameter.",
        )


# --- user tokens ---------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _refresh_token(conn: sqlite3.Connection, user: str, client_id: str, tenant_id: str, now: float) -> str:
    lifetime = int(settings(conn)["refresh_token_lifetime"])
    claims = {
        "sub": user,
        "cid": client_id,
        "tid": tenant_id,
        "iat": now,
        "exp": math.ceil(now) + lifetime,
        "jti": secrets.token_hex(8),
    }
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"simrt.{payload}.{auth.keyed_digest(conn, 'refresh_token', payload.encode())}"


def _read_refresh_token(conn: sqlite3.Connection, token: str, client_id: str, now: float) -> dict:
    bad = OAuthError(400, "invalid_grant", "AADSTS70000: Provided grant is invalid or malformed.")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != "simrt":
        raise bad
    if not hmac.compare_digest(auth.keyed_digest(conn, "refresh_token", parts[1].encode()), parts[2]):
        raise bad
    try:
        claims = json.loads(_unb64(parts[1]))
    except ValueError:
        raise bad from None
    if claims.get("cid") != client_id:
        raise OAuthError(
            400,
            "invalid_grant",
            "AADSTS70000: Provided grant is invalid or malformed: the refresh token was issued to a different client.",
        )
    if claims.get("exp", 0) <= now:
        raise OAuthError(
            400,
            "invalid_grant",
            "AADSTS700082: The refresh token has expired due to inactivity. The token was issued on "
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(claims.get('iat', 0)))} and was inactive for too long.",
        )
    revoked = (get_setting(conn, REVOKED_KEY, {}) or {}).get(claims.get("sub", ""))
    if revoked is not None and claims.get("iat", 0) <= revoked:
        raise OAuthError(
            400,
            "invalid_grant",
            "AADSTS50173: The provided grant has expired due to it being revoked, a fresh auth token is needed.",
        )
    return claims


def _id_token(conn: sqlite3.Connection, user: str, client_id: str, tenant_id: str, now: float) -> str:
    oid = auth.user_object_id(user)
    claims = {
        "aud": client_id,
        "iss": f"{AUTHORITY_HOST}/{tenant_id}/v2.0",
        "iat": int(now),
        "nbf": int(now),
        "exp": int(now) + ID_TOKEN_LIFETIME,
        "name": user.split("@")[0].replace(".", " ").title(),
        "oid": oid,
        "preferred_username": user,
        "sub": _b64(hashlib.sha256(f"{oid}|{client_id}".encode()).digest())[:43],  # pairwise, per app
        "tid": tenant_id,
        "ver": "2.0",
    }
    key = auth.keyed_digest(conn, "id_token", b"key")
    return jwt.encode(claims, key, algorithm="HS256", headers={"kid": "sim"})


def _user_token_response(
    conn: sqlite3.Connection, user: str, client_id: str, tenant_id: str, scopes: list[str], form: dict, now: float
) -> dict:
    resources = [s for s in scopes if s.lower() not in RESERVED_SCOPES]
    if not resources:
        raise OAuthError(
            400,
            "invalid_scope",
            "AADSTS70011: The provided request must include a 'scope' input parameter naming a resource.",
        )
    body = auth.mint_access_token(conn, user, resources[0], now)
    body["scope"] = " ".join(resources + [s for s in scopes if s.lower() in RESERVED_SCOPES])
    if "offline_access" in (s.lower() for s in scopes):
        body["refresh_token"] = _refresh_token(conn, user, client_id, tenant_id, now)
    if "openid" in (s.lower() for s in scopes):
        body["id_token"] = _id_token(conn, user, client_id, tenant_id, now)
    if form.get("client_info") == "1":
        body["client_info"] = _b64(
            json.dumps({"uid": auth.user_object_id(user), "utid": tenant_id}, separators=(",", ":")).encode()
        )
    return body


# --- request handling ----------------------------------------------------------------------


async def _form(request: Request) -> dict[str, str]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise OAuthError(
            400, "invalid_request", "AADSTS900144: The request body must be application/x-www-form-urlencoded."
        )
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
    basic = request.headers.get("authorization", "")
    if basic.lower().startswith("basic "):  # client_secret_basic (RFC 6749 §2.3.1)
        try:
            cid, _, secret = base64.b64decode(basic[6:].strip()).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError(
                401, "invalid_client", "AADSTS7000216: The Authorization header is not valid HTTP Basic authentication."
            ) from None
        form.setdefault("client_id", unquote_plus(cid))
        form.setdefault("client_secret", unquote_plus(secret))
    return form


def _require_own_resources(request: Request, scopes: list[str], tenant: dict) -> None:
    """AADSTS500011 for a scope naming a resource that is not this simulator (its own root
    under a served name and port, or the stable rehearsal resource)."""
    hosts = simulator_of(request).hosts
    for scope in scopes:
        if scope.lower() in RESERVED_SCOPES:
            continue
        resource = auth.resource_of(scope)
        if not hosts.is_own_resource(resource, request.scope):
            raise auth.unknown_resource(resource, tenant.get("domain") or tenant["id"])


def _require(form: dict, *names: str) -> None:
    for name in names:
        if not form.get(name):
            raise OAuthError(
                400,
                "invalid_request",
                f"AADSTS900144: The request body must contain the following parameter: '{name}'.",
            )


def _require_app(conn: sqlite3.Connection, client_id: str, tenant: dict) -> None:
    if auth.get_identity(conn, client_id) is None:
        raise OAuthError(
            400,
            "unauthorized_client",
            f"AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{tenant.get('domain') or tenant['id']}'. "
            "This can happen if the application has not been installed by the administrator of the tenant or consented to by "
            "any user in the tenant. You may have sent your authentication request to the wrong tenant.",
        )


def _record(
    request: Request,
    endpoint: str,
    status: int,
    form: dict | None = None,
    error: str | None = None,
    code: int | None = None,
) -> None:
    form = form or {}
    _state(request).record(
        method=request.method,
        endpoint=endpoint,
        tenant=request.path_params.get("tenant"),
        grant_type=form.get("grant_type"),
        client_id=form.get("client_id"),
        status=status,
        error=error,
        error_code=code,
    )


def _answer(request: Request, endpoint: str, form: dict | None, fn) -> JSONResponse:
    try:
        body = fn()
    except OAuthError as exc:
        _record(request, endpoint, exc.status, form, exc.error, exc.aadsts)
        return JSONResponse(exc.platform_body(), status_code=exc.status)
    _record(request, endpoint, 200, form)
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


async def openid_configuration(request: Request) -> JSONResponse:
    conn = conn_of(request)
    return _answer(
        request, "openid-configuration", None, lambda: openid_configuration_for(conn, request.path_params["tenant"])
    )


async def instance_discovery(request: Request) -> JSONResponse:
    conn = conn_of(request)

    def body() -> dict:
        endpoint = request.query_params.get("authorization_endpoint", f"{AUTHORITY_HOST}/common/oauth2/v2.0/authorize")
        m = re.match(r"https://[^/]+/([^/]+)/", endpoint)
        segment = m.group(1) if m else "common"
        if resolve_tenant(conn, segment) is None:
            raise _tenant_not_found(segment)
        return {
            "tenant_discovery_endpoint": f"{AUTHORITY_HOST}/{segment}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [
                {
                    "preferred_network": "login.microsoftonline.com",
                    "preferred_cache": "login.windows.net",
                    "aliases": [
                        "login.microsoftonline.com",
                        "login.windows.net",
                        "login.microsoft.com",
                        "sts.windows.net",
                    ],
                }
            ],
        }

    return _answer(request, "instance-discovery", None, body)


def _raise(exc: Exception):
    raise exc


async def authorize(request: Request) -> JSONResponse:
    refusal = OAuthError(
        400,
        "unsupported_response_type",
        "AADSTS700054: Interactive (browser) sign-in is not available in the rehearsal simulator; use the device code flow.",
    )
    return _answer(request, "authorize", None, lambda: _raise(refusal))


async def devicecode(request: Request) -> JSONResponse:
    conn = conn_of(request)
    try:
        form = await _form(request)
    except OAuthError as exc:
        return _answer(request, "devicecode", None, lambda err=exc: _raise(err))

    def body() -> dict:
        tenant = _tenant_or_raise(conn, request.path_params["tenant"], "invalid_request")
        _require(form, "client_id", "scope")
        _require_app(conn, form["client_id"], tenant)
        _require_own_resources(request, form["scope"].split(), tenant)
        s = settings(conn)
        st = _state(request)
        now = time.time()
        for code in [c for c, dc in st.device_codes.items() if dc.expires_at + 600 < now]:  # forget long-expired ones
            del st.device_codes[code]
        alphabet = "BCDFGHJKLMNPQRSTVWXZ23456789"
        user_code = "".join(secrets.choice(alphabet) for _ in range(9))
        lifetime, interval = int(s["device_code_lifetime"]), int(s["device_code_interval"])
        dc = DeviceCode(
            device_code="DAQABAAEAAA" + secrets.token_urlsafe(48),
            user_code=user_code,
            client_id=form["client_id"],
            tenant_id=tenant["id"],
            scopes=form["scope"].split(),
            expires_at=now + lifetime,
            interval=interval,
        )
        st.device_codes[dc.device_code] = dc
        return {
            "user_code": user_code,
            "device_code": dc.device_code,
            "verification_uri": VERIFICATION_URI,
            "expires_in": lifetime,
            "interval": interval,
            "message": f"To sign in, use a web browser to open the page {VERIFICATION_URI} and enter the code {user_code} to authenticate.",
        }

    return _answer(request, "devicecode", form, body)


async def token(request: Request) -> JSONResponse:
    conn = conn_of(request)
    try:
        form = await _form(request)
    except OAuthError as exc:
        return _answer(request, "token", None, lambda err=exc: _raise(err))
    segment = request.path_params["tenant"]

    def body() -> dict:
        tenant = _tenant_or_raise(conn, segment, "invalid_request")
        grant = form.get("grant_type")
        now = time.time()
        if grant == "client_credentials":
            _require(form, "client_id", "scope")
            scopes = form["scope"].split()
            if len(scopes) != 1 or not scopes[0].endswith("/.default"):
                raise OAuthError(
                    400,
                    "invalid_scope",
                    f"AADSTS1002012: The provided value for scope {form['scope']} is not valid. Client credential flows must "
                    "have a scope value with /.default suffixed to the resource identifier (application ID URI).",
                )
            if form.get("client_assertion") or form.get("client_assertion_type"):
                _require_app(conn, form["client_id"], tenant)
                _check_client_assertion(
                    conn, form, tenant, {segment, tenant["id"], tenant.get("domain") or tenant["id"]}
                )
                _require_own_resources(request, scopes, tenant)
                return auth.mint_access_token(conn, form["client_id"], scopes[0], now)
            if not form.get("client_secret"):
                _require_app(conn, form["client_id"], tenant)
                raise OAuthError(
                    401,
                    "invalid_client",
                    "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                )
            try:
                return auth.issue_token(
                    conn,
                    {k: form[k] for k in ("grant_type", "client_id", "client_secret", "scope")},
                    now,
                    accept_resource=lambda resource: simulator_of(request).hosts.is_own_resource(
                        resource, request.scope
                    ),
                )
            except OAuthError as exc:
                if exc.error == "invalid_resource":
                    raise auth.unknown_resource(
                        auth.resource_of(scopes[0]), tenant.get("domain") or tenant["id"]
                    ) from None
                raise
        if grant == DEVICE_GRANT:
            _require(form, "client_id", "device_code")
            st = _state(request)
            dc = st.device_codes.get(form["device_code"])
            if dc is None or dc.client_id != form["client_id"]:
                raise OAuthError(
                    400,
                    "bad_verification_code",
                    "AADSTS70000: The provided value for the 'device_code' parameter is not valid.",
                )
            if dc.expires_at <= now:
                raise OAuthError(
                    400,
                    "expired_token",
                    "AADSTS70020: The provided value for the input parameter 'device_code' is not valid. This device code has expired.",
                )
            if dc.state == "declined":
                del st.device_codes[dc.device_code]
                raise OAuthError(
                    400,
                    "authorization_declined",
                    "AADSTS70000: The user declined the sign-in request (authorization_declined).",
                )
            if dc.state != "approved":
                raise OAuthError(
                    400,
                    "authorization_pending",
                    "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
                )
            del st.device_codes[dc.device_code]  # a device code is redeemed once
            return _user_token_response(conn, dc.user, dc.client_id, dc.tenant_id, dc.scopes, form, now)
        if grant == "refresh_token":
            _require(form, "client_id", "refresh_token")
            claims = _read_refresh_token(conn, form["refresh_token"], form["client_id"], now)
            if claims.get("tid") != tenant["id"]:
                raise OAuthError(
                    400,
                    "invalid_grant",
                    "AADSTS70000: Provided grant is invalid or malformed: the refresh token belongs to another tenant.",
                )
            if auth.get_identity(conn, claims["sub"]) is None:
                raise OAuthError(
                    400,
                    "invalid_grant",
                    f"AADSTS50034: The user account {claims['sub']} does not exist in the directory.",
                )
            scopes = (form.get("scope") or "").split()
            _require_own_resources(request, scopes, tenant)
            return _user_token_response(conn, claims["sub"], form["client_id"], tenant["id"], scopes, form, now)
        raise OAuthError(
            400, "unsupported_grant_type", f"AADSTS70003: The app requested an unsupported grant type '{grant}'."
        )

    return _answer(request, "token", form, body)


# --- the simulator's own token endpoint ------------------------------------------------------


async def token_endpoint(request: Request) -> JSONResponse:
    """``POST /_sim/token``: the client-credentials grant in one step (no tenant in the URL),
    answered with the short OAuth error body."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        refusal = OAuthError(
            400, "invalid_request", "AADSTS900144: The request body must be application/x-www-form-urlencoded."
        )
        return JSONResponse(refusal.body(), status_code=refusal.status)
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
    hosts = simulator_of(request).hosts
    try:
        return JSONResponse(
            auth.issue_token(
                conn_of(request), form, accept_resource=lambda resource: hosts.is_own_resource(resource, request.scope)
            )
        )
    except OAuthError as exc:
        return JSONResponse(exc.body(), status_code=exc.status)


# --- admin -------------------------------------------------------------------------------


def _refuse(status: int, message: str) -> SimError:
    return SimError(status, errors.INVALID_ARGUMENT, message)


_USER = Text(nonempty=True, max_length=256)
APPROVE: dict[str, Field] = {
    "user_code": Text(nonempty=True, max_length=64),
    "user": _USER,
    "deny": Bool(),
    "can_write": Bool(),
}
CERTIFICATE: dict[str, Field] = {
    "client_id": Text(nonempty=True, max_length=200),
    "certificate": Text(nonempty=True, max_length=64 * 1024),
}
REVOKE: dict[str, Field] = {"user": _USER}
TENANT: dict[str, Field] = {"id": Text(nonempty=True, max_length=100), "domain": Text(max_length=253)}
#: ``PUT /_sim/login/settings``: lifetimes and intervals in seconds, at least 1.
LOGIN_SETTINGS: dict[str, Field] = {
    "tenants": Objects(nonempty=True, max_length=100),
    "device_code_lifetime": Int(minimum=1, maximum=86_400),
    "device_code_interval": Int(minimum=1, maximum=3600),
    "refresh_token_lifetime": Int(minimum=1, maximum=365 * 86_400),
}


@admin
async def approve(request: Request) -> dict:
    """The operator signs in on their phone and approves (or, with ``"deny": true``, declines)
    the sign-in request that shows ``user_code``."""
    body = validate(await json_body(request), APPROVE)
    require(body, "user_code")
    user_code = body["user_code"]
    user = body.get("user", DEFAULT_USER)
    dc = _state(request).by_user_code(user_code) if user_code else None
    if dc is None:
        raise _refuse(
            404,
            f"No pending sign-in has the code '{user_code}'. Start the device code flow first and use the code it shows.",
        )
    if dc.expires_at <= time.time():
        raise _refuse(400, f"The code '{dc.user_code}' has expired; start the sign-in again.")
    if dc.state != "pending":
        raise _refuse(409, f"The code '{dc.user_code}' was already {dc.state}.")
    if body.get("deny"):
        dc.state = "declined"
    else:
        identity = auth.ensure_user(conn_of(request), user, can_write=body.get("can_write", True))
        dc.state, dc.user = "approved", identity.client_id
    return {
        "user_code": dc.user_code,
        "state": dc.state,
        "user": dc.user,
        "client_id": dc.client_id,
        "scope": " ".join(dc.scopes),
    }


@admin
async def device_codes(request: Request) -> list:
    now = time.time()
    return [
        {
            "user_code": dc.user_code,
            "client_id": dc.client_id,
            "scope": " ".join(dc.scopes),
            "state": dc.state,
            "expires_in": max(0, int(dc.expires_at - now)),
        }
        for dc in _state(request).device_codes.values()
        if dc.expires_at > now
    ]


@admin
async def certificates(request: Request) -> dict | list:
    conn = conn_of(request)
    if request.method == "POST":
        body = validate(await json_body(request), CERTIFICATE)
        if "client_id" not in body or "certificate" not in body:
            raise _refuse(400, 'Send {"client_id": …, "certificate": "-----BEGIN CERTIFICATE-----…"}.')
        return register_certificate(conn, body["client_id"], body["certificate"])
    return list_certificates(conn)


@admin
async def revoke(request: Request) -> dict:
    conn = conn_of(request)
    body = validate(await json_body(request), REVOKE)
    if "user" not in body:
        raise _refuse(400, 'Send {"user": "operator@contoso.com"}.')
    user = body["user"]
    revoked = get_setting(conn, REVOKED_KEY, {}) or {}
    revoked[user] = time.time()
    set_setting(conn, REVOKED_KEY, revoked)
    return {"user": user, "revoked_before": revoked[user]}


@admin
async def settings_endpoint(request: Request) -> dict:
    conn = conn_of(request)
    if request.method == "PUT":
        body = validate(await json_body(request), LOGIN_SETTINGS)
        stored = get_setting(conn, SETTINGS_KEY, {}) or {}
        for key, value in body.items():
            if key == "tenants":
                tenants = [validate(t, TENANT, f"tenants[{i}] field") for i, t in enumerate(value)]
                if not all("id" in t for t in tenants):
                    raise _refuse(
                        400, 'tenants must be a list like [{"id": "<GUID>", "domain": "contoso.onmicrosoft.com"}].'
                    )
                stored[key] = [{"id": t["id"], "domain": t.get("domain", "")} for t in tenants]
            else:
                stored[key] = value
        set_setting(conn, SETTINGS_KEY, stored)
    return settings(conn)


@admin
async def requests_endpoint(request: Request) -> dict | list:
    return log_answer(request, _state(request).log)


#: The identity platform's protocol endpoints (what msal and the clients call): Microsoft's
#: form protocol, no admin token. Everything else under ``/_sim/`` is admin surface.
PROTOCOL_PATH = re.compile(
    r"/_sim/token|/_sim/login/[^/]+/(?:v2\.0/\.well-known/openid-configuration|discovery/instance"
    r"|oauth2/v2\.0/(?:devicecode|token|authorize))"
)
_ADMIN_NAMES = frozenset({"approve", "device-codes", "certificates", "revoke", "settings", "requests"})


def is_protocol_path(path: str) -> bool:
    """Whether ``path`` is one of the protocol endpoints (not the admin surface)."""
    if not PROTOCOL_PATH.fullmatch(path):
        return False
    return path == "/_sim/token" or path.split("/")[3] not in _ADMIN_NAMES


ROUTES = [
    Route("/_sim/token", token_endpoint, methods=["POST"]),
    Route("/_sim/login/approve", approve, methods=["POST"]),
    Route("/_sim/login/device-codes", device_codes, methods=["GET"]),
    Route("/_sim/login/certificates", certificates, methods=["GET", "POST"]),
    Route("/_sim/login/revoke", revoke, methods=["POST"]),
    Route("/_sim/login/settings", settings_endpoint, methods=["GET", "PUT"]),
    Route("/_sim/login/requests", requests_endpoint, methods=["GET", "DELETE"]),
    Route("/_sim/login/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration, methods=["GET"]),
    Route("/_sim/login/{tenant}/discovery/instance", instance_discovery, methods=["GET"]),
    Route("/_sim/login/{tenant}/oauth2/v2.0/devicecode", devicecode, methods=["POST"]),
    Route("/_sim/login/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
    Route("/_sim/login/{tenant}/oauth2/v2.0/authorize", authorize, methods=["GET"]),
]
