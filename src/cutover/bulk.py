"""Bulk writes to one Dataverse entity set, with an outcome for every record: the bulk job.

Source: Dataverse "Use bulk operation messages" (``CreateMultiple`` / ``UpsertMultiple``:
``POST set/Microsoft.Dynamics.CRM.UpsertMultiple`` with ``{"Targets": [...]}``, each target
carrying ``@odata.type``, at most 1,000 targets a request, all-or-nothing), "Execute batch
operations using the Web API" (``$batch``, ``Prefer: odata.continue-on-error``) and
"Service protection API limits" (per application user: requests, execution time, concurrency).

Rules:
- Every input record ends with exactly one outcome: succeeded (with its id) or a
  :class:`RecordFailure` naming its position in the input, its key, and the service's own
  status, code and message. Nothing is dropped silently; a record that somehow got no answer
  is reported as ``NoOutcome``.
- A float anywhere in any record refuses the whole job when it is built (TypeError naming
  the record and field): money is Decimal, and half a load must not land before the float is met.
- Before anything is sent, upserts need the record's id in `key_field` (a GUID: ids are
  deterministic, :func:`cutover.domain.deterministic_id`), and an id may appear once per job.
  Records that break this fail alone (``MissingKey``, ``BadKey``, ``DuplicateKey``).
- Chunks (default 1,000 records, measured: see :data:`DEFAULT_CHUNK`) run concurrently across
  the pool's transports, one transport per application user, each taking new chunks only while
  it has room under its adaptive concurrency limit: a throttled identity does not hoard work
  another identity could do.
- The bulk message is all-or-nothing, so a chunk answered 4xx is split in halves (bisection)
  until the parts are small (:data:`ISOLATE_BELOW`); a small part goes as one ``$batch`` of
  single-record requests with continue-on-error, so the bad records are named while every good
  record still lands.
- A set without the bulk message (400 ``0x8004800d`` "… message is not supported …", or
  absent from ``$metadata``) is written with ``$batch`` PATCH upserts (POST creates) instead,
  at most 1,000 requests per batch; the job says so (``learned_unsupported``) so the client
  stops trying the message.
- Upserts are idempotent (deterministic ids) and retried by the transport on 5xx and lost
  answers; creates are not: a create whose answer was lost is ``OutcomeUnknown``, never resent.
- Some errors make every further request pointless (read-only, no privilege, sign-in refused,
  unreachable, unknown entity set): the job stops, records the rest as ``NotSent``, and
  raises that error with the partial :class:`BulkResult` attached as ``bulk_result``.

Pacing (opt-in: ``pacing=Pacing(...)``; off by default, when the job relies on the transport's
adaptive concurrency and ``Retry-After`` alone). Service protection counts, per application
user over a sliding window (documented: 300 s), requests (6,000) and execution time (1,200 s).
A client that sends as fast as it may collides with those limits, waits out ``Retry-After``,
and loses the idle time; with :class:`Pacing` each identity instead spreads its requests so it
stays just under both limits (:class:`Pacer`, one per transport):

- requests: at most ``headroom × requests / window`` per second, evenly spaced (GCRA: a
  theoretical arrival time that each request pushes forward; no saved-up burst);
- execution time: the same schedule in execution-seconds, at ``headroom × execution / window``
  per second. The service does not say how long a request ran, so the pacer estimates it: the
  request's own wall time (waits for throttles excluded) times a learned factor ``m`` (start 1).
  On a real service a request's execution time is at most its wall time, so ``m = 1`` is
  conservative. A service that charges more than the wall time (the rehearsal simulator with
  ``latency_factor < 1``) is learned from: when a request meets a throttle although the pacer's
  own estimate of the window that ended at that 429 is under the limit, ``m`` rises to
  ``limit ÷ estimate`` (at most ×8 per event, at most once per half window). A throttled request
  reports only when it is finally answered, after its ``Retry-After``: it is judged against the
  window at its 429 (not the emptier one at its answer), and if it was admitted before the
  latest raise it is not learned from at all (it met the old factor's traffic; learning from it
  again overshot ``m`` threefold and slowed a whole pass). The wall time and the 429 times come
  from the request's own :class:`~cutover.transport.Attempts`, never from counters shared with
  concurrent requests. It comes back down after each whole window
  without a throttle in which the pace held the identity back (it waited): by a step (first
  10 %) that halves at each raise (down to 2 %) and grows by half after each lowering (up to
  25 %): multiplicative decrease, fast while the factor is far too high, fine near the limit,
  so it settles just under the limit instead of sticking near its worst case, and a throttle
  injected for other reasons does not slow the night for good. Never below 1.
  Before a request is sent its cost is estimated from the recent cost per record; when it
  completes, the schedule is corrected by the difference.
- ``window_scale`` shrinks the window (and the counts with it) exactly as the simulator's
  ``--window-scale`` does; the rates stay as documented.

The job is an object that owns its outcomes, so a migration can journal and resume chunk by
chunk: ``on_chunk`` receives a :class:`ChunkOutcome` each time a group of records is settled
(one bulk request, one ``$batch``, or records failed before sending), in the order they
settle; ``on_progress`` receives ``(done, total)``. A callback that raises (a closed screen, a
journal that cannot be written) stops the job the same way: nothing more is sent, every outcome
so far is kept. ``outcomes``, ``done`` and ``result`` are attributes, readable during and after
the run.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import odata
from .batch import MAX_BATCH_REQUESTS, BatchPart, decode_batch, encode_batch
from .csdl import DATAVERSE_NAMESPACE
from .transport import (
    Attempts,
    AuthenticationFailed,
    BadRequest,
    ConnectionFailed,
    NotFound,
    OutcomeUnknown,
    PermissionDenied,
    ReadOnlyViolation,
    ServiceError,
    Transport,
)

__all__ = [
    "DEFAULT_CHUNK",
    "ISOLATE_BELOW",
    "MAX_BULK_TARGETS",
    "Admission",
    "BulkJob",
    "BulkResult",
    "ChunkOutcome",
    "Pacer",
    "Pacing",
    "RecordFailure",
]

logger = logging.getLogger("cutover.bulk")

MAX_BULK_TARGETS = 1000
#: Records per UpsertMultiple / CreateMultiple request, chosen by measurement
#: (benchmarks/bench_dataverse_writes.py --sweep, 100 / 250 / 500 / 1000 under the scaled
#: service-protection limits): 1000 gave the highest steady-state throughput for a pool of 1
#: and of 4 identities; per-request overhead is amortised (99.6 % of the cost model's
#: asymptotic bound) and a bad record costs ~2·log2(1000/16) cheap failed requests to isolate.
#: Pass `chunk=` for tables with heavy plug-ins, where one request per 1000 rows may run long.
DEFAULT_CHUNK = 1000
#: A failed bulk part of at most this many records is resolved record by record in one $batch.
ISOLATE_BELOW = 16
NOT_SUPPORTED_CODE = "0x8004800d"
#: Errors after which no request of the job can succeed: the job stops.
_FATAL = (ReadOnlyViolation, PermissionDenied, AuthenticationFailed, ConnectionFailed)
_JSON = {"Content-Type": "application/json; charset=utf-8"}

ProgressCallback = Callable[[int, int], Any]


# --- outcomes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordFailure:
    """One record that did not land: where it was in the input, its key, and the service's answer."""

    index: int  # position in the records given to the job
    key: str | None  # the record's id (None for a create without a client-chosen id)
    status: int | None  # HTTP status of the record's own answer (None: never answered)
    code: str | None  # Dataverse error code, e.g. "0x80040203"
    message: str
    logical_name: str = ""

    def __str__(self) -> str:
        who = f"{self.logical_name or 'record'} {self.key}" if self.key else (self.logical_name or "record")
        status = f"{self.status}" if self.status is not None else "no answer"
        code = f" {self.code}" if self.code else ""
        return f"record {self.index} ({who}): {status}{code} — {self.message}"


@dataclass
class BulkResult:
    """Per-record outcomes of a bulk write: every input record is either succeeded or failed."""

    total: int
    succeeded: list[str] = field(default_factory=list)  # ids that landed, in input order
    succeeded_indexes: list[int] = field(default_factory=list)  # their positions in the input
    failures: list[RecordFailure] = field(default_factory=list)  # in input order
    bulk_requests: int = 0  # UpsertMultiple / CreateMultiple requests sent (incl. failed ones)
    batch_requests: int = 0  # $batch requests sent
    used_batch_fallback: bool = False  # the set does not support the bulk message

    @property
    def ok(self) -> bool:
        return not self.failures and len(self.succeeded) == self.total

    def summary(self) -> str:
        head = f"{len(self.succeeded)} of {self.total} records written, {len(self.failures)} failed"
        more = f"\n  … and {len(self.failures) - 20} more" if len(self.failures) > 20 else ""
        return head + "".join(f"\n  {f}" for f in self.failures[:20]) + more


@dataclass(frozen=True)
class ChunkOutcome:
    """Records whose outcomes were settled together — the unit a journal writes down."""

    succeeded: tuple[tuple[int, str | None], ...]  # (input index, id that landed)
    failures: tuple[RecordFailure, ...]
    done: int  # records of the job settled so far, this group included
    total: int

    @property
    def indexes(self) -> list[int]:
        """The input positions settled by this group, in order."""
        return sorted([i for i, _ in self.succeeded] + [f.index for f in self.failures])


ChunkCallback = Callable[[ChunkOutcome], Any]


# --- pacing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pacing:
    """The service-protection limits each identity is paced to (see the module docstring).

    Defaults are the documented Dataverse limits: 6,000 requests and 1,200 s of execution per
    300 s window, per application user. ``window_scale`` shrinks the window and the counts
    (``max(1, round(requests × scale))``, ``execution × scale``) as a rehearsal simulator
    started with ``--window-scale`` does. ``headroom`` is the share of each limit the pacer
    aims at (0.97: 3 % below it)."""

    window_scale: float = 1.0
    requests: int = 6000
    execution: float = 1200.0
    window: float = 300.0
    headroom: float = 0.97

    def __post_init__(self) -> None:
        if not 0 < self.window_scale <= 1000 or not 0 < self.headroom <= 1:
            raise ValueError("Pacing needs 0 < window_scale and 0 < headroom <= 1")

    @property
    def window_seconds(self) -> float:
        return self.window * self.window_scale

    @property
    def max_requests(self) -> int:
        return max(1, round(self.requests * self.window_scale))

    @property
    def max_execution(self) -> float:
        return self.execution * self.window_scale

    def pacer(self, *, clock: Callable[[], float] = time.monotonic, sleep=asyncio.sleep) -> Pacer:
        return Pacer(self, clock=clock, sleep=sleep)


@dataclass(frozen=True)
class Admission:
    """A request the pacer let through: its records, the execution it was estimated to cost,
    and when it was admitted (the pacer's clock)."""

    records: int
    estimate: float
    at: float


class Pacer:
    """Paces one identity (one transport) to its window: call :meth:`before` before each
    request and :meth:`after` when it ends."""

    GROWTH_CAP = 8.0  # the execution factor grows at most this much per throttle event
    FIRST_STEP = 0.10  # … shrinks by this share after a busy window without a throttle,
    MIN_STEP = 0.02  # … a step that halves at each raise, down to this,
    MAX_STEP = 0.25  # … and grows by half after each lowering, up to this (far off: faster)

    def __init__(self, pacing: Pacing, *, clock: Callable[[], float] = time.monotonic, sleep=asyncio.sleep):
        self.pacing = pacing
        self.clock = clock
        self.sleep = sleep
        self.request_rate = pacing.headroom * pacing.max_requests / pacing.window_seconds  # requests per second
        self.execution_rate = pacing.headroom * pacing.max_execution / pacing.window_seconds  # exec-seconds per second
        self.factor = 1.0  # m: estimated execution = wall time × m
        self.per_record: float | None = None  # recent wall seconds per record (raw, before m)
        self._request_tat = 0.0  # theoretical arrival times (GCRA)
        self._execution_tat = 0.0
        self._lock = asyncio.Lock()
        # (finished at, raw wall seconds) of the last two windows: a throttle is judged against
        # the window that ended when its 429 came, which may be most of a window ago
        self._recent: deque[tuple[float, float]] = deque()
        self._learned_at = -1e18
        self._clean_since: float | None = None  # start of the current window without a throttle
        self._waited_since = 0.0  # `waited` when that window started
        self.step = self.FIRST_STEP  # the share the factor shrinks by after a clean, busy window
        self.waited = 0.0  # seconds spent waiting on the pace
        self.learned = 0  # throttle events the factor was raised on
        self.lowered = 0  # clean windows the factor was lowered after
        self.stale = 0  # throttles of requests admitted before the last raise (not learned from)

    def estimate(self, records: int) -> float:
        """Estimated execution seconds of a request carrying `records` records."""
        return self.factor * (self.per_record or 0.0) * max(1, records)

    async def before(self, records: int) -> Admission:
        """Wait for this request's turn; returns what it was admitted with (pass it to :meth:`after`)."""
        async with self._lock:
            now = self.clock()
            ready = max(self._request_tat, self._execution_tat)
            if ready > now:
                self.waited += ready - now
                await self.sleep(ready - now)
                now = self.clock()
            estimate = self.estimate(records)
            self._request_tat = max(self._request_tat, now) + 1.0 / self.request_rate
            self._execution_tat = max(self._execution_tat, now) + estimate / self.execution_rate
            return Admission(records, estimate, now)

    def after(self, admission: Admission, wall: float, *, throttled_ago: float | None = None) -> None:
        """The request admitted as `admission` was answered; its answering attempt took `wall`
        seconds. `throttled_ago`: it met a 429 on the way, that many seconds ago (None: it did not)."""
        now = self.clock()
        w = self.pacing.window_seconds
        records = admission.records
        raw = max(0.0, wall)
        sample = raw / max(1, records)
        self.per_record = sample if self.per_record is None else 0.8 * self.per_record + 0.2 * sample
        self._recent.append((now, raw))
        while self._recent and self._recent[0][0] <= now - 2 * w:
            self._recent.popleft()
        if self._clean_since is None:
            self._clean_since, self._waited_since = now, self.waited
        if throttled_ago is not None:
            self._clean_since, self._waited_since = now, self.waited
            if admission.at < self._learned_at:
                # admitted under an older, lower factor: its 429 says nothing of the present one
                self.stale += 1
            elif now - self._learned_at >= w / 2:
                # what the pacer believes the service counted in the window that ended at the 429
                at = now - max(0.0, throttled_ago)
                spent = sum(r for t, r in self._recent if at - w < t <= at) * self.factor
                if 0 < spent < self.pacing.max_execution:
                    self.factor *= min(self.GROWTH_CAP, self.pacing.max_execution / spent)
                    self._learned_at = now
                    self.learned += 1
                    self.step = max(self.MIN_STEP, self.step / 2)
        elif now - self._clean_since >= w:
            # a whole window without a throttle: if the pace held the identity back (it waited),
            # the factor may be too high — lower it (multiplicative decrease; a throttle raises it
            # again and halves the step, so it settles just under the limit, not at its worst case)
            if self.waited > self._waited_since:
                self.factor = max(1.0, self.factor * (1.0 - self.step))
                self.lowered += 1
                self.step = min(self.MAX_STEP, self.step * 1.5)
            self._clean_since, self._waited_since = now, self.waited
        # correct the schedule by what the request really cost
        self._execution_tat += (self.factor * raw - admission.estimate) / self.execution_rate


class _SetMissing(NotFound):
    """The entity set itself is unknown: no record of the load can land."""


# --- the job --------------------------------------------------------------------------------------


class BulkJob:
    """One bulk write of `records` to `entity_set`: run it once with :meth:`run`.

    `records` are copied; each upsert record carries its id in `key_field` (default
    ``<logical_name>id``). `use_batch` starts with ``$batch`` (the set is known to lack the
    bulk message)."""

    def __init__(
        self,
        pool: Sequence[Transport],
        entity_set: str,
        logical_name: str,
        records: Sequence[Mapping[str, Any]],
        *,
        create: bool = False,
        key_field: str | None = None,
        chunk: int = DEFAULT_CHUNK,
        use_batch: bool = False,
        on_progress: ProgressCallback | None = None,
        on_chunk: ChunkCallback | None = None,
        pacing: Pacing | None = None,
    ):
        self.pool = list(pool)
        if not self.pool:
            raise ValueError("a bulk job needs at least one Transport")
        self.entity_set = odata.name_segment(entity_set)
        self.logical_name = odata.name_segment(logical_name)
        if not isinstance(chunk, int) or not 1 <= chunk <= MAX_BULK_TARGETS:
            raise ValueError(f"chunk must be between 1 and {MAX_BULK_TARGETS}")
        self.chunk = chunk
        self.create = create
        self.message = "CreateMultiple" if create else "UpsertMultiple"
        self.key_field = key_field or f"{logical_name}id"
        self.records: list[dict] = [dict(r) for r in records]
        for i, rec in enumerate(self.records):  # money is never float: refuse the job before anything is sent
            odata.refuse_floats(rec, f"records[{i}]")
        self.use_batch = use_batch
        self.on_progress = on_progress
        self.on_chunk = on_chunk
        #: pace each identity to its service-protection window (None: no pacing); may be set
        #: until the job runs
        self.pacing = pacing
        #: id(transport) -> its Pacer; give jobs of the same pool one dict so that what a pacer
        #: learned (the execution factor, its schedule) carries over from job to job
        self.pacers: dict[int, Pacer] = {}
        self.result = BulkResult(total=len(self.records))
        #: input index -> (id that landed, None) or (None, failure); filled as records settle
        self.outcomes: dict[int, tuple[str | None, RecordFailure | None]] = {}
        self.done = 0
        #: the error that stopped the job (also raised by run()), None while it goes on
        self.fatal: BaseException | None = None
        #: the set answered that it does not support the bulk message during this job
        self.learned_unsupported = False
        self._callbacks_failed = False
        self._ran = False

    @property
    def total(self) -> int:
        return self.result.total

    @property
    def path(self) -> str:
        return f"{self.entity_set}/{DATAVERSE_NAMESPACE}.{self.message}"

    async def run(self) -> BulkResult:
        """Write every record; return the outcomes. Raises the error that stopped the job, if
        one did, with the partial result attached as ``bulk_result``."""
        if self._ran:
            raise ValueError("a bulk job runs once; build a new one to write again")
        self._ran = True
        if any(t.read_only for t in self.pool):
            t = self.pool[0]
            raise ReadOnlyViolation(
                t.environment,
                "POST",
                t.base_url + self.path,
                "this client is read-only (verification never writes); the request was not sent",
            )
        ready = await self._check_keys()
        queue: asyncio.Queue[list[int]] = asyncio.Queue()
        for start in range(0, len(ready), self.chunk):
            queue.put_nowait(ready[start : start + self.chunk])
        if ready:
            await self._run_pool(queue)
        missing = [i for i in ready if i not in self.outcomes]
        if missing:  # defensive: every record gets an outcome, whatever happened above
            await self._fail(
                missing,
                None,
                "NoOutcome",
                "no answer was recorded for this record; re-run the load (upserts are safe to repeat)",
            )
        result = self.result
        for i in sorted(self.outcomes):
            ok_id, failure = self.outcomes[i]
            if failure is None:
                result.succeeded.append(ok_id)
                result.succeeded_indexes.append(i)
            else:
                result.failures.append(failure)
        result.used_batch_fallback = self.use_batch
        if self.fatal is not None:
            self.fatal.bulk_result = result  # type: ignore[attr-defined]
            raise self.fatal
        return result

    # --- before sending ---

    async def _check_keys(self) -> list[int]:
        """Indexes of the records that may be sent; the others fail here, alone."""
        ready: list[int] = []
        seen: dict[str, int] = {}
        for i, rec in enumerate(self.records):
            raw = rec.get(self.key_field)
            if raw is None:
                if not self.create:
                    await self._fail(
                        [i],
                        None,
                        "MissingKey",
                        f"the record has no '{self.key_field}'; upserts need the record's id (use cutover.domain.deterministic_id(legacy_id))",
                    )
                    continue
                ready.append(i)
                continue
            try:
                key = odata.guid(raw)
            except ValueError as exc:
                await self._fail([i], None, "BadKey", str(exc))
                continue
            rec[self.key_field] = key
            if key in seen:
                await self._fail(
                    [i],
                    None,
                    "DuplicateKey",
                    f"the same id as record {seen[key]} appears again in this load; each record must have its own id",
                )
                continue
            seen[key] = i
            ready.append(i)
        return ready

    # --- the pool ---

    async def _run_pool(self, queue: asyncio.Queue) -> None:
        cond = asyncio.Condition()
        busy = {id(t): 0 for t in self.pool}

        async def worker(t: Transport) -> None:
            while True:
                async with cond:
                    # no more chunks than the transport may have in flight: a throttled identity
                    # (halved limit, waiting out Retry-After) does not hoard work others could do
                    await cond.wait_for(lambda: busy[id(t)] < max(1, t.limit.limit))
                    busy[id(t)] += 1
                try:
                    items = await queue.get()
                    try:
                        if self.fatal is not None:
                            await self._fail(
                                items, None, "NotSent", f"not sent: the load stopped at an earlier error ({self.fatal})"
                            )
                        else:
                            await self._chunk(t, items, queue)
                    except (*_FATAL, _SetMissing) as exc:
                        self.fatal = self.fatal or exc
                        await self._fail(items, exc.status, exc.code, exc.message)
                    except ServiceError as exc:
                        await self._fail(items, exc.status, exc.code or type(exc).__name__, exc.message)
                    except Exception as exc:  # a defect or a failing callback: stop, keep every outcome so far
                        self.fatal = self.fatal or exc
                        await self._fail(items, None, type(exc).__name__, f"not confirmed: {exc}")
                    finally:
                        queue.task_done()
                finally:
                    async with cond:
                        busy[id(t)] -= 1
                        cond.notify_all()
                await asyncio.sleep(0)  # let the other identities' workers take their turn

        def slots(t: Transport) -> int:
            return max(1, min(t.limit.maximum, 52))

        # interleaved, so that the identities take turns from the first chunk on
        workers = [
            asyncio.create_task(worker(t))
            for n in range(max(slots(t) for t in self.pool))
            for t in self.pool
            if n < slots(t)
        ]
        try:
            await queue.join()
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    # --- outcomes ---

    async def _settle(self, settled: Iterable[tuple[int, str | None, RecordFailure | None]]) -> None:
        """Record outcomes (the first one of a record wins) and report the group."""
        fresh = [(i, ok_id, failure) for i, ok_id, failure in settled if i not in self.outcomes]
        for i, ok_id, failure in fresh:
            self.outcomes[i] = (ok_id, failure)
        self.done += len(fresh)
        if fresh:
            await self._report(fresh)

    async def _report(self, fresh: list[tuple[int, str | None, RecordFailure | None]]) -> None:
        """Call the callbacks. One that fails stops the load — nothing more is sent, every
        outcome so far is kept — but never kills a worker."""
        if self._callbacks_failed:
            return
        try:
            if self.on_chunk is not None:
                outcome = ChunkOutcome(
                    tuple((i, ok_id) for i, ok_id, failure in fresh if failure is None),
                    tuple(failure for _, _, failure in fresh if failure is not None),
                    self.done,
                    self.total,
                )
                await _maybe_await(self.on_chunk(outcome))
            if self.on_progress is not None:
                await _maybe_await(self.on_progress(self.done, self.total))
        except Exception as exc:
            self._callbacks_failed = True
            self.fatal = self.fatal or exc

    def _key(self, i: int) -> str | None:
        key = self.records[i].get(self.key_field)
        return str(key) if key is not None else None

    async def _fail(self, items: Iterable[int], status: int | None, code: str | None, message: str) -> None:
        await self._settle(
            (i, None, RecordFailure(i, self._key(i), status, code, message, self.logical_name)) for i in items
        )

    # --- sending ---

    async def _chunk(self, t: Transport, items: list[int], queue: asyncio.Queue) -> None:
        if self.use_batch:
            await self._batch(t, items)
            return
        odata_type = f"{DATAVERSE_NAMESPACE}.{self.logical_name}"
        targets = [{"@odata.type": odata_type, **self.records[i]} for i in items]
        self.result.bulk_requests += 1
        try:
            r = await self._send(
                t,
                len(items),
                "POST",
                self.path,
                content=odata.dumps({"Targets": targets}),
                headers=dict(_JSON),
                idempotent=not self.create,
            )
        except (BadRequest, NotFound) as exc:
            if _set_missing(exc):
                raise _SetMissing(
                    exc.environment, exc.method, exc.url, exc.message, status=exc.status, code=exc.code
                ) from None
            if _not_supported(exc):
                logger.info(
                    "%s: %s is not supported on %s; writing with $batch", t.environment, self.message, self.entity_set
                )
                self.learned_unsupported = True
                self.use_batch = True
                await self._batch(t, items)
                return
            if len(items) <= ISOLATE_BELOW:
                await self._batch(t, items)
                return
            mid = len(items) // 2  # all-or-nothing: nothing of this chunk landed; find the bad records
            queue.put_nowait(items[:mid])
            queue.put_nowait(items[mid:])
            return
        except OutcomeUnknown as exc:
            await self._fail(items, exc.status, "OutcomeUnknown", exc.message)
            return
        body = odata.loads(r.content) if r.content.strip() else {}
        ids = body.get("Ids") if isinstance(body, dict) else None
        settled = []
        for n, i in enumerate(items):
            given = self.records[i].get(self.key_field)
            got = ids[n] if isinstance(ids, list) and n < len(ids) else given
            settled.append((i, str(got) if got is not None else None, None))
        await self._settle(settled)

    def pacer(self, t: Transport) -> Pacer | None:
        """The pacer of transport `t` (None when the job is not paced)."""
        if self.pacing is None:
            return None
        if id(t) not in self.pacers:
            self.pacers[id(t)] = self.pacing.pacer(sleep=t.sleep)
        return self.pacers[id(t)]

    async def _send(self, t: Transport, records: int, method: str, path: str, **kw):
        pacer = self.pacer(t)
        if pacer is None:
            return await t.request(method, path, **kw)
        admission = await pacer.before(records)
        attempts = Attempts()
        try:
            return await t.request(method, path, attempts=attempts, **kw)
        finally:
            if attempts.answered_in is not None:
                pacer.after(
                    admission,
                    attempts.answered_in,
                    throttled_ago=time.monotonic() - attempts.throttled_at[0] if attempts.throttled else None,
                )

    async def _batch(self, t: Transport, items: list[int]) -> None:
        for start in range(0, len(items), MAX_BATCH_REQUESTS):
            await self._one_batch(t, items[start : start + MAX_BATCH_REQUESTS])

    async def _one_batch(self, t: Transport, items: list[int]) -> None:
        parts: list[BatchPart] = []
        for i in items:
            rec = dict(self.records[i])
            key = rec.pop(self.key_field, None)
            rec.pop("@odata.type", None)
            if self.create:
                if key is not None:
                    rec[self.key_field] = key
                parts.append(
                    BatchPart("POST", t.base_url + self.entity_set, odata.dumps(rec).encode(), content_id=str(i))
                )
            else:
                parts.append(
                    BatchPart(
                        "PATCH", f"{t.base_url}{self.entity_set}({key})", odata.dumps(rec).encode(), content_id=str(i)
                    )
                )
        content, ctype = encode_batch(parts)
        self.result.batch_requests += 1
        try:
            r = await self._send(
                t,
                len(items),
                "POST",
                "$batch",
                content=content,
                headers={"Content-Type": ctype, "Prefer": "odata.continue-on-error"},
                idempotent=not self.create,
            )
        except OutcomeUnknown as exc:
            await self._fail(items, exc.status, "OutcomeUnknown", exc.message)
            return
        try:
            answers = decode_batch(r.content, r.headers.get("content-type", ""))
        except ValueError as exc:
            await self._fail(
                items,
                r.status_code,
                "BadBatchAnswer",
                f"the $batch answer could not be read ({exc}); re-run the load (upserts are safe to repeat)",
            )
            return
        by_id = {a.content_id: a for a in answers if a.content_id is not None}
        settled = []
        for n, i in enumerate(items):
            a = by_id.get(str(i)) or (answers[n] if not by_id and n < len(answers) else None)
            key = self._key(i)
            if a is None:
                settled.append(
                    (
                        i,
                        None,
                        RecordFailure(
                            i,
                            key,
                            None,
                            "NoAnswer",
                            "the $batch answer has no response for this record; it was not applied — re-run the load",
                            self.logical_name,
                        ),
                    )
                )
            elif a.status < 400:
                settled.append((i, a.entity_id() or key, None))
            else:
                code, text = a.error()
                settled.append((i, None, RecordFailure(i, key, a.status, code, text, self.logical_name)))
        await self._settle(settled)


async def _maybe_await(value: Any) -> None:
    if inspect.isawaitable(value):
        await value


def _set_missing(exc: ServiceError) -> bool:
    return exc.status == 404 and "resource not found for the segment" in (exc.message or "").lower()


def _not_supported(exc: ServiceError) -> bool:
    """Dataverse answers 400 with 0x8004800d / "The 'X' message is not supported for entities of type 'Y'"."""
    text = (exc.message or "").lower()
    return (
        exc.code == NOT_SUPPORTED_CODE
        or ("message is not supported" in text)
        or ("is not supported for entities" in text)
    )
