"""Reconciliation, as pure polars functions over frames (no I/O, money Decimal):

- :func:`reconcile_milestones` — legacy extract ↔ Dataverse ↔ F&O milestones, joined on the
  deterministic id (:mod:`cutover.reconcile.milestones`), over frames the ``normalise_*``
  functions make from raw rows (:mod:`cutover.reconcile.normalise`);
- :func:`compare_balances` / :func:`compare_ar` / :func:`compare_gl` / :func:`new_vouchers` —
  two AR/GL snapshots (:mod:`cutover.reconcile.balances`).

Findings are frames, so every report, scenario and screen shows the same rows.
"""

from __future__ import annotations

from ._frames import MONEY
from .balances import (
    AR_CHANGE_SCHEMA,
    AR_VOUCHER_SCHEMA,
    GL_CHANGE_SCHEMA,
    GL_VOUCHER_SCHEMA,
    BalanceComparison,
    compare_ar,
    compare_balances,
    compare_gl,
    new_vouchers,
)
from .milestones import (
    CONTROL_TOTAL_SCHEMA,
    DUPLICATE_SCHEMA,
    LEVELS,
    MISMATCH_SCHEMA,
    MilestoneReconciliation,
    ReconciliationSummary,
    Tolerances,
    reconcile_milestones,
)
from .normalise import (
    DATAVERSE_SCHEMA,
    FNO_SCHEMA,
    LEGACY_SCHEMA,
    DataverseReference,
    default_line_key,
    normalise_dataverse,
    normalise_fno,
    normalise_legacy,
    reference_from_legacy,
)

__all__ = [
    "AR_CHANGE_SCHEMA",
    "AR_VOUCHER_SCHEMA",
    "CONTROL_TOTAL_SCHEMA",
    "DATAVERSE_SCHEMA",
    "DUPLICATE_SCHEMA",
    "FNO_SCHEMA",
    "GL_CHANGE_SCHEMA",
    "GL_VOUCHER_SCHEMA",
    "LEGACY_SCHEMA",
    "LEVELS",
    "MISMATCH_SCHEMA",
    "MONEY",
    "BalanceComparison",
    "DataverseReference",
    "MilestoneReconciliation",
    "ReconciliationSummary",
    "Tolerances",
    "compare_ar",
    "compare_balances",
    "compare_gl",
    "default_line_key",
    "new_vouchers",
    "normalise_dataverse",
    "normalise_fno",
    "normalise_legacy",
    "reconcile_milestones",
    "reference_from_legacy",
]
