"""Raw milestone rows of each side → the reconciliation contract (pure polars, no I/O).

Every side becomes a frame with the same column names, so the comparison is one join:

==============  =========  ==============================================================
column          type       meaning
==============  =========  ==============================================================
milestone_id    String     the Dataverse id (``deterministic_id(legacy_id)``), text as given
legacy_id       String     legacy side only
fno_identifier  String     F&O side only: ``ContractLineMilestoneIdentifier``
legal_entity    String     upper case (``USMF``)
contract        String     contract number (``PRJC-000123``)
line            String     contract line id, ``<contract number>-<line item number>``
currency        String     ISO 4217, upper case (F&O: only when its rows carry ``CurrencyCode``)
amount          Decimal    ``Decimal(38, 16)``: exact, never a float
tax             Decimal    legacy and Dataverse (F&O's milestone entity has no tax)
date            Date
invoice_status  Int64      Dataverse only: ``msdyn_invoicestatus``
trans_status    String     F&O only: ``TransStatus`` member name (``Invoiced``)
==============  =========  ==============================================================

The line id is F&O's ``ContractLineId`` form, ``<contract number>-<line item number>``
(``PRJC-000123-2``): the simulator's convention, an assumption to check on a real environment —
:func:`normalise_legacy` and :func:`reference_from_legacy` take ``line_key=`` to build another.

Dataverse answers lookups as GUIDs (``_msdyn_contract_value``, ``_msdyn_contractlineid_value``,
``_transactioncurrencyid_value``); :func:`normalise_dataverse` resolves them through a
:class:`DataverseReference` (contract, line and currency GUIDs to numbers and codes) — built
from the validated extract by :func:`reference_from_legacy`, or from Dataverse's own
``salesorders`` / ``salesorderdetails`` / ``transactioncurrencies``. A GUID the reference does
not know stays as its (lower-case) text: it then differs from the extract and is reported,
never dropped.

Each function takes a frame (eager or lazy: Parquet scans welcome) or Web API rows (dicts,
money as ``Decimal``/``int``/text; a float is refused) and returns a :class:`polars.LazyFrame`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from ..domain import ProjTransStatus
from ._frames import MONEY, Frame, lazy, money_column, rows_frame

__all__ = [
    "DATAVERSE_FIELDS",
    "DATAVERSE_SCHEMA",
    "FNO_FIELDS",
    "FNO_SCHEMA",
    "LEGACY_FIELDS",
    "LEGACY_SCHEMA",
    "DataverseReference",
    "default_line_key",
    "normalise_dataverse",
    "normalise_fno",
    "normalise_legacy",
    "reference_from_legacy",
]

LineKey = Callable[[pl.Expr, pl.Expr], pl.Expr]

LEGACY_SCHEMA: dict[str, pl.DataType] = {
    "milestone_id": pl.String(),
    "legacy_id": pl.String(),
    "legal_entity": pl.String(),
    "contract": pl.String(),
    "line": pl.String(),
    "currency": pl.String(),
    "amount": MONEY,
    "tax": MONEY,
    "date": pl.Date(),
}
DATAVERSE_SCHEMA: dict[str, pl.DataType] = {
    "milestone_id": pl.String(),
    "legal_entity": pl.String(),
    "contract": pl.String(),
    "line": pl.String(),
    "currency": pl.String(),
    "amount": MONEY,
    "tax": MONEY,
    "date": pl.Date(),
    "invoice_status": pl.Int64(),
}
FNO_SCHEMA: dict[str, pl.DataType] = {
    "milestone_id": pl.String(),
    "fno_identifier": pl.String(),
    "legal_entity": pl.String(),
    "contract": pl.String(),
    "line": pl.String(),
    "currency": pl.String(),  # only when the rows carry CurrencyCode
    "amount": MONEY,
    "date": pl.Date(),
    "trans_status": pl.String(),
}

#: Legacy extract column (``cutover.source.model.VALID_SCHEMA``) → its type as read.
LEGACY_FIELDS: dict[str, pl.DataType] = {
    "milestone_id": pl.String(),
    "legacy_id": pl.String(),
    "legal_entity": pl.String(),
    "contract_number": pl.String(),
    "contract_line": pl.Int64(),
    "currency": pl.String(),
    "amount": pl.String(),
    "tax_amount": pl.String(),
    "milestone_date": pl.String(),
}
#: Web API field of ``msdyn_contractlinescheduleofvalue`` → its type as read.
DATAVERSE_FIELDS: dict[str, pl.DataType] = {
    "msdyn_contractlinescheduleofvalueid": pl.String(),
    "msdyn_amount": pl.String(),
    "msdyn_tax": pl.String(),
    "msdyn_invoicedate": pl.String(),
    "msdyn_invoicestatus": pl.Int64(),
    "_msdyn_contract_value": pl.String(),
    "_msdyn_contractlineid_value": pl.String(),
    "_transactioncurrencyid_value": pl.String(),
}
#: F&O ``ProjectContractLineMilestones`` field → its type as read (``CurrencyCode`` optional).
FNO_FIELDS: dict[str, pl.DataType] = {
    "ContractLineMilestoneGuid": pl.String(),
    "ContractLineMilestoneIdentifier": pl.String(),
    "dataAreaId": pl.String(),
    "ProjectContractId": pl.String(),
    "ContractLineId": pl.String(),
    "Amount": pl.String(),
    "TransactionDate": pl.String(),
    "CurrencyCode": pl.String(),
    "TransStatus": pl.String(),
}


def default_line_key(contract: pl.Expr, line_number: pl.Expr) -> pl.Expr:
    """``PRJC-000123`` and ``2`` → ``PRJC-000123-2`` (F&O's ``ContractLineId`` in the simulator)."""
    return pl.concat_str([contract, pl.lit("-"), line_number.cast(pl.String)])


def _source(source: Frame | Iterable[Mapping[str, Any]], fields: Mapping[str, pl.DataType], where: str):
    if isinstance(source, (pl.DataFrame, pl.LazyFrame)):
        frame = lazy(source)
    else:
        rows = list(source)
        present = {name for row in rows for name in row}
        frame = rows_frame(rows, {n: t for n, t in fields.items() if n in present or not rows}, where).lazy()
    return frame, frame.collect_schema()


def _date(name: str, schema: pl.Schema) -> pl.Expr:
    """A Date from a Date, a Datetime (its date) or ISO text (``2024-05-31`` or
    ``2024-05-31T12:00:00Z``: the first ten characters); text that is no date gives null
    (it then differs from the extract and is reported)."""
    dtype = schema[name]
    if dtype == pl.Date:
        return pl.col(name)
    if isinstance(dtype, pl.Datetime):
        return pl.col(name).dt.date()
    if dtype == pl.Null:
        return pl.col(name).cast(pl.Date)
    return pl.col(name).cast(pl.String).str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)


def _lower(name: str) -> pl.Expr:
    return pl.col(name).cast(pl.String).str.to_lowercase()


def _upper(name: str) -> pl.Expr:
    return pl.col(name).cast(pl.String).str.to_uppercase()


def _require(schema: pl.Schema, names: Iterable[str], where: str) -> None:
    missing = [n for n in names if n not in schema]
    if missing:
        raise ValueError(f"{where} has no column {', '.join(missing)}")


def normalise_legacy(
    rows: Frame | Iterable[Mapping[str, Any]], *, line_key: LineKey = default_line_key
) -> pl.LazyFrame:
    """Validated extract rows (:data:`cutover.source.model.VALID_SCHEMA`, or its subset
    ``milestone_id legacy_id legal_entity contract_number contract_line currency amount
    tax_amount milestone_date``) as :data:`LEGACY_SCHEMA`. Without ``tax_amount`` there is no
    ``tax`` column (tax is then not compared)."""
    frame, schema = _source(rows, LEGACY_FIELDS, "legacy extract")
    if len(schema) == 0:  # a frame with no columns at all: nothing to reconcile
        return pl.LazyFrame(schema=LEGACY_SCHEMA)
    _require(schema, [n for n in LEGACY_FIELDS if n != "tax_amount"], "the legacy extract")
    out = [
        pl.col("milestone_id").cast(pl.String).alias("milestone_id"),
        pl.col("legacy_id").cast(pl.String),
        _upper("legal_entity").alias("legal_entity"),
        pl.col("contract_number").cast(pl.String).alias("contract"),
        line_key(pl.col("contract_number").cast(pl.String), pl.col("contract_line")).alias("line"),
        _upper("currency").alias("currency"),
        money_column(frame, "amount", schema, "legacy extract").alias("amount"),
    ]
    if "tax_amount" in schema:
        out.append(money_column(frame, "tax_amount", schema, "legacy extract").alias("tax"))
    out.append(_date("milestone_date", schema).alias("date"))
    return frame.select(out)


@dataclass(frozen=True)
class DataverseReference:
    """Dataverse GUIDs to the names the extract and F&O use (frames, lower-case GUID text):

    - ``lines``: ``line_id``, ``legal_entity``, ``contract``, ``line``
    - ``contracts``: ``contract_id``, ``contract``, ``legal_entity``
    - ``currencies``: ``currency_id``, ``currency``
    """

    lines: pl.DataFrame
    contracts: pl.DataFrame
    currencies: pl.DataFrame


def reference_from_legacy(rows: Frame, *, line_key: LineKey = default_line_key) -> DataverseReference:
    """The reference the validated extract itself resolves to (its ``line_id``, ``contract_id``
    and ``currency_id`` columns, :data:`~cutover.source.model.VALID_SCHEMA`). A Dataverse
    milestone on a line, contract or currency the extract does not name keeps its GUID."""
    frame = lazy(rows)
    schema = frame.collect_schema()
    if len(schema) == 0:
        frame = pl.LazyFrame(
            schema={n: pl.String() for n in ("line_id", "contract_id", "currency_id", "legal_entity", "currency")}
            | {"contract_number": pl.String(), "contract_line": pl.Int64()}
        )

    def first_per_id(id_column: str, columns: list[str], *names: pl.Expr) -> pl.LazyFrame:
        # The first row of each id, found on the raw text first (the work is per distinct id,
        # not per row), then again on the lower-cased id: the first row of a lower-cased id is
        # the first row of one of its spellings.
        return (
            frame.select(id_column, *columns)
            .drop_nulls(id_column)
            .unique(id_column, keep="first", maintain_order=True)
            .select(_lower(id_column).alias(id_column), *names)
            .unique(id_column, keep="first", maintain_order=True)
        )

    contract_number = pl.col("contract_number").cast(pl.String)
    lines, contracts, currencies = pl.collect_all(
        [
            first_per_id(
                "line_id",
                ["legal_entity", "contract_number", "contract_line"],
                _upper("legal_entity").alias("legal_entity"),
                contract_number.alias("contract"),
                line_key(contract_number, pl.col("contract_line")).alias("line"),
            ),
            first_per_id(
                "contract_id",
                ["contract_number", "legal_entity"],
                contract_number.alias("contract"),
                _upper("legal_entity").alias("legal_entity"),
            ),
            first_per_id("currency_id", ["currency"], _upper("currency").alias("currency")),
        ]
    )
    return DataverseReference(lines, contracts, currencies)


def normalise_dataverse(rows: Frame | Iterable[Mapping[str, Any]], reference: DataverseReference) -> pl.LazyFrame:
    """``msdyn_contractlinescheduleofvalue`` rows as the Web API returns them (the fields of
    :data:`DATAVERSE_FIELDS`) as :data:`DATAVERSE_SCHEMA`: lookups resolved through
    ``reference`` (an unknown GUID stays as its text), the legal entity that of the line (else
    of the contract). Without ``msdyn_tax`` there is no ``tax`` column."""
    frame, schema = _source(rows, DATAVERSE_FIELDS, "Dataverse milestones")
    if len(schema) == 0:
        return pl.LazyFrame(schema=DATAVERSE_SCHEMA)
    _require(schema, [n for n in DATAVERSE_FIELDS if n != "msdyn_tax"], "the Dataverse milestones")
    lines = reference.lines.lazy().select(
        pl.col("line_id").alias("_line_guid"),
        pl.col("line").alias("_line_name"),
        pl.col("legal_entity").alias("_line_le"),
    )
    contracts = reference.contracts.lazy().select(
        pl.col("contract_id").alias("_contract_guid"),
        pl.col("contract").alias("_contract_name"),
        pl.col("legal_entity").alias("_contract_le"),
    )
    currencies = reference.currencies.lazy().select(
        pl.col("currency_id").alias("_currency_guid"), pl.col("currency").alias("_currency_code")
    )
    base = [
        pl.col("msdyn_contractlinescheduleofvalueid").cast(pl.String).alias("milestone_id"),
        _lower("_msdyn_contract_value").alias("_contract_guid"),
        _lower("_msdyn_contractlineid_value").alias("_line_guid"),
        _lower("_transactioncurrencyid_value").alias("_currency_guid"),
        money_column(frame, "msdyn_amount", schema, "Dataverse milestones").alias("amount"),
    ]
    if "msdyn_tax" in schema:
        base.append(money_column(frame, "msdyn_tax", schema, "Dataverse milestones").alias("tax"))
    base += [
        _date("msdyn_invoicedate", schema).alias("date"),
        pl.col("msdyn_invoicestatus").cast(pl.Int64, strict=False).alias("invoice_status"),
    ]
    joined = (
        frame.select(base)
        .join(lines, on="_line_guid", how="left")
        .join(contracts, on="_contract_guid", how="left")
        .join(currencies, on="_currency_guid", how="left")
    )
    out = [
        "milestone_id",
        pl.coalesce("_line_le", "_contract_le").alias("legal_entity"),
        pl.coalesce("_contract_name", "_contract_guid").alias("contract"),
        pl.coalesce("_line_name", "_line_guid").alias("line"),
        pl.coalesce("_currency_code", "_currency_guid").alias("currency"),
        "amount",
        *(["tax"] if "msdyn_tax" in schema else []),
        "date",
        "invoice_status",
    ]
    return joined.select(out)


# Every form F&O may send a TransStatus in → its member name: the name, in lower case, the
# number, and the qualified enum literal. One hash lookup per row; any other text stays as sent
# (and then differs from the expected status, so it is reported).
_TRANS_FORMS: dict[str, str] = {}
for _m in ProjTransStatus:
    for _form in (_m.member, _m.member.lower(), _m.member.upper(), str(int(_m))):
        _TRANS_FORMS[_form] = _m.member
    _TRANS_FORMS[f"Microsoft.Dynamics.DataEntities.ProjTransStatus'{_m.member}'"] = _m.member


def _trans_status(schema: pl.Schema) -> pl.Expr:
    """TransStatus as its member name, whether F&O sent ``Invoiced``, ``4`` or
    ``Microsoft.Dynamics.DataEntities.ProjTransStatus'Invoiced'``; anything else as sent."""
    text = pl.col("TransStatus").cast(pl.String)
    return text.replace_strict(_TRANS_FORMS, default=text, return_dtype=pl.String)


def normalise_fno(rows: Frame | Iterable[Mapping[str, Any]]) -> pl.LazyFrame:
    """``ProjectContractLineMilestones`` rows (the fields of :data:`FNO_FIELDS`) as
    :data:`FNO_SCHEMA`: ``ContractLineMilestoneGuid`` is the Dataverse id, ``dataAreaId`` the
    legal entity (upper case), ``TransactionDate`` a date. Without ``CurrencyCode`` there is no
    ``currency`` column (reconciliation then totals each F&O row in its line's currency)."""
    frame, schema = _source(rows, FNO_FIELDS, "F&O milestones")
    if len(schema) == 0:
        return pl.LazyFrame(schema={n: t for n, t in FNO_SCHEMA.items() if n != "currency"})
    optional = ("CurrencyCode", "ContractLineMilestoneIdentifier")
    _require(schema, [n for n in FNO_FIELDS if n not in optional], "the F&O milestones")
    out = [
        pl.col("ContractLineMilestoneGuid").cast(pl.String).alias("milestone_id"),
        (
            pl.col("ContractLineMilestoneIdentifier").cast(pl.String)
            if "ContractLineMilestoneIdentifier" in schema
            else pl.lit(None, pl.String)
        ).alias("fno_identifier"),
        _upper("dataAreaId").alias("legal_entity"),
        pl.col("ProjectContractId").cast(pl.String).alias("contract"),
        pl.col("ContractLineId").cast(pl.String).alias("line"),
    ]
    if "CurrencyCode" in schema:
        out.append(_upper("CurrencyCode").alias("currency"))
    out += [
        money_column(frame, "Amount", schema, "F&O milestones").alias("amount"),
        _date("TransactionDate", schema).alias("date"),
        _trans_status(schema).alias("trans_status"),
    ]
    return frame.select(out)
