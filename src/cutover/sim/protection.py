"""Service protection limits, the execution-cost model, and injected faults.

Service protection (Dataverse "Service protection API limits"; F&O "Priority-based
throttling" documents the same numbers): per user, per web server, over a sliding window
(300 s): at most 6000 requests, 1200 s combined execution time, 52 concurrent requests.
Past a limit the service answers 429 with ``Retry-After`` in seconds. The simulator keeps one
budget per (service, identity) — more application users, more throughput — and lets tests
scale the window (``Limits.scaled``) so a limit binds in seconds instead of minutes.

Cost model: every request spends simulated server execution time,
``base + per_record * records`` (reads and writes priced separately). It is charged against
the execution-time budget, and, with ``latency_factor > 0``, also delays the answer by
that much wall time so concurrency limits and parallel clients behave as on a server farm.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from dataclasses import asdict, dataclass, field, fields

from . import errors


@dataclass
class Limits:
    window_seconds: float = 300.0
    max_requests: int = 6000
    max_execution_seconds: float = 1200.0
    max_concurrent: int = 52
    enabled: bool = True

    @classmethod
    def scaled(cls, factor: float) -> Limits:
        """The documented limits with the window shrunk by `factor`; rates stay as documented."""
        return cls(
            window_seconds=300.0 * factor,
            max_requests=max(1, round(6000 * factor)),
            max_execution_seconds=1200.0 * factor,
            max_concurrent=52,
        )


@dataclass
class CostModel:
    read_base: float = 0.010
    read_per_record: float = 0.00002
    write_base: float = 0.020
    write_per_record: float = 0.005
    latency_factor: float = 0.0  # wall seconds slept per simulated execution second

    def cost(self, writes: bool, records: int) -> float:
        if writes:
            return self.write_base + self.write_per_record * records
        return self.read_base + self.read_per_record * records


FAULT_KINDS = ("ok", "429", "5xx", "drop", "drop-after", "latency")


@dataclass
class Faults:
    """Injected misbehaviour. Random faults use their own seeded generator (repeatable)."""

    latency_ms: float = 0.0
    error_rate: float = 0.0  # share of requests answered 5xx
    error_status: int = 503
    throttle_rate: float = 0.0  # share of requests answered 429 (on top of real limits)
    retry_after: int = 1
    drop_rate: float = 0.0  # share of connections dropped before processing
    drop_after_rate: float = 0.0  # share dropped after the change was committed
    path_contains: str = ""  # restrict faults to paths containing this text
    seed: int = 0
    script: list[str] = field(default_factory=list)  # forced outcomes, consumed in order

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        for item in self.script:
            if item not in FAULT_KINDS:
                raise ValueError(f"unknown fault '{item}' in script; use one of {', '.join(FAULT_KINDS)}")

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def applies_to(self, path: str) -> bool:
        """Whether faults (injected latency included) apply to `path` (see `path_contains`)."""
        return not self.path_contains or self.path_contains in path

    def pick(self, path: str) -> str:
        """The fault (or 'ok') for the next request to `path`."""
        if not self.applies_to(path):
            return "ok"
        if self.script:
            return self.script.pop(0)
        r = self._rng.random()
        for kind, rate in (
            ("429", self.throttle_rate),
            ("5xx", self.error_rate),
            ("drop", self.drop_rate),
            ("drop-after", self.drop_after_rate),
        ):
            if r < rate:
                return kind
            r -= rate
        return "ok"


class Budget:
    """One identity's sliding-window usage on one service."""

    def __init__(self) -> None:
        self.events: deque[tuple[float, float]] = deque()  # (finished at, execution seconds)
        self.starts: deque[float] = deque()  # request start times
        self.execution = 0.0
        self.concurrent = 0

    def _expire(self, now: float, window: float) -> None:
        while self.starts and self.starts[0] <= now - window:
            self.starts.popleft()
        while self.events and self.events[0][0] <= now - window:
            self.execution -= self.events.popleft()[1]
        if not self.events:
            self.execution = 0.0

    def admit(self, limits: Limits, now: float) -> None:
        """Raise a 429 SimError (:func:`errors.throttled`) if a new request would break a limit;
        else count it in."""
        w = limits.window_seconds
        self._expire(now, w)
        if self.concurrent >= limits.max_concurrent:
            raise errors.throttled(
                errors.CONCURRENCY_LIMIT,
                f"Number of concurrent requests exceeded the limit of {limits.max_concurrent}.",
                1,
            )
        if len(self.starts) >= limits.max_requests:
            wait = self.starts[0] + w - now
            raise errors.throttled(
                errors.REQUESTS_LIMIT,
                f"Number of requests exceeded the limit of {limits.max_requests} over time window of {w:g} seconds.",
                max(1, math.ceil(wait)),
            )
        if self.execution > limits.max_execution_seconds:
            over = self.execution - limits.max_execution_seconds
            wait, freed = 0.0, 0.0
            for at, cost in self.events:
                freed += cost
                wait = at + w - now
                if freed >= over:
                    break
            raise errors.throttled(
                errors.EXECUTION_TIME_LIMIT,
                f"Combined execution time of incoming requests exceeded limit of {int(limits.max_execution_seconds * 1000):,} milliseconds over time window of {w:g} seconds. Decrease number of concurrent requests or reduce the duration of requests and try again later.",
                max(1, math.ceil(wait)),
            )
        self.starts.append(now)
        self.concurrent += 1

    def finish(self, now: float, execution: float) -> None:
        self.concurrent -= 1
        self.events.append((now, execution))
        self.execution += execution

    def snapshot(self, limits: Limits, now: float) -> dict:
        self._expire(now, limits.window_seconds)
        return {
            "requests": len(self.starts),
            "execution_seconds": round(self.execution, 6),
            "concurrent": self.concurrent,
        }


class Protection:
    """All budgets of one simulator, plus the knobs tests turn."""

    def __init__(self, limits: Limits | None = None, cost: CostModel | None = None, clock=time.monotonic):
        self.limits = limits or Limits()
        self.cost = cost or CostModel()
        self.faults = Faults()
        self.clock = clock
        self.budgets: dict[tuple[str, str], Budget] = {}

    def budget(self, service: str, identity: str) -> Budget:
        key = (service, identity)
        if key not in self.budgets:
            self.budgets[key] = Budget()
        return self.budgets[key]

    def dop_hint(self) -> int:
        """Suggested degree of parallelism (x-ms-dop-hint), as Dataverse sends it."""
        return max(1, min(self.limits.max_concurrent, 8))

    def describe(self) -> dict:
        now = self.clock()
        return {
            "limits": asdict(self.limits),
            "cost": asdict(self.cost),
            "usage": {f"{s}:{i}": b.snapshot(self.limits, now) for (s, i), b in self.budgets.items()},
        }
