"""The events the engine yields: one typed stream that the CLI prints, the TUI turns into
messages and the tests assert on. Every event is journaled (``kind`` + ``data()``) before it
is yielded, so a dropped terminal loses nothing."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class EngineEvent:
    kind: ClassVar[str] = "event"
    step: str | None

    def data(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("step", None)
        return d


@dataclass(frozen=True)
class RunStarted(EngineEvent):
    kind: ClassVar[str] = "run.started"
    env: str = ""
    steps: tuple[str, ...] = ()
    resumed_at: str | None = None  # the first unfinished step when resuming
    inputs: dict[str, Any] | None = None


@dataclass(frozen=True)
class StepStarted(EngineEvent):
    kind: ClassVar[str] = "step.started"
    title: str = ""
    step_kind: str = ""
    resumed: bool = False


@dataclass(frozen=True)
class StepProgress(EngineEvent):
    kind: ClassVar[str] = "step.progress"
    message: str = ""
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepBlocked(EngineEvent):
    """A gate or a dependency does not hold: the step may not start."""

    kind: ClassVar[str] = "step.blocked"
    reason: str = ""


@dataclass(frozen=True)
class NeedsAttestation(EngineEvent):
    kind: ClassVar[str] = "step.needs-attestation"
    title: str = ""
    click_path: tuple[str, ...] = ()


@dataclass(frozen=True)
class Attested(EngineEvent):
    kind: ClassVar[str] = "step.attested"
    name: str = ""
    statement: str = ""


@dataclass(frozen=True)
class CheckPassed(EngineEvent):
    kind: ClassVar[str] = "check.passed"
    summary: str = ""
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckFailed(EngineEvent):
    kind: ClassVar[str] = "check.failed"
    summary: str = ""
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NotVerified(EngineEvent):
    """The evidence cannot be read here; on production someone acknowledged that by name."""

    kind: ClassVar[str] = "check.not-verified"
    summary: str = ""
    acknowledged_by: str | None = None


@dataclass(frozen=True)
class StepDone(EngineEvent):
    kind: ClassVar[str] = "step.finished"
    head_seq: int = 0
    head_hash: str = ""


@dataclass(frozen=True)
class StepFailed(EngineEvent):
    kind: ClassVar[str] = "step.failed"
    message: str = ""
    fix: str | None = None


@dataclass(frozen=True)
class RunFinished(EngineEvent):
    kind: ClassVar[str] = "run.finished"
    ok: bool = False
    stopped_at: str | None = None
    reason: str = ""
    head_seq: int = 0
    head_hash: str = ""
