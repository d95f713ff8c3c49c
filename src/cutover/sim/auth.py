"""Stand-in identity platform: application users, the token endpoint, bearer-token checks.

An access token's ``aud`` is the resource of the scope it was asked for (``<resource>/.default``
→ ``<resource>``), as the identity platform writes it; the token endpoints refuse scopes for
resources that are not the simulator's (AADSTS500011 ``invalid_resource``, see
:class:`cutover.sim.hosts.HostPolicy`), and the gateway refuses a token whose audience is
not the service (401 ``invalid_token``).

Tokens are HMAC-signed with a key kept in the simulator database, so they survive a
restart of the simulator (as real tokens survive a service restart) and are never stored.
The token endpoint answers like the Microsoft identity platform's v2.0 client-credentials
endpoint, including its AADSTS error codes for the mistakes operators make.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from .errors import OAuthError
from .store import get_setting, set_setting

DEFAULT_TOKEN_LIFETIME = 3600
USER_NAMESPACE = uuid.UUID("6d1c9b54-3c0e-4f55-9a43-9d8f0f2c1e01")

# The rehearsal identities every simulator has. Simulator-only credentials: they open
# nothing but a local rehearsal database.
DEFAULT_IDENTITIES = (
    ("cutover-rehearsal", "rehearsal-secret", "Cutover rehearsal app user", True),
    ("cutover-rehearsal-2", "rehearsal-secret-2", "Cutover rehearsal app user 2", True),
    ("cutover-rehearsal-3", "rehearsal-secret-3", "Cutover rehearsal app user 3", True),
    ("cutover-rehearsal-4", "rehearsal-secret-4", "Cutover rehearsal app user 4", True),
    ("cutover-verify", "verify-secret", "Cutover verification (read only)", False),
)


@dataclass(frozen=True)
class Identity:
    client_id: str
    user_id: str
    display_name: str
    can_write: bool


def ensure_identities(conn: sqlite3.Connection) -> None:
    for client_id, secret, name, can_write in DEFAULT_IDENTITIES:
        add_identity(conn, client_id, secret, name, can_write, replace=False)
    if get_setting(conn, "token_key") is None:
        set_setting(conn, "token_key", secrets.token_hex(32))


def add_identity(
    conn: sqlite3.Connection, client_id: str, secret: str, name: str, can_write: bool, *, replace: bool = True
) -> None:
    verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
    conn.execute(
        f"{verb} INTO sim_identities(client_id, client_secret, display_name, user_id, can_write) VALUES (?, ?, ?, ?, ?)",
        (client_id, secret, name, str(uuid.uuid5(USER_NAMESPACE, client_id)), int(can_write)),
    )


def list_identities(conn: sqlite3.Connection) -> list[dict]:
    rows = conn.execute(
        "SELECT client_id, display_name, user_id, can_write, secret_expired FROM sim_identities ORDER BY client_id"
    ).fetchall()
    return [
        {
            "client_id": r[0],
            "display_name": r[1],
            "user_id": r[2],
            "can_write": bool(r[3]),
            "secret_expired": bool(r[4]),
        }
        for r in rows
    ]


def _sign(key: str, payload: bytes) -> str:
    return base64.urlsafe_b64encode(hmac.new(bytes.fromhex(key), payload, hashlib.sha256).digest()).decode().rstrip("=")


def unknown_resource(resource: str, tenant: str = "the simulator's tenant") -> OAuthError:
    """The identity platform's answer to a scope whose resource it does not know."""
    return OAuthError(
        400,
        "invalid_resource",
        f"AADSTS500011: The resource principal named {resource} was not found in the tenant named {tenant}. "
        "This can happen if the application has not been installed by the administrator of the tenant or consented "
        "to by any user in the tenant. You might have sent your authentication request to the wrong tenant. "
        "(The rehearsal simulator issues tokens for its own URL and for https://rehearsal.cutover.local.)",
    )


def issue_token(
    conn: sqlite3.Connection,
    form: dict[str, str],
    now: float | None = None,
    accept_resource: Callable[[str], bool] | None = None,
) -> dict:
    """Client-credentials grant. Returns the token response or raises OAuthError; with
    ``accept_resource``, a scope for any other resource is AADSTS500011 ``invalid_resource``."""
    now = time.time() if now is None else now
    grant = form.get("grant_type")
    if grant != "client_credentials":
        raise OAuthError(
            400, "unsupported_grant_type", f"AADSTS70003: The app requested an unsupported grant type '{grant}'."
        )
    client_id = form.get("client_id", "")
    scope = form.get("scope", "")
    if not client_id or not scope:
        missing = "client_id" if not client_id else "scope"
        raise OAuthError(
            400, "invalid_request", f"AADSTS900144: The request body must contain the following parameter: '{missing}'."
        )
    row = conn.execute(
        "SELECT client_secret, secret_expired FROM sim_identities WHERE client_id = ?", (client_id,)
    ).fetchone()
    if row is None:
        raise OAuthError(
            400,
            "unauthorized_client",
            f"AADSTS700016: Application with identifier '{client_id}' was not found in the directory. "
            "This can happen if the application has not been installed by the administrator of the tenant.",
        )
    if row[1]:
        raise OAuthError(
            401, "invalid_client", f"AADSTS7000222: The provided client secret keys for app '{client_id}' are expired."
        )
    if not hmac.compare_digest(row[0], form.get("client_secret", "")):
        raise OAuthError(
            401,
            "invalid_client",
            f"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'.",
        )
    if accept_resource is not None and not accept_resource(resource_of(scope)):
        raise unknown_resource(resource_of(scope))
    return mint_access_token(conn, client_id, scope, now)


def resource_of(scope: str) -> str:
    """The resource a scope asks for: ``https://org.example/.default`` → ``https://org.example``
    (the identity platform's v2 scopes are ``<resource>/<permission>``)."""
    scope = scope.strip()
    if "://" in scope and "/" in scope.split("://", 1)[1]:
        return scope.rsplit("/", 1)[0]
    return scope


def mint_access_token(conn: sqlite3.Connection, subject: str, scope: str, now: float | None = None) -> dict:
    """A bearer token for the identity ``subject`` (a row of sim_identities: an application's
    client id, or a signed-in user's name) as the token endpoint answers it: its ``aud`` is
    the scope's resource (``<resource>/.default`` → ``<resource>``), as the identity platform
    writes it. The lifetime is the ``token_lifetime`` setting; `verify_token` accepts the
    token until it expires."""
    now = time.time() if now is None else now
    lifetime = int(get_setting(conn, "token_lifetime", DEFAULT_TOKEN_LIFETIME))
    # Rounded up: the token stays valid for at least the `expires_in` the answer promises.
    claims = {"sub": subject, "aud": resource_of(scope), "exp": math.ceil(now) + lifetime, "jti": secrets.token_hex(8)}
    payload = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).decode().rstrip("=")
    token = f"sim.{payload}.{_sign(get_setting(conn, 'token_key'), payload.encode())}"
    return {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}


def get_identity(conn: sqlite3.Connection, client_id: str) -> Identity | None:
    """The identity registered under ``client_id`` (an application or a user), or None."""
    row = conn.execute(
        "SELECT client_id, user_id, display_name, can_write FROM sim_identities WHERE client_id = ?", (client_id,)
    ).fetchone()
    return None if row is None else Identity(row[0], row[1], row[2], bool(row[3]))


def ensure_user(conn: sqlite3.Connection, user: str, *, can_write: bool = True) -> Identity:
    """A signed-in user (device code flow) as an identity the API accepts, created on first
    sign-in. Users have no client secret: the stored one is random and never disclosed, so
    nobody can use a user's name for the client-credentials grant."""
    if get_identity(conn, user) is None:
        add_identity(conn, user, "!" + secrets.token_hex(32), f"User {user}", can_write, replace=False)
    identity = get_identity(conn, user)
    assert identity is not None
    return identity


def user_object_id(user: str) -> str:
    """The stable object id (oid) of a user, equal to the UserId that WhoAmI reports for them."""
    return str(uuid.uuid5(USER_NAMESPACE, user))


def keyed_digest(conn: sqlite3.Connection, purpose: str, payload: bytes) -> str:
    """An HMAC of ``payload`` under the simulator's token key, separated by ``purpose`` so a
    signature made for one kind of token (e.g. a refresh token) never verifies as another."""
    key = get_setting(conn, "token_key")
    return (
        base64.urlsafe_b64encode(
            hmac.new(bytes.fromhex(key), purpose.encode() + b"|" + payload, hashlib.sha256).digest()
        )
        .decode()
        .rstrip("=")
    )


def token_claims(conn: sqlite3.Connection, authorization: str | None, now: float | None = None) -> dict | None:
    """The claims of a valid (signed here, unexpired) `Authorization: Bearer` token, or None.
    Whether its audience is the service asked is the caller's question (the gateway's)."""
    if not authorization or not authorization.lower().startswith("bearer "):
        return None
    token = authorization[7:].strip()
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != "sim" or len(parts[1]) > 4096:
        return None
    key = get_setting(conn, "token_key")
    if key is None or not hmac.compare_digest(_sign(key, parts[1].encode()), parts[2]):
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    if not isinstance(claims, dict) or not isinstance(claims.get("exp", 0), int | float):
        return None
    if claims.get("exp", 0) <= (time.time() if now is None else now):
        return None
    return claims


def identity_of(conn: sqlite3.Connection, claims: dict) -> Identity | None:
    """The identity a token's claims name (``sub``), or None when it no longer exists."""
    return get_identity(conn, str(claims.get("sub")))


def verify_token(conn: sqlite3.Connection, authorization: str | None, now: float | None = None) -> Identity | None:
    """The identity behind an `Authorization: Bearer` header, or None if it is not valid
    (signature and expiry only: the gateway also checks the audience)."""
    claims = token_claims(conn, authorization, now)
    return None if claims is None else identity_of(conn, claims)
