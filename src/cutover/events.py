"""Typed events: what a long operation reports while it runs, for the CLI, the TUI and tests.

An operation is an ``async`` generator of these events (``async for event in run_…(…)``); it
never prints. Every event is a small frozen dataclass, so a consumer matches on its type and
reads plain fields, and the journal can write any of them down (:func:`as_dict`). The runbook
engine extends this module with its own events; the ones here are shared by every operation.

- :class:`PhaseStarted` / :class:`PhaseFinished` — a named phase of an operation begins / ends
  (``phase`` is a stable id such as ``"guard"``, ``"map-check"``, ``"load"``, ``"read-back"``).
- :class:`Notice` — something the operator should read (``level`` ``"info"`` or ``"warning"``).
- :class:`Progress` — records done of total, with the throttles seen, the failures, the rate
  (records per second since the phase began) and the estimated seconds left.
- :class:`ChunkLoaded` — a group of records settled together (one bulk request, one ``$batch``):
  how many landed and how many failed, and the ids that landed.
- :class:`RecordFailed` — one record that did not land, with the service's own status, code and
  message (and the legacy id and file row, where the record came from an extract).
- :class:`MigrationFinished` — the last event of a migration; carries its outcome
  (:class:`cutover.migrate.Outcome`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ChunkLoaded",
    "Event",
    "MigrationFinished",
    "Notice",
    "PhaseFinished",
    "PhaseStarted",
    "Progress",
    "RecordFailed",
    "as_dict",
]


@dataclass(frozen=True)
class Event:
    """The root of every event (carries nothing itself)."""


@dataclass(frozen=True)
class PhaseStarted(Event):
    phase: str
    detail: str = ""


@dataclass(frozen=True)
class PhaseFinished(Event):
    phase: str
    detail: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class Notice(Event):
    message: str
    level: str = "info"  # "info" | "warning"


@dataclass(frozen=True)
class Progress(Event):
    done: int
    total: int
    throttled: int = 0  # 429 answers seen (and waited out) since the phase began
    failed: int = 0
    rate: float = 0.0  # records per second since the phase began
    eta: float | None = None  # seconds left at that rate (None: not known yet)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


@dataclass(frozen=True)
class ChunkLoaded(Event):
    succeeded: int
    failed: int
    done: int
    total: int
    ids: tuple[str, ...] = ()  # ids that landed in this group


@dataclass(frozen=True)
class RecordFailed(Event):
    key: str | None  # the record's id
    status: int | None  # HTTP status of the record's answer (None: never answered)
    code: str | None  # the service's error code, e.g. "0x80040203", or the tool's (NotSent, …)
    message: str
    legacy_id: str | None = None
    row: int | None = None  # row of the extract the record came from
    file: str | None = None


@dataclass(frozen=True)
class MigrationFinished(Event):
    outcome: Any  # cutover.migrate.Outcome (typed there: events import nothing of the operations)


def as_dict(event: Event) -> dict[str, Any]:
    """An event as plain data with its type name (``{"event": "Progress", "done": …}``), for a journal."""
    out: dict[str, Any] = {"event": type(event).__name__}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        out[f.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    return out
