"""Contract tests of the simulator's stand-ins for the Microsoft identity platform
(`/_sim/login/…`, cutover.sim.identity_platform): the shapes msal relies on and the errors
operators meet, as the identity platform documents them:

* "OpenID Connect on the Microsoft identity platform" — the discovery document;
* "Microsoft identity platform and the OAuth 2.0 client credentials flow" — secret and
  certificate (client assertion) credentials, scope `<resource>/.default`;
* "Microsoft identity platform and the OAuth 2.0 device authorization grant flow" — device
  code request, `authorization_pending` / `authorization_declined` / `bad_verification_code` /
  `expired_token`, and the token response (access, refresh and ID token);
* RFC 6749 §5.2 error responses with AADSTS codes.

These run in-process (httpx ASGI transport); the msal round trips are in tests/test_auth.py.
"""

from __future__ import annotations

import base64
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization

from cutover.sim import auth as sim_auth
from cutover.sim import identity_platform as ip
from tests.certificates import self_signed
from tests.conftest import DV, WRITER

TENANT = ip.DEFAULT_TENANT_ID
LOGIN = "/_sim/login"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def _b64json(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


async def _token(sim, form: dict, tenant: str = TENANT, **kw):
    return await sim.client.post(f"{LOGIN}/{tenant}/oauth2/v2.0/token", data=form, **kw)


async def _device_code(
    sim,
    client_id: str = WRITER[0],
    scope: str = "https://rehearsal.cutover.local/.default openid profile offline_access",
    tenant: str = TENANT,
):
    return await sim.client.post(
        f"{LOGIN}/{tenant}/oauth2/v2.0/devicecode", data={"client_id": client_id, "scope": scope}
    )


async def _whoami(sim, access_token: str):
    return await sim.client.get(DV + "WhoAmI", headers={"Authorization": f"Bearer {access_token}"})


def _assert_error(r, status: int, error: str, code: int | None):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == error
    if code is not None:
        assert body["error_codes"] == [code]
        assert body["error_description"].startswith(f"AADSTS{code}:")
    for key in ("timestamp", "trace_id", "correlation_id"):
        assert key in body
    return body


# --- discovery ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tenant", [ip.DEFAULT_TENANT_DOMAIN, TENANT, TENANT.upper()])
async def test_openid_configuration_points_at_login_microsoftonline_com_with_the_tenant_id(sim, tenant):
    """The document names https endpoints of login.microsoftonline.com (msal requires https;
    the client's routing http_client brings them back to the simulator), with the tenant id."""
    r = await sim.client.get(f"{LOGIN}/{tenant}/v2.0/.well-known/openid-configuration")
    assert r.status_code == 200
    doc = r.json()
    base = f"https://login.microsoftonline.com/{TENANT}"
    assert doc["token_endpoint"] == f"{base}/oauth2/v2.0/token"
    assert doc["device_authorization_endpoint"] == f"{base}/oauth2/v2.0/devicecode"
    assert doc["authorization_endpoint"] == f"{base}/oauth2/v2.0/authorize"
    assert doc["issuer"] == f"{base}/v2.0"
    assert "private_key_jwt" in doc["token_endpoint_auth_methods_supported"]


async def test_common_resolves_to_the_default_tenant(sim):
    r = await sim.client.get(f"{LOGIN}/organizations/v2.0/.well-known/openid-configuration")
    assert r.status_code == 200
    assert r.json()["token_endpoint"] == "https://login.microsoftonline.com/organizations/oauth2/v2.0/token"


async def test_an_unknown_tenant_is_aadsts90002(sim):
    r = await sim.client.get(f"{LOGIN}/fabrikam.onmicrosoft.com/v2.0/.well-known/openid-configuration")
    body = _assert_error(r, 400, "invalid_tenant", 90002)
    assert "Tenant 'fabrikam.onmicrosoft.com' not found" in body["error_description"]
    r = await _token(
        sim,
        {
            "grant_type": "client_credentials",
            "client_id": WRITER[0],
            "client_secret": WRITER[1],
            "scope": "https://x/.default",
        },
        tenant="fabrikam.onmicrosoft.com",
    )
    _assert_error(r, 400, "invalid_request", 90002)


async def test_tenants_are_a_setting(sim):
    other = str(uuid.uuid4())
    r = await sim.client.put(
        f"{LOGIN}/settings", json={"tenants": [{"id": other, "domain": "fabrikam.onmicrosoft.com"}]}
    )
    assert r.status_code == 200 and r.json()["tenants"] == [{"id": other, "domain": "fabrikam.onmicrosoft.com"}]
    assert (
        await sim.client.get(f"{LOGIN}/fabrikam.onmicrosoft.com/v2.0/.well-known/openid-configuration")
    ).status_code == 200
    assert (
        await sim.client.get(f"{LOGIN}/{ip.DEFAULT_TENANT_DOMAIN}/v2.0/.well-known/openid-configuration")
    ).status_code == 400
    bad = await sim.client.put(f"{LOGIN}/settings", json={"tenant": "x"})
    assert bad.status_code == 400 and "Unknown field(s) tenant" in bad.json()["error"]["message"]


async def test_instance_discovery_lists_the_aliases(sim):
    r = await sim.client.get(
        f"{LOGIN}/common/discovery/instance",
        params={
            "api-version": "1.1",
            "authorization_endpoint": f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/authorize",
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert (
        body["tenant_discovery_endpoint"]
        == f"https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration"
    )
    assert "login.microsoftonline.com" in body["metadata"][0]["aliases"]


async def test_interactive_sign_in_is_refused_with_a_pointer_to_device_code(sim):
    r = await sim.client.get(f"{LOGIN}/{TENANT}/oauth2/v2.0/authorize")
    assert r.status_code == 400 and "device code" in r.json()["error_description"]


# --- client credentials ----------------------------------------------------------------------


def _cc(
    secret: str = WRITER[1], client_id: str = WRITER[0], scope: str = "https://rehearsal.cutover.local/.default"
) -> dict:
    return {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": secret,
        "scope": scope,
        "client_info": "1",
    }


async def test_client_secret_gives_a_token_the_api_accepts(sim):
    r = await _token(sim, _cc())
    assert r.status_code == 200, r.text
    body = r.json()
    assert (
        body["token_type"] == "Bearer"
        and body["expires_in"] > 0
        and "refresh_token" not in body
        and "client_info" not in body
    )
    who = await _whoami(sim, body["access_token"])
    assert who.status_code == 200
    assert who.json()["UserId"] == str(uuid.uuid5(sim_auth.USER_NAMESPACE, WRITER[0]))


async def test_client_secret_in_http_basic_is_accepted(sim):
    basic = base64.b64encode(f"{WRITER[0]}:{WRITER[1]}".encode()).decode()
    r = await _token(
        sim,
        {"grant_type": "client_credentials", "scope": "https://rehearsal.cutover.local/.default"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert r.status_code == 200, r.text


async def test_client_secret_errors_carry_the_aadsts_codes(sim):
    _assert_error(await _token(sim, _cc(secret="wrong")), 401, "invalid_client", 7000215)
    _assert_error(await _token(sim, _cc(client_id="nobody")), 400, "unauthorized_client", 700016)
    await sim.admin("POST", "identities", json={"client_id": "old-app", "client_secret": "old", "secret_expired": True})
    _assert_error(await _token(sim, _cc(client_id="old-app", secret="old")), 401, "invalid_client", 7000222)
    _assert_error(await _token(sim, _cc(scope="https://org.test/user_impersonation")), 400, "invalid_scope", 1002012)
    form = _cc()
    del form["client_secret"]
    _assert_error(await _token(sim, form), 401, "invalid_client", 7000218)
    _assert_error(await _token(sim, {**_cc(), "grant_type": "password"}), 400, "unsupported_grant_type", 70003)
    r = await sim.client.post(f"{LOGIN}/{TENANT}/oauth2/v2.0/token", json=_cc())
    _assert_error(r, 400, "invalid_request", 900144)


# --- certificates (client assertions) ------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate():
    return self_signed()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _assertion(
    key,
    cert,
    *,
    client_id=WRITER[0],
    aud=f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token",
    alg="PS256",
    exp_in=600,
    sha256=True,
    iss=None,
    sub=None,
):
    now = time.time()
    header = (
        {"x5t#S256": _b64url(cert.fingerprint(hashes.SHA256()))}
        if sha256
        else {"x5t": _b64url(cert.fingerprint(hashes.SHA1()))}
    )
    claims = {
        "aud": aud,
        "iss": iss or client_id,
        "sub": sub or client_id,
        "exp": now + exp_in,
        "iat": now,
        "nbf": now,
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(claims, key, algorithm=alg, headers=header)


def _ca(assertion: str, client_id: str = WRITER[0]) -> dict:
    return {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "scope": "https://rehearsal.cutover.local/.default",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }


async def _register(sim, cert, client_id=WRITER[0]):
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return await sim.client.post(f"{LOGIN}/certificates", json={"client_id": client_id, "certificate": pem})


@pytest.mark.parametrize(("alg", "sha256"), [("PS256", True), ("RS256", False)])
async def test_a_registered_certificate_signs_a_valid_client_assertion(sim, certificate, alg, sha256):
    key, cert = certificate
    reg = await _register(sim, cert)
    assert reg.status_code == 200
    assert reg.json()["thumbprint_sha256"] == cert.fingerprint(hashes.SHA256()).hex()
    r = await _token(sim, _ca(_assertion(key, cert, alg=alg, sha256=sha256)))
    assert r.status_code == 200, r.text
    assert (await _whoami(sim, r.json()["access_token"])).status_code == 200


async def test_client_assertion_errors(sim, certificate):
    key, cert = certificate
    other_key, other_cert = self_signed("other")
    # not registered yet
    _assert_error(await _token(sim, _ca(_assertion(key, cert))), 401, "invalid_client", 700027)
    await _register(sim, cert)
    # signed by another key, but claiming the registered thumbprint
    forged = _assertion(other_key, cert)
    body = _assert_error(await _token(sim, _ca(forged)), 401, "invalid_client", 700027)
    assert "invalid signature" in body["error_description"]
    _assert_error(await _token(sim, _ca(_assertion(key, cert, exp_in=-3600))), 401, "invalid_client", 700024)
    _assert_error(
        await _token(sim, _ca(_assertion(key, cert, aud="https://example.com/token"))), 401, "invalid_client", 700212
    )
    _assert_error(await _token(sim, _ca(_assertion(key, cert, iss="someone-else"))), 401, "invalid_client", 700021)
    _assert_error(await _token(sim, _ca(_assertion(key, cert, sub="someone-else"))), 401, "invalid_client", 700021)
    _assert_error(await _token(sim, _ca("not-a-jwt")), 401, "invalid_client", 50027)
    # the certificate of one application does not open another
    _assert_error(
        await _token(sim, _ca(_assertion(key, cert, client_id="cutover-rehearsal-2"), client_id="cutover-rehearsal-2")),
        401,
        "invalid_client",
        700027,
    )


async def test_certificate_registration_is_checked(sim, certificate):
    _, cert = certificate
    r = await _register(sim, cert, client_id="no-such-app")
    assert r.status_code == 400 and "No application" in r.json()["error"]["message"]
    r = await sim.client.post(f"{LOGIN}/certificates", json={"client_id": WRITER[0], "certificate": "hello"})
    assert r.status_code == 400 and "PEM" in r.json()["error"]["message"]
    await _register(sim, cert)
    listed = (await sim.client.get(f"{LOGIN}/certificates")).json()
    assert [c["client_id"] for c in listed] == [WRITER[0]]
    assert "certificate" not in listed[0]


# --- device code ---------------------------------------------------------------------------------


async def test_device_code_request_has_the_documented_shape(sim):
    r = await _device_code(sim)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"device_code", "user_code", "verification_uri", "expires_in", "interval", "message"}
    assert body["expires_in"] == 900 and body["interval"] == 5  # "the user has 15 minutes"
    assert body["verification_uri"] == "https://microsoft.com/devicelogin"
    assert body["user_code"] in body["message"] and body["verification_uri"] in body["message"]


async def test_device_code_request_errors(sim):
    _assert_error(await _device_code(sim, client_id="nobody"), 400, "unauthorized_client", 700016)
    _assert_error(await _device_code(sim, tenant="fabrikam.onmicrosoft.com"), 400, "invalid_request", 90002)
    r = await sim.client.post(f"{LOGIN}/{TENANT}/oauth2/v2.0/devicecode", data={"client_id": WRITER[0]})
    _assert_error(r, 400, "invalid_request", 900144)


def _poll(device_code: str, client_id: str = WRITER[0]) -> dict:
    return {
        "grant_type": DEVICE_GRANT,
        "client_id": client_id,
        "device_code": device_code,
        "code": device_code,
        "client_info": "1",
    }


async def test_device_code_is_pending_until_approved_then_gives_user_tokens(sim):
    dc = (await _device_code(sim)).json()
    _assert_error(await _token(sim, _poll(dc["device_code"])), 400, "authorization_pending", 70016)
    pending = (await sim.client.get(f"{LOGIN}/device-codes")).json()
    assert [p["user_code"] for p in pending] == [dc["user_code"]]
    approved = await sim.client.post(
        f"{LOGIN}/approve", json={"user_code": dc["user_code"].lower(), "user": "operator@contoso.com"}
    )
    assert approved.status_code == 200 and approved.json()["state"] == "approved"
    r = await _token(sim, _poll(dc["device_code"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"access_token", "refresh_token", "id_token", "client_info", "scope", "expires_in"} <= set(body)
    assert "https://rehearsal.cutover.local/.default" in body["scope"].split()
    oid = str(uuid.uuid5(sim_auth.USER_NAMESPACE, "operator@contoso.com"))
    claims = _b64json(body["id_token"].split(".")[1])
    assert claims["oid"] == oid and claims["tid"] == TENANT and claims["preferred_username"] == "operator@contoso.com"
    assert claims["aud"] == WRITER[0] and claims["iss"] == f"https://login.microsoftonline.com/{TENANT}/v2.0"
    assert _b64json(body["client_info"]) == {"uid": oid, "utid": TENANT}
    who = await _whoami(sim, body["access_token"])
    assert who.status_code == 200 and who.json()["UserId"] == oid
    # a device code is redeemed once
    _assert_error(await _token(sim, _poll(dc["device_code"])), 400, "bad_verification_code", 70000)


async def test_device_code_declined_expired_and_foreign(sim):
    dc = (await _device_code(sim)).json()
    _assert_error(
        await _token(sim, _poll(dc["device_code"], client_id="cutover-rehearsal-2")),
        400,
        "bad_verification_code",
        70000,
    )
    await sim.client.post(f"{LOGIN}/approve", json={"user_code": dc["user_code"], "deny": True})
    _assert_error(await _token(sim, _poll(dc["device_code"])), 400, "authorization_declined", 70000)

    await sim.client.put(f"{LOGIN}/settings", json={"device_code_lifetime": 1})
    dc = (await _device_code(sim)).json()
    assert dc["expires_in"] == 1
    _state = sim.app.state.identity_platform
    _state.device_codes[dc["device_code"]].expires_at = time.time() - 1  # rather than sleeping
    _assert_error(await _token(sim, _poll(dc["device_code"])), 400, "expired_token", 70020)
    late = await sim.client.post(f"{LOGIN}/approve", json={"user_code": dc["user_code"]})
    assert late.status_code == 400 and "expired" in late.json()["error"]["message"]
    unknown = await sim.client.post(f"{LOGIN}/approve", json={"user_code": "NOPE"})
    assert unknown.status_code == 404


async def test_an_approved_user_writes_unless_approved_read_only(sim):
    """The user who approves becomes an identity the API knows; `can_write: false` makes a
    read-only one (403 on a write, like the read-only application user)."""
    for user, can_write, expected in (("operator@contoso.com", True, 204), ("auditor@contoso.com", False, 403)):
        dc = (await _device_code(sim)).json()
        await sim.client.post(
            f"{LOGIN}/approve", json={"user_code": dc["user_code"], "user": user, "can_write": can_write}
        )
        access = (await _token(sim, _poll(dc["device_code"]))).json()["access_token"]
        r = await sim.client.post(
            DV + "accounts", json={"name": f"written by {user}"}, headers={"Authorization": f"Bearer {access}"}
        )
        assert r.status_code == expected, r.text


# --- refresh tokens ------------------------------------------------------------------------------


async def _signed_in(sim, user: str = "operator@contoso.com") -> dict:
    dc = (await _device_code(sim)).json()
    await sim.client.post(f"{LOGIN}/approve", json={"user_code": dc["user_code"], "user": user})
    return (await _token(sim, _poll(dc["device_code"]))).json()


def _refresh(
    rt: str, scope: str = "http://localhost/.default openid profile offline_access", client_id: str = WRITER[0]
) -> dict:
    return {
        "grant_type": "refresh_token",
        "client_id": client_id,
        "refresh_token": rt,
        "scope": scope,
        "client_info": "1",
    }


async def test_a_refresh_token_gives_a_token_for_another_resource_and_rotates(sim):
    first = await _signed_in(sim)
    r = await _token(sim, _refresh(first["refresh_token"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["access_token"] != first["access_token"] and body["refresh_token"] != first["refresh_token"]
    assert "http://localhost/.default" in body["scope"].split()
    # the audience is the resource, as the identity platform writes it: <resource>/.default → <resource>
    assert _b64json(body["access_token"].split(".")[1])["aud"] == "http://localhost"
    assert (await _whoami(sim, body["access_token"])).status_code == 200


async def test_refresh_token_errors(sim):
    first = await _signed_in(sim)
    rt = first["refresh_token"]
    _assert_error(await _token(sim, _refresh("garbage")), 400, "invalid_grant", 70000)
    _assert_error(await _token(sim, _refresh(rt[:-2] + "AA")), 400, "invalid_grant", 70000)
    _assert_error(await _token(sim, _refresh(rt, client_id="cutover-rehearsal-2")), 400, "invalid_grant", 70000)
    old = ip._refresh_token(sim.conn, "operator@contoso.com", WRITER[0], TENANT, now=time.time() - 200 * 86400)
    _assert_error(await _token(sim, _refresh(old)), 400, "invalid_grant", 700082)
    assert (await sim.client.post(f"{LOGIN}/revoke", json={"user": "operator@contoso.com"})).status_code == 200
    _assert_error(await _token(sim, _refresh(rt)), 400, "invalid_grant", 50173)
    # a refresh token is not an access token
    assert (await _whoami(sim, rt)).status_code == 401


# --- the identity platform's own request log ----------------------------------------------------


async def test_the_identity_log_records_requests_without_secrets_and_leaves_the_api_log_alone(sim):
    await sim.client.delete(f"{LOGIN}/requests")
    api_before = await sim.log()
    await _token(sim, _cc())
    await _token(sim, _cc(secret="wrong-secret-value"))
    log = (await sim.client.get(f"{LOGIN}/requests")).json()
    assert [(e["endpoint"], e["grant_type"], e["client_id"], e["status"], e["error_code"]) for e in log] == [
        ("token", "client_credentials", WRITER[0], 200, None),
        ("token", "client_credentials", WRITER[0], 401, 7000215),
    ]
    text = json.dumps(log)
    assert WRITER[1] not in text and "wrong-secret-value" not in text and "sim." not in text
    assert await sim.log() == api_before
    since = (await sim.client.get(f"{LOGIN}/requests", params={"since": log[0]["seq"]})).json()
    assert [e["seq"] for e in since] == [log[1]["seq"]]
