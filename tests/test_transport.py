"""The shared transport against the simulator: throttling, retries, read-only, errors, redaction."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from cutover import odata
from cutover.errors import EXIT_ENVIRONMENT, EnvironmentProblem, exit_code_of
from cutover.redaction import redact
from cutover.tokens import StaticToken, TokenSource
from cutover.transport import (
    AdaptiveLimit,
    Attempts,
    AuthenticationFailed,
    ConnectionFailed,
    NotFound,
    OutcomeUnknown,
    PermissionDenied,
    ReadOnlyViolation,
    RetryPolicy,
    ServiceError,
    ServiceUnavailable,
    Transport,
)
from tests.conftest import DV, READER, fixed_price_line, milestone_payload

MILESTONES = "msdyn_contractlinescheduleofvalues"
JSON = {"Content-Type": "application/json"}


def json_request(t: Transport, method: str, path: str, payload: object, **kw):
    """What the clients do: JSON written by cutover.odata.dumps (the transport has no encoder)."""
    return t.request(method, path, content=odata.dumps(payload), headers=JSON, **kw)


class HarnessToken(TokenSource):
    """Tokens from the simulator's own token endpoint (the msal path is tested in test_auth)."""

    def __init__(self, harness, who=("cutover-rehearsal", "rehearsal-secret")):
        self.harness, self.who, self.fetches = harness, who, 0

    async def token(self, *, force_refresh: bool = False) -> str:
        if force_refresh:
            self.harness._tokens.pop(self.who[0], None)
        self.fetches += 1
        return await self.harness.token(*self.who)


def dv_transport(h, *, read_only=False, who=("cutover-rehearsal", "rehearsal-secret"), **kw) -> Transport:
    return Transport(
        f"{h.client.base_url}{DV}",
        HarnessToken(h, who),
        environment="rehearsal",
        read_only=read_only,
        client=h.client,
        **kw,
    )


async def no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


async def test_429_storm_completes_every_write_exactly_once(sim):
    """Service protection: a 429 means 'not processed, retry after Retry-After'. With 30 % of
    requests throttled, 200 idempotent upserts all land, once each, and nothing is lost."""
    await sim.admin("PUT", "faults", json={"throttle_rate": 0.3, "retry_after": 0, "seed": 11})
    t = dv_transport(sim)
    line = fixed_price_line(sim.conn)
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"storm-{i}")) for i in range(200)]

    async def upsert(i: int, mid: str):
        await json_request(
            t, "PATCH", f"{MILESTONES}({mid})", milestone_payload(line, name=f"Storm {i}", amount=10), idempotent=True
        )

    await asyncio.gather(*(upsert(i, m) for i, m in enumerate(ids)))
    assert t.stats.throttled > 30
    rows = sim.conn.execute(
        f"SELECT count(*), count(DISTINCT msdyn_name) FROM dv_{MILESTONES} WHERE msdyn_name LIKE 'Storm %'"
    ).fetchone()
    assert rows == (200, 200)
    throttled = [e for e in await sim.log() if e["status"] == 429]
    assert len(throttled) == t.stats.throttled


async def test_real_service_protection_limit_is_waited_out(sim):
    """Past 'Number of requests exceeded the limit' the transport waits Retry-After and the
    run completes; the adaptive limit halved when it was throttled."""
    await sim.admin("PUT", "protection", json={"limits": {"window_seconds": 1.0, "max_requests": 15}})
    waits: list[float] = []

    async def record_sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(seconds)

    t = dv_transport(sim, sleep=record_sleep, limit=AdaptiveLimit(start=8))
    results = await asyncio.gather(*(t.request("GET", "WhoAmI") for _ in range(40)))
    assert all(r.status_code == 200 for r in results)
    assert t.stats.throttled >= 1 and waits and min(waits) >= 1.0
    assert t.limit.throttles == t.stats.throttled


async def test_a_non_zero_retry_after_is_really_waited_before_the_retry(sim):
    """Retry-After: 1 means the service will not take the request for a second: the retry
    reaches the simulator no sooner than one second after the throttled request (its request
    log's clock), and the caller measures that second too. Nothing is fed to a fake sleep."""
    await sim.admin("PUT", "faults", json={"script": ["429"], "retry_after": 1, "path_contains": "WhoAmI"})
    t = dv_transport(sim)  # the real asyncio.sleep
    started = time.monotonic()
    r = await t.request("GET", "WhoAmI")
    elapsed = time.monotonic() - started
    assert r.status_code == 200 and t.stats.throttled == 1
    log = [e for e in await sim.log() if "WhoAmI" in e["path"]]
    assert [e["status"] for e in log] == [429, 200]
    assert log[1]["at"] - log[0]["at"] >= 1.0
    assert elapsed >= 1.0 and t.stats.waited_seconds >= 1.0


async def test_attempts_say_what_one_call_went_through_not_its_neighbours(sim):
    """Two calls in flight together on one transport, one of them throttled once: the transport's
    stats add both up, each call's `Attempts` has only its own 429, its own wait and the time of
    its answering attempt (what the pacer learns from)."""
    await sim.admin("PUT", "faults", json={"script": ["429"], "retry_after": 1, "path_contains": "WhoAmI"})
    t = dv_transport(sim)
    mine, theirs = Attempts(), Attempts()
    started = time.monotonic()
    a, b = await asyncio.gather(
        t.request("GET", "WhoAmI", attempts=mine),
        t.request("GET", "EntityDefinitions", params={"$select": "LogicalName"}, attempts=theirs),
    )
    elapsed = time.monotonic() - started
    assert a.status_code == b.status_code == 200 and t.stats.throttled == 1
    assert mine.throttled and len(mine.throttled_at) == 1 and started <= mine.throttled_at[0]
    assert mine.waited >= 1.0 and mine.answered_in is not None and mine.answered_in < elapsed - 1.0
    assert not theirs.throttled and theirs.waited == 0.0 and theirs.answered_in is not None


async def test_5xx_on_a_read_is_retried_with_backoff(sim):
    """Idempotent requests are retried on 5xx: two 503s then success; the log shows 3 GETs."""
    await sim.admin("PUT", "faults", json={"script": ["5xx", "5xx"], "path_contains": "WhoAmI"})
    t = dv_transport(sim, sleep=no_sleep)
    r = await t.request("GET", "WhoAmI")
    assert r.status_code == 200 and t.stats.retried == 2
    assert [e["status"] for e in await sim.log() if "WhoAmI" in e["path"]] == [503, 503, 200]


async def test_5xx_on_a_create_is_not_retried_and_says_the_outcome_is_unknown(sim):
    """A POST is not idempotent: after a 5xx the transport must not send it again blindly."""
    await sim.admin("PUT", "faults", json={"script": ["5xx"], "path_contains": MILESTONES})
    t = dv_transport(sim, sleep=no_sleep)
    with pytest.raises(OutcomeUnknown, match="may or may not have been applied"):
        await json_request(t, "POST", MILESTONES, milestone_payload(fixed_price_line(sim.conn)))
    assert len([e for e in await sim.log() if e["method"] == "POST"]) == 1


async def test_persistent_5xx_gives_up_after_the_configured_attempts(sim):
    """Retries are bounded: 5 failures in a row end in a clear error naming the status."""
    await sim.admin("PUT", "faults", json={"error_rate": 1.0, "path_contains": "WhoAmI"})
    t = dv_transport(sim, sleep=no_sleep, retry=RetryPolicy(attempts=5))
    with pytest.raises(ServiceUnavailable, match=r"the service failed \(503, 0x80040216\) after 5 attempts") as info:
        await t.request("GET", "WhoAmI")
    assert str(info.value).startswith("rehearsal: GET http://sim.test/api/data/v9.2/WhoAmI: ")
    assert info.value.status == 503
    assert len([e for e in await sim.log() if "WhoAmI" in e["path"]]) == 5


async def test_read_only_transport_raises_before_sending(sim):
    """Verification clients are read-only by construction: a write raises and the simulator's
    request log proves nothing was sent."""
    t = dv_transport(sim, read_only=True)
    before = len(await sim.log())
    for method in ("POST", "PATCH", "DELETE", "PUT"):
        with pytest.raises(ReadOnlyViolation, match="read-only"):
            await json_request(t, method, MILESTONES, {})
    assert len(await sim.log()) == before
    assert (await t.request("GET", "WhoAmI")).status_code == 200


async def test_401_refreshes_the_token_once(sim):
    """An expired token gets one silent refresh; the request then succeeds."""

    class Stale(HarnessToken):
        async def token(self, *, force_refresh: bool = False) -> str:
            self.fetches += 1
            return await super().token() if force_refresh or self.fetches > 2 else "sim.expired.token"

    source = Stale(sim)
    t = Transport(f"{sim.client.base_url}{DV}", source, environment="rehearsal", client=sim.client)
    assert (await t.request("GET", "WhoAmI")).status_code == 200
    assert t.stats.token_refreshes == 1


async def test_persistent_401_names_the_fix_and_never_the_token(sim):
    """A token the service keeps refusing ends in AuthenticationFailed telling to run `cutover login`."""
    secret = "sim.eyJub3QiOiJ2YWxpZCJ9.c2lnbmF0dXJlc2lnbmF0dXJl"
    t = Transport(f"{sim.client.base_url}{DV}", StaticToken(secret), environment="night", client=sim.client)
    with pytest.raises(AuthenticationFailed, match="refused the sign-in twice") as info:
        await t.request("GET", "WhoAmI")
    assert "cutover login night" in str(info.value) and info.value.status == 401
    assert secret not in str(info.value) and secret not in repr(info.value.args)


async def test_403_names_the_privilege_fix(sim):
    """A read-only identity writing gets PermissionDenied with Dataverse's code and the fix."""
    t = dv_transport(sim, who=READER)
    with pytest.raises(PermissionDenied, match=r"permission denied \(403, 0x80040220\)") as info:
        await json_request(t, "POST", MILESTONES, milestone_payload(fixed_price_line(sim.conn)))
    assert "security role" in str(info.value) and info.value.code == "0x80040220"
    assert sim.conn.execute(f"SELECT count(*) FROM dv_{MILESTONES}").fetchone()[0] == 0


async def test_404_is_an_error_unless_accepted(sim):
    """A missing row is NotFound with the service's message; callers can accept 404 as an answer."""
    t = dv_transport(sim)
    missing = uuid.uuid4()
    with pytest.raises(NotFound, match="Does Not Exist"):
        await t.request("GET", f"{MILESTONES}({missing})")
    assert (await t.request("GET", f"{MILESTONES}({missing})", accept=(404,))).status_code == 404


async def test_unreachable_host_is_a_connection_failure_with_the_url(unused_tcp_port):
    """Nothing listening: a clear ConnectionFailed naming the URL and what to check."""
    base = f"http://127.0.0.1:{unused_tcp_port}/api/data/v9.2/"
    async with Transport(base, StaticToken("t"), environment="sandbox", sleep=no_sleep) as t:
        with pytest.raises(ConnectionFailed, match="cannot reach http://127.0.0.1"):
            await t.request("GET", "WhoAmI")


async def test_dropped_connection_on_an_idempotent_upsert_is_retried_and_lands_once(socket_sim):
    """Over a real socket a dropped connection is retried for an upsert; the record exists once."""
    import sqlite3

    await socket_sim.admin("PUT", "faults", json={"script": ["drop-after"], "path_contains": MILESTONES})
    t = Transport(
        f"{socket_sim.client.base_url}{DV}",
        HarnessToken(socket_sim),
        environment="rehearsal",
        client=socket_sim.client,
        sleep=no_sleep,
    )
    line = fixed_price_line(sqlite3.connect(socket_sim.db))
    mid = uuid.uuid4()
    r = await json_request(
        t, "PATCH", f"{MILESTONES}({mid})", milestone_payload(line, name="Dropped once"), idempotent=True
    )
    assert r.status_code == 204 and t.stats.retried == 1
    assert (
        sqlite3.connect(socket_sim.db)
        .execute(f"SELECT count(*) FROM dv_{MILESTONES} WHERE msdyn_name = 'Dropped once'")
        .fetchone()[0]
        == 1
    )


async def test_dropped_connection_on_a_create_says_outcome_unknown(socket_sim):
    """A POST whose answer was lost is not resent: the caller is told to check first."""
    import sqlite3

    await socket_sim.admin("PUT", "faults", json={"script": ["drop-after"], "path_contains": MILESTONES})
    t = Transport(
        f"{socket_sim.client.base_url}{DV}",
        HarnessToken(socket_sim),
        environment="rehearsal",
        client=socket_sim.client,
        sleep=no_sleep,
    )
    line = fixed_price_line(sqlite3.connect(socket_sim.db))
    with pytest.raises(OutcomeUnknown, match="read the record before sending it again"):
        await json_request(t, "POST", MILESTONES, milestone_payload(line, name="Lost answer"))
    assert (
        sqlite3.connect(socket_sim.db)
        .execute(f"SELECT count(*) FROM dv_{MILESTONES} WHERE msdyn_name = 'Lost answer'")
        .fetchone()[0]
        == 1
    )


async def test_adaptive_limit_follows_the_dop_hint_then_halves_once_per_throttle_event():
    """Concurrency starts from x-ms-dop-hint, grows after clean answers, and halves on 429 —
    once per throttle event: a burst of 429s from requests in flight together cuts it once."""
    now = [100.0]
    limit = AdaptiveLimit(start=2, grow_after=3, cut_interval=1.0, clock=lambda: now[0])
    await limit.succeeded(8)
    assert limit.limit == 8
    for _ in range(3):
        await limit.succeeded(8)
    assert limit.limit == 9
    for _ in range(6):  # one burst
        await limit.throttled()
    assert limit.limit == 4 and limit.throttles == 6
    now[0] += 1.5  # a later, separate event
    await limit.throttled()
    assert limit.limit == 2
    for _ in range(3):
        now[0] += 2
        await limit.throttled()
    assert limit.limit == 1


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln",
        '{"access_token": "abc123secret", "token_type": "Bearer"}',
        "client_secret=hunter2&grant_type=client_credentials",
        "token sim.eyJzdWIiOiJjdXRvdmVyLXJlaGVhcnNhbCJ9.AbCdEfGhIjKlMnOpQrStUv",
    ],
)
def test_redaction_removes_tokens_and_secrets(text):
    """Tokens and secrets never reach logs or reports."""
    out = redact(text)
    for secret in ("eyJhbGciOiJub25lIn0", "abc123secret", "hunter2", "AbCdEfGhIjKlMnOpQrStUv"):
        assert secret not in out
    assert "***" in out


def test_redaction_keeps_ordinary_text():
    """Redaction does not eat the parts of a message people need."""
    text = "GET https://org.crm.dynamics.com/api/data/v9.2/accounts failed (503)"
    assert redact(text) == text


def test_service_errors_are_environment_problems_with_their_text_unchanged():
    """One error root: every service error is an EnvironmentProblem and exits 3; its text is
    still `<environment>: <method> <url>: <cause and fix>`, redacted."""
    err = NotFound(
        "night",
        "GET",
        "https://org.example/api/data/v9.2/x?access_token=abc123secret",
        "not found (404): gone",
        status=404,
    )
    assert isinstance(err, ServiceError) and isinstance(err, EnvironmentProblem)
    assert err.exit_code == EXIT_ENVIRONMENT == exit_code_of(err)
    assert str(err) == "night: GET https://org.example/api/data/v9.2/x?access_token=***: not found (404): gone"
    assert (
        err.where == "night: GET https://org.example/api/data/v9.2/x?access_token=***"
        and err.message == "not found (404): gone"
    )
    assert "abc123secret" not in repr(err.args)


async def test_the_transport_has_no_json_encoder_of_its_own(sim):
    """All JSON goes through cutover.odata.dumps (which refuses floats): the transport takes
    bytes only, so there is no second path that lets a float through."""
    t = dv_transport(sim)
    before = len(await sim.log())
    with pytest.raises(TypeError, match="json_body"):
        await t.request("PATCH", f"{MILESTONES}({uuid.uuid4()})", json_body={"msdyn_amount": 1.1})
    assert len(await sim.log()) == before


async def test_tls_failure_names_tls_and_what_to_check(socket_sim):
    """Speaking https to a server that does not: a ConnectionFailed that says TLS, not a traceback."""
    base = str(socket_sim.client.base_url).replace("http://", "https://") + DV
    async with Transport(base, StaticToken("t"), environment="sandbox", sleep=no_sleep) as t:
        with pytest.raises(ConnectionFailed, match="TLS handshake"):
            await t.request("GET", "WhoAmI")


async def test_retry_after_zero_backs_off_and_gives_up_within_the_throttle_budget(sim):
    """A service that keeps answering 429 with Retry-After: 0 must not be hammered in a tight
    loop (that burns the identity's budget): waits grow, and the total wait bound still ends it."""
    await sim.admin("PUT", "faults", json={"throttle_rate": 1.0, "retry_after": 0, "path_contains": "WhoAmI"})
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    t = dv_transport(sim, sleep=record, retry=RetryPolicy(max_throttle_wait=10.0))
    with pytest.raises(ServiceUnavailable, match="throttled for more than 10 s"):
        await t.request("GET", "WhoAmI")
    assert waits[0] >= 0.05 and waits[3] > waits[0]
    assert len(waits) < 20
