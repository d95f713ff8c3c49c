"""Project Operations facts the engine relies on: option-set codes, F&O enums, milestone ids.

Sources (see docs/architecture.md, "Domain facts"): the option-set values are Microsoft's
documented values for Project Operations (confirmed); the pro-forma invoice state codes and
the milestone id namespace are this tool's own choices (marked below).

The simulator keeps its own copy of these numbers on purpose: it stands in for Microsoft's
service, and a mistake shared by both sides would hide itself.
"""

from __future__ import annotations

import enum
import uuid


class InvoiceStatus(enum.IntEnum):
    """``msdyn_contractlinescheduleofvalue.msdyn_invoicestatus`` (confirmed)."""

    NOT_READY = 192350000
    READY = 192350001
    CREATED = 192350002  # never set from code: Project Operations' invoicing does it
    POSTED = 192350003  # never set from code: confirming the invoice does it

    @property
    def label(self) -> str:
        return _INVOICE_STATUS_LABELS[self]


_INVOICE_STATUS_LABELS = {
    InvoiceStatus.NOT_READY: "Not ready for invoicing",
    InvoiceStatus.READY: "Ready for invoicing",
    InvoiceStatus.CREATED: "Customer invoice created",
    InvoiceStatus.POSTED: "Customer invoice posted",
}


class TransactionClassification(enum.IntEnum):
    """``msdyn_transactionclassification`` (confirmed)."""

    TIME = 192350000
    EXPENSE = 192350001
    COMMITMENT = 192350002
    MILESTONE = 192350003
    MATERIAL = 192350004
    FEE = 192350005


class BillingMethod(enum.IntEnum):
    """``salesorderdetail.msdyn_billingmethod`` (confirmed)."""

    TIME_AND_MATERIAL = 192350000
    FIXED_PRICE = 192350001


class OrderType(enum.IntEnum):
    """``salesorder.msdyn_ordertype``: a project contract is work based (confirmed)."""

    ITEM_BASED = 192350000
    WORK_BASED = 192350001


class ProjectInvoiceStatus(enum.IntEnum):
    """``invoice.msdyn_projectinvoicestatus``: the state of a pro-forma invoice (confirmed)."""

    DRAFT = 192350000
    IN_REVIEW = 192350001
    CONFIRMED = 192350002
    PAID = 192350003


class ProjTransStatus(enum.IntEnum):
    """F&O ``ProjTransStatus`` on ``ProjectContractLineMilestones.TransStatus`` (confirmed).
    F&O's OData serves and filters enums by member name (``ProjTransStatus'Invoiced'``)."""

    REGISTERED = 1
    POSTED = 2
    INVOICE_PROPOSAL = 3
    INVOICED = 4

    @property
    def member(self) -> str:
        """The name F&O's OData uses, e.g. ``"Invoiced"``."""
        return _PROJ_TRANS_MEMBERS[self]

    @classmethod
    def from_member(cls, name: str) -> ProjTransStatus:
        for value, member in _PROJ_TRANS_MEMBERS.items():
            if member.lower() == str(name).lower():
                return value
        raise ValueError(f"{name!r} is not a ProjTransStatus member ({', '.join(_PROJ_TRANS_MEMBERS.values())})")


_PROJ_TRANS_MEMBERS = {
    ProjTransStatus.REGISTERED: "Registered",
    ProjTransStatus.POSTED: "Posted",
    ProjTransStatus.INVOICE_PROPOSAL: "InvoiceProposal",
    ProjTransStatus.INVOICED: "Invoiced",
}

# The cutover version of the milestone map adds TRANSSTATUS <= msdyn_invoicestatus with this
# value map: Ready for invoicing in Dataverse lands as Invoiced in F&O (confirmed: the procedure).
CUTOVER_VALUE_MAP = {int(ProjTransStatus.INVOICED): int(InvoiceStatus.READY)}

# Our choice, never to change: the namespace of the milestone ids, so that the same legacy id
# always gives the same Dataverse id and a re-run can never duplicate a milestone.
MILESTONE_NAMESPACE = uuid.UUID("3f6b8a52-1c0d-5e7a-9b24-6c7e2d1a0c55")


def deterministic_id(legacy_id: str, namespace: uuid.UUID = MILESTONE_NAMESPACE) -> str:
    """The Dataverse id of a legacy record: ``uuid5(namespace, legacy_id)``, lower case."""
    text = str(legacy_id)
    if not text.strip():
        raise ValueError("a legacy id must not be empty")
    return str(uuid.uuid5(namespace, text))
