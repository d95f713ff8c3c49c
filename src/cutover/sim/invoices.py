"""The invoice actions: "Create invoices" on a contract (or on several) and "Confirm" on an invoice.

Create: one draft pro-forma invoice for the contract's Ready-for-invoicing milestones, one
invoice line per contract line; the invoice's ``msdyn_projectinvoicestatus`` is Draft
(192350000) and the milestones become Customer invoice created (192350002).
Delete (``DELETE invoices(id)``): only a draft (or in-review) invoice can be deleted; its lines
go with it and its milestones return to Ready for invoicing — the simulator's reading of what
deleting a draft pro-forma invoice does (not documented by Microsoft). A confirmed invoice is
posted and cannot be deleted (400).
Confirm: ``msdyn_projectinvoicestatus`` becomes Confirmed (192350002), beside statecode 2 /
statuscode 100001 (the simulator's choice), and the milestones Customer invoice posted
(192350003); what that does in F&O depends on the dual-write maps (see dualwrite.py).

The Web API names are those of Microsoft's 2021 action reference ("for internal use only"):
``msdyn_NewInvoiceContract`` bound to salesorder (returns the invoice), the unbound
``msdyn_ProjectServiceCreateInvoices`` taking ``ContractIds`` (comma-separated), and
``msdyn_PostInvoice`` bound to invoice. Whether today's Project Operations calls them is not
confirmed. With ``background_delay_s`` set they run in the background (see jobs.py).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections import defaultdict

from . import dualwrite, errors
from .errors import SimError
from .schema import (
    INVOICE_STATECODE_ACTIVE,
    INVOICE_STATECODE_CONFIRMED,
    INVOICE_STATUS_CREATED,
    INVOICE_STATUS_POSTED,
    INVOICE_STATUS_READY,
    INVOICE_STATUSCODE_CONFIRMED,
    INVOICE_STATUSCODE_DRAFT,
    PROJECT_INVOICE_CONFIRMED,
    PROJECT_INVOICE_DRAFT,
)
from .store import get_setting, next_counter


def _set_milestone_status(conn: sqlite3.Connection, milestone_id: str, status: int) -> None:
    conn.execute(
        'UPDATE "dv_msdyn_contractlinescheduleofvalues" SET msdyn_invoicestatus = ?, sim_version = sim_version + 1 '
        "WHERE msdyn_contractlinescheduleofvalueid = ?",
        (status, milestone_id),
    )
    dualwrite.milestone_written(conn, milestone_id, created=False)


def _ready(conn: sqlite3.Connection, contract_id: str) -> tuple[tuple, list]:
    """The contract row and its Ready-for-invoicing milestones; 404 / 400 when there is nothing to invoice."""
    contract = conn.execute(
        'SELECT ordernumber, name, _customerid_value, _transactioncurrencyid_value FROM "dv_salesorders" WHERE salesorderid = ?',
        (contract_id,),
    ).fetchone()
    if contract is None:
        raise errors.not_found_record("salesorder", contract_id)
    milestones = conn.execute(
        'SELECT msdyn_contractlinescheduleofvalueid, _msdyn_contractlineid_value, msdyn_amount FROM "dv_msdyn_contractlinescheduleofvalues" '
        "WHERE _msdyn_contract_value = ? AND msdyn_invoicestatus = ? ORDER BY msdyn_invoicedate, msdyn_contractlinescheduleofvalueid",
        (contract_id, INVOICE_STATUS_READY),
    ).fetchall()
    if not milestones:
        raise SimError(
            400,
            errors.INVALID_ARGUMENT,
            f"There are no transactions ready for invoicing on project contract {contract[0]}; no invoice was created.",
        )
    return contract, milestones


def check_can_create(conn: sqlite3.Connection, contract_id: str) -> None:
    """What "Create invoices" checks before it starts (also when it then runs in the background)."""
    _ready(conn, contract_id)


def parse_contract_ids(value: object) -> list[str]:
    """``ContractIds`` of msdyn_ProjectServiceCreateInvoices: a comma-separated list of GUIDs."""
    if not isinstance(value, str) or not value.strip():
        raise errors.bad_payload(
            "msdyn_ProjectServiceCreateInvoices needs 'ContractIds': a comma-separated list of salesorder ids."
        )
    ids: list[str] = []
    for part in value.split(","):
        try:
            ident = str(uuid.UUID(part.strip().strip("{}")))
        except ValueError:
            raise errors.bad_payload(f"ContractIds: '{part.strip()}' is not a GUID.") from None
        if ident in ids:
            raise errors.bad_payload(f"ContractIds names contract {ident} twice.")
        ids.append(ident)
    return ids


def create_invoice(conn: sqlite3.Connection, contract_id: str) -> str:
    """Create the draft pro-forma invoice of contract ``contract_id``; returns its id. Runs
    inside the caller's transaction (the Dataverse request's SAVEPOINT)."""
    contract, milestones = _ready(conn, contract_id)
    invoice_id = str(uuid.uuid4())
    number = f"PINV-{next_counter(conn, 'invoice_number'):06d}"
    total = sum(m[2] or 0 for m in milestones)
    conn.execute(
        'INSERT INTO "dv_invoices"(invoiceid, name, invoicenumber, _salesorderid_value, _customerid_value, _transactioncurrencyid_value, '
        "totalamount, msdyn_invoicedate, statecode, statuscode, msdyn_projectinvoicestatus) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            invoice_id,
            f"{contract[1]} – pro-forma",
            number,
            contract_id,
            contract[2],
            contract[3],
            total,
            get_setting(conn, "world_date"),
            INVOICE_STATECODE_ACTIVE,
            INVOICE_STATUSCODE_DRAFT,
            PROJECT_INVOICE_DRAFT,
        ),
    )
    per_line: dict[str, int] = defaultdict(int)
    for mid, line_id, amount in milestones:
        per_line[line_id] += amount or 0
        conn.execute("INSERT INTO sim_invoice_milestones(invoiceid, milestoneid) VALUES (?, ?)", (invoice_id, mid))
        _set_milestone_status(conn, mid, INVOICE_STATUS_CREATED)
    for line_id, amount in per_line.items():
        desc = conn.execute(
            'SELECT productdescription FROM "dv_salesorderdetails" WHERE salesorderdetailid = ?', (line_id,)
        ).fetchone()
        conn.execute(
            'INSERT INTO "dv_invoicedetails"(invoicedetailid, _invoiceid_value, _salesorderdetailid_value, productdescription, extendedamount) '
            "VALUES (?, ?, ?, ?, ?)",
            (str(uuid.uuid4()), invoice_id, line_id, desc[0] if desc else None, amount),
        )
    return invoice_id


def check_can_confirm(conn: sqlite3.Connection, invoice_id: str) -> None:
    """Only an existing draft invoice can be confirmed (404 / 400 otherwise)."""
    row = conn.execute(
        'SELECT invoicenumber, statuscode, msdyn_projectinvoicestatus FROM "dv_invoices" WHERE invoiceid = ?',
        (invoice_id,),
    ).fetchone()
    if row is None:
        raise errors.not_found_record("invoice", invoice_id)
    if row[1] != INVOICE_STATUSCODE_DRAFT or row[2] not in (None, PROJECT_INVOICE_DRAFT):
        raise SimError(
            400,
            errors.INVALID_ARGUMENT,
            f"Invoice {row[0]} is not a draft (project invoice status {row[2]}, status {row[1]}); only draft invoices can be confirmed.",
        )


def confirm_invoice(conn: sqlite3.Connection, invoice_id: str) -> None:
    """Confirm draft invoice ``invoice_id``; dual-write then posts it in F&O (see dualwrite.py)."""
    check_can_confirm(conn, invoice_id)
    conn.execute(
        'UPDATE "dv_invoices" SET statecode = ?, statuscode = ?, msdyn_projectinvoicestatus = ?, sim_version = sim_version + 1 '
        "WHERE invoiceid = ?",
        (INVOICE_STATECODE_CONFIRMED, INVOICE_STATUSCODE_CONFIRMED, PROJECT_INVOICE_CONFIRMED, invoice_id),
    )
    for (mid,) in conn.execute(
        "SELECT milestoneid FROM sim_invoice_milestones WHERE invoiceid = ?", (invoice_id,)
    ).fetchall():
        _set_milestone_status(conn, mid, INVOICE_STATUS_POSTED)
    dualwrite.invoice_confirmed(conn, invoice_id)


PROJECT_INVOICE_IN_REVIEW = 192350001


def delete_invoice(conn: sqlite3.Connection, invoice_id: str) -> None:
    """Before ``DELETE invoices(id)``: refuse a confirmed invoice; remove a draft's lines and
    links, and put its milestones back to Ready for invoicing."""
    row = conn.execute(
        'SELECT invoicenumber, statuscode, msdyn_projectinvoicestatus FROM "dv_invoices" WHERE invoiceid = ?',
        (invoice_id,),
    ).fetchone()
    if row is None:
        raise errors.not_found_record("invoice", invoice_id)
    if row[1] != INVOICE_STATUSCODE_DRAFT or row[2] not in (None, PROJECT_INVOICE_DRAFT, PROJECT_INVOICE_IN_REVIEW):
        raise SimError(
            400,
            errors.INVALID_ARGUMENT,
            f"Invoice {row[0]} is confirmed (project invoice status {row[2]}); only a draft invoice can be deleted.",
        )
    for (mid,) in conn.execute(
        "SELECT milestoneid FROM sim_invoice_milestones WHERE invoiceid = ?", (invoice_id,)
    ).fetchall():
        _set_milestone_status(conn, mid, INVOICE_STATUS_READY)
    conn.execute("DELETE FROM sim_invoice_milestones WHERE invoiceid = ?", (invoice_id,))
    conn.execute('DELETE FROM "dv_invoicedetails" WHERE _invoiceid_value = ?', (invoice_id,))
