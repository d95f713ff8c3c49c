"""Tokens as the identity platform issues them (issue #7): a token's `aud` is the resource it
was asked for, the API refuses a token for any other resource as a resource server does
(401, `WWW-Authenticate: Bearer error="invalid_token"`), and the token endpoints refuse to
issue one for a resource the simulator is not (AADSTS500011 `invalid_resource`).

Accepted: the simulator's own root under a name it serves and the port it serves
(`http://127.0.0.1:PORT`, `http://localhost:PORT`), and the stable rehearsal resource
`https://rehearsal.cutover.local` (a cached token survives a restart on another port)."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlsplit

import pytest

from cutover.sim import auth
from cutover.sim.hosts import REHEARSAL_RESOURCE
from tests.conftest import DV, FNO, HARNESS_URL, WRITER

FORM = {"grant_type": "client_credentials", "client_id": WRITER[0], "client_secret": WRITER[1]}


def claims_of(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def assert_invalid_token(r) -> str:
    assert r.status_code == 401, r.text
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="invalid_token", error_description="')
    assert "audience" in challenge
    return challenge


@pytest.mark.parametrize(
    "resource",
    [
        "https://other.example",
        "https://contoso.crm.dynamics.com",
        "http://127.0.0.1:1",
        "http://sim.test/api/data/v9.2",
    ],
)
async def test_a_token_for_another_resource_is_refused_by_the_api(sim, resource):
    token = auth.mint_access_token(sim.conn, WRITER[0], f"{resource}/.default")["access_token"]
    assert claims_of(token)["aud"] == resource
    challenge = assert_invalid_token(await sim.client.get(DV + "WhoAmI", headers=bearer(token)))
    assert resource in challenge and f"{REHEARSAL_RESOURCE}/.default" in challenge
    assert_invalid_token(await sim.client.get(FNO + "CustTransactions", headers=bearer(token)))
    log = await sim.log()
    assert [(e["status"], e["client_id"]) for e in log] == [(401, WRITER[0])] * 2


@pytest.mark.parametrize(
    "scope", [f"{REHEARSAL_RESOURCE}/.default", f"{HARNESS_URL}/.default", "http://localhost/.default"]
)
async def test_the_simulators_own_and_the_stable_rehearsal_scope_work(sim, scope):
    r = await sim.client.post("/_sim/token", data={**FORM, "scope": scope})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    assert claims_of(token)["aud"] == scope.removesuffix("/.default")
    assert (await sim.client.get(DV + "WhoAmI", headers=bearer(token))).status_code == 200
    assert (await sim.client.get(FNO + "CustTransactions?$top=1", headers=bearer(token))).status_code == 200


@pytest.mark.parametrize(
    "scope", ["https://other.example/.default", "http://sim.test:8080/.default", "http://evil.example/.default"]
)
async def test_the_token_endpoints_refuse_a_resource_that_is_not_the_simulator(sim, scope):
    r = await sim.client.post("/_sim/token", data={**FORM, "scope": scope})
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_resource" and r.json()["error_codes"] == [500011]
    assert scope.removesuffix("/.default") in r.json()["error_description"]
    r = await sim.client.post("/_sim/login/common/oauth2/v2.0/token", data={**FORM, "scope": scope})
    assert r.status_code == 400 and r.json()["error"] == "invalid_resource"
    r = await sim.client.post(
        "/_sim/login/common/oauth2/v2.0/devicecode", data={"client_id": WRITER[0], "scope": f"{scope} openid"}
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_resource"


async def test_over_a_socket_the_served_port_is_the_audience_and_another_port_is_not(socket_sim):
    root = str(socket_sim.client.base_url).rstrip("/")
    port = urlsplit(root).port
    for scope in (f"{root}/.default", f"http://localhost:{port}/.default", f"{REHEARSAL_RESOURCE}/.default"):
        r = await socket_sim.client.post("/_sim/token", data={**FORM, "scope": scope})
        assert r.status_code == 200, r.text
        assert (await socket_sim.client.get(DV + "WhoAmI", headers=bearer(r.json()["access_token"]))).status_code == 200
    r = await socket_sim.client.post("/_sim/token", data={**FORM, "scope": f"http://127.0.0.1:{port + 1}/.default"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_resource"
