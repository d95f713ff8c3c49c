"""Invoicing the migrated milestones (``cutover invoice``): one pro-forma invoice per contract,
checked, confirmed, and polled to its end state — without a customer invoice reaching F&O.

The shape of every operation of the tool (docs/architecture.md, "Modules of the core"):

- :func:`plan_invoicing` ``(migrated, existing_invoices, milestones=None) -> InvoicePlan`` —
  pure: what each contract needs (create, confirm, nothing) or why it is blocked;
- :func:`create_invoices` ``(session, plan, …)`` and :func:`confirm_invoices` ``(session, plan,
  …)`` — async iterators of small progress dataclasses (each has a ``message``; the engine
  turns them into ``StepProgress`` events);
- :func:`invoice_state` ``(session, migrated) -> InvoiceState`` — read-only: per contract the
  invoice, its status and its milestones' statuses;
- :func:`read_invoicing_state` / :func:`prepare_invoicing` — the live reads a plan is made from.

``session`` is anything with ``dataverse`` (:class:`cutover.dataverse.DataverseClient`) and
``fno`` (:class:`cutover.fno.FnoClient`), and optionally ``profile`` (entity names, action
names): a :class:`cutover.session.Session`, or :class:`Clients` in tests.

Rules, in the order create and confirm meet them:

1. **Gates.** Nothing is sent while ``DualWriteProjectConfigurations`` shows the invoices or
   actuals map in ``AsyncMode`` RequiredAsync (the asynchronous invoice integration: the
   procedure does not cover it), or while the milestone, actuals and invoices maps do not all
   read stopped (every row Disabled): a running invoices map would post every confirmed invoice
   to AR and GL a second time. Map state that cannot be read (401/403/404) or a map without
   rows is accepted only when the caller says the stop was attested (``stop_attested=True``);
   that is reported as a notice. Checked again before confirming.
2. **Actions exist.** The profile's action names (``invoice_create_action``,
   ``invoice_confirm_action``) and create style (bound ``msdyn_NewInvoiceContract`` on the
   salesorder, or unbound ``msdyn_ProjectServiceCreateInvoices`` with ``ContractIds``
   comma-separated) are checked against ``$metadata`` before anything is sent; a missing one is
   a :class:`~cutover.profile.ConfigError` naming the setting.
3. **Plan against live state.** Each step re-reads the contracts' invoices and milestones and
   re-plans, so a re-run does only what is missing: a contract whose milestones already read
   Customer invoice created has its draft (not invoiced twice); one whose milestones read
   Customer invoice posted is done (not confirmed twice). Anything else billable on a contract
   — a milestone Ready for invoicing (or on a draft) that is not one of ours — blocks the run
   before any invoice is created, naming it (:class:`ForeignBillableItems`, exit 1).
4. **The action's answer proves nothing.** With "notifications for long-running processes" on,
   create and confirm run in the background: the action answers at once. The tool polls the
   end state with a bounded timeout and backoff (:class:`Polling`), reporting progress: after
   create, every contract has one draft holding its milestones (all Customer invoice created);
   after confirm, every invoice reads Confirmed (``msdyn_projectinvoicestatus`` 192350002) and
   its milestones Customer invoice posted (192350003). A lost answer (``OutcomeUnknown``) is
   not resent: the poll tells.
5. **Each draft is checked before anything is confirmed**: it holds exactly its contract's
   migrated milestones — the contract's milestones on an invoice are exactly ours, the
   invoice's total is their sum, and its lines carry, per contract line, the sum of ours
   (:class:`DraftMismatch`, exit 1, otherwise).

Milestone statuses 192350002/192350003 are never written by this module: only the invoice
actions move them (Microsoft: setting them from code breaks Project Operations).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from . import odata
from .domain import InvoiceStatus, ProjectInvoiceStatus
from .dualwrite_state import (
    THREE_MAPS,
    async_integration_evidence,
    map_state_evidence,
    map_states,
    read_configurations,
    unreadable,
)
from .errors import ChecksFailed, EnvironmentProblem
from .profile import DEFAULT_ENTITY_NAMES, DEFAULT_INVOICE_CONFIRM_ACTION, DEFAULT_INVOICE_CREATE_ACTION, ConfigError
from .transport import OutcomeUnknown, ServiceError

__all__ = [
    "BOUND",
    "DEFAULT_UNBOUND_CREATE_ACTION",
    "UNBOUND",
    "Clients",
    "ContractInvoiceState",
    "ContractPlan",
    "DraftMismatch",
    "ExistingInvoice",
    "ForeignBillableItems",
    "InvoiceActionFailed",
    "InvoiceActions",
    "InvoiceActionSent",
    "InvoiceLine",
    "InvoicePlan",
    "InvoiceState",
    "InvoicesConfirmed",
    "InvoicesCreated",
    "InvoicesWaiting",
    "InvoicingBlocked",
    "InvoicingNotice",
    "InvoicingRefused",
    "InvoicingTimeout",
    "LiveMilestone",
    "LiveState",
    "MigratedMilestone",
    "Polling",
    "check_gates",
    "check_invoice_actions",
    "confirm_invoices",
    "create_invoices",
    "invoice_state",
    "migrated_milestones",
    "plan_invoicing",
    "prepare_invoicing",
    "read_invoicing_state",
]

BOUND, UNBOUND = "bound", "unbound"
CreateStyle = Literal["bound", "unbound"]
#: Microsoft's 2021 action reference: the unbound create action (``ContractIds``, comma-separated).
DEFAULT_UNBOUND_CREATE_ACTION = "msdyn_ProjectServiceCreateInvoices"

CREATE, CONFIRM, DONE, BLOCKED = "create", "confirm", "done", "blocked"
_OPEN = (int(ProjectInvoiceStatus.DRAFT), int(ProjectInvoiceStatus.IN_REVIEW))
_CONFIRMED = (int(ProjectInvoiceStatus.CONFIRMED), int(ProjectInvoiceStatus.PAID))
_READY, _CREATED, _POSTED = int(InvoiceStatus.READY), int(InvoiceStatus.CREATED), int(InvoiceStatus.POSTED)
_BILLABLE = (_READY, _CREATED)  # would be swept into a new invoice, or sit on a draft
_GROUP = 50  # ids per `in (…)` query and per ContractIds call
_MS_KEY = "msdyn_contractlinescheduleofvalueid"


# --- errors ----------------------------------------------------------------------------------


class InvoicingRefused(ChecksFailed):
    """The invoice steps may not start: asynchronous invoice integration, maps not stopped, or map
    state that cannot be read without an attested stop (exit 1)."""


class InvoicingBlocked(ChecksFailed):
    """Live state does not allow the step for some contracts (exit 1); ``contracts`` says why."""

    def __init__(self, message: str, contracts: Sequence[ContractPlan] = (), *, fix: str | None = None):
        self.contracts = tuple(contracts)
        super().__init__(message, fix=fix)


class ForeignBillableItems(InvoicingBlocked):
    """A contract carries a billable item that is not one of the migrated milestones: its invoice
    would bill it too. Nothing was created (exit 1)."""


class DraftMismatch(ChecksFailed):
    """A draft invoice does not hold exactly its contract's migrated milestones (exit 1)."""


class InvoiceActionFailed(EnvironmentProblem):
    """The service refused an invoice action (exit 3). Work already done is kept: run again."""


class InvoicingTimeout(EnvironmentProblem):
    """The end state was not reached within the polling timeout (exit 3)."""


# --- inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MigratedMilestone:
    """One migrated milestone: its deterministic Dataverse id, its contract, its amount."""

    milestone_id: str
    contract_id: str
    amount: Decimal


def _amount(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, float):
        raise TypeError(f"money must be Decimal, not float ({value!r})")
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _id(value: Any) -> str:
    return str(value).strip().strip("{}").lower()


def migrated_milestones(migrated: Any) -> tuple[MigratedMilestone, ...]:
    """The migrated milestones from a polars frame (columns ``milestone_id``, ``contract_id``,
    ``amount`` — the validated extract's names), a sequence of :class:`MigratedMilestone`,
    mappings with those keys, or ``(milestone_id, contract_id, amount)`` tuples."""
    if hasattr(migrated, "select") and hasattr(migrated, "iter_rows"):  # a polars DataFrame
        rows: Iterable[Any] = migrated.select(["milestone_id", "contract_id", "amount"]).iter_rows()
    else:
        rows = migrated
    out: list[MigratedMilestone] = []
    seen: set[str] = set()
    for row in rows:
        if isinstance(row, MigratedMilestone):
            mid, cid, amount = row.milestone_id, row.contract_id, row.amount
        elif isinstance(row, Mapping):
            mid, cid, amount = row["milestone_id"], row["contract_id"], row["amount"]
        else:
            mid, cid, amount = row
        item = MigratedMilestone(_id(mid), _id(cid), _amount(amount))
        if item.milestone_id in seen:
            raise ValueError(f"milestone {item.milestone_id} is listed twice")
        seen.add(item.milestone_id)
        out.append(item)
    return tuple(out)


# --- live state ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExistingInvoice:
    invoice_id: str
    contract_id: str
    status: int | None  # msdyn_projectinvoicestatus
    number: str | None = None
    total: Decimal | None = None

    @property
    def open(self) -> bool:
        return self.status in _OPEN

    @property
    def confirmed(self) -> bool:
        return self.status in _CONFIRMED


@dataclass(frozen=True)
class LiveMilestone:
    milestone_id: str
    contract_id: str
    line_id: str | None
    name: str | None
    amount: Decimal | None
    status: int | None


@dataclass(frozen=True)
class InvoiceLine:
    invoice_id: str
    line_id: str | None
    amount: Decimal | None


@dataclass(frozen=True)
class LiveState:
    """What Dataverse holds for a set of contracts."""

    invoices: tuple[ExistingInvoice, ...]
    milestones: tuple[LiveMilestone, ...]
    lines: tuple[InvoiceLine, ...] = ()
    contract_numbers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Clients:
    """The clients invoicing needs, where no :class:`cutover.session.Session` is at hand (tests)."""

    dataverse: Any
    fno: Any
    profile: Any = None


def _names(session: Any) -> dict[str, str]:
    profile = getattr(session, "profile", None)
    names = dict(DEFAULT_ENTITY_NAMES)
    names.update(getattr(profile, "entity_names", None) or {})
    return names


async def _in_groups(dataverse: Any, entity_set: str, field_name: str, ids: Sequence[str], **options) -> list[dict]:
    rows: list[dict] = []
    ids = sorted(set(ids))
    for i in range(0, len(ids), _GROUP):
        group = [uuid.UUID(x) for x in ids[i : i + _GROUP]]
        rows += await dataverse.query_all(entity_set, filter=odata.in_(field_name, group), **options)
    return rows


async def read_invoicing_state(
    session: Any, contract_ids: Iterable[str], *, lines: bool = False, numbers: bool = True
) -> LiveState:
    """The invoices and milestones (all of them, ours or not) of these contracts; with ``lines``
    also the invoice lines of the open invoices. Read-only."""
    names = _names(session)
    dv = session.dataverse
    contracts = sorted({_id(c) for c in contract_ids})
    if not contracts:
        return LiveState((), ())
    inv_rows = await _in_groups(
        dv,
        names["invoices"],
        "_salesorderid_value",
        contracts,
        select=["invoiceid", "invoicenumber", "_salesorderid_value", "msdyn_projectinvoicestatus", "totalamount"],
    )
    invoices = tuple(
        ExistingInvoice(
            _id(r["invoiceid"]),
            _id(r.get("_salesorderid_value")),
            r.get("msdyn_projectinvoicestatus"),
            r.get("invoicenumber"),
            _amount(r.get("totalamount")),
        )
        for r in inv_rows
    )
    ms_rows = await _in_groups(
        dv,
        names["milestones"],
        "_msdyn_contract_value",
        contracts,
        select=[
            _MS_KEY,
            "msdyn_name",
            "msdyn_amount",
            "msdyn_invoicestatus",
            "_msdyn_contract_value",
            "_msdyn_contractlineid_value",
        ],
    )
    milestones = tuple(
        LiveMilestone(
            _id(r[_MS_KEY]),
            _id(r.get("_msdyn_contract_value")),
            _id(r["_msdyn_contractlineid_value"]) if r.get("_msdyn_contractlineid_value") else None,
            r.get("msdyn_name"),
            _amount(r.get("msdyn_amount")),
            r.get("msdyn_invoicestatus"),
        )
        for r in ms_rows
    )
    invoice_lines: tuple[InvoiceLine, ...] = ()
    open_ids = [i.invoice_id for i in invoices if i.open]
    if lines and open_ids:
        line_rows = await _in_groups(
            dv,
            names["invoice_lines"],
            "_invoiceid_value",
            open_ids,
            select=["invoicedetailid", "_invoiceid_value", "_salesorderdetailid_value", "extendedamount"],
        )
        invoice_lines = tuple(
            InvoiceLine(
                _id(r.get("_invoiceid_value")),
                _id(r["_salesorderdetailid_value"]) if r.get("_salesorderdetailid_value") else None,
                _amount(r.get("extendedamount")),
            )
            for r in line_rows
        )
    contract_numbers: dict[str, str] = {}
    if numbers:
        so_rows = await _in_groups(
            dv, names["contracts"], "salesorderid", contracts, select=["salesorderid", "ordernumber"]
        )
        contract_numbers = {_id(r["salesorderid"]): r.get("ordernumber") or "" for r in so_rows}
    return LiveState(invoices, milestones, invoice_lines, contract_numbers)


# --- the plan (pure) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ContractPlan:
    """What one contract needs: ``action`` is create, confirm, done or blocked."""

    contract_id: str
    milestones: tuple[MigratedMilestone, ...]
    action: str
    invoice_id: str | None = None
    invoice_number: str | None = None
    reason: str = ""
    foreign: tuple[str, ...] = ()  # ids of billable items on the contract that are not ours

    @property
    def amount(self) -> Decimal:
        return sum((m.amount or Decimal(0) for m in self.milestones), Decimal(0))

    @property
    def milestone_ids(self) -> frozenset[str]:
        return frozenset(m.milestone_id for m in self.milestones)


@dataclass(frozen=True)
class InvoicePlan:
    """One :class:`ContractPlan` per contract that has migrated milestones, in contract-id order."""

    migrated: tuple[MigratedMilestone, ...]
    contracts: tuple[ContractPlan, ...]
    contract_numbers: Mapping[str, str] = field(default_factory=dict)

    def _with(self, action: str) -> tuple[ContractPlan, ...]:
        return tuple(c for c in self.contracts if c.action == action)

    @property
    def to_create(self) -> tuple[ContractPlan, ...]:
        return self._with(CREATE)

    @property
    def to_confirm(self) -> tuple[ContractPlan, ...]:
        return self._with(CONFIRM)

    @property
    def done(self) -> tuple[ContractPlan, ...]:
        return self._with(DONE)

    @property
    def blocked(self) -> tuple[ContractPlan, ...]:
        return self._with(BLOCKED)

    def contract(self, contract_id: str) -> ContractPlan:
        return next(c for c in self.contracts if c.contract_id == _id(contract_id))

    def label(self, contract_id: str) -> str:
        number = self.contract_numbers.get(contract_id)
        return f"contract {number} ({contract_id})" if number else f"contract {contract_id}"

    def summary(self) -> str:
        return (
            f"{len(self.contracts)} contracts: {len(self.to_create)} to create, {len(self.to_confirm)} to confirm, "
            f"{len(self.done)} done, {len(self.blocked)} blocked"
        )


def _status_label(status: int | None) -> str:
    try:
        return f"{InvoiceStatus(status).label} ({status})"
    except ValueError:
        return f"status {status}"


def _invoice_label(status: int | None) -> str:
    try:
        return ProjectInvoiceStatus(status).name.replace("_", " ").capitalize()
    except ValueError:
        return f"status {status}"


def _describe_ms(m: LiveMilestone) -> str:
    return f"milestone {m.milestone_id} '{m.name or ''}' ({m.amount}, {_status_label(m.status)})"


def plan_invoicing(
    migrated: Any,
    existing_invoices: Iterable[ExistingInvoice],
    milestones: Iterable[LiveMilestone] | None = None,
    *,
    contract_numbers: Mapping[str, str] | None = None,
) -> InvoicePlan:
    """Decide per contract. With ``milestones`` (the contracts' milestones as Dataverse holds them,
    ours and others) the decision follows the milestones' statuses and foreign billable items
    block; without, it follows the invoices alone (no invoice: create; one open: confirm;
    confirmed: done)."""
    ours = migrated_milestones(migrated)
    by_contract: dict[str, list[MigratedMilestone]] = defaultdict(list)
    for m in ours:
        by_contract[m.contract_id].append(m)
    invoices: dict[str, list[ExistingInvoice]] = defaultdict(list)
    for inv in existing_invoices:
        invoices[inv.contract_id].append(inv)
    live: dict[str, list[LiveMilestone]] | None = None
    if milestones is not None:
        live = defaultdict(list)
        for lm in milestones:
            live[lm.contract_id].append(lm)
    plans = []
    for contract_id in sorted(by_contract):
        mine = tuple(sorted(by_contract[contract_id], key=lambda m: m.milestone_id))
        plans.append(_plan_contract(contract_id, mine, invoices.get(contract_id, []), live, ours))
    return InvoicePlan(ours, tuple(plans), dict(contract_numbers or {}))


def _plan_contract(
    contract_id: str,
    mine: tuple[MigratedMilestone, ...],
    invoices: list[ExistingInvoice],
    live: dict[str, list[LiveMilestone]] | None,
    all_ours: tuple[MigratedMilestone, ...],
) -> ContractPlan:
    opened = sorted((i for i in invoices if i.open), key=lambda i: i.invoice_id)
    confirmed = sorted((i for i in invoices if i.confirmed), key=lambda i: i.invoice_id)

    def plan(action: str, invoice: ExistingInvoice | None = None, reason: str = "", foreign=()) -> ContractPlan:
        return ContractPlan(
            contract_id,
            mine,
            action,
            invoice.invoice_id if invoice else None,
            invoice.number if invoice else None,
            reason,
            tuple(foreign),
        )

    if live is None:
        if len(opened) > 1:
            return plan(
                BLOCKED,
                reason=f"{len(opened)} open draft invoices: {', '.join(i.number or i.invoice_id for i in opened)}",
            )
        if opened:
            return plan(CONFIRM, opened[0])
        if confirmed:
            return plan(DONE, _pick_confirmed(confirmed, mine))
        return plan(CREATE)

    ids = {m.milestone_id for m in mine}
    rows = live.get(contract_id, [])
    held = {lm.milestone_id: lm for lm in rows if lm.milestone_id in ids}
    # Our milestones read on another contract (a wrong extract, or moved): not ours to invoice here.
    missing = sorted(ids - set(held))
    if missing:
        return plan(
            BLOCKED,
            reason=f"{len(missing)} migrated milestone(s) are not on this contract in Dataverse: {', '.join(missing[:5])}"
            + (" …" if len(missing) > 5 else "")
            + " (run the migration first)",
        )
    wrong_amount = [
        f"{m.milestone_id} reads {held[m.milestone_id].amount}, the extract says {m.amount}"
        for m in mine
        if held[m.milestone_id].amount != m.amount
    ]
    if wrong_amount:
        return plan(BLOCKED, reason="amounts differ from the extract: " + "; ".join(wrong_amount[:5]))
    statuses = {lm.status for lm in held.values()}
    all_ids = {m.milestone_id for m in all_ours}
    others = [lm for lm in rows if lm.milestone_id not in all_ids]
    if statuses == {_READY}:
        foreign = [lm for lm in others if lm.status in _BILLABLE]
        if foreign:
            return plan(
                BLOCKED,
                reason="other billable items on the contract would be invoiced with ours: "
                + "; ".join(_describe_ms(f) for f in foreign),
                foreign=[f.milestone_id for f in foreign],
            )
        if opened:
            return plan(
                BLOCKED,
                reason="the contract already has an open invoice that does not hold the migrated milestones: "
                + ", ".join(f"{i.number or i.invoice_id} ({_invoice_label(i.status)})" for i in opened),
                foreign=[i.invoice_id for i in opened],
            )
        return plan(CREATE)
    if statuses == {_CREATED}:
        foreign = [lm for lm in others if lm.status == _CREATED]
        if foreign:
            return plan(
                BLOCKED,
                reason="the draft invoice holds items that are not migrated milestones: "
                + "; ".join(_describe_ms(f) for f in foreign),
                foreign=[f.milestone_id for f in foreign],
            )
        if len(opened) != 1:
            return plan(
                BLOCKED,
                reason=f"the migrated milestones read Customer invoice created, but the contract has {len(opened)} "
                "open invoices" + (": " + ", ".join(i.number or i.invoice_id for i in opened) if opened else " (yet)"),
            )
        return plan(CONFIRM, opened[0])
    if statuses == {_POSTED}:
        return plan(DONE, _pick_confirmed(confirmed, mine))
    counts: dict[str, int] = defaultdict(int)
    for lm in held.values():
        counts[_status_label(lm.status)] += 1
    return plan(
        BLOCKED,
        reason="the migrated milestones are in different invoice states: "
        + ", ".join(f"{n} {label}" for label, n in sorted(counts.items())),
    )


def _pick_confirmed(confirmed: list[ExistingInvoice], mine: tuple[MigratedMilestone, ...]) -> ExistingInvoice | None:
    if len(confirmed) == 1:
        return confirmed[0]
    total = sum((m.amount for m in mine), Decimal(0))
    matching = [i for i in confirmed if i.total == total]
    return matching[0] if len(matching) == 1 else None


# --- actions and their check against $metadata -------------------------------------------------


@dataclass(frozen=True)
class InvoiceActions:
    """The invoice action names and the create style, as the profile gives them."""

    create: str = DEFAULT_INVOICE_CREATE_ACTION
    confirm: str = DEFAULT_INVOICE_CONFIRM_ACTION
    style: str = BOUND
    profile: str | None = None  # the profile's name, for error messages

    def __post_init__(self) -> None:
        if self.style not in (BOUND, UNBOUND):
            raise ConfigError(
                f"{self.style!r} is not a create style; use {BOUND!r} ({DEFAULT_INVOICE_CREATE_ACTION} on each "
                f"contract) or {UNBOUND!r} ({DEFAULT_UNBOUND_CREATE_ACTION} with ContractIds)",
                key="invoice_create_style",
                profile=self.profile,
            )

    @classmethod
    def from_profile(cls, profile: Any, style: str | None = None) -> InvoiceActions:
        """From a profile; ``style`` overrides the profile's ``invoice_create_style`` (default
        bound). In the unbound style a create action left at the bound default means the
        unbound default, :data:`DEFAULT_UNBOUND_CREATE_ACTION`."""
        if profile is None:
            style = style or BOUND
            create = DEFAULT_UNBOUND_CREATE_ACTION if style == UNBOUND else DEFAULT_INVOICE_CREATE_ACTION
            return cls(create, DEFAULT_INVOICE_CONFIRM_ACTION, style)
        style = style or getattr(profile, "invoice_create_style", None) or BOUND
        create = profile.invoice_create_action
        if style == UNBOUND and create == DEFAULT_INVOICE_CREATE_ACTION:
            create = DEFAULT_UNBOUND_CREATE_ACTION
        return cls(create, profile.invoice_confirm_action, style, getattr(profile, "name", None))


def _actions(session: Any, actions: InvoiceActions | None, create_style: str | None) -> InvoiceActions:
    if actions is not None:
        if create_style is not None and create_style != actions.style:
            raise ValueError("create_style contradicts actions.style; give one of them")
        return actions
    return InvoiceActions.from_profile(getattr(session, "profile", None), create_style)


async def check_invoice_actions(
    dataverse: Any,
    actions: InvoiceActions,
    *,
    create: bool = True,
    confirm: bool = True,
    contracts_set: str = "salesorders",
    invoices_set: str = "invoices",
) -> None:
    """Refuse (``ConfigError`` naming the profile setting) when ``$metadata`` lacks an action in
    the form the style uses: the create action bound to the contract's type (bound style) or
    unbound (unbound style); the confirm action bound to the invoice's type."""
    md = await dataverse.metadata()
    where = f"[profiles.{actions.profile}]" if actions.profile else "the profile"
    known = sorted({a.name for a in md.actions if "invoice" in a.name.lower()})
    listed = f" Invoice actions this environment lists: {', '.join(known)}." if known else ""
    if create:
        name = actions.create
        if actions.style == BOUND:
            ok = name in md.bound_actions(contracts_set)
            form = f"bound to the contract ({contracts_set})"
            other = "unbound" if any(a.name == name and a.bound_to is None for a in md.actions) else None
        else:
            ok = any(a.name == name and a.bound_to is None for a in md.actions)
            form = "unbound (ContractIds)"
            other = "bound" if name in md.bound_actions(contracts_set) else None
        if not ok:
            hint = (
                f' It exists {other}: set invoice_create_style = "{other}" in {where}.'
                if other
                else f" Set invoice_create_action (and invoice_create_style) in {where} to the action this environment's "
                "$metadata lists."
            )
            raise ConfigError(
                f"the invoice create action {name!r} {form} is not in this environment's $metadata "
                f"(create style {actions.style!r}).{hint}{listed}",
                key="invoice_create_action",
                profile=actions.profile,
            )
    if confirm and actions.confirm not in md.bound_actions(invoices_set):
        raise ConfigError(
            f"the invoice confirm action {actions.confirm!r} bound to the invoice ({invoices_set}) is not in this "
            f"environment's $metadata. Set invoice_confirm_action in {where} to the action this environment's "
            f"$metadata lists.{listed}",
            key="invoice_confirm_action",
            profile=actions.profile,
        )


# --- progress --------------------------------------------------------------------------------


@dataclass(frozen=True)
class InvoicingNotice:
    message: str
    level: str = "info"  # "info" | "warning"


@dataclass(frozen=True)
class InvoiceActionSent:
    """One create or confirm request answered (which proves nothing yet: see the poll)."""

    message: str
    action: str  # "create" | "confirm"
    contract_ids: tuple[str, ...]
    invoice_id: str | None = None
    done: int = 0
    total: int = 0
    answer: str = "accepted"  # "accepted" | "invoice returned" | "outcome unknown"


@dataclass(frozen=True)
class InvoicesWaiting:
    """A poll found the end state not reached yet for some contracts."""

    message: str
    phase: str  # "create" | "confirm"
    done: int
    total: int
    elapsed_s: float = 0.0
    next_check_s: float = 0.0


@dataclass(frozen=True)
class InvoicesCreated:
    """Every planned contract has one checked draft holding exactly its migrated milestones."""

    message: str
    created: int
    already: int
    drafts: dict[str, str] = field(default_factory=dict)  # contract id -> invoice id


@dataclass(frozen=True)
class InvoicesConfirmed:
    """Every invoice reads Confirmed and its milestones Customer invoice posted."""

    message: str
    confirmed: int
    already: int
    invoices: dict[str, str] = field(default_factory=dict)  # contract id -> invoice id


@dataclass(frozen=True)
class Polling:
    """How the end state is awaited: first check after ``first_wait_s``, each wait ``factor``
    longer up to ``max_wait_s``, giving up after ``timeout_s`` (InvoicingTimeout)."""

    timeout_s: float = 600.0
    first_wait_s: float = 0.25
    max_wait_s: float = 10.0
    factor: float = 1.6

    def __post_init__(self) -> None:
        if not (
            self.timeout_s > 0 and self.first_wait_s > 0 and self.max_wait_s >= self.first_wait_s and self.factor >= 1
        ):
            raise ValueError("polling needs timeout_s > 0, first_wait_s > 0, max_wait_s >= first_wait_s, factor >= 1")


Sleep = Callable[[float], Awaitable[None]]


# --- gates -----------------------------------------------------------------------------------


async def check_gates(session: Any, *, stop_attested: bool = False) -> list[InvoicingNotice]:
    """Refuse (:class:`InvoicingRefused`) on RequiredAsync or maps that do not read stopped; map
    state that cannot be read passes only with ``stop_attested`` (returned as a warning notice)."""
    entity = _names(session)["fno_dualwrite_configurations"]
    fix = (
        "stop the milestone, actuals and invoices maps in Finance and Operations (Data management > Dual-write; "
        "runbook step maps.stop-three) and run again"
    )
    try:
        rows = await read_configurations(session.fno, entity)
    except unreadable as exc:
        what = f"this account cannot read map state ({entity}: {getattr(exc, 'status', None) or type(exc).__name__})"
        if not stop_attested:
            raise InvoicingRefused(
                f"{what}, and the stop of the three maps was not attested",
                fix="attest that the milestone, actuals and invoices maps are stopped (runbook step maps.stop-three) "
                "and say so (stop_attested), or give the account read access to DualWriteProjectConfigurations",
            ) from None
        return [
            InvoicingNotice(
                f"{what}: relying on the attested stop of the three maps; the asynchronous invoice integration is "
                "not verified either",
                "warning",
            )
        ]
    asynchronous = async_integration_evidence(rows)
    if asynchronous.status == "failed":
        raise InvoicingRefused(
            asynchronous.summary,
            fix="turn the asynchronous invoice integration off (Project Operations parameters) before the cutover",
        )
    notices: list[InvoicingNotice] = []
    if asynchronous.status == "not-verified":
        notices.append(InvoicingNotice(asynchronous.summary, "warning"))
    stopped = map_state_evidence(map_states(rows, THREE_MAPS), "stopped")
    if stopped.status == "failed":
        raise InvoicingRefused(
            f"{stopped.summary}; a running invoices or actuals map would post these invoices to AR and GL", fix=fix
        )
    if stopped.status == "not-verified":
        if not stop_attested:
            raise InvoicingRefused(f"{stopped.summary}, and the stop was not attested", fix=fix)
        notices.append(InvoicingNotice(f"{stopped.summary}: relying on the attested stop", "warning"))
    else:
        notices.append(InvoicingNotice(stopped.summary))
    return notices


# --- polling ---------------------------------------------------------------------------------


async def _poll(
    check: Callable[[], Awaitable[tuple[int, int, list[str]]]],
    phase: str,
    polling: Polling,
    sleep: Sleep,
    clock: Callable[[], float],
) -> AsyncIterator[InvoicesWaiting]:
    """Call ``check`` until it reports every contract done; yield progress between checks."""
    start = clock()
    wait = polling.first_wait_s
    while True:
        done, total, pending = await check()
        if done >= total:
            return
        elapsed = clock() - start
        if elapsed >= polling.timeout_s:
            raise InvoicingTimeout(
                f"after {elapsed:.0f} s, {total - done} of {total} contracts have not reached the end of {phase}: "
                + "; ".join(pending[:10])
                + (" …" if len(pending) > 10 else ""),
                fix="the environment may still be working in the background; run the same command again later "
                "(finished invoices are kept, nothing is done twice)",
            )
        wait = min(wait, max(polling.timeout_s - elapsed, 0.01))
        yield InvoicesWaiting(
            f"{phase}: {done} of {total} contracts done; checking again in {wait:.1f} s",
            phase,
            done,
            total,
            round(elapsed, 3),
            round(wait, 3),
        )
        await sleep(wait)
        wait = min(wait * polling.factor, polling.max_wait_s)


# --- create ----------------------------------------------------------------------------------


async def prepare_invoicing(session: Any, migrated: Any) -> InvoicePlan:
    """Read live state for the migrated milestones' contracts and plan (read-only)."""
    ours = migrated_milestones(migrated)
    live = await read_invoicing_state(session, {m.contract_id for m in ours})
    return plan_invoicing(ours, live.invoices, live.milestones, contract_numbers=live.contract_numbers)


def _refuse_blocked(plan: InvoicePlan, step: str) -> None:
    if not plan.blocked:
        return
    text = "; ".join(f"{plan.label(c.contract_id)}: {c.reason}" for c in plan.blocked)
    foreign = [c for c in plan.blocked if c.foreign]
    cls = ForeignBillableItems if foreign else InvoicingBlocked
    fix = (
        "invoice or remove the other billable items in Project Operations (or leave these contracts out of the "
        "cutover), then run again"
        if foreign
        else "see each contract's reason; nothing was sent"
    )
    raise cls(f"{step} refused for {len(plan.blocked)} contract(s), nothing was sent: {text}", plan.blocked, fix=fix)


async def create_invoices(
    session: Any,
    plan: InvoicePlan,
    *,
    create_style: str | None = None,
    actions: InvoiceActions | None = None,
    stop_attested: bool = False,
    polling: Polling = Polling(),
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[Any]:
    """Create one draft per contract that needs one, wait for every draft, and check each holds
    exactly its contract's migrated milestones. ``plan`` is refreshed from live state first."""
    actions = _actions(session, actions, create_style)
    names = _names(session)
    for notice in await check_gates(session, stop_attested=stop_attested):
        yield notice
    await check_invoice_actions(
        session.dataverse, actions, contracts_set=names["contracts"], invoices_set=names["invoices"]
    )
    plan = await prepare_invoicing(session, plan.migrated)
    _refuse_blocked(plan, "invoice creation")
    targets = [c.contract_id for c in plan.to_create]
    already = len(plan.contracts) - len(targets)
    yield InvoicingNotice(f"{plan.summary()}; creating {len(targets)} invoice(s) ({actions.style} {actions.create})")

    failures: list[str] = []
    sent: list[str] = []
    if actions.style == BOUND:
        for n, contract_id in enumerate(targets, 1):
            try:
                answer = await session.dataverse.action(names["contracts"], uuid.UUID(contract_id), actions.create)
            except OutcomeUnknown:
                sent.append(contract_id)
                yield InvoiceActionSent(
                    f"create for {plan.label(contract_id)}: the answer was lost; the poll will tell",
                    CREATE, (contract_id,), None, n, len(targets), "outcome unknown",
                )  # fmt: skip
                continue
            except ServiceError as exc:
                failures.append(f"{plan.label(contract_id)}: {exc.message}")
                break
            sent.append(contract_id)
            invoice_id = _id(answer["invoiceid"]) if isinstance(answer, dict) and answer.get("invoiceid") else None
            yield InvoiceActionSent(
                f"create sent for {plan.label(contract_id)} ({n} of {len(targets)})"
                + (f": draft {answer.get('invoicenumber') or invoice_id}" if invoice_id else ": accepted, running in the background"),
                CREATE, (contract_id,), invoice_id, n, len(targets),
                "invoice returned" if invoice_id else "accepted",
            )  # fmt: skip
    else:
        done = 0
        for i in range(0, len(targets), _GROUP):
            group = targets[i : i + _GROUP]
            try:
                await session.dataverse.unbound_action(actions.create, {"ContractIds": ",".join(group)})
                answer = "accepted"
            except OutcomeUnknown:
                answer = "outcome unknown"
            except ServiceError as exc:
                failures.append(f"contracts {', '.join(group)}: {exc.message}")
                break
            sent += group
            done += len(group)
            yield InvoiceActionSent(
                f"create sent for {len(group)} contract(s) ({done} of {len(targets)}): {answer}",
                CREATE, tuple(group), None, done, len(targets), answer,
            )  # fmt: skip

    ours = {m.milestone_id for m in plan.migrated}

    async def drafted() -> tuple[int, int, list[str]]:
        live = await read_invoicing_state(session, sent, numbers=False)
        pending = []
        for contract_id in sent:
            rows = [lm for lm in live.milestones if lm.contract_id == contract_id and lm.milestone_id in ours]
            opened = [i for i in live.invoices if i.contract_id == contract_id and i.open]
            if not opened or any(lm.status != _CREATED for lm in rows):
                ready = sum(lm.status == _READY for lm in rows)
                pending.append(f"{plan.label(contract_id)}: {len(opened)} draft(s), {ready} milestone(s) still Ready")
        return len(sent) - len(pending), len(sent), pending

    if sent:
        async for waiting in _poll(drafted, "create", polling, sleep, clock):
            yield waiting
    if failures:
        raise InvoiceActionFailed(
            f"the service refused invoice creation for {failures[0]}"
            + (f" ({len(sent)} contract(s) sent before it were waited for)" if sent else ""),
            fix="if an invoice for this contract is being created in the background, wait and run again; "
            "otherwise fix the cause in Project Operations and run again (created drafts are kept, none is made twice)",
        )
    checked = await _verify_drafts(session, plan.migrated)
    yield InvoicesCreated(
        f"{len(targets)} draft invoice(s) created, {already} contract(s) already had theirs; every draft holds "
        "exactly its contract's migrated milestones",
        len(targets),
        already,
        {c.contract_id: c.invoice_id for c in checked.to_confirm},
    )


async def _verify_drafts(session: Any, migrated: tuple[MigratedMilestone, ...]) -> InvoicePlan:
    """Re-plan from live state (with the invoice lines) and check every draft: exactly our
    milestones, the invoice total their sum, and per contract line the sum of ours."""
    live = await read_invoicing_state(session, {m.contract_id for m in migrated}, lines=True)
    plan = plan_invoicing(migrated, live.invoices, live.milestones, contract_numbers=live.contract_numbers)
    _refuse_blocked(plan, "the draft check")
    line_of = {lm.milestone_id: lm.line_id for lm in live.milestones}
    total_of = {i.invoice_id: i.total for i in live.invoices}
    problems = []
    for c in plan.to_confirm:
        label = plan.label(c.contract_id)
        if total_of.get(c.invoice_id) != c.amount:
            problems.append(
                f"{label}: draft {c.invoice_number or c.invoice_id} totals {total_of.get(c.invoice_id)}, ours {c.amount}"
            )
        want: dict[str | None, Decimal] = defaultdict(Decimal)
        for m in c.milestones:
            want[line_of.get(m.milestone_id)] += m.amount
        got: dict[str | None, Decimal] = defaultdict(Decimal)
        for line in live.lines:
            if line.invoice_id == c.invoice_id:
                got[line.line_id] += line.amount or Decimal(0)
        if dict(want) != dict(got):
            diff = ", ".join(
                f"line {k}: draft {got.get(k, Decimal(0))}, ours {want.get(k, Decimal(0))}"
                for k in sorted(set(want) | set(got), key=str)
                if got.get(k, Decimal(0)) != want.get(k, Decimal(0))
            )
            problems.append(f"{label}: the draft's lines differ ({diff})")
    if problems:
        raise DraftMismatch(
            "draft invoices do not hold exactly their contracts' migrated milestones, nothing was confirmed: "
            + "; ".join(problems),
            fix="delete the wrong drafts in Project Operations (their milestones go back to Ready for invoicing), "
            "find the cause, and create them again",
        )
    return plan


# --- confirm ---------------------------------------------------------------------------------


async def confirm_invoices(
    session: Any,
    plan: InvoicePlan,
    *,
    create_style: str | None = None,
    actions: InvoiceActions | None = None,
    stop_attested: bool = False,
    polling: Polling = Polling(),
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[Any]:
    """Confirm each checked draft (never one already confirmed) and wait until every invoice reads
    Confirmed and its milestones Customer invoice posted. The point of no return."""
    actions = _actions(session, actions, create_style)
    names = _names(session)
    for notice in await check_gates(session, stop_attested=stop_attested):
        yield notice
    await check_invoice_actions(
        session.dataverse, actions, create=False, contracts_set=names["contracts"], invoices_set=names["invoices"]
    )
    checked = await _verify_drafts(session, plan.migrated)
    if checked.to_create:
        raise InvoicingBlocked(
            f"{len(checked.to_create)} contract(s) have no invoice yet: "
            + ", ".join(checked.label(c.contract_id) for c in checked.to_create[:10]),
            checked.to_create,
            fix="create the invoices first (cutover invoice --create), then confirm",
        )
    targets = list(checked.to_confirm)
    already = len(checked.done)
    yield InvoicingNotice(f"{checked.summary()}; confirming {len(targets)} invoice(s) with {actions.confirm}")
    sent: list[ContractPlan] = []
    failures: list[str] = []
    for n, c in enumerate(targets, 1):
        label = f"invoice {c.invoice_number or c.invoice_id} of {checked.label(c.contract_id)}"
        try:
            await session.dataverse.action(names["invoices"], uuid.UUID(c.invoice_id), actions.confirm)
            answer = "accepted"
        except OutcomeUnknown:
            answer = "outcome unknown"
        except ServiceError as exc:
            failures.append(f"{label}: {exc.message}")
            break
        sent.append(c)
        yield InvoiceActionSent(
            f"confirm sent for {label} ({n} of {len(targets)}): {answer}",
            CONFIRM, (c.contract_id,), c.invoice_id, n, len(targets), answer,
        )  # fmt: skip

    ours = {m.milestone_id for m in plan.migrated}

    async def confirmed() -> tuple[int, int, list[str]]:
        live = await read_invoicing_state(session, [c.contract_id for c in sent], numbers=False)
        status = {i.invoice_id: i.status for i in live.invoices}
        pending = []
        for c in sent:
            rows = [lm for lm in live.milestones if lm.contract_id == c.contract_id and lm.milestone_id in ours]
            posted = sum(lm.status == _POSTED for lm in rows)
            if status.get(c.invoice_id) not in _CONFIRMED or posted != len(c.milestones):
                pending.append(
                    f"{checked.label(c.contract_id)}: invoice {_invoice_label(status.get(c.invoice_id))}, "
                    f"{posted} of {len(c.milestones)} milestone(s) posted"
                )
        return len(sent) - len(pending), len(sent), pending

    if sent:
        async for waiting in _poll(confirmed, "confirm", polling, sleep, clock):
            yield waiting
    if failures:
        raise InvoiceActionFailed(
            f"the service refused to confirm {failures[0]}"
            + (f" ({len(sent)} invoice(s) sent before it were waited for and are confirmed)" if sent else ""),
            fix="if the invoice is being confirmed in the background, wait and run again; otherwise fix the cause "
            "in Project Operations and run again (confirmed invoices are not confirmed twice)",
        )
    final = await invoice_state(session, plan.migrated)
    yield InvoicesConfirmed(
        f"{len(sent)} invoice(s) confirmed, {already} already were; every invoice reads Confirmed and its "
        "milestones Customer invoice posted",
        len(sent),
        already,
        {c.contract_id: c.invoice_id for c in final.contracts if c.invoice_id},
    )


# --- state (read-only) -----------------------------------------------------------------------


@dataclass(frozen=True)
class ContractInvoiceState:
    contract_id: str
    contract_number: str | None
    action: str  # what the plan would do next: create, confirm, done, blocked
    invoice_id: str | None
    invoice_number: str | None
    invoice_status: int | None  # msdyn_projectinvoicestatus
    milestone_statuses: dict[str, int | None]
    reason: str = ""

    @property
    def confirmed(self) -> bool:
        return self.invoice_status in _CONFIRMED and all(s == _POSTED for s in self.milestone_statuses.values())


@dataclass(frozen=True)
class InvoiceState:
    contracts: tuple[ContractInvoiceState, ...]

    @property
    def all_confirmed(self) -> bool:
        return bool(self.contracts) and all(c.confirmed for c in self.contracts)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for c in self.contracts:
            out[c.action] += 1
        return dict(out)


async def invoice_state(session: Any, migrated: Any) -> InvoiceState:
    """Per contract with migrated milestones: its invoice, the invoice's status and each migrated
    milestone's status, as Dataverse holds them now. Read-only."""
    ours = migrated_milestones(migrated)
    live = await read_invoicing_state(session, {m.contract_id for m in ours})
    plan = plan_invoicing(ours, live.invoices, live.milestones, contract_numbers=live.contract_numbers)
    status_of = {lm.milestone_id: lm.status for lm in live.milestones}
    invoice_status = {i.invoice_id: i.status for i in live.invoices}
    return InvoiceState(
        tuple(
            ContractInvoiceState(
                c.contract_id,
                live.contract_numbers.get(c.contract_id),
                c.action,
                c.invoice_id,
                c.invoice_number,
                invoice_status.get(c.invoice_id) if c.invoice_id else None,
                {m.milestone_id: status_of.get(m.milestone_id) for m in c.milestones},
                c.reason,
            )
            for c in plan.contracts
        )
    )
