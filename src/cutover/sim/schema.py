"""What the simulator serves: every entity set, its fields, their types and storage.

This is the single description the simulator's SQL tables, OData queries, `$filter`
translation, JSON rendering and `$metadata` document are all generated from, so a field
that exists here exists everywhere and a field that does not is rejected everywhere.

Storage conventions (SQLite):
- Dataverse set ``X`` lives in table ``dv_X``; F&O entity ``Y`` in ``fno_Y``.
- Column name = the name a client reads. Dataverse lookups are stored under their
  read-back name ``_<attribute>_value`` and written through ``<NavigationProperty>@odata.bind``.
- Money / decimals are stored as INTEGER in units of 1/10,000 (``MONEY_SCALE``) so SQL
  comparisons are exact and JSON renders exact decimal text — never a float.
- Dates are ISO text (``YYYY-MM-DD``); date-times ISO text in UTC (``YYYY-MM-DDTHH:MM:SSZ``),
  so text order is time order.
- Option sets and F&O enums are INTEGER; F&O enums render as their member names, as F&O does.
- Columns starting ``sim_`` are internal and never served.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

MONEY_SCALE = 10_000  # stored money = Decimal * MONEY_SCALE, exactly

DATAVERSE_NAMESPACE = "Microsoft.Dynamics.CRM"
FNO_NAMESPACE = "Microsoft.Dynamics.DataEntities"


class Kind(str, Enum):
    GUID = "guid"
    STRING = "string"
    INT = "int"
    BIGINT = "bigint"
    MONEY = "money"  # Dataverse Money / F&O Edm.Decimal
    DATE = "date"  # Edm.Date
    DATETIME = "datetime"  # Edm.DateTimeOffset
    OPTION = "option"  # Dataverse choice (integer value)
    ENUM = "enum"  # F&O enum (integer stored, member name served)
    BOOL = "bool"


EDM_TYPES = {
    Kind.GUID: "Edm.Guid",
    Kind.STRING: "Edm.String",
    Kind.INT: "Edm.Int32",
    Kind.BIGINT: "Edm.Int64",
    Kind.MONEY: "Edm.Decimal",
    Kind.DATE: "Edm.Date",
    Kind.DATETIME: "Edm.DateTimeOffset",
    Kind.OPTION: "Edm.Int32",
    Kind.BOOL: "Edm.Boolean",
}

SQL_TYPES = {
    Kind.GUID: "TEXT",
    Kind.STRING: "TEXT",
    Kind.INT: "INTEGER",
    Kind.BIGINT: "INTEGER",
    Kind.MONEY: "INTEGER",
    Kind.DATE: "TEXT",
    Kind.DATETIME: "TEXT",
    Kind.OPTION: "INTEGER",
    Kind.ENUM: "INTEGER",
    Kind.BOOL: "INTEGER",
}


@dataclass(frozen=True)
class EnumType:
    """An F&O enum: qualified name plus member name -> integer value."""

    name: str  # e.g. ProjTransStatus
    members: dict[str, int]

    @property
    def qualified(self) -> str:
        return f"{FNO_NAMESPACE}.{self.name}"

    def name_of(self, value: int) -> str:
        for member, number in self.members.items():
            if number == value:
                return member
        raise KeyError(value)


@dataclass(frozen=True)
class Field:
    name: str  # the name clients read and filter on (column name)
    kind: Kind
    required: bool = False
    max_length: int | None = None
    options: tuple[int, ...] = ()  # allowed values of an OPTION field
    enum: EnumType | None = None  # ENUM fields
    # Dataverse lookups: the navigation property used with @odata.bind, and its target set.
    navigation: str | None = None
    target: str | None = None
    read_only: bool = False  # set by the server only (keys of F&O, computed fields)
    label: str | None = None  # display name (Dataverse metadata API)

    @property
    def is_lookup(self) -> bool:
        return self.navigation is not None


@dataclass(frozen=True)
class EntitySet:
    service: str  # "dataverse" or "fno"
    name: str  # entity set name in URLs
    type_name: str  # entity type (logical name for Dataverse)
    key: tuple[str, ...]  # key field names
    fields: tuple[Field, ...]
    company_specific: bool = False  # F&O: has dataAreaId and honours cross-company
    bulk_actions: bool = False  # Dataverse: CreateMultiple / UpsertMultiple bound to this set
    primary_name: str | None = None
    # Dataverse alternate keys (each a tuple of field names), usable as `set(name='value')`.
    alternate_keys: tuple[tuple[str, ...], ...] = ()
    read_only: bool = False  # served for reading only: every write is refused
    display_name: str | None = None
    by_name: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})

    @property
    def table(self) -> str:
        prefix = "dv_" if self.service == "dataverse" else "fno_"
        return prefix + self.name

    @property
    def qualified_type(self) -> str:
        ns = DATAVERSE_NAMESPACE if self.service == "dataverse" else FNO_NAMESPACE
        return f"{ns}.{self.type_name}"

    def lookup_by_navigation(self, navigation: str) -> Field | None:
        for f in self.fields:
            if f.navigation == navigation:
                return f
        return None


def _lookup(attribute: str, navigation: str, target: str, required: bool = False) -> Field:
    return Field(f"_{attribute}_value", Kind.GUID, required=required, navigation=navigation, target=target)


# --- Dataverse option values (DESIGN.md, "Domain facts") -------------------------------------

INVOICE_STATUS_NOT_READY = 192350000
INVOICE_STATUS_READY = 192350001
INVOICE_STATUS_CREATED = 192350002
INVOICE_STATUS_POSTED = 192350003
INVOICE_STATUSES = (
    INVOICE_STATUS_NOT_READY,
    INVOICE_STATUS_READY,
    INVOICE_STATUS_CREATED,
    INVOICE_STATUS_POSTED,
)
TRANSACTION_CLASSIFICATION_MILESTONE = 192350003
# 690970000 Commission, 690970001 Additional, 690970002 Tax, 192350000 Time, 192350001 Expense,
# 192350002 Material, 192350003 Milestone, 192350004 Fee (see entity_metadata.OPTION_LABELS).
TRANSACTION_CLASSIFICATIONS = (690970000, 690970001, 690970002, 192350000, 192350001, 192350002, 192350003, 192350004)
BILLING_TIME_AND_MATERIAL = 192350000
BILLING_FIXED_PRICE = 192350001
ORDER_TYPE_ITEM_BASED = 192350000
ORDER_TYPE_WORK_BASED = 192350001
ORDER_TYPE_SERVICE_MAINTENANCE = 690970002

# invoice.msdyn_projectinvoicestatus ("Project Invoice Status"): the status the tool reads.
PROJECT_INVOICE_DRAFT = 192350000
PROJECT_INVOICE_IN_REVIEW = 192350001
PROJECT_INVOICE_CONFIRMED = 192350002
PROJECT_INVOICE_PAID = 192350003
PROJECT_INVOICE_STATUSES = (
    PROJECT_INVOICE_DRAFT,
    PROJECT_INVOICE_IN_REVIEW,
    PROJECT_INVOICE_CONFIRMED,
    PROJECT_INVOICE_PAID,
)

# Pro-forma invoice state (Dataverse invoice statecode / statuscode). The simulator uses
# statecode 0 Active with statuscode 1 "Draft" for a created pro-forma invoice and
# statecode 2 Paid/Closed with statuscode 100001 "Confirmed" once confirmed.
INVOICE_STATECODE_ACTIVE = 0
INVOICE_STATECODE_CONFIRMED = 2
INVOICE_STATUSCODE_DRAFT = 1
INVOICE_STATUSCODE_CONFIRMED = 100001

# --- F&O enums ---------------------------------------------------------------------------

PROJ_TRANS_STATUS = EnumType("ProjTransStatus", {"Registered": 1, "Posted": 2, "InvoiceProposal": 3, "Invoiced": 4})
DUAL_WRITE_STATUS = EnumType("DualWriteProjectStatus", {"Enabled": 0, "Disabled": 1, "Queueing": 4})
DUAL_WRITE_ASYNC_MODE = EnumType(
    "DualWriteAsyncMode", {"RequiredSync": 0, "RequiredAsync": 1, "PreferredSync": 2, "None": 3}
)
LEDGER_TRANS_TYPE = EnumType(
    "LedgerTransType", {"None": 0, "Sales": 2, "Payment": 15, "Project": 8, "Cust": 7, "Transfer": 24}
)
PROJ_BILLING_METHOD = EnumType("ProjContractBillingMethod", {"TimeAndMaterial": 0, "FixedPrice": 1})
FNO_ENUMS = (PROJ_TRANS_STATUS, DUAL_WRITE_STATUS, DUAL_WRITE_ASYNC_MODE, LEDGER_TRANS_TYPE, PROJ_BILLING_METHOD)


# --- Dataverse --------------------------------------------------------------------------

DATAVERSE_SETS: tuple[EntitySet, ...] = (
    EntitySet(
        "dataverse",
        "cdm_companies",
        "cdm_company",
        ("cdm_companyid",),
        (
            Field("cdm_companyid", Kind.GUID),
            Field("cdm_companycode", Kind.STRING, required=True, max_length=4),
            Field("cdm_name", Kind.STRING, max_length=100),
        ),
        primary_name="cdm_name",
        alternate_keys=(("cdm_companycode",),),
    ),
    EntitySet(
        "dataverse",
        "transactioncurrencies",
        "transactioncurrency",
        ("transactioncurrencyid",),
        (
            Field("transactioncurrencyid", Kind.GUID),
            Field("isocurrencycode", Kind.STRING, required=True, max_length=5),
            Field("currencyname", Kind.STRING, max_length=100),
            Field("currencysymbol", Kind.STRING, max_length=10),
        ),
        primary_name="currencyname",
        alternate_keys=(("isocurrencycode",),),
    ),
    EntitySet(
        "dataverse",
        "accounts",
        "account",
        ("accountid",),
        (
            Field("accountid", Kind.GUID),
            Field("name", Kind.STRING, required=True, max_length=160),
            Field("accountnumber", Kind.STRING, max_length=20),
            _lookup("msdyn_company", "msdyn_company", "cdm_companies"),
            _lookup("transactioncurrencyid", "transactioncurrencyid", "transactioncurrencies"),
        ),
        primary_name="name",
        alternate_keys=(("accountnumber",),),
    ),
    EntitySet(
        "dataverse",
        "msdyn_projects",
        "msdyn_project",
        ("msdyn_projectid",),
        (
            Field("msdyn_projectid", Kind.GUID),
            Field("msdyn_subject", Kind.STRING, required=True, max_length=200),
            _lookup("msdyn_customer", "msdyn_customer", "accounts"),
            _lookup("msdyn_company", "msdyn_company", "cdm_companies"),
        ),
        primary_name="msdyn_subject",
    ),
    EntitySet(
        "dataverse",
        "salesorders",
        "salesorder",
        ("salesorderid",),
        (
            Field("salesorderid", Kind.GUID),
            Field("ordernumber", Kind.STRING, max_length=100),
            Field("name", Kind.STRING, required=True, max_length=300),
            _lookup("customerid", "customerid_account", "accounts"),
            _lookup("transactioncurrencyid", "transactioncurrencyid", "transactioncurrencies"),
            _lookup("msdyn_company", "msdyn_company", "cdm_companies"),
            Field(
                "msdyn_ordertype",
                Kind.OPTION,
                options=(ORDER_TYPE_ITEM_BASED, ORDER_TYPE_WORK_BASED, ORDER_TYPE_SERVICE_MAINTENANCE),
            ),
        ),
        primary_name="name",
        alternate_keys=(("ordernumber",),),
    ),
    EntitySet(
        "dataverse",
        "salesorderdetails",
        "salesorderdetail",
        ("salesorderdetailid",),
        (
            Field("salesorderdetailid", Kind.GUID),
            Field("lineitemnumber", Kind.INT),
            Field("productdescription", Kind.STRING, max_length=500),
            _lookup("salesorderid", "salesorderid", "salesorders", required=True),
            _lookup("msdyn_project", "msdyn_project", "msdyn_projects"),
            _lookup("transactioncurrencyid", "transactioncurrencyid", "transactioncurrencies"),
            Field("msdyn_billingmethod", Kind.OPTION, options=(BILLING_TIME_AND_MATERIAL, BILLING_FIXED_PRICE)),
            Field("extendedamount", Kind.MONEY),
        ),
        primary_name="productdescription",
    ),
    EntitySet(
        "dataverse",
        "msdyn_contractlinescheduleofvalues",
        "msdyn_contractlinescheduleofvalue",
        ("msdyn_contractlinescheduleofvalueid",),
        (
            Field("msdyn_contractlinescheduleofvalueid", Kind.GUID),
            Field("msdyn_name", Kind.STRING, required=True, max_length=100),
            Field("msdyn_amount", Kind.MONEY),
            Field("msdyn_tax", Kind.MONEY),
            Field("msdyn_invoicedate", Kind.DATE),
            Field("msdyn_invoicestatus", Kind.OPTION, options=INVOICE_STATUSES),
            Field("msdyn_transactionclassification", Kind.OPTION, options=TRANSACTION_CLASSIFICATIONS),
            _lookup("msdyn_contractlineid", "msdyn_ContractLineId", "salesorderdetails", required=True),
            _lookup("msdyn_contract", "msdyn_contract", "salesorders"),
            _lookup("msdyn_project", "msdyn_project", "msdyn_projects"),
            _lookup("transactioncurrencyid", "transactioncurrencyid", "transactioncurrencies"),
        ),
        bulk_actions=True,
        primary_name="msdyn_name",
    ),
    EntitySet(
        "dataverse",
        "invoices",
        "invoice",
        ("invoiceid",),
        (
            Field("invoiceid", Kind.GUID),
            Field("name", Kind.STRING, required=True, max_length=300),
            Field("invoicenumber", Kind.STRING, max_length=100),
            _lookup("salesorderid", "salesorderid", "salesorders"),
            _lookup("customerid", "customerid_account", "accounts"),
            _lookup("transactioncurrencyid", "transactioncurrencyid", "transactioncurrencies"),
            Field("totalamount", Kind.MONEY),
            Field("msdyn_invoicedate", Kind.DATE),
            Field("msdyn_projectinvoicestatus", Kind.OPTION, options=PROJECT_INVOICE_STATUSES),
            Field("statecode", Kind.OPTION, options=(0, 1, 2, 3)),
            Field("statuscode", Kind.OPTION, options=(1, 2, 4, 5, 6, 7, 100001, 100002, 100003)),
        ),
        primary_name="name",
    ),
    EntitySet(
        "dataverse",
        "invoicedetails",
        "invoicedetail",
        ("invoicedetailid",),
        (
            Field("invoicedetailid", Kind.GUID),
            _lookup("invoiceid", "invoiceid", "invoices", required=True),
            _lookup("salesorderdetailid", "salesorderdetailid", "salesorderdetails"),
            Field("productdescription", Kind.STRING, max_length=500),
            Field("extendedamount", Kind.MONEY),
        ),
        primary_name="productdescription",
    ),
    # Dual-write's own tables, where public code reads map versions (msdyn_dualwriteentitymap,
    # one row per saved version) and the version a map runs on (msdyn_dualwriteruntimeconfig).
    # Not a documented contract; read-only here, kept by dualwrite.publish().
    EntitySet(
        "dataverse",
        "msdyn_dualwriteentitymaps",
        "msdyn_dualwriteentitymap",
        ("msdyn_dualwriteentitymapid",),
        (
            Field("msdyn_dualwriteentitymapid", Kind.GUID),
            Field("msdyn_name", Kind.STRING, max_length=200),
            Field("msdyn_displayname", Kind.STRING, max_length=200),
            Field("msdyn_version", Kind.STRING, max_length=50),
            Field("msdyn_description", Kind.STRING, max_length=2000),
            Field("msdyn_mapping", Kind.STRING),
            Field("ismanaged", Kind.BOOL),
        ),
        primary_name="msdyn_name",
        read_only=True,
        display_name="Dual Write entity map",
    ),
    EntitySet(
        "dataverse",
        "msdyn_dualwriteruntimeconfigs",
        "msdyn_dualwriteruntimeconfig",
        ("msdyn_dualwriteruntimeconfigid",),
        (
            Field("msdyn_dualwriteruntimeconfigid", Kind.GUID),
            Field("msdyn_name", Kind.STRING, max_length=200),
            Field("msdyn_unsecure", Kind.STRING),
            Field("statecode", Kind.OPTION, options=(0, 1)),
        ),
        primary_name="msdyn_name",
        read_only=True,
        display_name="DualWrite Runtime Configuration",
    ),
)

# --- Finance and Operations ----------------------------------------------------------------

FNO_SETS: tuple[EntitySet, ...] = (
    EntitySet(
        "fno",
        "ProjectContractLineMilestones",
        "ProjectContractLineMilestone",
        ("dataAreaId", "ContractLineMilestoneIdentifier"),
        (
            Field("dataAreaId", Kind.STRING),
            Field("ContractLineMilestoneIdentifier", Kind.STRING),
            Field("ContractLineMilestoneGuid", Kind.GUID),
            Field("ProjectContractId", Kind.STRING),
            Field("ContractLineId", Kind.STRING),
            Field("Description", Kind.STRING),
            Field("Amount", Kind.MONEY),
            Field("TransactionDate", Kind.DATETIME),
            Field("CustomerAccountNumber", Kind.STRING),
            Field("TransStatus", Kind.ENUM, enum=PROJ_TRANS_STATUS),
        ),
        company_specific=True,
    ),
    EntitySet(
        # Simulator's view of project contract lines in F&O: the billing method and the
        # default financial dimensions that preflight must see set before migrating.
        "fno",
        "ProjectContractLines",
        "ProjectContractLine",
        ("dataAreaId", "ContractLineId"),
        (
            Field("dataAreaId", Kind.STRING),
            Field("ContractLineId", Kind.STRING),
            Field("ContractLineGuid", Kind.GUID),
            Field("ProjectContractId", Kind.STRING),
            Field("BillingMethod", Kind.ENUM, enum=PROJ_BILLING_METHOD),
            Field("DefaultDimensionDisplayValue", Kind.STRING),
        ),
        company_specific=True,
    ),
    EntitySet(
        "fno",
        "CustTransactions",
        "CustTransaction",
        ("dataAreaId", "RecId"),
        (
            Field("dataAreaId", Kind.STRING),
            Field("RecId", Kind.BIGINT),
            Field("AccountNum", Kind.STRING),
            Field("Voucher", Kind.STRING),
            Field("TransDate", Kind.DATETIME),
            Field("AmountCur", Kind.MONEY),
            Field("AmountMst", Kind.MONEY),
            Field("CurrencyCode", Kind.STRING),
            Field("Invoice", Kind.STRING),
            Field("TransType", Kind.ENUM, enum=LEDGER_TRANS_TYPE),
        ),
        company_specific=True,
    ),
    EntitySet(
        "fno",
        "GeneralJournalAccountEntryBiEntities",
        "GeneralJournalAccountEntryBiEntity",
        ("SourceKey",),
        (
            Field("SourceKey", Kind.BIGINT),
            Field("GeneralJournalEntry", Kind.BIGINT),
            Field("MainAccount", Kind.STRING),
            Field("LedgerAccount", Kind.STRING),
            Field("AccountingCurrencyAmount", Kind.MONEY),
            Field("TransactionCurrencyAmount", Kind.MONEY),
            Field("TransactionCurrencyCode", Kind.STRING),
            Field("Text", Kind.STRING),
        ),
    ),
    EntitySet(
        "fno",
        "GeneralJournalEntryBiEntities",
        "GeneralJournalEntryBiEntity",
        ("SourceKey",),
        (
            Field("SourceKey", Kind.BIGINT),
            Field("AccountingDate", Kind.DATETIME),
            Field("SubledgerVoucher", Kind.STRING),
            Field("SubledgerVoucherDataAreaId", Kind.STRING),
            Field("JournalNumber", Kind.STRING),
        ),
    ),
    EntitySet(
        "fno",
        "DualWriteProjectConfigurations",
        "DualWriteProjectConfiguration",
        ("ProjectName",),
        (
            Field("ProjectName", Kind.STRING),
            Field("InternalEntityName", Kind.STRING),
            Field("ExternalEntityName", Kind.STRING),
            Field("Status", Kind.ENUM, enum=DUAL_WRITE_STATUS),
            Field("AsyncMode", Kind.ENUM, enum=DUAL_WRITE_ASYNC_MODE),
        ),
    ),
)

ALL_SETS = DATAVERSE_SETS + FNO_SETS
DATAVERSE = {s.name: s for s in DATAVERSE_SETS}
FNO = {s.name: s for s in FNO_SETS}
DATAVERSE_BY_TYPE = {s.type_name: s for s in DATAVERSE_SETS}

MILESTONES = DATAVERSE["msdyn_contractlinescheduleofvalues"]
