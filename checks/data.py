"""What the validation suite reads, read once per run and only through read-only clients.

:class:`Environment` opens the profile's environment with ``open_session(…, read_only=True)``
(every transport refuses a write before sending it) on its own event loop, checks that the
organization is the pinned one (a different one is :class:`~cutover.config.FingerprintMismatch`,
exit 3) and keeps the session for the whole run; steps are plain functions, so each read runs
to completion on that loop (:meth:`Environment.run`). The session is opened only when a
scenario first needs it: a run of the balance scenarios alone reads only the snapshots.

:class:`CutoverData` holds the reads, each done at most once (``functools.cached_property``):

- ``extract`` — the legacy extract, validated against the environment
  (:func:`cutover.source.load_and_validate`) with the cutover date the run started with (the
  journal's run inputs), else today; a problem in the extract is an
  :class:`~cutover.errors.InputError` (exit 2): the suite has no truth to compare with;
- ``legacy`` / ``reference`` — the extract in the reconciliation contract;
- ``dataverse`` — the Dataverse milestones on the extract's contracts (queried by contract);
- ``fno`` — ``ProjectContractLineMilestones`` (``None`` with :attr:`fno_unreadable` when this
  account may not read it);
- ``reconcile(tolerances)`` — :func:`cutover.reconcile.reconcile_milestones`, per tolerance set;
- ``snapshots`` / ``balances`` — the AR and GL snapshots ``before`` and ``after`` (hashes
  checked on load) and :func:`cutover.reconcile.compare_balances` over them;
- ``invoicing`` — the extract's contracts' invoices and milestones
  (:func:`cutover.invoicing.read_invoicing_state`).

Nothing here imports the simulator: the suite runs the same against a rehearsal and a tenant.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from cutover import odata
from cutover.config import load_config
from cutover.errors import InputError
from cutover.journal import JOURNAL_FILE, Journal, RunInputs, file_sha256
from cutover.reconcile import (
    MilestoneReconciliation,
    Tolerances,
    compare_balances,
    normalise_dataverse,
    normalise_fno,
    normalise_legacy,
    reconcile_milestones,
    reference_from_legacy,
)
from cutover.reconcile.normalise import DATAVERSE_FIELDS, FNO_FIELDS
from cutover.session import open_session
from cutover.transport import AuthenticationFailed, NotFound, PermissionDenied

GROUP = 50  # ids per `in (…)` filter
UNREADABLE = (AuthenticationFailed, PermissionDenied, NotFound)


@dataclass(frozen=True)
class Settings:
    """What the run was asked to verify (the plugin's command-line options)."""

    workspace: Path
    env: str
    source: Path
    mapping: Path | None = None
    report: Path | None = None
    cutover_date: str | None = None


class Environment:
    """The profile's environment, opened read-only on a private event loop (see the module doc)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.profile = load_config(settings.workspace).get(settings.env)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._session: Any = None
        self.organization_id: str | None = None

    def run(self, coro):
        """Run one coroutine to completion on this environment's loop."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coro)

    @property
    def session(self):
        if self._session is None:
            self._stack = contextlib.AsyncExitStack()
            self._session = self.run(
                self._stack.enter_async_context(open_session(self.profile, self.settings.workspace, read_only=True))
            )
            self.organization_id = self.run(self._session.check_fingerprint())
        return self._session

    @property
    def opened(self) -> bool:
        return self._session is not None

    def close(self) -> None:
        try:
            if self._stack is not None:
                self.run(self._stack.aclose())
        finally:
            if self._loop is not None:
                self._loop.close()
            self._loop = self._stack = self._session = None


def _guid(value: Any) -> uuid.UUID:
    return uuid.UUID(str(value).strip().strip("{}"))


class CutoverData:
    """The run's reads, each done once (see the module docstring)."""

    def __init__(self, settings: Settings, environment: Environment):
        self.settings = settings
        self.environment = environment
        self.fno_unreadable: str | None = None
        self._reconciliations: dict[Tolerances, MilestoneReconciliation] = {}

    # --- inputs ---------------------------------------------------------------------------------

    @functools.cached_property
    def run_inputs(self) -> RunInputs | None:
        """The inputs the environment's cutover run started with (None without a journal)."""
        if not (self.settings.workspace / JOURNAL_FILE).exists():
            return None
        with Journal.open(self.settings.workspace, create=False) as journal:
            return journal.run_inputs(self.settings.env)

    @functools.cached_property
    def cutover_date(self) -> str:
        if self.settings.cutover_date:
            return self.settings.cutover_date
        if self.run_inputs is not None:
            return self.run_inputs.cutover_date
        return dt.datetime.now(dt.UTC).date().isoformat()

    @functools.cached_property
    def extract(self):
        from cutover.source import load_and_validate

        session = self.environment.session
        _raw, result = self.environment.run(
            load_and_validate(self.settings.source, session, self.settings.mapping, self.cutover_date)
        )
        if result.problems:
            first = "; ".join(f"{p.place}: {p.message}" for p in result.problems[:5])
            raise InputError(
                f"the legacy extract has {len(result.problems):,} problem(s), so it cannot serve as the truth "
                f"to verify against: {first}",
                where=str(self.settings.source),
                fix="verify with the extract the cutover ran with",
            )
        return result

    @functools.cached_property
    def source_sha256(self) -> str:
        return file_sha256(self.settings.source)

    @functools.cached_property
    def legacy(self) -> pl.DataFrame:
        return normalise_legacy(self.extract.rows).collect()

    @functools.cached_property
    def reference(self):
        return reference_from_legacy(self.extract.rows)

    @functools.cached_property
    def contract_ids(self) -> list[str]:
        return sorted(set(self.extract.rows["contract_id"].drop_nulls().str.to_lowercase().to_list()))

    @functools.cached_property
    def legal_entities(self) -> tuple[str, ...]:
        """The legal entities of the extract (file rules only: no environment needed)."""
        from cutover.source import check_file

        _raw, result = check_file(self.settings.source, self.settings.mapping, self.cutover_date)
        rows = result.rows["legal_entity"].drop_nulls().str.to_uppercase().unique().sort().to_list()
        return tuple(rows)

    # --- Dataverse and F&O ----------------------------------------------------------------------

    async def _in_groups(self, entity_set: str, field_name: str, ids: list[str], select: list[str]) -> list[dict]:
        dv = self.environment.session.dataverse
        rows: list[dict] = []
        for i in range(0, len(ids), GROUP):
            group = [_guid(x) for x in ids[i : i + GROUP]]
            rows += await dv.query_all(entity_set, select=select, filter=odata.in_(field_name, group))
        return rows

    @functools.cached_property
    def dataverse_rows(self) -> list[dict]:
        """The Dataverse milestones on the extract's contracts, as the Web API answers them."""
        entity_set = self.environment.profile.entity_set("milestones")
        return self.environment.run(
            self._in_groups(entity_set, "_msdyn_contract_value", self.contract_ids, list(DATAVERSE_FIELDS))
        )

    @functools.cached_property
    def dataverse(self) -> pl.DataFrame:
        return normalise_dataverse(self.dataverse_rows, self.reference).collect()

    def dataverse_by_id(self, ids: list[str]) -> list[dict]:
        """Dataverse milestones with these ids (any contract)."""
        if not ids:
            return []
        entity_set = self.environment.profile.entity_set("milestones")
        key = "msdyn_contractlinescheduleofvalueid"
        return self.environment.run(self._in_groups(entity_set, key, ids, [key, *DATAVERSE_FIELDS]))

    @functools.cached_property
    def fno(self) -> pl.DataFrame | None:
        """The F&O milestones of the extract's contracts; None when this account may not read them."""
        entity = self.environment.profile.entity_set("fno_milestones")
        fields = [f for f in FNO_FIELDS if f != "CurrencyCode"]
        contracts = set(self.extract.rows["contract_number"].drop_nulls().to_list())

        async def read() -> list[dict]:
            rows = []
            async for row in self.environment.session.fno.rows(entity, select=fields):
                if row.get("ProjectContractId") in contracts:
                    rows.append(row)
            return rows

        try:
            rows = self.environment.run(read())
        except UNREADABLE as exc:
            self.fno_unreadable = f"this account cannot read {entity} in Finance and Operations ({getattr(exc, 'status', None) or type(exc).__name__})"
            return None
        return normalise_fno(rows).collect()

    def reconcile(self, tolerances: Tolerances, scope: str = "contract") -> MilestoneReconciliation:
        key = (tolerances, scope)
        if key not in self._reconciliations:
            fno = self.fno
            if fno is None:
                fno = normalise_fno([]).collect()
            self._reconciliations[key] = reconcile_milestones(
                self.legacy, self.dataverse, fno, tolerances=tolerances, scope=scope
            )
        return self._reconciliations[key]

    @functools.cached_property
    def invoicing(self):
        from cutover.invoicing import read_invoicing_state

        return self.environment.run(read_invoicing_state(self.environment.session, self.contract_ids))

    # --- snapshots ------------------------------------------------------------------------------

    @functools.cached_property
    def snapshots(self) -> dict[str, tuple[pl.LazyFrame, pl.LazyFrame, Any]]:
        from cutover.snapshot import read_snapshot

        return {
            label: read_snapshot(self.settings.workspace, self.settings.env, label) for label in ("before", "after")
        }

    @functools.cached_property
    def balances(self):
        (ar_b, gl_b, _), (ar_a, gl_a, _) = self.snapshots["before"], self.snapshots["after"]
        return compare_balances(ar_b, ar_a, gl_b, gl_a)

    def legal_entities_in(self, words: str, configured: tuple[str, ...]) -> tuple[str, ...]:
        """``every legal entity in scope`` (the scope's list, else the snapshots'), or codes
        separated by commas / "and"."""
        text = words.strip().strip('"')
        if text.lower() in ("every legal entity in scope", "each legal entity in scope", "all legal entities"):
            if configured:
                return configured
            manifest = self.snapshots["before"][2]
            return tuple(sorted(manifest.legal_entities)) or self.legal_entities
        codes = [c.strip().upper() for c in text.replace(" and ", ",").split(",") if c.strip()]
        if not codes:
            raise InputError(f"no legal entity named in {words!r}")
        return tuple(codes)
