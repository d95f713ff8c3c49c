"""Bulk writes (cutover.bulk.BulkJob through DataverseClient) against the simulator: every
record gets an outcome, bad records are named and the rest land, fallbacks to $batch, throttling
and faults lose nothing, a pool shares the work, callbacks report chunk by chunk, a float or a
missing privilege stops the load before (or as soon as) it can do harm.

No mocks: every test talks HTTP to the simulator (in-process ASGI, or a real loopback socket).
"""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal

import pytest

from cutover.bulk import BulkJob, ChunkOutcome
from cutover.transport import AdaptiveLimit, PermissionDenied, ReadOnlyViolation
from tests.conftest import READER
from tests.dataverse_harness import (
    KEY,
    MILESTONE,
    MILESTONES,
    POOL,
    check_bad_records,
    client,
    count_rows,
    milestones,
    transport,
    with_bad_records,
    writes,
)

# --- outcomes ---------------------------------------------------------------------------------


async def test_bulk_partial_failure_names_each_bad_record_and_lands_the_rest(sim):
    """UpsertMultiple is all-or-nothing; one bad record must not hide the others nor stop them:
    the chunk is bisected and the small part with the bad records goes as a $batch with
    odata.continue-on-error. Each bad record is reported with its own status, code and message;
    the 97 good ones land."""
    dv = client(sim, chunk=100)
    records, expected = with_bad_records(sim.conn)
    result = await dv.bulk_upsert(MILESTONES, MILESTONE, records)
    check_bad_records(result, records, expected)
    assert count_rows(sim.conn) == (97, 97)
    assert result.bulk_requests > 1 and result.batch_requests >= 1 and not result.used_batch_fallback


async def test_set_without_bulk_support_falls_back_to_batch_with_the_same_outcomes(sim):
    """Where a table does not support UpsertMultiple (400 "message is not supported"), the client
    writes the records as $batch PATCH upserts instead, transparently, with the same per-record
    outcomes; it stops trying the bulk message after learning it is unsupported."""
    await sim.admin("PUT", "settings", json={"bulk_action_sets": []})
    dv = client(sim, chunk=100)
    records, expected = with_bad_records(sim.conn)
    result = await dv.bulk_upsert(MILESTONES, MILESTONE, records)
    check_bad_records(result, records, expected)
    assert result.used_batch_fallback
    log = await sim.log()
    assert len([e for e in log if "UpsertMultiple" in e["path"]]) == 1
    assert len([e for e in log if e["path"].endswith("$batch")]) == 1
    # the second load already knows: no more bulk attempts
    assert (await dv.bulk_upsert(MILESTONES, MILESTONE, milestones(sim.conn, 10, prefix="MORE"))).ok
    assert len([e for e in await sim.log() if "UpsertMultiple" in e["path"]]) == 1
    assert count_rows(sim.conn) == (107, 107)


async def test_metadata_probe_sends_sets_without_bulk_support_straight_to_batch(sim):
    """Once $metadata was read, a set whose bulk action is absent is written with $batch
    without a failed UpsertMultiple first."""
    await sim.admin("PUT", "settings", json={"bulk_action_sets": []})
    dv = client(sim)
    assert not (await dv.metadata()).supports_bulk(MILESTONES)
    assert (await dv.bulk_upsert(MILESTONES, MILESTONE, milestones(sim.conn, 30))).ok
    assert not [e for e in await sim.log() if "UpsertMultiple" in e["path"]]
    assert count_rows(sim.conn) == (30, 30)


async def test_bulk_create_reports_duplicates_per_record(sim):
    """CreateMultiple creates; a record that already exists fails alone (0x80040237) and the rest land."""
    dv = client(sim, chunk=40)
    records = milestones(sim.conn, 40, prefix="CREATE")
    assert (await dv.bulk_upsert(MILESTONES, MILESTONE, records[5:6])).ok
    result = await dv.bulk_create(MILESTONES, MILESTONE, records)
    assert [(f.index, f.status, f.code) for f in result.failures] == [(5, 412, "0x80040237")]
    assert len(result.succeeded) == 39 and count_rows(sim.conn) == (40, 40)


async def test_records_without_ids_or_with_repeated_ids_are_refused_before_sending(sim):
    """An upsert needs its deterministic id; the same id twice in one load is a mapping error."""
    dv = client(sim)
    records = milestones(sim.conn, 5)
    records.append(dict(records[1]))
    del records[2][KEY]
    result = await dv.bulk_upsert(MILESTONES, MILESTONE, records)
    assert {(f.index, f.code) for f in result.failures} == {(2, "MissingKey"), (5, "DuplicateKey")}
    assert "record 1" in [f for f in result.failures if f.index == 5][0].message
    assert count_rows(sim.conn) == (4, 4)


# --- throttling and faults ------------------------------------------------------------------------


async def test_429_storm_during_bulk_upsert_loses_no_write(sim):
    """Service protection: 30 % of requests throttled (429, Retry-After) during a 2,000-record
    load; every 429 is waited out and retried, so all 2,000 land, once each, all reported success."""
    await sim.admin("PUT", "faults", json={"throttle_rate": 0.3, "retry_after": 0, "seed": 5})
    dv = client(sim, pool=POOL[:2], chunk=50)
    records = milestones(sim.conn, 2000, prefix="STORM")
    progress: list[int] = []
    result = await dv.bulk_upsert(MILESTONES, MILESTONE, records, on_progress=lambda done, total: progress.append(done))
    assert result.ok and len(result.succeeded) == 2000
    assert count_rows(sim.conn) == (2000, 2000)
    throttled = sum(t.stats.throttled for t in dv.pool)
    assert throttled >= 5 and throttled == len([e for e in await sim.log() if e["status"] == 429])
    assert progress[-1] == 2000 and progress == sorted(progress)


async def test_5xx_during_bulk_is_retried_without_duplicates(sim):
    """Upserts to deterministic ids are idempotent, so a 503 is retried; nothing is duplicated."""
    await sim.admin("PUT", "faults", json={"error_rate": 0.4, "seed": 3, "path_contains": "UpsertMultiple"})
    dv = client(sim, chunk=25)
    records = milestones(sim.conn, 500, prefix="FLAKY")
    result = await dv.bulk_upsert(MILESTONES, MILESTONE, records)
    assert result.ok
    assert sum(t.stats.retried for t in dv.pool) >= 3
    assert count_rows(sim.conn) == (500, 500)


async def test_dropped_connections_after_commit_over_a_socket_do_not_duplicate(socket_sim):
    """Over a real socket, connections dropped after the server committed a chunk: the client
    retries the (idempotent) chunk and the rows exist once."""
    await socket_sim.admin("PUT", "faults", json={"drop_after_rate": 0.3, "seed": 9, "path_contains": "UpsertMultiple"})
    dv = client(socket_sim, chunk=20)
    records = milestones(sqlite3.connect(socket_sim.db), 200, prefix="DROP")
    result = await dv.bulk_upsert(MILESTONES, MILESTONE, records)
    assert result.ok
    assert sum(t.stats.retried for t in dv.pool) >= 2
    assert count_rows(socket_sim.db) == (200, 200)


async def test_a_pool_spreads_chunks_over_its_identities(sim):
    """Each application user has its own service-protection budget: a pool of 4 sends chunks
    under all four identities."""
    dv = client(sim, pool=POOL, chunk=10)
    assert (await dv.bulk_upsert(MILESTONES, MILESTONE, milestones(sim.conn, 400))).ok
    used = {e["client_id"] for e in await sim.log() if "UpsertMultiple" in e["path"]}
    assert used == {w[0] for w in POOL}
    assert count_rows(sim.conn) == (400, 400)


async def test_real_limits_throttle_a_pool_and_every_record_still_lands(sim):
    """With the documented limits scaled down (requests per window), bulk writes are throttled
    by the service itself and waited out (Retry-After), losing nothing."""
    await sim.admin("PUT", "protection", json={"limits": {"window_seconds": 1.0, "max_requests": 6}})
    dv = client(sim, chunk=20, limit=AdaptiveLimit(start=8), sleep=asyncio.sleep)
    result = await dv.bulk_upsert(MILESTONES, MILESTONE, milestones(sim.conn, 300))
    assert result.ok and count_rows(sim.conn) == (300, 300)
    assert dv.pool[0].stats.throttled >= 1


# --- stopping: privileges, floats, callbacks ---------------------------------------------------


async def test_missing_privilege_stops_the_load_with_the_fix(sim):
    """An identity without write privilege: the load stops with PermissionDenied naming the fix
    (not 100 identical per-record failures), and its partial result is attached."""
    dv = client(sim, pool=[READER], chunk=10)
    with pytest.raises(PermissionDenied, match="security role") as info:
        await dv.bulk_upsert(MILESTONES, MILESTONE, milestones(sim.conn, 100))
    partial = info.value.bulk_result
    assert partial.total == 100 and not partial.succeeded and len(partial.failures) == 100
    assert count_rows(sim.conn) == (0, 0)


async def test_a_failing_progress_callback_stops_the_load_without_hanging(sim):
    """A progress callback that fails (a closed screen, a dropped SSH session) stops the load
    promptly with that error and the outcomes so far — it must never leave the load hanging."""
    records = milestones(sim.conn, 120, prefix="PROG")
    calls = []

    def on_progress(done: int, total: int) -> None:
        calls.append(done)
        raise RuntimeError("screen closed")

    with pytest.raises(RuntimeError, match="screen closed") as info:
        await asyncio.wait_for(
            client(sim).bulk_upsert(MILESTONES, MILESTONE, records, chunk=1, on_progress=on_progress), timeout=20
        )
    assert len(calls) == 1
    result = info.value.bulk_result
    assert result.total == 120 and len(result.succeeded) + len(result.failures) == 120


async def test_a_float_anywhere_in_a_bulk_write_is_refused_before_anything_is_sent(sim):
    """Money is never float (DESIGN, Conventions): one float amount in record 150 of 200 stops
    the whole load before the first chunk goes out — the error names the record and the field,
    the simulator's request log shows no write, and no row exists. The same for creates."""
    dv = client(sim, chunk=50)
    records = milestones(sim.conn, 200, prefix="FLOAT")
    records[150]["msdyn_amount"] = 1234.56
    with pytest.raises(TypeError, match=r"float 1234\.56 at records\[150\]\.msdyn_amount"):
        await dv.bulk_upsert(MILESTONES, MILESTONE, records)
    with pytest.raises(TypeError, match=r"records\[150\]\.msdyn_amount"):
        await dv.bulk_create(MILESTONES, MILESTONE, records)
    nested = milestones(sim.conn, 3, prefix="NESTED")
    nested[2]["msdyn_extra"] = {"lines": [Decimal("1.00"), 2.5]}
    with pytest.raises(TypeError, match=r"records\[2\]\.msdyn_extra\.lines\[1\]"):
        await dv.bulk_upsert(MILESTONES, MILESTONE, nested)
    assert await writes(sim) == []
    assert count_rows(sim.conn) == (0, 0)


# --- the job: chunk by chunk ----------------------------------------------------------------------


async def test_the_job_reports_every_record_once_chunk_by_chunk(sim):
    """A migration journals per chunk: on_chunk receives each group of settled records as it
    settles — bad records isolated by bisection included — every input record exactly once,
    with the same outcomes the final result holds; `done` counts up to the total."""
    dv = client(sim, chunk=25)
    records, expected = with_bad_records(sim.conn)
    seen: list[ChunkOutcome] = []
    job = dv.bulk_job(MILESTONES, MILESTONE, records, on_chunk=seen.append)
    assert isinstance(job, BulkJob) and job.total == 100 and job.done == 0 and job.outcomes == {}
    result = await dv.run_bulk(job)
    check_bad_records(result, records, expected)
    settled = [i for chunk in seen for i in chunk.indexes]
    assert sorted(settled) == list(range(100)) and len(settled) == 100
    assert [c.done for c in seen] == sorted(c.done for c in seen) and seen[-1].done == 100 == seen[-1].total
    journal_ok = {i: key for c in seen for i, key in c.succeeded}
    assert journal_ok == {i: records[i][KEY] for i in result.succeeded_indexes}
    assert sorted(f.index for c in seen for f in c.failures) == sorted(expected)
    assert job.done == 100 and job.fatal is None and job.result is result
    assert {i for i, (ok_id, failure) in job.outcomes.items() if failure is None} == set(result.succeeded_indexes)
    assert count_rows(sim.conn) == (97, 97)


async def test_a_resumed_job_writes_only_what_the_journal_lacks(sim):
    """Resume per chunk: the first run stops when its journal fails after the first chunk; the
    second run sends only the records the journal does not hold, and every record lands once."""
    dv = client(sim, chunk=20)
    records = milestones(sim.conn, 100, prefix="RESUME")
    journal: dict[int, str] = {}

    async def write_then_fail(chunk: ChunkOutcome) -> None:
        journal.update(dict(chunk.succeeded))
        raise OSError("journal disk full")

    with pytest.raises(OSError, match="journal disk full") as info:
        await asyncio.wait_for(dv.bulk_upsert(MILESTONES, MILESTONE, records, on_chunk=write_then_fail), timeout=20)
    first = info.value.bulk_result
    assert len(first.succeeded) + len(first.failures) == 100 and 0 < len(journal) < 100
    rest = [r for i, r in enumerate(records) if i not in journal]
    since = (await sim.log())[-1]["seq"]
    result = await dv.bulk_upsert(MILESTONES, MILESTONE, rest)
    assert result.ok and len(result.succeeded) == len(rest)
    sent = sum(e["records"] for e in await writes(sim, since) if "UpsertMultiple" in e["path"])
    assert sent == len(rest)
    assert count_rows(sim.conn) == (100, 100)


async def test_a_job_runs_once_and_a_read_only_pool_refuses_it_before_sending(sim):
    """A job is one run: running it again is refused. A job over read-only transports raises
    ReadOnlyViolation before anything is sent."""
    dv = client(sim, chunk=10)
    job = dv.bulk_job(MILESTONES, MILESTONE, milestones(sim.conn, 10))
    assert (await job.run()).ok
    with pytest.raises(ValueError, match="runs once"):
        await job.run()
    since = (await sim.log())[-1]["seq"]
    ro = BulkJob(
        [transport(sim, who=READER, read_only=True)], MILESTONES, MILESTONE, milestones(sim.conn, 5, prefix="RO")
    )
    with pytest.raises(ReadOnlyViolation, match="read-only"):
        await ro.run()
    assert await writes(sim, since) == []
    assert count_rows(sim.conn) == (10, 10)


# --- pacing ---------------------------------------------------------------------------------------


async def test_a_paced_job_spreads_its_requests_under_the_window_and_meets_no_throttle(sim):
    """The documented limits scaled by 0.001 (window 0.3 s, 6 requests): unpaced, 10 chunks
    collide with the request limit; paced, the same load is spread under it — no 429 at all,
    every record lands."""
    from cutover.bulk import Pacing

    await sim.admin("PUT", "protection", json={"scale": 0.001})
    dv = client(sim, chunk=10, sleep=asyncio.sleep)
    assert (await dv.bulk_upsert(MILESTONES, MILESTONE, milestones(sim.conn, 100, prefix="RAW"))).ok
    assert dv.pool[0].stats.throttled >= 1  # unpaced: collides
    await sim.admin("PUT", "protection", json={"scale": 0.001})
    paced = client(sim, chunk=10, sleep=asyncio.sleep)
    job = paced.bulk_job(MILESTONES, MILESTONE, milestones(sim.conn, 200, prefix="PACED"))
    job.pacing = Pacing(window_scale=0.001)
    since = (await sim.log())[-1]["seq"]
    assert (await paced.run_bulk(job)).ok
    assert paced.pool[0].stats.throttled == 0
    assert not [e for e in await sim.log(since) if e["status"] == 429]
    assert job.pacer(paced.pool[0]).waited > 0.3
    assert count_rows(sim.conn) == (300, 300)


async def test_a_pacer_learns_an_execution_cost_above_the_wall_time(sim):
    """A service that charges more execution time than the answer takes (the simulator's cost
    model without latency): the pacer meets the execution limit once, raises its factor, and
    every record still lands."""
    from cutover.bulk import Pacing

    await sim.admin(
        "PUT",
        "protection",
        json={"scale": 0.002, "cost": {"write_base": 0.02, "write_per_record": 0.02, "latency_factor": 0}},
    )
    dv = client(sim, chunk=10, sleep=asyncio.sleep)
    job = dv.bulk_job(MILESTONES, MILESTONE, milestones(sim.conn, 300, prefix="LEARN"))
    job.pacing = Pacing(window_scale=0.002)
    assert (await dv.run_bulk(job)).ok
    pacer = job.pacer(dv.pool[0])
    assert pacer.learned >= 1 and pacer.factor > 1
    assert count_rows(sim.conn) == (300, 300)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def _paced(pacer, clock: _Clock, *, records: int, wall: float, throttled: bool = False) -> None:
    admission = await pacer.before(records)
    clock.now += wall
    pacer.after(admission, wall, throttled_ago=wall / 2 if throttled else None)


async def test_a_pacers_factor_comes_back_down_after_busy_windows_without_a_throttle():
    """AIMD on the learned execution factor: a throttle raises it; each whole window after that
    in which the pace held the identity back and no throttle came lowers it (by a step that halves
    at each raise and grows after each lowering), so it does not stick at its worst case; a
    throttle raises it again. Never below 1."""
    from cutover.bulk import Pacing

    clock = _Clock()
    pacer = Pacing(window_scale=0.01).pacer(clock=clock, sleep=clock.sleep)  # window 3 s, 12 s execution
    await _paced(pacer, clock, records=100, wall=0.5)
    await _paced(pacer, clock, records=100, wall=0.5, throttled=True)  # met the limit at ~1 s "spent"
    raised = pacer.factor
    assert pacer.learned == 1 and raised > 1
    assert pacer.step == pytest.approx(0.05)  # halved at the raise
    # busy windows without a throttle: the pace makes it wait, the factor comes down step by step
    while clock.now < 12.5:
        await _paced(pacer, clock, records=100, wall=0.5)
    assert pacer.waited > 0 and pacer.lowered >= 3
    assert pacer.factor < raised * 0.95**3 + 1e-9
    # an idle identity (no wait for its pace) learns nothing from a clean window
    clock.now += 100.0
    await _paced(pacer, clock, records=1, wall=0.001)  # closes the last busy window
    lowered = pacer.factor
    for _ in range(3):
        clock.now += 100.0
        await _paced(pacer, clock, records=1, wall=0.001)
    assert pacer.factor == lowered
    # a throttle raises it again (at most once per half window)
    await _paced(pacer, clock, records=100, wall=0.5, throttled=True)
    assert pacer.factor > lowered and pacer.learned == 2
    # and it never goes below 1
    for _ in range(2000):
        await _paced(pacer, clock, records=100, wall=0.5)
    assert pacer.factor >= 1.0


async def test_a_throttle_of_a_request_admitted_before_the_last_raise_is_not_learned_from():
    """Requests in flight together meet one throttle event together, and a throttled request
    reports it only when it is finally answered — after its Retry-After, possibly after the
    factor was already raised. Such a late report must not raise the factor a second time on
    the same evidence (that overshoot slowed a whole first pass of a load)."""
    from cutover.bulk import Pacing

    clock = _Clock()
    pacer = Pacing(window_scale=0.01).pacer(clock=clock, sleep=clock.sleep)  # window 3 s, 12 s execution
    for _ in range(6):
        await _paced(pacer, clock, records=100, wall=0.5)  # 3 s of wall: the window is full
    early = [await pacer.before(100) for _ in range(2)]  # in flight together
    clock.now += 0.5
    pacer.after(early[0], 0.5, throttled_ago=0.1)  # the first one learns
    raised = pacer.factor
    assert pacer.learned == 1 and raised > 1
    clock.now += 2.0  # past half a window: a fresh throttle could be learned from
    pacer.after(early[1], 0.5, throttled_ago=2.1)  # the same event, answered after its wait
    assert pacer.factor == raised and pacer.learned == 1 and pacer.stale == 1
    # a request admitted after the raise that meets a throttle is fresh evidence
    await _paced(pacer, clock, records=100, wall=0.5, throttled=True)
    assert pacer.learned == 2 and pacer.factor > raised


async def test_a_throttle_is_judged_against_the_window_that_ended_at_the_429():
    """A request answered long after its 429 (it waited out Retry-After) is judged against
    what the window held when the 429 came, not the emptier window at its answer: the factor
    rises by the limit over that window's estimate, as much as when the report comes at once."""
    from cutover.bulk import Pacing

    async def raised_by(report_after: float) -> float:
        clock = _Clock()
        pacer = Pacing(window_scale=0.01).pacer(clock=clock, sleep=clock.sleep)  # window 3 s, 12 s execution
        for _ in range(4):
            await _paced(pacer, clock, records=100, wall=0.5)  # 2 s of wall in the window
        admission = await pacer.before(100)
        clock.now += 0.1  # the 429
        clock.now += report_after  # its Retry-After, then the answering attempt
        pacer.after(admission, 0.01, throttled_ago=report_after)
        return pacer.factor

    at_once, late = await raised_by(0.01), await raised_by(2.5)
    assert at_once == pytest.approx(12.0 / 2.0, rel=1e-3)  # the limit over what the window held
    assert late == pytest.approx(at_once, rel=1e-3)
