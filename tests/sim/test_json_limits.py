"""No recursion or size crash (issue #7): deeply nested JSON is 400 and a body over the limit
(64 MiB on the API, 1 MiB on the admin surface) is 413, in the service's error shape — on
single requests, bulk messages, `$batch` parts and admin bodies — and the simulator answers the
next request as before."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from cutover.sim import jsonguard
from cutover.sim.messages import parse_json
from tests.conftest import DV, FNO, fixed_price_line, milestone_payload
from tests.sim.dataverse_helpers import BAD_PAYLOAD, MILESTONES, post_batch, request_part

DEEP = b"[" * 100_000
DEEP_OBJECT = b'{"a":' * 50_000 + b"1" + b"}" * 50_000


def dataverse_error(r, status: int) -> str:
    assert r.status_code == status, r.text[:500]
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == BAD_PAYLOAD
    return body["error"]["message"]


async def still_answers(sim) -> None:
    assert (await sim.dv("GET", "WhoAmI")).status_code == 200
    assert (await sim.admin("GET", "version")).status_code == 200


@pytest.mark.parametrize("payload", [DEEP, DEEP_OBJECT, b'{"name": ' + b"[" * 101 + b"]" * 101 + b"}"])
async def test_deeply_nested_json_on_the_dataverse_api_is_a_400(sim, payload):
    r = await sim.dv("POST", "accounts", content=payload, headers={"Content-Type": "application/json"})
    assert "more than 100 levels deep" in dataverse_error(r, 400)
    r = await sim.dv("POST", f"{MILESTONES}/Microsoft.Dynamics.CRM.CreateMultiple", content=payload)
    dataverse_error(r, 400)
    await still_answers(sim)


async def test_nesting_within_the_limit_and_brackets_in_strings_are_fine(sim):
    name = "[" * 500 + "{"  # brackets inside a string are text, not nesting
    r = await sim.dv("POST", "accounts", json={"name": name[:160]})
    assert r.status_code == 204, r.text
    assert not jsonguard.nests_deeper_than(b'{"a": "' + b"[" * 10_000 + b'"}')
    assert not jsonguard.nests_deeper_than(b"[" * 100 + b"]" * 100)
    assert jsonguard.nests_deeper_than(b"[" * 101 + b"]" * 101)


async def test_deeply_nested_json_in_a_batch_part_is_a_400(sim):
    line = fixed_price_line(sim.conn)
    deep = "[" * 100_000
    r = await post_batch(
        sim,
        [
            request_part("POST", f"{DV}{MILESTONES}", milestone_payload(line, name="fine")),
            request_part("POST", f"{DV}{MILESTONES}", deep),
        ],
    )
    assert "levels deep" in dataverse_error(r, 400)
    assert (await sim.dv("GET", f"{MILESTONES}?$count=true&$top=0")).json()["@odata.count"] == 0
    await still_answers(sim)


async def test_deeply_nested_json_on_the_fno_api_is_a_400_in_its_shape(sim):
    r = await sim.fno("CustTransactions", method="POST", content=DEEP)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "" and "levels deep" in r.json()["error"]["message"]
    await still_answers(sim)


async def test_deeply_nested_json_on_the_admin_surface_is_a_400(sim):
    for path in ("settings", "faults", "login/settings"):
        r = await sim.admin("PUT", path, content=DEEP)
        assert "levels deep" in dataverse_error(r, 400)
    await still_answers(sim)


@pytest.mark.parametrize("depth", [3_000, 30_000])
async def test_an_absurdly_nested_filter_is_never_a_500(sim, depth):
    r = await sim.dv("GET", "accounts?$filter=" + "(" * depth + "name eq 'x'" + ")" * depth)
    assert r.status_code in (200, 400), r.text[:300]
    if r.status_code == 400:
        assert r.json()["error"]["code"].startswith("0x")
    await still_answers(sim)


async def _chunks(total: int, size: int = 1024 * 1024):
    chunk = b" " * size
    sent = 0
    while sent < total:
        yield chunk
        sent += size


async def test_a_body_over_64_mib_on_the_api_is_a_413(sim):
    over = jsonguard.API_BODY_LIMIT + 1024 * 1024
    r = await sim.dv("POST", "accounts", content=_chunks(over), headers={"Content-Type": "application/json"})
    message = dataverse_error(r, 413)
    assert f"{jsonguard.API_BODY_LIMIT:,}" in message and "64 MiB" in message
    await still_answers(sim)
    assert (await sim.log())[-1]["status"] == 200


async def test_a_body_over_1_mib_on_the_admin_surface_is_a_413(sim):
    big = b'{"path_contains": "' + b"x" * jsonguard.ADMIN_BODY_LIMIT + b'"}'
    r = await sim.admin("PUT", "faults", content=big)
    assert "1 MiB" in dataverse_error(r, 413)
    r = await sim.admin("PUT", "faults", content=_chunks(2 * jsonguard.ADMIN_BODY_LIMIT))
    dataverse_error(r, 413)
    r = await sim.client.post("/_sim/token", content=b"a=" + b"x" * jsonguard.ADMIN_BODY_LIMIT)
    assert r.status_code == 413
    assert (await sim.admin("GET", "faults")).json()["path_contains"] == ""
    await still_answers(sim)


def test_over_a_socket_a_declared_huge_body_is_refused_before_it_is_sent(socket_sim):
    url = urlsplit(str(socket_sim.client.base_url))
    with socket.create_connection((url.hostname, url.port), timeout=10) as s:
        s.sendall(
            f"POST {DV}accounts HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {100 * 1024**3}\r\n\r\n".encode()
        )
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413 ")


async def test_over_a_socket_deep_json_is_a_400_and_the_simulator_carries_on(socket_sim):
    r = await socket_sim.dv("POST", "accounts", content=DEEP, headers={"Content-Type": "application/json"})
    dataverse_error(r, 400)
    r = await socket_sim.admin("PUT", "faults", content=DEEP)
    dataverse_error(r, 400)
    assert (await socket_sim.dv("GET", "WhoAmI")).status_code == 200
    assert (await socket_sim.fno("CustTransactions?$top=1")).status_code == 200


def test_the_one_guarded_parse_refuses_depth_nan_and_size():
    with pytest.raises(jsonguard.JsonRefused) as deep:
        jsonguard.loads(DEEP)
    assert deep.value.status == 400
    with pytest.raises(jsonguard.JsonRefused) as nan:
        jsonguard.loads(b'{"amount": NaN}')
    assert nan.value.status == 400 and "NaN" in nan.value.message
    with pytest.raises(jsonguard.JsonRefused) as big:
        jsonguard.loads(b"[1]", limit=2)
    assert big.value.status == 413
    assert str(parse_json(b'{"a": 1.10}', "account")["a"]) == "1.10"
    assert FNO  # both API roots are covered above
