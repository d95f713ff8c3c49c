"""Sign-in (`cutover.auth`) through msal itself, against the simulator's identity-platform
stand-ins over a real socket (msal's http_client is synchronous, so the simulator runs in
uvicorn, not in-process). Nothing of msal is mocked: the requests msal makes are the ones the
tests count in the simulator's identity request log (`/_sim/login/requests`).

Rules exercised (documented behaviour):
* "Microsoft identity platform and the OAuth 2.0 client credentials flow": secret and
  certificate credentials, `<resource>/.default`, AADSTS7000215 / 7000222 / 700016 / 90002.
* "… OAuth 2.0 device authorization grant flow": code + URL shown, polling until the user
  approves, `expired_token`, `authorization_declined`; refresh token for later tokens.
* msal: `acquire_token_for_client` looks in the token cache first (msal ≥ 1.23); device
  flow polling stops when the flow's `expires_at` is set to 0; SerializableTokenCache.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import stat
import sys
import time
import types
import uuid
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from cutover import auth
from cutover.auth import (
    IdentityPlatformUnreachable,
    RoutedIdentityHttpClient,
    SignInError,
    TokenCacheFile,
    pool_sources_for,
    redact,
    token_cache_path,
    token_sources_for,
)
from cutover.config import ConfigError, Profile
from cutover.errors import EXIT_ENVIRONMENT, CutoverError, EnvironmentProblem, WrongEnvironment, exit_code_of
from cutover.sim.auth import USER_NAMESPACE
from cutover.tokens import TokenSource
from tests.certificates import self_signed

pytestmark = pytest.mark.socket

LOGIN = "/_sim/login"


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture
async def live(socket_sim):
    """The socket simulator, with device-code polling every second (the real default is 5 s)."""
    r = await socket_sim.client.put(f"{LOGIN}/settings", json={"device_code_interval": 1})
    assert r.status_code == 200
    socket_sim.url = str(socket_sim.client.base_url).rstrip("/")
    return socket_sim


def rehearsal(h, name: str = "reh", **kw) -> Profile:
    """A rehearsal profile on the running simulator; F&O on a second host name so the two
    resources have different scopes, as they do in production."""
    return Profile(
        name=name, kind="rehearsal", dataverse_url=h.url, fno_url=h.url.replace("127.0.0.1", "localhost"), **kw
    )


async def id_log(h) -> list[dict]:
    return (await h.client.get(f"{LOGIN}/requests")).json()


async def grants(h) -> list[str]:
    return [e["grant_type"] or e["endpoint"] for e in await id_log(h) if e["endpoint"] in ("token", "devicecode")]


async def whoami(h, token: str) -> httpx.Response:
    return await h.client.get("/api/data/v9.2/WhoAmI", headers={"Authorization": f"Bearer {token}"})


def user_id(name: str) -> str:
    return str(uuid.uuid5(USER_NAMESPACE, name))


def approver(h, *, user: str = "operator@contoso.com", delay: float = 0.2, deny: bool = False, act: bool = True):
    """An on_code callback that records what it was shown and, like the operator on their
    phone, approves (or declines) the code a moment later."""
    seen: list[tuple[str, str, str]] = []
    tasks: list[asyncio.Task] = []

    async def on_code(message: str, user_code: str, verification_uri: str) -> None:
        seen.append((message, user_code, verification_uri))
        if not act:
            return

        async def go():
            await asyncio.sleep(delay)
            r = await h.client.post(f"{LOGIN}/approve", json={"user_code": user_code, "user": user, "deny": deny})
            assert r.status_code == 200, r.text

        tasks.append(asyncio.create_task(go()))

    on_code.seen = seen  # type: ignore[attr-defined]
    return on_code


@pytest.fixture(scope="module")
def certificate():
    return self_signed()


def pem_file(path: Path, key, cert) -> Path:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    return path


# --- client credentials ------------------------------------------------------------------------


async def test_client_secret_sign_in_gives_a_token_the_simulator_accepts(live, tmp_path):
    sources = token_sources_for(rehearsal(live), tmp_path, environ={}, sim_url=live.url)
    assert set(sources) == {"dataverse", "fno"}
    token = await sources["dataverse"].token()
    r = await whoami(live, token)
    assert r.status_code == 200
    assert r.json()["UserId"] == user_id("cutover-rehearsal")
    assert sources["dataverse"].scope == f"{live.url}/.default"
    log = await id_log(live)
    assert [(e["endpoint"], e["status"]) for e in log] == [("openid-configuration", 200), ("token", 200)]
    assert log[1]["client_id"] == "cutover-rehearsal" and log[1]["grant_type"] == "client_credentials"


async def test_a_second_call_is_served_from_the_cache_also_after_a_restart_of_the_tool(live, tmp_path):
    profile = rehearsal(live)
    first = token_sources_for(profile, tmp_path, environ={}, sim_url=live.url)
    t1 = await first["dataverse"].token()
    assert await first["dataverse"].token() == t1
    assert await grants(live) == ["client_credentials"]
    # each resource has its own token
    f1 = await first["fno"].token()
    assert f1 != t1 and await grants(live) == ["client_credentials", "client_credentials"]
    # a new process (new sources) reads the persistent cache: no token request at all
    again = token_sources_for(profile, tmp_path, environ={}, sim_url=live.url)
    assert await again["dataverse"].token() == t1
    assert await again["fno"].token() == f1
    assert await grants(live) == ["client_credentials", "client_credentials"]
    cached = json.loads(token_cache_path(tmp_path, "reh").read_text())
    assert len(cached["AccessToken"]) == 2


async def test_force_refresh_gets_a_new_token(live, tmp_path):
    sources = token_sources_for(rehearsal(live), tmp_path, environ={}, sim_url=live.url)
    t1 = await sources["dataverse"].token()
    f1 = await sources["fno"].token()
    t2 = await sources["dataverse"].token(force_refresh=True)
    assert t2 != t1
    assert (await whoami(live, t2)).status_code == 200
    assert await grants(live) == ["client_credentials"] * 3
    assert await sources["dataverse"].token() == t2  # and the new one is cached
    assert await sources["fno"].token() == f1  # the other resource's token was left alone


async def test_the_write_pool_gets_one_token_per_identity(live, tmp_path):
    profile = rehearsal(live, identities=("cutover-rehearsal-2", "cutover-rehearsal-3"))
    pool = pool_sources_for(profile, tmp_path, environ={}, sim_url=live.url)
    assert list(pool) == ["cutover-rehearsal", "cutover-rehearsal-2", "cutover-rehearsal-3"]
    users = set()
    for client_id, source in pool.items():
        assert source.client_id == client_id
        users.add((await whoami(live, await source.token())).json()["UserId"])
    assert users == {user_id(c) for c in pool}


async def test_certificate_sign_in_with_a_pem_file(live, tmp_path, certificate):
    key, cert = certificate
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    r = await live.client.post(f"{LOGIN}/certificates", json={"client_id": "cutover-rehearsal", "certificate": pem})
    assert r.status_code == 200
    path = pem_file(tmp_path / "app.pem", key, cert)
    profile = rehearsal(live, auth="certificate", cert_path=str(path))
    sources = token_sources_for(profile, tmp_path, environ={}, sim_url=live.url)
    assert isinstance(sources["dataverse"], auth.MsalCertificateSource)
    token = await sources["dataverse"].token()
    assert (await whoami(live, token)).json()["UserId"] == user_id("cutover-rehearsal")
    assert await grants(live) == ["client_credentials"]


async def test_certificate_sign_in_with_an_encrypted_pfx(live, tmp_path):
    key, cert = self_signed("pfx")
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    await live.client.post(f"{LOGIN}/certificates", json={"client_id": "cutover-rehearsal", "certificate": pem})
    path = tmp_path / "app.pfx"
    path.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"app", key, cert, None, serialization.BestAvailableEncryption(b"pfx-pass-123")
        )
    )
    profile = rehearsal(
        live, auth="certificate", cert_path="app.pfx", secret_env="CUTOVER_CERT_PASS"
    )  # relative to the workspace
    sources = token_sources_for(profile, tmp_path, environ={"CUTOVER_CERT_PASS": "pfx-pass-123"}, sim_url=live.url)
    assert (await whoami(live, await sources["fno"].token())).status_code == 200
    with pytest.raises(SignInError) as err:
        token_sources_for(profile, tmp_path, environ={"CUTOVER_CERT_PASS": "not-the-pass"}, sim_url=live.url)
    assert err.value.code == "certificate" and "passphrase" in str(err.value) and "not-the-pass" not in str(err.value)


async def test_an_unregistered_certificate_is_aadsts700027_with_the_fix(live, tmp_path):
    key, cert = self_signed("stranger")
    profile = rehearsal(live, auth="certificate", cert_path=str(pem_file(tmp_path / "x.pem", key, cert)))
    with pytest.raises(SignInError) as err:
        await token_sources_for(profile, tmp_path, environ={}, sim_url=live.url)["dataverse"].token()
    assert err.value.code == "AADSTS700027"
    assert "Certificates & secrets" in str(err.value) and "cutover-rehearsal" in str(err.value)


def test_a_missing_certificate_file_fails_before_any_network(tmp_path):
    profile = Profile(
        name="reh",
        kind="rehearsal",
        dataverse_url="http://127.0.0.1:9",
        fno_url="http://127.0.0.1:9",
        auth="certificate",
        cert_path="nope.pem",
    )
    with pytest.raises(SignInError) as err:
        token_sources_for(profile, tmp_path, environ={})
    assert err.value.code == "certificate" and "nope.pem" in str(err.value) and "cert_path" in str(err.value)


# --- what goes wrong -----------------------------------------------------------------------------


async def _fails(profile, tmp_path, url, environ) -> SignInError:
    sources = token_sources_for(profile, tmp_path, environ=environ, sim_url=url)
    with pytest.raises(SignInError) as err:
        await sources["dataverse"].token()
    return err.value


async def test_wrong_tenant_names_the_tenant_and_the_fix(live, tmp_path):
    err = await _fails(rehearsal(live, tenant="fabrikam.onmicrosoft.com"), tmp_path, live.url, {})
    assert err.code == "AADSTS90002"
    text = str(err)
    assert (
        "profile 'reh'" in text and "tenant fabrikam.onmicrosoft.com" in text and "client id cutover-rehearsal" in text
    )
    assert "Fix:" in text and "Directory (tenant) ID" in text


async def test_wrong_secret_is_aadsts7000215_and_the_secret_is_never_shown(live, tmp_path):
    secret = "wrong-Secret~Value.12345"
    err = await _fails(rehearsal(live, secret_env="CUTOVER_T_SECRET"), tmp_path, live.url, {"CUTOVER_T_SECRET": secret})
    assert err.code == "AADSTS7000215"
    text = str(err)
    assert "CUTOVER_T_SECRET" in text and "Value (not its Secret ID)" in text
    assert secret not in text and secret not in repr(err.args) and "rehearsal-secret" not in text


async def test_expired_secret_is_aadsts7000222(live, tmp_path):
    await live.admin(
        "POST", "identities", json={"client_id": "old-app", "client_secret": "old-secret-1", "secret_expired": True}
    )
    err = await _fails(
        rehearsal(live, client_id="old-app", secret_env="OLD_SECRET"),
        tmp_path,
        live.url,
        {"OLD_SECRET": "old-secret-1"},
    )
    assert err.code == "AADSTS7000222"
    assert (
        "expired" in str(err)
        and "New client secret" in str(err)
        and "OLD_SECRET" in str(err)
        and "old-secret-1" not in str(err)
    )


async def test_unknown_client_is_aadsts700016(live, tmp_path):
    err = await _fails(
        rehearsal(live, client_id="ghost-app", secret_env="GHOST"), tmp_path, live.url, {"GHOST": "boo-secret"}
    )
    assert err.code == "AADSTS700016" and "ghost-app" in str(err) and "client_id" in str(err)


async def test_an_unreachable_identity_platform_is_one_clear_error(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    started = time.monotonic()
    err = await _fails(Profile(name="reh", kind="rehearsal", dataverse_url=url, fno_url=url), tmp_path, url, {})
    assert time.monotonic() - started < 10
    assert err.code == "unreachable" and url in str(err) and "simulator running" in str(err)


def test_a_missing_secret_variable_is_a_config_error_before_any_network(tmp_path):
    profile = Profile(
        name="prod",
        kind="sandbox",
        dataverse_url="https://contoso.crm.dynamics.com",
        fno_url="https://contoso.operations.dynamics.com",
        tenant="contoso.onmicrosoft.com",
        client_id="00000000-0000-0000-0000-000000000001",
        auth="client-secret",
        secret_env="CUTOVER_PROD_SECRET",
    )
    with pytest.raises(ConfigError) as err:
        token_sources_for(profile, tmp_path, environ={})
    assert "CUTOVER_PROD_SECRET" in str(err.value)
    # with the secret, production sources talk to the real authority (not called here)
    sources = token_sources_for(profile, tmp_path, environ={"CUTOVER_PROD_SECRET": "s3cret-value"})
    assert sources["fno"].scope == "https://contoso.operations.dynamics.com/.default"
    assert "https://login.microsoftonline.com/contoso.onmicrosoft.com" in sources["fno"].describe()
    assert "s3cret-value" not in sources["fno"].describe()


# --- device code -----------------------------------------------------------------------------


async def test_device_code_shows_the_code_and_signs_in_once_for_both_resources(live, tmp_path):
    on_code = approver(live)
    profile = rehearsal(live, name="op", auth="device-code")
    sources = token_sources_for(profile, tmp_path, environ={}, sim_url=live.url, on_code=on_code)
    token = await asyncio.wait_for(sources["dataverse"].token(), 15)
    [(message, user_code, uri)] = on_code.seen
    assert uri == "https://microsoft.com/devicelogin" and user_code in message and uri in message
    r = await whoami(live, token)
    assert r.status_code == 200 and r.json()["UserId"] == user_id("operator@contoso.com")
    # F&O: from the refresh token, silently — no second code
    fno = await sources["fno"].token()
    assert fno != token and len(on_code.seen) == 1
    assert [g for g in await grants(live) if g != auth_device_grant()] == ["devicecode", "refresh_token"]
    assert "operator@contoso.com" in sources["dataverse"].describe()
    # a later, non-interactive command (no on_code) signs in from the cache file
    later = token_sources_for(profile, tmp_path, environ={}, sim_url=live.url)
    assert await later["dataverse"].token() == token


def auth_device_grant() -> str:
    return "urn:ietf:params:oauth:grant-type:device_code"


async def test_an_expired_access_token_is_refreshed_silently(live, tmp_path):
    assert (await live.admin("PUT", "settings", json={"token_lifetime": 3})).status_code == 200
    on_code = approver(live)
    sources = token_sources_for(
        rehearsal(live, name="op", auth="device-code"), tmp_path, environ={}, sim_url=live.url, on_code=on_code
    )
    t1 = await asyncio.wait_for(sources["dataverse"].token(), 15)
    before = await grants(live)
    t2 = await sources["dataverse"].token()  # 3 s left is "expired" to msal (under 5 minutes)
    assert t2 != t1
    assert (await whoami(live, t2)).status_code == 200
    assert (await grants(live))[len(before) :] == ["refresh_token"]
    assert len(on_code.seen) == 1


async def test_a_revoked_refresh_token_falls_back_to_a_new_device_code(live, tmp_path):
    on_code = approver(live)
    sources = token_sources_for(
        rehearsal(live, name="op", auth="device-code"), tmp_path, environ={}, sim_url=live.url, on_code=on_code
    )
    await asyncio.wait_for(sources["dataverse"].token(), 15)
    await live.client.post(f"{LOGIN}/revoke", json={"user": "operator@contoso.com"})
    t = await asyncio.wait_for(sources["dataverse"].token(force_refresh=True), 15)
    assert len(on_code.seen) == 2 and (await whoami(live, t)).status_code == 200


async def test_without_a_way_to_show_a_code_the_error_says_run_login(live, tmp_path):
    sources = token_sources_for(rehearsal(live, name="op", auth="device-code"), tmp_path, environ={}, sim_url=live.url)
    with pytest.raises(SignInError) as err:
        await sources["dataverse"].token()
    assert err.value.code == "sign-in-required" and "cutover login op" in str(err.value)
    assert "devicecode" not in await grants(live)


async def _polls(h) -> int:
    return sum(1 for e in await id_log(h) if e["grant_type"] == auth_device_grant())


async def test_cancelling_the_device_flow_raises_promptly_and_stops_polling(live, tmp_path):
    cancel = asyncio.Event()
    on_code = approver(live, act=False)
    sources = token_sources_for(
        rehearsal(live, name="op", auth="device-code"),
        tmp_path,
        environ={},
        sim_url=live.url,
        on_code=on_code,
        cancel=cancel,
    )
    task = asyncio.create_task(sources["dataverse"].token())
    while not on_code.seen:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    cancel.set()
    started = time.monotonic()
    with pytest.raises(SignInError) as err:
        await asyncio.wait_for(task, 10)
    assert time.monotonic() - started < 2.5
    assert err.value.code == "cancelled" and "cancelled" in str(err.value)
    polls = await _polls(live)
    await asyncio.sleep(1.5)
    assert await _polls(live) == polls


async def test_cancelling_the_waiting_task_stops_msal_polling(live, tmp_path):
    on_code = approver(live, act=False)
    sources = token_sources_for(
        rehearsal(live, name="op", auth="device-code"), tmp_path, environ={}, sim_url=live.url, on_code=on_code
    )
    task = asyncio.create_task(sources["dataverse"].token())
    while not on_code.seen:
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(1.3)  # msal notices within a second
    polls = await _polls(live)
    await asyncio.sleep(1.5)
    assert await _polls(live) == polls


async def test_an_expired_device_code_is_a_clear_error(live, tmp_path):
    await live.client.put(f"{LOGIN}/settings", json={"device_code_lifetime": 2})
    on_code = approver(live, act=False)
    sources = token_sources_for(
        rehearsal(live, name="op", auth="device-code"), tmp_path, environ={}, sim_url=live.url, on_code=on_code
    )
    with pytest.raises(SignInError) as err:
        await asyncio.wait_for(sources["dataverse"].token(), 15)
    assert err.value.code == "expired" and "cutover login op" in str(err.value)


async def test_a_declined_sign_in_is_a_clear_error(live, tmp_path):
    on_code = approver(live, deny=True)
    sources = token_sources_for(
        rehearsal(live, name="op", auth="device-code"), tmp_path, environ={}, sim_url=live.url, on_code=on_code
    )
    with pytest.raises(SignInError, match="the sign-in request was declined on the sign-in page") as err:
        await asyncio.wait_for(sources["dataverse"].token(), 15)
    assert err.value.code == "declined" and "run `cutover login op` again and approve the request" in str(err.value)
    # nothing was signed in: a later non-interactive command still has to sign in
    later = token_sources_for(rehearsal(live, name="op", auth="device-code"), tmp_path, environ={}, sim_url=live.url)
    with pytest.raises(SignInError, match="no valid sign-in is cached") as again:
        await later["dataverse"].token()
    assert again.value.code == "sign-in-required"


# --- the token cache file ------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
async def test_the_token_cache_is_0600_in_a_0700_directory(live, tmp_path):
    old = os.umask(0o022)
    try:
        sources = token_sources_for(rehearsal(live), tmp_path, environ={}, sim_url=live.url)
        await sources["dataverse"].token()
    finally:
        os.umask(old)
    path = token_cache_path(tmp_path, "reh")
    assert path == tmp_path / ".tokens" / "reh.json"
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    # no temporary files left; the lock file (empty, 0600) stays: deleting lock files breaks locking
    assert sorted(p.name for p in path.parent.iterdir()) == ["reh.json", "reh.json.lock"]
    assert _mode(path.parent / "reh.json.lock") == 0o600 and (path.parent / "reh.json.lock").stat().st_size == 0
    assert "not encrypted" in sources["dataverse"].describe() and "0600" in sources["dataverse"].describe()


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_loose_permissions_are_tightened_on_load(tmp_path):
    path = token_cache_path(tmp_path, "reh")
    path.parent.mkdir(mode=0o755)
    os.chmod(path.parent, 0o755)
    path.write_text("{}")
    os.chmod(path, 0o644)
    cache = TokenCacheFile(path)
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    assert any("0644" in n and "0600" in n for n in cache.notes) and any("0755" in n for n in cache.notes)
    again = TokenCacheFile(path)
    assert [n for n in again.notes if "encrypted persistence" not in n] == []  # nothing left to tighten


def test_an_unreadable_cache_file_starts_empty(tmp_path):
    path = token_cache_path(tmp_path, "reh")
    path.parent.mkdir(mode=0o700)
    path.write_text("not json", encoding="utf-8")
    os.chmod(path, 0o600)
    cache = TokenCacheFile(path)
    assert any("not a readable token cache" in n for n in cache.notes)


def test_msal_extensions_is_used_for_encryption_when_installed(tmp_path, monkeypatch):
    import msal

    built = []

    def build_encrypted_persistence(location):
        built.append(location)
        return object()

    class PersistedTokenCache(msal.SerializableTokenCache):
        def __init__(self, persistence):
            super().__init__()

    fake = types.SimpleNamespace(
        build_encrypted_persistence=build_encrypted_persistence, PersistedTokenCache=PersistedTokenCache
    )
    monkeypatch.setitem(sys.modules, "msal_extensions", fake)
    cache = TokenCacheFile(token_cache_path(tmp_path, "reh"))
    assert cache.encrypted and built == [str(tmp_path / ".tokens" / "reh.bin")]
    assert "encrypted by msal-extensions" in cache.describe()

    def unavailable(location):
        raise RuntimeError("no libsecret")

    monkeypatch.setitem(
        sys.modules,
        "msal_extensions",
        types.SimpleNamespace(build_encrypted_persistence=unavailable, PersistedTokenCache=PersistedTokenCache),
    )
    plain = TokenCacheFile(token_cache_path(tmp_path, "other"))
    assert not plain.encrypted and "not encrypted" in plain.describe() and "RuntimeError" in plain.notes[0]


# --- the routing http client -----------------------------------------------------------------


def test_the_routing_client_sends_the_identity_platform_to_the_simulator_only():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/token"):
            return httpx.Response(401, json={"error": "invalid_client", "error_codes": [7000215]})
        return httpx.Response(200, json={"ok": True}, headers={"X-Test": "1"})

    client = RoutedIdentityHttpClient("http://127.0.0.1:5555/", transport=httpx.MockTransport(handler))
    r = client.get("https://login.microsoftonline.com/t1/v2.0/.well-known/openid-configuration", params={"a": "b"})
    assert r.status_code == 200 and json.loads(r.text) == {"ok": True} and r.headers["x-test"] == "1"
    assert str(seen[0].url) == "http://127.0.0.1:5555/_sim/login/t1/v2.0/.well-known/openid-configuration?a=b"
    r = client.post(
        "https://login.microsoftonline.com/t1/oauth2/v2.0/token",
        data={"client_id": "c", "client_info": 1, "skip": None},
    )
    assert seen[1].method == "POST" and seen[1].content == b"client_id=c&client_info=1"
    assert r.status_code == 401 and client.last_error["error_codes"] == [7000215]
    with pytest.raises(
        auth.IdentityRoutingError,
        match="only talks to the simulator; refusing to send a request to https://evil.example.com$",
    ):
        client.get("https://evil.example.com/t1/v2.0/.well-known/openid-configuration")
    with pytest.raises(
        auth.IdentityRoutingError, match="refusing to send a request to http://login.microsoftonline.com$"
    ) as err:
        client.get("http://login.microsoftonline.com/t1")
    assert len(seen) == 2  # nothing was sent
    assert isinstance(err.value, WrongEnvironment) and exit_code_of(err.value) == EXIT_ENVIRONMENT


def test_transport_failures_are_identity_platform_unreachable_which_msal_understands():
    import requests

    def handler(request):
        raise httpx.ConnectError("connection refused")

    client = auth.IdentityHttpClient(transport=httpx.MockTransport(handler))
    with pytest.raises(IdentityPlatformUnreachable) as err:
        client.get("https://login.microsoftonline.com/t/v2.0/.well-known/openid-configuration")
    assert isinstance(err.value, requests.exceptions.ConnectionError)  # msal falls back on a cached token for these
    assert "connection refused" in str(err.value)


# --- redaction -------------------------------------------------------------------------------

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXZhbHVl"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Authorization: Bearer {JWT}", "Authorization: Bearer ***"),
        ("authorization: bearer opaque-token-value-123", "authorization: bearer ***"),
        ("Authorization: Basic Y2xpZW50OnNlY3JldA==", "Authorization: Basic ***"),
        ('{"access_token": "abc123", "token_type": "Bearer"}', '{"access_token": "***", "token_type": "Bearer"}'),
        ("{'refresh_token': '0.AAA-xyz', 'scope': 'a'}", "{'refresh_token': '***', 'scope': 'a'}"),
        (
            "grant_type=refresh_token&refresh_token=0.AAA-xyz&client_secret=s3cr~t.x&scope=a",
            "grant_type=refresh_token&refresh_token=***&client_secret=***&scope=a",
        ),
        ("client_assertion=eyJ0eXAi.eyJhdWQi.sig&client_id=c", "client_assertion=***&client_id=c"),
        (f"the token {JWT} expired", "the token *** expired"),
        ("sim.eyJzdWIiOiJjdXRvdmVyIn0.Zm9vYmFyYmF6cXV4 was refused", "*** was refused"),
        ("simrt.eyJzdWIiOiJjdXRvdmVyIn0.Zm9vYmFyYmF6cXV4", "***"),
        ('"id_token":"eyJ.x.y", "device_code": "DAQABAAE"', '"id_token":"***", "device_code": "***"'),
        ("AADSTS7000215: Invalid client secret provided.", "AADSTS7000215: Invalid client secret provided."),
        (
            '{"error": {"code": "0x80040220", "message": "no privilege"}}',
            '{"error": {"code": "0x80040220", "message": "no privilege"}}',
        ),
        (
            "WWW-Authenticate: Bearer authorization_uri=http://x/_sim/token",
            "WWW-Authenticate: Bearer authorization_uri=http://x/_sim/token",
        ),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected


def test_redact_also_removes_literal_values():
    assert redact("the secret hunter2-abc was sent", extra=["hunter2-abc"]) == "the secret *** was sent"
    assert redact("x", extra=["", "ab"]) == "x"  # too short to be a credential: left alone


def test_sign_in_error_names_everything_and_carries_no_token():
    err = SignInError(
        f'the server said {{"access_token": "abc123def"}} and Bearer {JWT}',
        profile="prod",
        tenant="contoso.onmicrosoft.com",
        client_id="app-1",
        code="AADSTS7000215",
        fix="check CUTOVER_PROD_SECRET",
    )
    text = str(err)
    assert text.startswith("sign-in failed for profile 'prod' (tenant contoso.onmicrosoft.com, client id app-1): ")
    assert text.endswith("Fix: check CUTOVER_PROD_SECRET")
    assert "abc123def" not in text and JWT not in text
    assert err.exit_code == 3 and err.code == "AADSTS7000215"


def test_profile_replace_keeps_working_with_sources(tmp_path):
    """dataclasses.replace of a rehearsal profile (e.g. pinning the fingerprint) keeps the
    same cache file: the file is named after the profile."""
    p = Profile(name="reh", kind="rehearsal", dataverse_url="http://127.0.0.1:9", fno_url="http://127.0.0.1:9")
    q = dataclasses.replace(p, pinned_org_id=str(uuid.uuid4()))
    a = token_sources_for(p, tmp_path, environ={})["dataverse"]
    b = token_sources_for(q, tmp_path, environ={})["dataverse"]
    assert a.cache.path == b.cache.path == token_cache_path(tmp_path, "reh")


# --- one TokenSource, one error root ---------------------------------------------------------


def test_every_source_is_the_one_token_source_the_transport_consumes(tmp_path):
    """There is one TokenSource (cutover.tokens); the msal sources are that, and cutover.auth
    defines no second class of that name."""
    assert auth.TokenSource is TokenSource
    assert [n for n, v in vars(auth).items() if isinstance(v, type) and v.__name__ == "TokenSource"] == ["TokenSource"]
    p = Profile(
        name="reh",
        kind="rehearsal",
        dataverse_url="http://127.0.0.1:9",
        fno_url="http://127.0.0.1:9",
        identities=("cutover-rehearsal-2",),
    )
    sources = [
        *token_sources_for(p, tmp_path, environ={}).values(),
        *pool_sources_for(p, tmp_path, environ={}).values(),
    ]
    assert len(sources) == 4
    for source in sources:
        assert isinstance(source, TokenSource) and isinstance(source, auth.MsalTokenSource)
        assert "client id cutover-rehearsal" in source.describe()
        source.close()


def test_sign_in_errors_are_environment_problems_that_exit_3():
    err = SignInError("the tenant was not found", profile="prod", code="AADSTS90002", fix="check tenant.")
    assert isinstance(err, EnvironmentProblem) and isinstance(err, CutoverError)
    assert exit_code_of(err) == EXIT_ENVIRONMENT
    assert str(err) == "sign-in failed for profile 'prod': the tenant was not found. Fix: check tenant."
    assert (err.reason, err.message, err.fix, err.code) == (
        "the tenant was not found",
        "the tenant was not found",
        "check tenant.",
        "AADSTS90002",
    )
    assert not issubclass(IdentityPlatformUnreachable, CutoverError)  # msal needs the requests type


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions and symbolic links")
def test_a_token_cache_that_is_not_a_regular_file_is_a_sign_in_error_and_left_alone(tmp_path):
    """A folder, or a symbolic link (which could point anywhere), where the cache file belongs
    is refused with the fix; neither is read, followed or chmod-ed."""
    folder = token_cache_path(tmp_path, "reh")
    folder.mkdir(parents=True, mode=0o755)
    os.chmod(folder, 0o755)
    with pytest.raises(SignInError, match=r"the token cache .*reh.json cannot be opened \(not a regular file\)") as err:
        TokenCacheFile(folder)
    assert err.value.code == "token-cache" and "delete it and sign in again" in str(err.value)
    assert folder.is_dir() and _mode(folder) == 0o755

    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("{}", encoding="utf-8")
    os.chmod(elsewhere, 0o644)
    link = token_cache_path(tmp_path, "linked")
    link.symlink_to(elsewhere)
    with pytest.raises(SignInError, match=r"the token cache .*linked.json cannot be opened") as err:
        TokenCacheFile(link)
    assert err.value.code == "token-cache"
    assert link.is_symlink() and _mode(elsewhere) == 0o644
