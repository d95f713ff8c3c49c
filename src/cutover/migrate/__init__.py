"""The milestone load (``cutover migrate``): plan against Dataverse, load in bulk, read back.

A plain-Python core for the CLI, the runbook, the validation suite and the TUI: nothing here
prints or imports a UI. The shape of every operation of the tool:

- :func:`plan_migration` ``(validated, existing) -> Plan`` — pure, polars (:mod:`.plan`);
- :func:`run_migration` ``(session, plan, …)`` — an async iterator of :mod:`cutover.events`,
  ending with :class:`~cutover.events.MigrationFinished` ``(outcome)`` (:mod:`.load`);
- :func:`read_back` ``(session, validated) -> ReadBack`` — what Dataverse and F&O hold (:mod:`.readback`).

Helpers: :func:`read_existing` (the milestones a plan is made against), :func:`milestone_records`
(planned rows as Web API records), :func:`check_production`.
"""

from __future__ import annotations

from .load import (
    DEFAULT_PACING,
    Failure,
    MapVersionRefused,
    Outcome,
    check_production,
    read_existing,
    run_migration,
)
from .plan import EXISTING_SCHEMA, KEY, MILESTONE, Plan, existing_frame, milestone_records, plan_migration
from .readback import ReadBack, read_back

__all__ = [
    "DEFAULT_PACING",
    "EXISTING_SCHEMA",
    "KEY",
    "MILESTONE",
    "Failure",
    "MapVersionRefused",
    "Outcome",
    "Plan",
    "ReadBack",
    "check_production",
    "existing_frame",
    "milestone_records",
    "plan_migration",
    "read_back",
    "read_existing",
    "run_migration",
]
