"""What validation needs to know about the environment, read with a few set-based queries.

``await fetch_reference(dataverse, fno, raw)`` reads, for the keys the extract names (never
one request per row):

=============  ===============================================  ====================================
frame          read from                                        filtered by
=============  ===============================================  ====================================
companies      Dataverse ``cdm_companies``                      all (a handful of legal entities)
currencies     Dataverse ``transactioncurrencies``              all (a few dozen)
contracts      ``salesorders``                                  ``ordernumber in (…)``
lines          ``salesorderdetails``                            ``_salesorderid_value in (…)``
customers      ``accounts``                                     ``accountnumber in (…)``, and the
                                                                contracts' customers by id
milestones     ``msdyn_contractlinescheduleofvalues``           on the extract's lines, and by the
                                                                extract's deterministic ids
dimensions     F&O ``ProjectContractLines``                     ``ContractLineGuid in (…)``,
                                                                cross-company
=============  ===============================================  ====================================

Keys go in chunks of :data:`CHUNK` per request (``field in (…)``, values quoted by
:mod:`cutover.odata`), so 4,000 contracts are 40 requests. Every read is a GET: fetching a
reference never writes (the clients may be read-only).

Keys are compared as the services compare them — case-insensitively: ``legal_entity``,
``contract_number``, ``customer_account`` and ``currency`` are trimmed and upper-cased in the
``*_key`` columns that validation joins on.

The line's financial dimensions: ``ProjectContractLines.DefaultDimensionDisplayValue`` stands
for them (the simulator's own assumption; docs/architecture.md). Where F&O answers 401, 403,
404 or 400 for that read (no permission, entity not exposed), ``dimensions`` is None and
``notes`` says that the check could not be made — validation then reports nothing about
dimensions but carries the note, never a silent pass. Any other service error is raised
(:class:`cutover.transport.ServiceError`, exit 3): without the reference nothing can be judged.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from .. import money, odata
from ..domain import deterministic_id
from ..transport import AuthenticationFailed, BadRequest, NotFound, PermissionDenied
from .model import MONEY, RawExtract

__all__ = ["CHUNK", "Reference", "fetch_reference", "keys"]

CHUNK = 100

COMPANIES = {"company_id": pl.String(), "legal_entity_key": pl.String()}
CURRENCIES = {"currency_id": pl.String(), "currency_key": pl.String()}
CONTRACTS = {
    "contract_id": pl.String(),
    "contract_number": pl.String(),
    "contract_key": pl.String(),
    "contract_company_id": pl.String(),
    "contract_customer_id": pl.String(),
    "contract_currency_id": pl.String(),
    "order_type": pl.Int64(),
}
LINES = {
    "line_id": pl.String(),
    "contract_id": pl.String(),
    "contract_line": pl.Int64(),
    "project_id": pl.String(),
    "billing_method": pl.Int64(),
    "extendedamount": MONEY,
}
CUSTOMERS = {"customer_id": pl.String(), "customer_account": pl.String(), "customer_key": pl.String()}
MILESTONES = {
    "milestone_id": pl.String(),
    "line_id": pl.String(),
    "name": pl.String(),
    "amount": MONEY,
    "tax": MONEY,
    "date": pl.String(),
    "invoice_status": pl.Int64(),
}
DIMENSIONS = {
    "line_id": pl.String(),
    "data_area": pl.String(),
    "fno_line_id": pl.String(),
    "dimensions": pl.String(),
}


@dataclass
class Reference:
    """The environment as validation sees it (schemas: the constants of this module)."""

    companies: pl.DataFrame
    currencies: pl.DataFrame
    contracts: pl.DataFrame
    lines: pl.DataFrame
    customers: pl.DataFrame
    milestones: pl.DataFrame
    dimensions: pl.DataFrame | None  # None: F&O could not be asked (see notes)
    notes: list[str] = field(default_factory=list)
    requests: int = 0  # GET requests made (a set-based read makes few)

    @classmethod
    def empty(cls) -> Reference:
        return cls(
            pl.DataFrame(schema=COMPANIES),
            pl.DataFrame(schema=CURRENCIES),
            pl.DataFrame(schema=CONTRACTS),
            pl.DataFrame(schema=LINES),
            pl.DataFrame(schema=CUSTOMERS),
            pl.DataFrame(schema=MILESTONES),
            pl.DataFrame(schema=DIMENSIONS),
        )


def key(column: str) -> pl.Expr:
    """The join key of a text column: trimmed, upper case."""
    return pl.col(column).str.strip_chars().str.to_uppercase()


def keys(raw: RawExtract, column: str) -> list[str]:
    """The distinct non-empty keys of ``column`` in the extract, sorted."""
    if column not in raw.frame.columns:
        return []
    values = raw.frame.select(key(column).alias("k")).filter(pl.col("k").is_not_null() & (pl.col("k") != ""))
    return sorted(values.get_column("k").unique().to_list())


def _chunks(values: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _guid(value: Any) -> str | None:
    return None if value is None else str(value).lower()


async def fetch_reference(dataverse: Any, fno: Any, raw: RawExtract, *, chunk: int = CHUNK) -> Reference:
    """Read the reference for ``raw`` (see the module docstring). ``fno`` may be None: the
    dimensions check is then noted as not made."""
    ref = Reference.empty()

    async def dv(entity_set: str, select: list[str], filter: str | None = None) -> list[dict]:
        rows: list[dict] = []
        async for page in dataverse.query(entity_set, select=select, filter=filter):
            ref.requests += 1
            rows.extend(page)
        return rows

    async def dv_in(entity_set: str, select: list[str], field_name: str, values: list[Any]) -> list[dict]:
        rows: list[dict] = []
        for part in _chunks(values, chunk):
            rows += await dv(entity_set, select, odata.in_(field_name, part))
        return rows

    companies = await dv("cdm_companies", ["cdm_companyid", "cdm_companycode"])
    ref.companies = pl.DataFrame(
        [
            {"company_id": _guid(r["cdm_companyid"]), "legal_entity_key": str(r.get("cdm_companycode") or "").upper()}
            for r in companies
        ],
        schema=COMPANIES,
    )
    currencies = await dv("transactioncurrencies", ["transactioncurrencyid", "isocurrencycode"])
    ref.currencies = pl.DataFrame(
        [
            {
                "currency_id": _guid(r["transactioncurrencyid"]),
                "currency_key": str(r.get("isocurrencycode") or "").upper(),
            }
            for r in currencies
        ],
        schema=CURRENCIES,
    )

    contracts = await dv_in(
        "salesorders",
        [
            "salesorderid",
            "ordernumber",
            "_msdyn_company_value",
            "_customerid_value",
            "_transactioncurrencyid_value",
            "msdyn_ordertype",
        ],
        "ordernumber",
        keys(raw, "contract_number"),
    )
    ref.contracts = pl.DataFrame(
        [
            {
                "contract_id": _guid(r["salesorderid"]),
                "contract_number": r.get("ordernumber"),
                "contract_key": str(r.get("ordernumber") or "").strip().upper(),
                "contract_company_id": _guid(r.get("_msdyn_company_value")),
                "contract_customer_id": _guid(r.get("_customerid_value")),
                "contract_currency_id": _guid(r.get("_transactioncurrencyid_value")),
                "order_type": r.get("msdyn_ordertype"),
            }
            for r in contracts
        ],
        schema=CONTRACTS,
    )
    contract_ids = [uuid.UUID(c) for c in ref.contracts.get_column("contract_id").to_list()]
    lines = await dv_in(
        "salesorderdetails",
        [
            "salesorderdetailid",
            "_salesorderid_value",
            "lineitemnumber",
            "_msdyn_project_value",
            "msdyn_billingmethod",
            "extendedamount",
        ],
        "_salesorderid_value",
        contract_ids,
    )
    ref.lines = money.frame(
        [
            {
                "line_id": _guid(r["salesorderdetailid"]),
                "contract_id": _guid(r.get("_salesorderid_value")),
                "contract_line": r.get("lineitemnumber"),
                "project_id": _guid(r.get("_msdyn_project_value")),
                "billing_method": r.get("msdyn_billingmethod"),
                "extendedamount": r.get("extendedamount"),
            }
            for r in lines
        ],
        LINES,
    )

    customers = await dv_in("accounts", ["accountid", "accountnumber"], "accountnumber", keys(raw, "customer_account"))
    known = {_guid(r["accountid"]) for r in customers}
    wanted = sorted({c for c in ref.contracts.get_column("contract_customer_id").to_list() if c and c not in known})
    customers += await dv_in("accounts", ["accountid", "accountnumber"], "accountid", [uuid.UUID(c) for c in wanted])
    ref.customers = pl.DataFrame(
        [
            {
                "customer_id": _guid(r["accountid"]),
                "customer_account": r.get("accountnumber"),
                "customer_key": str(r.get("accountnumber") or "").strip().upper(),
            }
            for r in customers
        ],
        schema=CUSTOMERS,
    ).unique("customer_id", keep="first", maintain_order=True)

    milestone_select = [
        "msdyn_contractlinescheduleofvalueid",
        "_msdyn_contractlineid_value",
        "msdyn_name",
        "msdyn_amount",
        "msdyn_tax",
        "msdyn_invoicedate",
        "msdyn_invoicestatus",
    ]
    line_ids = [uuid.UUID(x) for x in ref.lines.get_column("line_id").to_list()]
    found = await dv_in("msdyn_contractlinescheduleofvalues", milestone_select, "_msdyn_contractlineid_value", line_ids)
    ids = sorted({deterministic_id(i) for i in _legacy_ids(raw)})
    seen = {_guid(r["msdyn_contractlinescheduleofvalueid"]) for r in found}
    by_id = await dv_in(
        "msdyn_contractlinescheduleofvalues",
        milestone_select,
        "msdyn_contractlinescheduleofvalueid",
        [uuid.UUID(i) for i in ids if i not in seen],
    )
    ref.milestones = money.frame(
        [
            {
                "milestone_id": _guid(r["msdyn_contractlinescheduleofvalueid"]),
                "line_id": _guid(r.get("_msdyn_contractlineid_value")),
                "name": r.get("msdyn_name"),
                "amount": r.get("msdyn_amount"),
                "tax": r.get("msdyn_tax"),
                "date": (str(r["msdyn_invoicedate"])[:10] if r.get("msdyn_invoicedate") else None),
                "invoice_status": r.get("msdyn_invoicestatus"),
            }
            for r in found + by_id
        ],
        MILESTONES,
    )

    if fno is None:
        ref.dimensions = None
        ref.notes.append("financial dimensions not checked: no F&O client was given")
    elif ref.lines.height:
        ref.dimensions = await _dimensions(fno, ref, line_ids, chunk)
    return ref


def _legacy_ids(raw: RawExtract) -> list[str]:
    if "legacy_id" not in raw.frame.columns:
        return []
    column = raw.frame.get_column("legacy_id").str.strip_chars()
    return [v for v in column.drop_nulls().unique().to_list() if v]


async def _dimensions(fno: Any, ref: Reference, line_ids: list[uuid.UUID], chunk: int) -> pl.DataFrame | None:
    rows: list[dict] = []
    entity = "ProjectContractLines"
    try:
        for part in _chunks(line_ids, chunk):
            async for page in fno.pages(
                entity,
                select=["dataAreaId", "ContractLineId", "ContractLineGuid", "DefaultDimensionDisplayValue"],
                filter=odata.in_("ContractLineGuid", part),
            ):
                ref.requests += 1
                rows.extend(page)
    except (AuthenticationFailed, PermissionDenied, NotFound, BadRequest) as exc:
        status = getattr(exc, "status", None)
        ref.notes.append(
            f"financial dimensions not checked: F&O refused the read of {entity} "
            f"({status or type(exc).__name__}); check them in F&O before the load, or give the "
            f"identity read access to {entity}"
        )
        return None
    return pl.DataFrame(
        [
            {
                "line_id": _guid(r.get("ContractLineGuid")),
                "data_area": str(r.get("dataAreaId") or "").upper(),
                "fno_line_id": r.get("ContractLineId"),
                "dimensions": r.get("DefaultDimensionDisplayValue"),
            }
            for r in rows
        ],
        schema=DIMENSIONS,
    )
