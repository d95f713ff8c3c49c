"""The admin surface (`/_sim/…`) is a door (issue #7): a random per-run admin token in
`X-Cutover-Admin` and `Content-Type: application/json` — which no HTML form, and no
cross-origin request without a CORS preflight, can send — and every field it takes is type-
and range-checked before anything changes. The identity platform's protocol endpoints keep
Microsoft's form protocol and need no admin token.

These tests use a bare client (no admin token, no JSON default), as a web page or another
local process would.
"""

from __future__ import annotations

import json

import httpx
import pytest

from cutover.sim.app import create_app
from cutover.sim.dualwrite import MAP_NAMES
from cutover.sim.gateway import ADMIN_HEADER
from tests.conftest import HARNESS_URL, WRITER

MILESTONE_MAP = MAP_NAMES[0]
PRIVILEGE = "0x80040220"
BAD_PAYLOAD = "0x80048d19"
INVALID_ARGUMENT = "0x80040203"


@pytest.fixture
async def bare(sim):
    """A client with no admin token and no content-type defaults: a hostile page or process."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=HARNESS_URL) as client:
        yield client


def error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    return body["error"]["message"]


async def map_state(sim) -> str:
    return (await sim.admin("GET", f"maps/{MILESTONE_MAP}")).json()["state"]


# --- the token ----------------------------------------------------------------------------------


async def test_a_web_page_cannot_change_a_map_without_the_admin_token(sim, bare):
    before = await map_state(sim)
    r = await bare.post(f"/_sim/maps/{MILESTONE_MAP}/stop", json={})
    assert ADMIN_HEADER in error(r, 401, PRIVILEGE)
    assert await map_state(sim) == before


async def test_a_wrong_admin_token_is_refused(sim, bare):
    before = await map_state(sim)
    r = await bare.post(f"/_sim/maps/{MILESTONE_MAP}/stop", json={}, headers={ADMIN_HEADER: sim.admin_token[:-1] + "x"})
    assert "admin token" in error(r, 401, PRIVILEGE)
    r = await bare.post(f"/_sim/maps/{MILESTONE_MAP}/stop", json={}, headers={ADMIN_HEADER: ""})
    error(r, 401, PRIVILEGE)
    assert await map_state(sim) == before


@pytest.mark.parametrize(
    "path",
    [
        "/_sim/",
        "/_sim",
        "/_sim/requests",
        "/_sim/maps",
        f"/_sim/maps/{MILESTONE_MAP}",
        "/_sim/maps/events",
        "/_sim/faults",
        "/_sim/protection",
        "/_sim/settings",
        "/_sim/identities",
        "/_sim/maintenance",
        "/_sim/version",
        "/_sim/login/requests",
        "/_sim/login/device-codes",
        "/_sim/login/certificates",
        "/_sim/login/settings",
        "/_sim/no-such-route",
    ],
)
async def test_reading_the_admin_surface_needs_the_admin_token(bare, path):
    error(await bare.get(path), 401, PRIVILEGE)


async def test_the_admin_token_is_random_per_app_unless_given(world_db):
    first, second = create_app(world_db), create_app(world_db)
    given = create_app(world_db, admin_token="a-token-chosen-by-the-caller")
    try:
        assert len(first.state.sim.admin_token) >= 40
        assert first.state.sim.admin_token != second.state.sim.admin_token
        assert given.state.sim.admin_token == "a-token-chosen-by-the-caller"
    finally:
        for app in (first, second, given):
            app.state.sim.conn.close()
    with pytest.raises(ValueError):
        create_app(world_db, admin_token="short")


# --- the content type ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type, content",
    [
        ("application/x-www-form-urlencoded", b"enabled=true"),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--x--\r\n"),
        ("text/plain", b'{"enabled": true}'),
        (None, b'{"enabled": true}'),
    ],
)
async def test_a_form_or_text_body_cannot_change_a_setting_even_with_the_token(sim, bare, content_type, content):
    headers = {ADMIN_HEADER: sim.admin_token}
    if content_type:
        headers["Content-Type"] = content_type
    r = await bare.put("/_sim/maintenance", content=content, headers=headers)
    assert "Content-Type: application/json" in error(r, 415, BAD_PAYLOAD)
    assert (await sim.admin("GET", "maintenance")).json() == {"enabled": False}


async def test_a_delete_without_a_json_content_type_is_refused(sim, bare):
    await sim.dv("GET", "WhoAmI")
    r = await bare.delete("/_sim/requests", headers={ADMIN_HEADER: sim.admin_token})
    error(r, 415, BAD_PAYLOAD)
    assert len(await sim.log()) == 1


async def test_the_token_and_json_together_open_the_door(sim, bare):
    headers = {ADMIN_HEADER: sim.admin_token}
    r = await bare.put("/_sim/maintenance", json={"enabled": True}, headers=headers)
    assert r.status_code == 200 and r.json() == {"enabled": True}
    r = await bare.put(
        "/_sim/maintenance",
        content=b'{"enabled": false}',
        headers={**headers, "Content-Type": "Application/JSON; charset=utf-8"},
    )
    assert r.status_code == 200 and r.json() == {"enabled": False}
    assert (await bare.get("/_sim/", headers=headers)).status_code == 200


# --- the identity platform: protocol open, admin closed -------------------------------------


async def test_the_token_endpoints_and_discovery_need_no_admin_token(bare):
    form = {"grant_type": "client_credentials", "client_id": WRITER[0], "client_secret": WRITER[1]}
    r = await bare.post("/_sim/token", data={**form, "scope": f"{HARNESS_URL}/.default"})
    assert r.status_code == 200, r.text
    r = await bare.get("/_sim/login/common/v2.0/.well-known/openid-configuration")
    assert r.status_code == 200
    r = await bare.post("/_sim/login/common/oauth2/v2.0/token", data={**form, "scope": f"{HARNESS_URL}/.default"})
    assert r.status_code == 200, r.text


async def test_approving_a_device_code_needs_the_admin_token(sim, bare):
    dc = await bare.post(
        "/_sim/login/common/oauth2/v2.0/devicecode",
        data={"client_id": WRITER[0], "scope": f"{HARNESS_URL}/.default offline_access"},
    )
    assert dc.status_code == 200, dc.text
    user_code = dc.json()["user_code"]
    error(await bare.post("/_sim/login/approve", json={"user_code": user_code}), 401, PRIVILEGE)
    r = await bare.post(
        "/_sim/login/approve",
        data={"user_code": user_code},
        headers={ADMIN_HEADER: sim.admin_token},
    )
    error(r, 415, BAD_PAYLOAD)
    pending = (await sim.admin("GET", "login/device-codes")).json()
    assert [(d["user_code"], d["state"]) for d in pending] == [(user_code, "pending")]
    r = await sim.admin("POST", "login/approve", json={"user_code": user_code})
    assert r.status_code == 200 and r.json()["state"] == "approved"


# --- every field is type- and range-checked ----------------------------------------------------

READBACK = [
    "",
    "maps",
    "faults",
    "settings",
    "identities",
    "maintenance",
    "version",
    "login/settings",
    "login/certificates",
    "login/device-codes",
]
SAVE_AS = f"maps/{MILESTONE_MAP}/save-as"

BAD_BODIES = [
    ("PUT", "maintenance", {"enabled": "false"}, "enabled"),
    ("PUT", "maintenance", {"enabled": 0}, "enabled"),
    ("PUT", "maintenance", {"enabled": None}, "enabled"),
    ("PUT", "version", {"version": 10.0}, "version"),
    ("PUT", "version", {"version": ""}, "version"),
    ("PUT", "faults", {"latency_ms": "100"}, "latency_ms"),
    ("PUT", "faults", '{"latency_ms": NaN}', "latency_ms"),
    ("PUT", "faults", '{"latency_ms": Infinity}', "latency_ms"),
    ("PUT", "faults", {"latency_ms": -1}, "latency_ms"),
    ("PUT", "faults", {"error_rate": 1.5}, "error_rate"),
    ("PUT", "faults", {"throttle_rate": -0.1}, "throttle_rate"),
    ("PUT", "faults", {"drop_rate": True}, "drop_rate"),
    ("PUT", "faults", {"error_status": 200}, "error_status"),
    ("PUT", "faults", {"error_status": 503.5}, "error_status"),
    ("PUT", "faults", {"retry_after": -1}, "retry_after"),
    ("PUT", "faults", {"script": "429"}, "script"),
    ("PUT", "faults", {"seed": "1"}, "seed"),
    ("PUT", "faults", {"latency": 5}, "latency"),
    ("PUT", "protection", {"scale": 0}, "scale"),
    ("PUT", "protection", {"scale": -1}, "scale"),
    ("PUT", "protection", {"scale": "0.5"}, "scale"),
    ("PUT", "protection", '{"scale": -Infinity}', "scale"),
    ("PUT", "protection", {"window_seconds": 0}, "window_seconds"),
    ("PUT", "protection", {"limits": {"window_seconds": -5}}, "window_seconds"),
    ("PUT", "protection", {"limits": {"enabled": "false"}}, "enabled"),
    ("PUT", "protection", {"limits": {"max_concurrent": 0}}, "max_concurrent"),
    ("PUT", "protection", {"limits": "fast"}, "limits"),
    ("PUT", "protection", {"max_requests": 1.5}, "max_requests"),
    ("PUT", "protection", {"max_execution_seconds": 0}, "max_execution_seconds"),
    ("PUT", "protection", {"cost": {"write_base": -1}}, "write_base"),
    ("PUT", "protection", '{"cost": {"latency_factor": NaN}}', "latency_factor"),
    ("PUT", "protection", {"scale": 0.5, "limits": {"max_requests": 5}, "bogus": 1}, "bogus"),
    ("PUT", "settings", {"token_lifetime": 0}, "token_lifetime"),
    ("PUT", "settings", {"token_lifetime": -60}, "token_lifetime"),
    ("PUT", "settings", {"token_lifetime": "3600"}, "token_lifetime"),
    ("PUT", "settings", {"token_lifetime": 3600.5}, "token_lifetime"),
    ("PUT", "settings", {"bulk_action_sets": "accounts"}, "bulk_action_sets"),
    ("PUT", "settings", {"bulk_action_sets": ["no_such_set"]}, "bulk_action_sets[0]"),
    ("PUT", "settings", {"invoice_create_action": ""}, "invoice_create_action"),
    ("PUT", "settings", {"invoice_confirm_action": 1}, "invoice_confirm_action"),
    ("PUT", "settings", {"fno_default_company": None}, "fno_default_company"),
    ("PUT", "settings", {"background_delay_s": -1}, "background_delay_s"),
    ("PUT", "settings", '{"background_delay_s": NaN}', "background_delay_s"),
    ("PUT", "settings", {"token_lifetime": 60, "bogus_setting": 1}, "bogus_setting"),
    ("POST", "identities", {"client_id": "x-app", "client_secret": "s3", "can_write": "false"}, "can_write"),
    ("POST", "identities", {"client_id": "x-app", "client_secret": "s3", "secret_expired": 1}, "secret_expired"),
    ("POST", "identities", {"client_id": 5, "client_secret": "s3"}, "client_id"),
    ("POST", "identities", {"client_id": "x-app", "client_secret": ""}, "client_secret"),
    ("POST", SAVE_AS, {"version": 1.0, "description": "d"}, "version"),
    ("POST", SAVE_AS, {"version": "9.9", "description": "d", "add_mappings": {"a": 1}}, "add_mappings"),
    ("POST", SAVE_AS, {"version": "9.9", "description": "d", "add_mappings": ["x"]}, "add_mappings[0]"),
    ("POST", f"maps/{MILESTONE_MAP}/stop", {"force": True}, "force"),
    ("POST", f"maps/{MILESTONE_MAP}/version", {"version": 1}, "version"),
    ("POST", "fno/generate-mapping", {"entity": []}, "entity"),
    ("PUT", "login/settings", {"device_code_interval": 0}, "device_code_interval"),
    ("PUT", "login/settings", {"refresh_token_lifetime": -1}, "refresh_token_lifetime"),
    ("PUT", "login/settings", {"device_code_lifetime": "900"}, "device_code_lifetime"),
    ("PUT", "login/settings", {"tenants": [{"id": 7}]}, "id"),
    ("PUT", "login/settings", {"tenants": []}, "tenants"),
    ("POST", "login/approve", {"user_code": "ABC", "deny": "false"}, "deny"),
    ("POST", "login/approve", {"user_code": "ABC", "can_write": 1}, "can_write"),
    ("POST", "login/revoke", {"user": 123}, "user"),
    ("POST", "login/certificates", {"client_id": "x", "certificate": 7}, "certificate"),
]


async def snapshot(sim) -> dict:
    return {path: (await sim.admin("GET", path)).json() for path in READBACK} | {
        "protection": {k: v for k, v in (await sim.admin("GET", "protection")).json().items() if k != "usage"}
    }


@pytest.mark.parametrize("method, path, body, field", BAD_BODIES, ids=[f"{m} {p} {f}" for m, p, _, f in BAD_BODIES])
async def test_every_admin_setting_is_type_and_range_checked(sim, method, path, body, field):
    """A string where a boolean or number belongs, NaN or Infinity, a zero or negative window
    or lifetime, an unknown field: 400 naming the field, and nothing changed."""
    if path == SAVE_AS:
        assert (await sim.admin("POST", f"maps/{MILESTONE_MAP}/stop")).status_code == 200
    before = await snapshot(sim)
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    r = await sim.admin(method, path, content=content)
    message = error(r, 400, INVALID_ARGUMENT)
    assert field in message
    assert await snapshot(sim) == before


async def test_a_setting_accepts_exactly_its_type(sim):
    r = await sim.admin("PUT", "settings", json={"token_lifetime": 120, "background_delay_s": 0.5})
    assert r.status_code == 200 and r.json()["token_lifetime"] == 120 and r.json()["background_delay_s"] == 0.5
    r = await sim.admin("PUT", "protection", json={"scale": 0.01, "limits": {"enabled": False}})
    assert r.status_code == 200 and r.json()["limits"]["enabled"] is False
    assert r.json()["limits"]["window_seconds"] == pytest.approx(3.0)
    r = await sim.admin("PUT", "faults", json={"error_rate": 1, "error_status": 500, "script": ["429", "ok"]})
    assert r.status_code == 200 and r.json()["error_rate"] == 1
