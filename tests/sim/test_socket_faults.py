"""Contract of the simulator's fault injection (`/_sim/faults`).

Rules: DESIGN.md, the rehearsal simulator: "fault injection (latency, 429 by the
service-protection rules …, 5xx, dropped connections)" — the conditions a real night brings
and the clients must survive (retry after Retry-After, idempotent upserts after a lost answer).
Dropped connections are tested over a real socket (`socket_sim`), where a cut connection is
what the client really sees.
"""

from __future__ import annotations

import sqlite3
import time
import uuid

import httpx
import pytest

from tests.conftest import SimHarness, fixed_price_line, milestone_payload

MILESTONES = "msdyn_contractlinescheduleofvalues"


async def set_faults(sim: SimHarness, **body) -> dict:
    r = await sim.admin("PUT", "faults", json=body)
    assert r.status_code == 200, r.text
    return r.json()


async def statuses(sim: SimHarness, n: int, path: str = "DualWriteProjectConfigurations") -> list[int]:
    return [(await sim.fno(path)).status_code for _ in range(n)]


# --- in-process -------------------------------------------------------------------------------


async def test_seeded_random_faults_repeat_exactly(sim):
    """Random faults come from their own seeded generator: the same settings give the same
    sequence of 429s, 5xx and successes, so a rehearsal that failed can be replayed."""
    await set_faults(sim, throttle_rate=0.3, error_rate=0.2, seed=42)
    first = await statuses(sim, 40)
    await set_faults(sim, throttle_rate=0.3, error_rate=0.2, seed=42)
    second = await statuses(sim, 40)
    assert first == second
    assert {200, 429, 503} == set(first)
    await set_faults(sim, throttle_rate=0.3, error_rate=0.2, seed=43)
    assert await statuses(sim, 40) != first


async def test_fault_rates_are_roughly_the_shares_asked_for(sim):
    """throttle_rate / error_rate are shares of requests: 0.25 each over 400 requests gives about
    100 of each."""
    await set_faults(sim, throttle_rate=0.25, error_rate=0.25, seed=1)
    seen = await statuses(sim, 400)
    assert 60 <= seen.count(429) <= 140
    assert 60 <= seen.count(503) <= 140


async def test_a_script_forces_outcomes_in_order(sim):
    """`script` forces the next outcomes in order, then requests succeed again."""
    await set_faults(sim, script=["429", "5xx", "ok"])
    assert await statuses(sim, 4) == [429, 503, 200, 200]
    assert (await sim.admin("GET", "faults")).json()["script"] == []


async def test_an_injected_429_carries_the_configured_retry_after(sim):
    """An injected 429 looks like service protection's: Retry-After = `retry_after` seconds and,
    on Dataverse, error code 0x80072322."""
    await set_faults(sim, script=["429"], retry_after=7)
    r = await sim.dv("GET", "WhoAmI")
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "7"
    assert r.json()["error"]["code"] == "0x80072322"


async def test_an_injected_server_error_uses_the_configured_status(sim):
    """`error_status` picks the 5xx answered, with an error body saying to retry."""
    await set_faults(sim, script=["5xx"], error_status=500)
    r = await sim.dv("GET", "WhoAmI")
    assert r.status_code == 500
    assert "Retry" in r.json()["error"]["message"]


async def test_a_faulted_write_writes_nothing(sim):
    """A 429 or 5xx fault answers before the service runs: nothing is written."""
    line = fixed_price_line(sim.conn)
    await set_faults(sim, script=["429", "5xx"])
    for expected in (429, 503):
        r = await sim.dv("POST", MILESTONES, json=milestone_payload(line, name="Faulted"))
        assert r.status_code == expected
    assert sim.conn.execute("SELECT count(*) FROM dv_msdyn_contractlinescheduleofvalues").fetchone()[0] == 0


async def test_faults_show_in_the_request_log(sim):
    """The request log records the injected fault next to the status."""
    await set_faults(sim, script=["429", "5xx"])
    await statuses(sim, 3)
    log = await sim.log()
    assert [(e["status"], e["fault"]) for e in log[-3:]] == [(429, "429"), (503, "5xx"), (200, None)]


async def test_latency_delays_every_answer(sim):
    """`latency_ms` delays answers by that much."""
    await set_faults(sim, latency_ms=300)
    started = time.monotonic()
    assert (await sim.fno("DualWriteProjectConfigurations")).status_code == 200
    assert time.monotonic() - started >= 0.3


async def test_path_contains_restricts_scripted_faults(sim):
    """`path_contains` restricts faults to matching paths: other requests neither fail nor use up
    the script."""
    await set_faults(sim, script=["5xx"], path_contains="CustTransactions")
    assert await statuses(sim, 3, "DualWriteProjectConfigurations") == [200, 200, 200]
    assert await statuses(sim, 2, "CustTransactions?$top=1") == [503, 200]


async def test_path_contains_restricts_latency(sim):
    """Latency is a fault too: with `path_contains`, only matching paths are slowed."""
    await set_faults(sim, latency_ms=500, path_contains="CustTransactions")
    started = time.monotonic()
    assert (await sim.fno("DualWriteProjectConfigurations")).status_code == 200
    assert time.monotonic() - started < 0.4
    started = time.monotonic()
    assert (await sim.fno("CustTransactions?$top=1")).status_code == 200
    assert time.monotonic() - started >= 0.5


async def test_clearing_faults_restores_normal_service(sim):
    """DELETE /_sim/faults clears every fault."""
    await set_faults(sim, throttle_rate=1.0)
    assert await statuses(sim, 2) == [429, 429]
    r = await sim.admin("DELETE", "faults")
    assert r.json()["throttle_rate"] == 0
    assert await statuses(sim, 2) == [200, 200]


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"throttle": 0.5}, "Unknown fault setting(s) throttle; known:"),
        ({"script": ["timeout"]}, 'script[0] must be one of ok, 429, 5xx, drop, drop-after, latency; got "timeout".'),
    ],
)
async def test_unknown_fault_settings_are_refused(sim, body, fragment):
    """A misspelt fault or an unknown scripted outcome is a 400, not silently ignored."""
    before = (await sim.admin("GET", "faults")).json()
    r = await sim.admin("PUT", "faults", json=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == "0x80040203"
    assert fragment in r.json()["error"]["message"]
    assert (await sim.admin("GET", "faults")).json() == before


# --- over a real socket ---------------------------------------------------------------------


def _line(harness: SimHarness) -> dict:
    conn = sqlite3.connect(harness.db)
    try:
        return fixed_price_line(conn)
    finally:
        conn.close()


async def _named(harness: SimHarness, name: str) -> list[dict]:
    r = await harness.dv("GET", f"{MILESTONES}?$filter=msdyn_name eq '{name}'&$select=msdyn_name,msdyn_amount")
    assert r.status_code == 200, r.text
    return r.json()["value"]


@pytest.mark.socket
async def test_a_dropped_connection_is_a_transport_error_and_writes_nothing(socket_sim):
    """`drop` cuts the connection before the request is processed: the client sees a transport
    error (no HTTP status) and nothing is written."""
    line = _line(socket_sim)
    await socket_sim.token()
    await set_faults(socket_sim, script=["drop"])
    with pytest.raises(httpx.TransportError):
        await socket_sim.dv("POST", MILESTONES, json=milestone_payload(line, name="Dropped"))
    assert await _named(socket_sim, "Dropped") == []
    log = await socket_sim.log()
    post = [e for e in log if e["method"] == "POST"]
    assert [(e["status"], e["fault"]) for e in post] == [(0, "drop")]


@pytest.mark.socket
async def test_a_connection_dropped_after_commit_hides_a_committed_write(socket_sim):
    """`drop-after` cuts the connection after the change was committed: the client sees an error
    although the write happened (a GET proves it) — why the migration must use idempotent upserts:
    the retry with the same id (PATCH set(id)) updates the one record instead of adding another."""
    line = _line(socket_sim)
    await socket_sim.token()
    mid = str(uuid.uuid4())
    payload = milestone_payload(line, name="Lost answer", amount=700)
    await set_faults(socket_sim, script=["drop-after"])
    with pytest.raises(httpx.TransportError):
        await socket_sim.dv("PATCH", f"{MILESTONES}({mid})", json=payload)
    r = await socket_sim.dv("GET", f"{MILESTONES}({mid})?$select=msdyn_name")
    assert r.status_code == 200
    assert r.json()["msdyn_name"] == "Lost answer"

    retry = await socket_sim.dv("PATCH", f"{MILESTONES}({mid})", json=payload)
    assert retry.status_code == 204
    assert len(await _named(socket_sim, "Lost answer")) == 1


@pytest.mark.socket
async def test_a_blind_retry_of_a_create_after_a_lost_answer_duplicates(socket_sim):
    """The counter-example: retrying a plain POST after `drop-after` creates a second record —
    the duplicate the cutover's deterministic ids and upserts exist to prevent."""
    line = _line(socket_sim)
    await socket_sim.token()
    payload = milestone_payload(line, name="Posted twice")
    await set_faults(socket_sim, script=["drop-after"])
    with pytest.raises(httpx.TransportError):
        await socket_sim.dv("POST", MILESTONES, json=payload)
    assert (await socket_sim.dv("POST", MILESTONES, json=payload)).status_code == 204
    assert len(await _named(socket_sim, "Posted twice")) == 2


@pytest.mark.socket
async def test_the_server_keeps_serving_after_a_drop(socket_sim):
    """A dropped connection is one request's fate: the next request on a new connection succeeds."""
    await socket_sim.token()
    await set_faults(socket_sim, script=["drop"])
    with pytest.raises(httpx.TransportError):
        await socket_sim.fno("CustTransactions?$top=1")
    r = await socket_sim.fno("CustTransactions?$top=1")
    assert r.status_code == 200
    assert len(r.json()["value"]) == 1
