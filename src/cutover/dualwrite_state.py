"""What F&O says about the dual-write maps: their state and their integration mode.

The plain readers that both the invoicing operation and the runbook's probes use (an
operation never imports the runbook; the runbook's probes are built on these):

- **Map state** comes from F&O ``DualWriteProjectConfigurations`` (two rows per map). A map's
  rows are those whose ``ExternalEntityName`` is the map's Dataverse table. A map reads
  *stopped* only when every one of its rows reads ``Disabled``, *running* only when every one
  reads ``Enabled``; anything else (``Queueing`` — a paused map — or a mix) is neither, and
  the evidence names the rows and what each reads. A map with no row at all cannot be judged
  (``not-verified``). A 401, 403 or 404 on the entity means this account cannot read map
  state: ``not-verified`` (an attestation is then the evidence).
- **Asynchronous invoice integration**: any row of the invoices or actuals map whose
  ``AsyncMode`` is ``RequiredAsync`` fails — the cutover procedure does not cover it.

How ``Status`` corresponds to the map states of the UI is our inference (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .runbook.model import Evidence
from .transport import AuthenticationFailed, NotFound, PermissionDenied

if TYPE_CHECKING:
    from .fno import FnoClient

MILESTONE_MAP = "msdyn_contractlinescheduleofvalues"
ACTUALS_MAP = "msdyn_actuals"
INVOICES_MAP = "invoices"
THREE_MAPS: tuple[str, ...] = (MILESTONE_MAP, ACTUALS_MAP, INVOICES_MAP)
CONFIGURATIONS = "DualWriteProjectConfigurations"

ENABLED, DISABLED, QUEUEING = "Enabled", "Disabled", "Queueing"
REQUIRED_ASYNC = "RequiredAsync"
STOPPED, RUNNING, MIXED, ABSENT = "stopped", "running", "neither", "absent"

#: The errors that mean "this account cannot read it here": 401, 403, 404.
unreadable = (AuthenticationFailed, PermissionDenied, NotFound)


# --- map state: DualWriteProjectConfigurations ------------------------------------------------


@dataclass(frozen=True)
class ConfigurationRow:
    """One ``DualWriteProjectConfigurations`` row."""

    project: str
    table: str  # ExternalEntityName: the map's Dataverse table
    status: str  # Enabled / Disabled / Queueing (member names, as F&O serves enums)
    async_mode: str  # RequiredSync / RequiredAsync / PreferredSync / None

    @classmethod
    def from_row(cls, row: dict) -> ConfigurationRow:
        return cls(
            str(row.get("ProjectName") or ""),
            str(row.get("ExternalEntityName") or ""),
            _member(row.get("Status")),
            _member(row.get("AsyncMode")),
        )


def _member(value: Any) -> str:
    """An enum as its member name; a qualified literal (``Ns.Type'Member'``) is cut to the member."""
    text = "" if value is None else str(value)
    if text.endswith("'") and "'" in text[:-1]:
        text = text[text.index("'") + 1 : -1]
    return text


@dataclass(frozen=True)
class MapState:
    """What the configuration rows of one map say: ``state`` is stopped, running, neither or absent."""

    name: str
    rows: tuple[ConfigurationRow, ...]

    @property
    def state(self) -> str:
        if not self.rows:
            return ABSENT
        statuses = {r.status for r in self.rows}
        if statuses == {DISABLED}:
            return STOPPED
        if statuses == {ENABLED}:
            return RUNNING
        return MIXED

    @property
    def stopped(self) -> bool:
        return self.state == STOPPED

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    def describe(self) -> str:
        if not self.rows:
            return f"{self.name}: no {CONFIGURATIONS} row names this table"
        rows = ", ".join(f"{r.project} reads {r.status or '(empty)'}" for r in self.rows)
        return f"{self.name} is {self.state} ({rows})"

    def as_figures(self) -> dict[str, Any]:
        return {"state": self.state, "rows": {r.project: r.status for r in self.rows}}


async def read_configurations(fno: FnoClient, entity: str = CONFIGURATIONS) -> list[ConfigurationRow]:
    """Every ``DualWriteProjectConfigurations`` row (raises the transport's errors: 401, 403, 404 …)."""
    rows: list[ConfigurationRow] = []
    async for row in fno.rows(entity, select=["ProjectName", "ExternalEntityName", "Status", "AsyncMode"]):
        rows.append(ConfigurationRow.from_row(row))
    return rows


def map_states(rows: Iterable[ConfigurationRow], names: Sequence[str]) -> dict[str, MapState]:
    """Group configuration rows by map (ExternalEntityName, case-insensitive)."""
    rows = list(rows)
    return {n: MapState(n, tuple(r for r in rows if r.table.lower() == n.lower())) for n in names}


async def read_map_states(
    fno: FnoClient, names: Sequence[str] = THREE_MAPS, entity: str = CONFIGURATIONS
) -> dict[str, MapState]:
    """The state of each named map (raises the transport's errors)."""
    return map_states(await read_configurations(fno, entity), names)


def cannot_read(what: str, exc: Exception, attest: str) -> Evidence:
    status = getattr(exc, "status", None)
    return Evidence.not_verified(
        f"this account cannot read {what} ({status or type(exc).__name__}); {attest}",
        unreadable=what,
        status=status,
    )


def map_state_evidence(states: dict[str, MapState], want: str) -> Evidence:
    """``ok`` when every map reads ``want`` (stopped or running); ``failed`` naming the maps and
    rows that read otherwise; ``not-verified`` when a map has no row (and none failed)."""
    figures = {"maps": {n: s.as_figures() for n, s in states.items()}}
    wrong = [s for s in states.values() if s.rows and s.state != want]
    absent = [s for s in states.values() if not s.rows]
    if wrong:
        return Evidence.failed(
            f"not every map reads {want}: " + "; ".join(s.describe() for s in wrong),
            **figures,
        )
    if absent:
        return Evidence.not_verified(
            "; ".join(s.describe() for s in absent) + f"; attest that it is {want}",
            **figures,
        )
    return Evidence.ok(
        "; ".join(f"{s.name} reads {want} ({len(s.rows)} rows {s.rows[0].status})" for s in states.values()),
        **figures,
    )


def async_integration_evidence(rows: Iterable[ConfigurationRow]) -> Evidence:
    """``failed`` when a row of the invoices or actuals map reads ``AsyncMode`` RequiredAsync."""
    mine = [r for r in rows if r.table.lower() in (INVOICES_MAP, ACTUALS_MAP)]
    modes = {r.project: r.async_mode for r in mine}
    on = [r for r in mine if r.async_mode == REQUIRED_ASYNC]
    if on:
        names = ", ".join(f"{r.project} ({r.table})" for r in on)
        return Evidence.failed(
            f"the asynchronous invoice integration is on: the cutover procedure does not cover it "
            f"({names} read AsyncMode {REQUIRED_ASYNC})",
            async_modes=modes,
        )
    if not mine:
        return Evidence.not_verified(
            f"no {CONFIGURATIONS} row names the invoices or actuals table; attest that the asynchronous "
            "invoice integration is off",
            async_modes=modes,
        )
    return Evidence.ok(
        "the invoice integration is synchronous (" + ", ".join(f"{p} {m}" for p, m in modes.items()) + ")",
        async_modes=modes,
    )
