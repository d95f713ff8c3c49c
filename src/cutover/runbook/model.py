"""A runbook step, and a runbook: the procedure as data.

A step says what it does and how it is done:

- ``kind``: ``auto`` (the tool does it through an API), ``manual`` (the operator clicks, the
  tool shows the exact click path and waits for a named attestation) or ``attest`` (nothing to
  click: the operator confirms a fact the tool cannot read, e.g. maintenance mode).
- ``depends_on``: steps that must be done first.
- ``gate``: a live, read-only probe that must hold before the step may start (e.g. "the three
  maps read stopped" before any invoice is created). A gate that does not hold blocks the
  step and says why; it is never skipped.
- ``action``: for an auto step, an async generator that does the work and yields progress
  payloads; it raises a :class:`cutover.errors.CutoverError` when it fails.
- ``check``: the postcondition, read from live state after the step. For a manual step this is
  the read-only evidence that can contradict a wrong attestation. A probe answers
  :class:`Evidence` ``ok``, ``failed`` or ``not-verified`` (the state cannot be read here).
- ``click_path``, ``undo``: what to click, and how to undo the step before the point of no
  return.
- ``point_of_no_return``: the operator is asked once more before it starts.
- ``writes``: the step changes the environment: on a production profile the operator confirms
  it by typing the environment's name, and the pinned organization is checked right before.
- ``rehearse``: how a rehearsal performs a manual step itself through the simulator.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ..engine import RunContext


class Kind(enum.StrEnum):
    AUTO = "auto"
    MANUAL = "manual"
    ATTEST = "attest"


EvidenceStatus = Literal["ok", "failed", "not-verified"]


@dataclass(frozen=True)
class Evidence:
    """What a read-only probe found. ``figures`` go into the journal as they are (no floats)."""

    status: EvidenceStatus
    summary: str
    figures: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def ok(cls, summary: str, **figures: Any) -> Evidence:
        return cls("ok", summary, figures)

    @classmethod
    def failed(cls, summary: str, **figures: Any) -> Evidence:
        return cls("failed", summary, figures)

    @classmethod
    def not_verified(cls, summary: str, **figures: Any) -> Evidence:
        return cls("not-verified", summary, figures)

    def as_data(self) -> dict[str, Any]:
        return {"status": self.status, "summary": self.summary, "figures": dict(self.figures)}


Probe = Callable[["RunContext"], Awaitable[Evidence]]
Action = Callable[["RunContext"], AsyncIterator[Any]]


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    kind: Kind
    what: str = ""
    depends_on: tuple[str, ...] = ()
    gate: Probe | None = None
    gate_rule: str = ""
    action: Action | None = None
    check: Probe | None = None
    done_when: str = ""
    click_path: tuple[str, ...] = ()
    undo: str = ""
    point_of_no_return: bool = False
    writes: bool = False
    rehearse: Action | None = None

    def __post_init__(self) -> None:
        if self.kind is Kind.AUTO and self.action is None:
            raise ValueError(f"step {self.id}: an auto step needs an action")
        if self.kind is Kind.MANUAL and not self.click_path:
            raise ValueError(f"step {self.id}: a manual step needs its click path")


@dataclass(frozen=True)
class Runbook:
    """An ordered tuple of steps; ids unique, dependencies on earlier steps only."""

    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for step in self.steps:
            if step.id in seen:
                raise ValueError(f"step id {step.id} appears twice")
            missing = [d for d in step.depends_on if d not in seen]
            if missing:
                raise ValueError(f"step {step.id} depends on {', '.join(missing)}, which do not come before it")
            seen.add(step.id)

    def __iter__(self):
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.steps)

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def until(self, last: str) -> Runbook:
        """The steps up to and including ``last``."""
        index = self.ids.index(last)
        return Runbook(self.steps[: index + 1])

    def extended(self, *steps: Step) -> Runbook:
        return Runbook(self.steps + tuple(steps))
