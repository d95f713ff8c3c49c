"""Contract of the simulated service protection limits.

Rules: Microsoft's "Service protection API limits" as DESIGN.md's Domain facts state them —
per user, over a sliding window (5 minutes): 6000 requests, 1200 s combined execution time,
52 concurrent requests; past a limit 429 with `Retry-After` in seconds; error codes
0x80072322 (number of requests), 0x80072321 (execution time), 0x80072326 (concurrent
requests); `x-ms-dop-hint`; each application user has its own budget. The simulator lets a
rehearsal shrink the window (`PUT /_sim/protection {"scale": f}`) so a limit binds in seconds.
"""

from __future__ import annotations

import asyncio

from tests.conftest import DV, WRITER, SimHarness, fixed_price_line, milestone_payload

SECOND = ("cutover-rehearsal-2", "rehearsal-secret-2")
REQUESTS_LIMIT = "0x80072322"
EXECUTION_TIME_LIMIT = "0x80072321"
CONCURRENCY_LIMIT = "0x80072326"


async def protect(sim: SimHarness, **body) -> dict:
    r = await sim.admin("PUT", "protection", json=body)
    assert r.status_code == 200, r.text
    return r.json()


async def whoami(sim: SimHarness, who=WRITER):
    return await sim.dv("GET", "WhoAmI", who=who)


def retry_after(r) -> int:
    value = r.headers["Retry-After"]
    assert value.isdigit(), f"Retry-After must be whole seconds, got {value!r}"
    return int(value)


def batch_of_gets(count: int, boundary: str = "batch_p") -> tuple[bytes, str]:
    parts = [
        f"--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        f"GET {DV}accounts?$select=name&$top=1 HTTP/1.1\r\nAccept: application/json\r\n\r\n"
        for _ in range(count)
    ]
    return ("".join(parts) + f"--{boundary}--\r\n").encode(), f"multipart/mixed; boundary={boundary}"


async def test_scale_shrinks_the_window_and_keeps_the_documented_rates(sim):
    """`scale` 0.01 gives the documented limits over 1/100 of the 5-minute window: 3 s, 60
    requests, 12 s of execution time, 52 concurrent (the concurrency limit does not scale)."""
    limits = (await protect(sim, scale=0.01))["limits"]
    assert (
        limits["window_seconds"],
        limits["max_requests"],
        limits["max_execution_seconds"],
        limits["max_concurrent"],
    ) == (3.0, 60, 12.0, 52)
    r = await sim.admin("DELETE", "protection")
    assert r.json()["limits"] == {
        "window_seconds": 300.0,
        "max_requests": 6000,
        "max_execution_seconds": 1200.0,
        "max_concurrent": 52,
        "enabled": True,
    }


async def test_the_request_after_the_limit_is_throttled_with_retry_after(sim):
    """Number of requests: the 61st request in a 60-request window answers 429 with Retry-After in
    whole seconds (at least 1, at most the window) and error code 0x80072322."""
    await protect(sim, scale=0.01)
    statuses = [(await whoami(sim)).status_code for _ in range(60)]
    assert statuses == [200] * 60
    r = await whoami(sim)
    assert r.status_code == 429
    assert 1 <= retry_after(r) <= 3
    assert r.json()["error"]["code"] == REQUESTS_LIMIT
    log = await sim.log()
    assert log[-1]["status"] == 429 and log[-1]["throttled"] == REQUESTS_LIMIT


async def test_a_throttled_request_changes_nothing(sim):
    """A 429 is answered before the service runs: a throttled create writes no milestone."""
    await protect(sim, limits={"window_seconds": 30, "max_requests": 1})
    line = fixed_price_line(sim.conn)
    assert (await whoami(sim)).status_code == 200
    r = await sim.dv("POST", "msdyn_contractlinescheduleofvalues", json=milestone_payload(line, name="Throttled"))
    assert r.status_code == 429
    count = sim.conn.execute("SELECT count(*) FROM dv_msdyn_contractlinescheduleofvalues").fetchone()[0]
    assert count == 0


async def test_fno_is_protected_by_the_same_limits(sim):
    """F&O: "Same 6000 / 1200 s / 52 service protection as above, 429 + Retry-After" (DESIGN)."""
    await protect(sim, scale=0.01)
    for _ in range(60):
        assert (await sim.fno("DualWriteProjectConfigurations")).status_code == 200
    r = await sim.fno("DualWriteProjectConfigurations")
    assert r.status_code == 429
    assert 1 <= retry_after(r) <= 3


async def test_combined_execution_time_over_the_limit_is_throttled(sim):
    """Execution time: once the requests in the window have spent more than the limit (1 s here;
    a write priced at 2 s a record) the next request answers 429, code 0x80072321."""
    await protect(sim, limits={"window_seconds": 5, "max_execution_seconds": 1}, cost={"write_per_record": 2})
    r = await sim.dv("POST", "msdyn_contractlinescheduleofvalues", json=milestone_payload(fixed_price_line(sim.conn)))
    assert r.status_code == 204
    r = await whoami(sim)
    assert r.status_code == 429
    assert r.json()["error"]["code"] == EXECUTION_TIME_LIMIT
    assert 1 <= retry_after(r) <= 5
    usage = (await sim.admin("GET", "protection")).json()["usage"]
    assert usage[f"dataverse:{WRITER[0]}"]["execution_seconds"] > 1


async def test_cheap_requests_stay_under_the_execution_limit(sim):
    """The same 1 s budget is not exceeded by reads priced at the default cost."""
    await protect(sim, limits={"window_seconds": 5, "max_execution_seconds": 1})
    assert [(await whoami(sim)).status_code for _ in range(20)] == [200] * 20


async def test_concurrent_requests_over_the_limit_are_throttled(sim):
    """Concurrency: with at most 2 concurrent requests and slow requests (latency_factor), the
    third of three simultaneous requests answers 429, code 0x80072326; the other two succeed."""
    await protect(sim, limits={"max_concurrent": 2}, cost={"latency_factor": 40})  # a WhoAmI takes ~0.4 s
    await sim.token()
    responses = await asyncio.gather(*(whoami(sim) for _ in range(3)))
    assert sorted(r.status_code for r in responses) == [200, 200, 429]
    (throttled,) = [r for r in responses if r.status_code == 429]
    assert throttled.json()["error"]["code"] == CONCURRENCY_LIMIT
    assert retry_after(throttled) >= 1
    assert (await whoami(sim)).status_code == 200  # the slots are free again


async def test_each_identity_has_its_own_budget(sim):
    """ "Each application user has its own budget: more identities, more throughput" (DESIGN): with
    the first identity throttled, a second one is still admitted."""
    await protect(sim, limits={"window_seconds": 30, "max_requests": 3})
    assert [(await whoami(sim)).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert [(await whoami(sim, SECOND)).status_code for _ in range(3)] == [200, 200, 200]
    assert (await whoami(sim, SECOND)).status_code == 429


async def test_after_retry_after_seconds_the_identity_is_admitted_again(sim):
    """The window slides: waiting the Retry-After the service asked for is enough to be admitted."""
    await protect(sim, limits={"window_seconds": 1, "max_requests": 2})
    assert [(await whoami(sim)).status_code for _ in range(2)] == [200, 200]
    r = await whoami(sim)
    assert r.status_code == 429
    wait = retry_after(r)
    assert wait == 1
    await asyncio.sleep(wait)
    assert (await whoami(sim)).status_code == 200


async def test_a_batch_counts_each_request_it_carries(sim):
    """A $batch counts as the requests it carries: with 12 allowed, a batch of 10 leaves room for
    exactly 2 more requests."""
    await protect(sim, limits={"window_seconds": 30, "max_requests": 12})
    body, ctype = batch_of_gets(10)
    r = await sim.dv("POST", "$batch", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 200, r.text
    assert r.text.count("HTTP/1.1 200") == 10
    assert [(await whoami(sim)).status_code for _ in range(3)] == [200, 200, 429]
    log = await sim.log()
    batch = next(e for e in log if e["path"].endswith("$batch"))
    assert len([e for e in log if e.get("batch") == batch["seq"]]) == 10


async def test_responses_suggest_a_degree_of_parallelism(sim):
    """Dataverse responses carry `x-ms-dop-hint`, a positive whole number no larger than the
    concurrency limit, on reads and writes."""
    r = await whoami(sim)
    w = await sim.dv("POST", "msdyn_contractlinescheduleofvalues", json=milestone_payload(fixed_price_line(sim.conn)))
    for response in (r, w):
        hint = response.headers["x-ms-dop-hint"]
        assert hint.isdigit() and 1 <= int(hint) <= 52
    await protect(sim, limits={"max_concurrent": 2})
    assert int((await whoami(sim)).headers["x-ms-dop-hint"]) <= 2


async def test_protection_can_be_switched_off(sim):
    """`enabled: false` lifts the limits (a rehearsal that measures without throttling)."""
    await protect(sim, limits={"window_seconds": 30, "max_requests": 1, "enabled": False})
    assert [(await whoami(sim)).status_code for _ in range(5)] == [200] * 5


async def test_unknown_protection_settings_are_refused(sim):
    """A misspelt limit is a 400 naming it, not silently ignored."""
    r = await sim.admin("PUT", "protection", json={"limits": {"max_request": 5}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "0x80040203"
    message = r.json()["error"]["message"]
    assert "Unknown limits field(s) max_request" in message and "max_requests" in message
    r = await sim.admin("PUT", "protection", json={"window": 5})
    assert r.status_code == 400 and r.json()["error"]["code"] == "0x80040203"
    assert r.json()["error"]["message"].startswith("Unknown setting(s) window; known: cost, enabled, limits,")
    limits = (await sim.admin("GET", "protection")).json()["limits"]
    assert limits["max_requests"] == 6000
