"""The simulator answers only to the names it serves (DNS-rebinding protection), and writes
only its configured root into links — never the request's `Host` or `X-Forwarded-Host`
(issue #7)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import httpx
import pytest

from cutover.sim.app import create_app
from cutover.sim.hosts import HostPolicy, split_host
from tests.conftest import DV, FNO, WRITER, harness_client

CONTRACTS = "salesorders"


def refused(r: httpx.Response, shape: str = "dataverse") -> str:
    assert r.status_code == 421, r.text
    err = r.json()["error"]
    if shape == "fno":
        assert err["code"] == "" and "innererror" in err
    else:
        assert err["code"].startswith("0x")
    assert "Host" in err["message"]
    return err["message"]


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:80", "127.0.0.1.evil.example", "127.0.0.2", "", "[::2]"]
)
async def test_a_rebound_name_cannot_reach_the_api_or_the_admin_surface(sim, host):
    token = await sim.auth()
    refused(await sim.client.get(DV + "WhoAmI", headers={**token, "Host": host}))
    refused(await sim.client.get(FNO + "CustTransactions", headers={**token, "Host": host}), "fno")
    refused(await sim.admin("GET", "", headers={"Host": host}))
    refused(await sim.admin("PUT", "maintenance", json={"enabled": True}, headers={"Host": host}))
    r = await sim.client.post(
        "/_sim/token",
        data={"grant_type": "client_credentials", "client_id": WRITER[0], "client_secret": WRITER[1], "scope": "x"},
        headers={"Host": host},
    )
    refused(r)
    assert (await sim.admin("GET", "maintenance")).json() == {"enabled": False}


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8123", "localhost", "LOCALHOST:1", "[::1]", "[::1]:8080"])
async def test_loopback_names_are_served_on_any_port(sim, host):
    r = await sim.dv("GET", "WhoAmI", headers={"Host": host})
    assert r.status_code == 200, r.text
    assert (await sim.admin("GET", "version", headers={"Host": host})).status_code == 200


async def test_an_added_host_is_served_and_others_still_are_not(world_db):
    app = create_app(world_db, allowed_hosts=["rehearsal.lan"])
    try:
        async with harness_client(app, base_url="http://rehearsal.lan") as client:
            assert (await client.get("/_sim/version")).status_code == 200
            refused(await client.get("/_sim/version", headers={"Host": "other.lan"}))
    finally:
        app.state.sim.conn.close()


@pytest.mark.parametrize(
    "value, expected",
    [
        ("127.0.0.1", ("127.0.0.1", None)),
        ("127.0.0.1:8000", ("127.0.0.1", 8000)),
        ("[::1]:5", ("::1", 5)),
        ("LocalHost.", ("localhost", None)),
        ("127.0.0.1:", None),
        ("127.0.0.1:x", None),
        ("127.0.0.1:70000", None),
        ("user@127.0.0.1", None),
        ("127.0.0.1/path", None),
        ("[::1", None),
        ("::1", None),
        ("", None),
    ],
)
def test_host_headers_are_read_strictly(value, expected):
    assert split_host(value) == expected


def test_a_base_url_must_be_an_http_url():
    with pytest.raises(ValueError):
        HostPolicy("ftp://127.0.0.1")
    with pytest.raises(ValueError):
        HostPolicy(None, ["evil/x"])


# --- links ---------------------------------------------------------------------------------------


async def test_links_use_the_configured_root_not_the_host_header(world_db):
    app = create_app(world_db, base_url="http://127.0.0.1:8123")
    try:
        async with harness_client(app, base_url="http://127.0.0.1:8123") as client:
            form = {"grant_type": "client_credentials", "client_id": WRITER[0], "client_secret": WRITER[1]}
            token = (await client.post("/_sim/token", data={**form, "scope": "http://127.0.0.1:8123/.default"})).json()
            headers = {
                "Authorization": f"Bearer {token['access_token']}",
                "Host": "localhost:9999",
                "X-Forwarded-Host": "evil.example",
                "X-Forwarded-Proto": "https",
                "Forwarded": "host=evil.example;proto=https",
                "Prefer": "odata.maxpagesize=2",
            }
            r = await client.get(DV + CONTRACTS + "?$select=ordernumber", headers=headers)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["@odata.context"].startswith(f"http://127.0.0.1:8123{DV}$metadata#")
            assert body["@odata.nextLink"].startswith(f"http://127.0.0.1:8123{DV}{CONTRACTS}?")
            r = await client.get(FNO + "CustTransactions?$top=1", headers=headers)
            assert r.json()["@odata.context"].startswith("http://127.0.0.1:8123/data/")
            r = await client.get(DV + "WhoAmI", headers={"Host": "localhost:9999"})
            assert r.status_code == 401
            assert "http://127.0.0.1:8123/_sim/token" in r.headers["www-authenticate"]
            assert "evil" not in r.text
    finally:
        app.state.sim.conn.close()


async def test_over_a_socket_links_use_the_address_served_not_the_host_header(socket_sim):
    root = str(socket_sim.client.base_url).rstrip("/")
    port = urlsplit(root).port
    r = await socket_sim.dv(
        "GET",
        CONTRACTS + "?$select=ordernumber",
        headers={"Host": f"localhost:{port + 1}", "X-Forwarded-Host": "evil.example", "Prefer": "odata.maxpagesize=2"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["@odata.nextLink"].startswith(f"{root}{DV}{CONTRACTS}?")


def test_over_a_socket_a_rebound_name_is_refused(socket_sim):
    url = urlsplit(str(socket_sim.client.base_url))
    with socket.create_connection((url.hostname, url.port), timeout=10) as s:
        s.sendall(b"GET /_sim/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 421 ")
    assert b"evil.example" in answer and b"DNS-rebinding" in answer
