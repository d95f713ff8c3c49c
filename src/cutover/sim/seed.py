"""Deterministic world generator: a Contoso-style Project Operations + Finance and Operations
environment in a fresh simulator database, plus the legacy milestone extract.

``seed_world(conn, SCALES["small"], seed=7, extract_path=Path("legacy.csv"))`` fills an empty
simulator file (laid out by :mod:`cutover.sim.store`) with:

- legal entities (``dv_cdm_companies``: USMF, DEMF, GBSI, FRRT, ...; F&O ``dataAreaId`` is the
  code in lower case, ``usmf``), each with an accounting currency;
- currencies (``dv_transactioncurrencies``): every company currency plus USD, EUR and GBP;
- customers (``dv_accounts``, account numbers ``US-001``, ``DE-002``: the first two letters of
  the company code, one running number per prefix so numbers are unique across companies),
  spread round-robin over the companies; every 7th customer (index 3, 10, 17, ...) bills in a
  foreign currency, the others in the company currency;
- one project (``dv_msdyn_projects``) per contract, and the contracts (``dv_salesorders``,
  ``PRJC-000001`` ..., work based) with their lines (``dv_salesorderdetails``): per contract
  ``fixed_price_lines_per_contract`` fixed-price lines and ``tm_lines_per_contract`` time and
  material lines, in a shuffled order, ``lineitemnumber`` 1..n;
- the F&O side of every line (``fno_ProjectContractLines``): ``ContractLineId`` is
  ``<ordernumber>-<lineitemnumber>`` (``PRJC-000123-2``), ``ContractLineGuid`` the Dataverse
  ``salesorderdetailid``, ``DefaultDimensionDisplayValue`` ``BusinessUnit-Department-CostCenter``
  (``001-022-OU_3566``). It is set on every fixed-price line; about one time-and-material line
  in five has none (empty string), as in real data, so checks must look at the right lines;
- **no milestones**: ``dv_msdyn_contractlinescheduleofvalues`` and
  ``fno_ProjectContractLineMilestones`` stay empty; the milestones exist only in the extract;
- opening AR (``fno_CustTransactions``): invoices (TransType 2 Sales, positive, ``Invoice``
  ``CIN-000001``, voucher ``CIV-000001``) and payments (TransType 15 Payment, negative, voucher
  ``ARP-000001``, ``Invoice`` empty), numbered per company; a customer's balance never goes
  negative; ``AmountCur`` in the customer currency, ``AmountMst`` in the company currency at the
  fixed rates in :data:`EXCHANGE_RATES`;
- opening GL (``fno_GeneralJournalEntryBiEntities`` + ``fno_GeneralJournalAccountEntryBiEntities``):
  one two-line entry per AR transaction (invoice: 130100 AR debit / 401100 revenue credit;
  payment: 110110 bank debit / 130100 AR credit; ``SubledgerVoucher`` = the AR voucher), so the
  AR control account equals the AR subledger per company, then random balanced journals of 2-6
  lines (vouchers ``GNJL000001`` per company) up to exactly ``gl_lines`` lines. Every entry sums
  to exactly 0 in accounting currency. ``LedgerAccount`` is ``MainAccount-BusinessUnit-Department``
  (``130100-001-022``). (If ``gl_lines`` < 2 x ``ar_transactions`` only the first
  ``gl_lines // 2`` AR transactions get a GL entry.)

All keys, names, amounts and dates follow from ``seed`` and the :class:`Scale` alone (one
``random.Random(seed)``, GUIDs by ``uuid5``, a fixed go-live date :data:`WORLD_DATE`), so the
same seed gives a byte-identical extract and identical tables. Money is generated as integer
cents and stored x100 (``MONEY_SCALE`` 1/10,000 units): no float ever holds an amount.

Legacy extract (written only when ``extract_path`` is given): CSV, UTF-8 without BOM, ``\\n``
line ends, comma separated, header row, fields quoted only when needed (RFC 4180: a field that
holds a comma, a double quote or a line break is enclosed in double quotes and inner quotes are
doubled; some milestone names do hold commas, quotes and non-ASCII letters). One row per legacy
milestone, invoiced and un-invoiced rows interleaved in a shuffled order:

=======================  ============================================================================
column                   meaning
=======================  ============================================================================
legacy_id                unique id in the legacy system, ``LEG-MS-0000001`` (numbered by date)
legal_entity             company code, upper case (``USMF``)
contract_number          project contract number = Dataverse ``salesorder.ordernumber`` (``PRJC-000012``)
contract_line            contract line number = ``salesorderdetail.lineitemnumber`` (integer, 1..);
                         always a fixed-price line
customer_account         the contract customer's account number (``US-004``)
milestone_name           milestone description (at most 100 characters)
milestone_date           milestone (invoice) date, ISO ``YYYY-MM-DD``; invoiced ones are before
                         the go-live date, most un-invoiced ones after it (some before: the
                         status, not the date, decides)
amount                   milestone amount excluding tax, in the contract currency: plain decimal
                         text, 2 decimals, ``.`` separator, no thousands separator (``12500.00``)
tax_amount               tax on the milestone, same format (``0.00`` where no tax applies)
currency                 ISO 4217 code of the contract currency (``USD``)
legacy_status            ``Invoiced`` (migrate it) or ``NotInvoiced`` (must be left out)
legacy_invoice_number    legacy invoice (``LEG-INV-0000001``) for Invoiced rows, empty otherwise
=======================  ============================================================================

For every fixed-price line the sum of all its extract amounts (invoiced and not) is at most
the line's ``extendedamount``. Nothing in the extract is wrong on purpose: fault injection
(bad rows, missing dimensions) is the business of the rehearsal scenarios, not of the seed.

Settings written (``store.set_setting``): ``organization_id``, ``business_unit_id``, ``seed``,
``scale`` (name), ``scale_spec`` (the Scale as a dict), ``world_date`` (``2026-12-01``).
Counters left at the last value used (``store.next_counter`` continues after them):
:data:`COUNTER_CUST_RECID`, :data:`COUNTER_GL_ENTRY`, :data:`COUNTER_GL_LINE`, and per company
``fno.<dataareaid>.CustInvoice`` / ``fno.<dataareaid>.ARPayment`` / ``fno.<dataareaid>.GLVoucher``.
"""

from __future__ import annotations

import csv
import io
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from datetime import date, timedelta
from pathlib import Path
from random import Random

from . import store, world
from .reference import (
    ACCOUNT_AR,
    ACCOUNT_BANK,
    ACCOUNT_REVENUE,
    COMPANIES,
    COUNTER_CUST_RECID,
    COUNTER_GL_ENTRY,
    COUNTER_GL_LINE,
    CURRENCIES,
    CUST_RECID_BASE,
    EXCHANGE_RATES,
    FALLBACK_CURRENCY,
    FOREIGN_POOL,
    GL_ENTRY_BASE,
    GL_LINE_BASE,
    convert,
)
from .schema import (
    BILLING_FIXED_PRICE,
    BILLING_TIME_AND_MATERIAL,
    DATAVERSE,
    FNO,
    MONEY_SCALE,
    ORDER_TYPE_WORK_BASED,
    EntitySet,
)

__all__ = [
    "COMPANIES",
    "EXCHANGE_RATES",
    "EXTRACT_COLUMNS",
    "SCALES",
    "WORLD_DATE",
    "Scale",
    "SeedSummary",
    "convert",
    "entity_guid",
    "organization_id",
    "seed_world",
]

# --- fixed world facts -----------------------------------------------------------------------

WORLD_DATE = date(2026, 12, 1)  # the go-live (cutover) date all the data is relative to
ORG_NAMESPACE = uuid.UUID("6f1c2a4e-3b7d-5c1e-9a0f-c0700e5e0001")  # fixed; never change it

EXTRACT_COLUMNS = (
    "legacy_id",
    "legal_entity",
    "contract_number",
    "contract_line",
    "customer_account",
    "milestone_name",
    "milestone_date",
    "amount",
    "tax_amount",
    "currency",
    "legacy_status",
    "legacy_invoice_number",
)
STATUS_INVOICED = "Invoiced"
STATUS_NOT_INVOICED = "NotInvoiced"

BUSINESS_UNITS = ("001", "002", "003", "004", "005")
DEPARTMENTS = ("021", "022", "023", "024", "025", "026")
COST_CENTERS = ("OU_2311", "OU_2401", "OU_2402", "OU_3566", "OU_3567", "OU_4803", "OU_4804")

# random journals: (text, debit main accounts, credit main accounts)
JOURNAL_TEMPLATES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("Payroll", ("600100", "600200", "600300"), ("110110", "220100")),
    ("Rent and facilities", ("606100", "606300"), ("200110",)),
    ("Vendor invoice", ("605100", "605200", "618500", "140200"), ("200110",)),
    ("Vendor payment", ("200110",), ("110110",)),
    ("Depreciation", ("607100",), ("182100", "182200")),
    ("Accrual – consulting costs", ("605300", "600400"), ("230100",)),
    ("Prepaid expense release", ("606200", "618100"), ("150100",)),
    ("Bank charges", ("618900",), ("110110",)),
    ("Intercompany recharge", ("190100",), ("403100", "606900")),
    ("Reclassification", ("600500", "605400"), ("600500", "605400")),
)

_CUSTOMER_BASES = (
    "Adventure Works",
    "Fabrikam",
    "Northwind Traders",
    "Litware",
    "Tailspin Toys",
    "Wide World Importers",
    "Proseware",
    "Alpine Ski House",
    "Coho Winery",
    "Fourth Coffee",
    "Lucerne Publishing",
    "Margie's Travel",
    "Trey Research",
    "Woodgrove Bank",
    "Graphic Design Institute",
    "Humongous Insurance",
    "Blue Yonder Airlines",
    "City Power & Light",
    "Relecloud",
    "VanArsdel",
    "Wingtip Toys",
    "Consolidated Messenger",
    "Southridge Video",
    "A. Datum",
    "Best For You Organics",
    "Nod Publishers",
    "Bellows College",
    "First Up Consultants",
    "Contoso Pharmaceuticals",
    "School of Fine Art",
    "Smith, Jones & Partners",
    "Müller Maschinenbau",
    "Société Lumière",
    "Ørsted Analytics",
)
_CUSTOMER_VARIANTS = (
    "",
    " East",
    " West",
    " Holdings",
    " Group",
    " Services",
    " North",
    " South",
    " International",
    " Digital",
    " Labs",
    " Partners",
)
_LEGAL_SUFFIX = {"de": " GmbH", "fr": " SA"}

_PROGRAMS = (
    "ERP rollout",
    "Data platform modernisation",
    "CRM implementation",
    "Cloud migration",
    "Field service rollout",
    "Finance transformation",
    "Warehouse automation",
    "Security assessment",
    "Analytics programme",
    "Integration hub",
    "Payroll upgrade",
    "E-commerce relaunch",
)
_FP_LINES = (
    "Implementation – fixed fee",
    "Design and build (fixed price)",
    "Data migration – fixed fee",
    "Training package",
    "Go-live support, fixed fee",
    "Solution architecture – fixed price",
)
_TM_LINES = (
    "Consulting – time and materials",
    "Project management (T&M)",
    "Support hours",
    "Development – time and materials",
    "Change requests (T&M)",
)
_PHASES_EN = (
    "Kick-off",
    "Requirements sign-off",
    "Design, build and test sign-off",
    'Acceptance "UAT" sign-off',
    "Go-live – hypercare, week 1",
    "Data migration complete",
    "Training delivered",
    "Phase 2 – design",
    "Phase 2 – delivery",
    "Final acceptance",
    "Handover",
    "Project closure",
)
_PHASES_DE = (
    "Projektstart",
    "Anforderungsabnahme",
    "Entwurf, Umsetzung und Test",
    "Übergabe Dokumentation",
    'Abnahme "UAT"',
    "Produktivstart – Hypercare",
    "Datenübernahme abgeschlossen",
    "Schulung durchgeführt",
    "Phase 2 – Entwurf",
    "Phase 2 – Umsetzung",
    "Endabnahme",
    "Projektabschluss",
)
_PHASES_FR = (
    "Lancement",
    "Validation des exigences",
    "Conception, réalisation et tests",
    "Recette « UAT »",
    "Mise en production – hypercare",
    "Migration des données terminée",
    "Formation réalisée",
    "Phase 2 – conception",
    "Phase 2 – livraison",
    "Réception finale",
    "Transfert",
    "Clôture du projet",
)
_PHASES = {"en": _PHASES_EN, "de": _PHASES_DE, "fr": _PHASES_FR}


# --- public API -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    """How big a world to generate. Validated on construction (ValueError names the field)."""

    legal_entities: int
    customers: int
    contracts: int
    fixed_price_lines_per_contract: int
    tm_lines_per_contract: int
    invoiced_milestones: int
    uninvoiced_milestones: int
    ar_transactions: int
    gl_lines: int

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Scale.{f.name} must be a non-negative integer, got {value!r}")
        if self.legal_entities < 1:
            raise ValueError("Scale.legal_entities must be at least 1")
        if self.legal_entities > 999:
            raise ValueError("Scale.legal_entities must be at most 999 (company codes have 4 characters)")
        if self.customers < self.legal_entities:
            raise ValueError(
                f"Scale.customers ({self.customers}) must be at least legal_entities "
                f"({self.legal_entities}): every company needs a customer"
            )
        if self.invoiced_milestones + self.uninvoiced_milestones and not (
            self.contracts and self.fixed_price_lines_per_contract
        ):
            raise ValueError("milestones need fixed-price lines: set contracts and fixed_price_lines_per_contract > 0")
        if self.gl_lines == 1:
            raise ValueError("Scale.gl_lines cannot be 1: a journal entry needs at least two lines to balance")

    @property
    def fixed_price_lines(self) -> int:
        return self.contracts * self.fixed_price_lines_per_contract

    @property
    def contract_lines(self) -> int:
        return self.contracts * (self.fixed_price_lines_per_contract + self.tm_lines_per_contract)


SCALES: dict[str, Scale] = {
    # seconds to seed: tests and the demo
    "small": Scale(
        legal_entities=2,
        customers=12,
        contracts=20,
        fixed_price_lines_per_contract=3,
        tm_lines_per_contract=2,
        invoiced_milestones=150,
        uninvoiced_milestones=50,
        ar_transactions=500,
        gl_lines=5_000,
    ),
    "medium": Scale(
        legal_entities=3,
        customers=120,
        contracts=400,
        fixed_price_lines_per_contract=3,
        tm_lines_per_contract=2,
        invoiced_milestones=4_000,
        uninvoiced_milestones=1_000,
        ar_transactions=10_000,
        gl_lines=100_000,
    ),
    "large": Scale(
        legal_entities=4,
        customers=400,
        contracts=2_000,
        fixed_price_lines_per_contract=4,
        tm_lines_per_contract=2,
        invoiced_milestones=20_000,
        uninvoiced_milestones=5_000,
        ar_transactions=50_000,
        gl_lines=1_000_000,
    ),
}


@dataclass(frozen=True)
class SeedSummary:
    """What :func:`seed_world` wrote (row counts per kind) and the world's identity."""

    organization_id: str
    business_unit_id: str
    seed: int
    scale: str
    world_date: str
    extract_path: str | None
    legal_entities: int
    currencies: int
    customers: int
    projects: int
    contracts: int
    contract_lines: int
    fixed_price_lines: int
    tm_lines: int
    invoiced_milestones: int
    uninvoiced_milestones: int
    ar_transactions: int
    ar_transactions_with_gl: int
    gl_entries: int
    gl_lines: int

    @property
    def rows_written(self) -> int:
        """Database rows written (the extract rows are not counted)."""
        return (
            self.legal_entities
            + self.currencies
            + self.customers
            + self.projects
            + self.contracts
            + 2 * self.contract_lines
            + self.ar_transactions
            + self.gl_entries
            + self.gl_lines
        )


def organization_id(seed: int) -> str:
    """The Dataverse organization id of the world with this seed (WhoAmI answers it)."""
    return str(uuid.uuid5(ORG_NAMESPACE, f"organization:{int(seed)}"))


def entity_guid(seed: int, entity: str, natural_key: str) -> str:
    """The GUID the seed gives a row: uuid5(organization id, "<entity>:<natural key>"), lower case.

    ``entity`` is the Dataverse logical name (``salesorder``); ``natural_key`` its natural key
    (``PRJC-000012``, ``PRJC-000012-3`` for a line, ``USD`` for a currency, ``US-001``, ``USMF``).
    """
    return str(uuid.uuid5(uuid.UUID(organization_id(seed)), f"{entity}:{natural_key}".lower()))


def seed_world(
    conn: sqlite3.Connection,
    scale: Scale,
    *,
    seed: int = 1,
    scale_name: str = "custom",
    extract_path: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> SeedSummary:
    """Generate the world for ``seed`` at ``scale`` into an empty simulator database.

    Runs in one transaction (a SAVEPOINT: all or nothing; committed on return unless the caller
    already had a transaction open, which then commits it), between the world marker's first and
    last writes (:func:`cutover.sim.world.mark_started`, :func:`~cutover.sim.world.mark_finished`:
    the simulator serves only a world whose seed finished). Raises ValueError if the database
    already holds a world (any row in dv_salesorders). The extract file, if asked for, is written
    as ``<name>.part`` and moved into place only after the database work succeeded.

    ``progress(stage, done, total)`` is called as stages finish and every 50,000 rows in the long
    ones; stages: customers, contracts, milestones, contract lines, extract, ar, gl.
    """
    if not isinstance(scale, Scale):
        raise TypeError(f"scale must be a Scale, got {type(scale).__name__}")
    if conn.execute('SELECT 1 FROM "dv_salesorders" LIMIT 1').fetchone() is not None:
        raise ValueError(
            f"the simulator database {_db_file(conn)} already holds a seeded world (dv_salesorders "
            "has rows); seed into a new file or delete this one first"
        )
    gen = _Generator(conn, scale, int(seed), progress or _no_progress)
    tmp_extract: Path | None = None
    if extract_path is not None:
        extract_path = Path(extract_path)
        extract_path.parent.mkdir(parents=True, exist_ok=True)
        tmp_extract = extract_path.with_name(extract_path.name + ".part")
    conn.execute("SAVEPOINT seed_world")
    try:
        world.mark_started(conn)  # the marker says "a simulator world" from the first write ...
        summary = gen.run(scale_name, extract_path, tmp_extract)
        world.mark_finished(conn)  # ... and "complete" as the very last one
    except BaseException:
        conn.execute("ROLLBACK TO seed_world")
        conn.execute("RELEASE seed_world")
        if tmp_extract is not None and tmp_extract.exists():
            tmp_extract.unlink()
        raise
    conn.execute("RELEASE seed_world")
    if tmp_extract is not None and extract_path is not None:
        os.replace(tmp_extract, extract_path)
    return summary


# --- implementation ---------------------------------------------------------------------------


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


def _db_file(conn: sqlite3.Connection) -> str:
    try:
        for _, name, file in conn.execute("PRAGMA database_list"):
            if name == "main":
                return repr(file or ":memory:")
    except sqlite3.Error:
        pass
    return "(unknown file)"


def _money_text(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def _insert_sql(entity: EntitySet, columns: Iterable[str]) -> str:
    cols = tuple(columns)
    for c in cols:
        if c not in entity.by_name and not c.startswith("sim_"):
            raise KeyError(f"{entity.name} has no field {c}")
    names = ", ".join(f'"{c}"' for c in cols)
    marks = ", ".join("?" for _ in cols)
    return f'INSERT INTO "{entity.table}" ({names}) VALUES ({marks})'


@dataclass
class _Company:
    code: str
    name: str
    currency: str
    tax_bp: int
    lang: str
    guid: str

    @property
    def area(self) -> str:
        return self.code.lower()


@dataclass
class _Customer:
    number: str
    name: str
    short: str
    company: _Company
    currency: str
    guid: str
    bu: str
    dept: str


@dataclass
class _Line:
    number: int
    fixed_price: bool
    guid: str
    description: str
    dimension: str
    value: int = 0  # extendedamount in cents


@dataclass
class _Contract:
    number: str
    name: str
    customer: _Customer
    guid: str
    project_guid: str
    start_offset: int  # days before WORLD_DATE the contract started
    lines: list


BATCH = 50_000


class _Generator:
    def __init__(self, conn: sqlite3.Connection, scale: Scale, seed: int, progress: Callable[[str, int, int], None]):
        self.conn = conn
        self.scale = scale
        self.seed = seed
        self.rng = Random(seed)
        self.progress = progress
        self.org = organization_id(seed)
        self.ns = uuid.UUID(self.org)
        self.day_cache: dict[int, str] = {}

    # helpers
    def guid(self, entity: str, key: str) -> str:
        return str(uuid.uuid5(self.ns, f"{entity}:{key}".lower()))

    def day(self, offset: int) -> str:
        """ISO date ``offset`` days after WORLD_DATE (negative: before)."""
        s = self.day_cache.get(offset)
        if s is None:
            s = self.day_cache[offset] = (WORLD_DATE + timedelta(days=offset)).isoformat()
        return s

    def stamp(self, offset: int) -> str:
        return self.day(offset) + "T12:00:00Z"

    def cents(self, lo: int, hi: int) -> int:
        """A random amount in [lo, hi) cents; most are round (multiples of 100.00)."""
        r = self.rng.random
        value = lo + int(r() * (hi - lo))
        if r() < 0.6:
            rounded = value - value % 10_000
            if rounded >= max(lo, 1):
                value = rounded
        return value

    # the run
    def run(self, scale_name: str, extract_path: Path | None, tmp_extract: Path | None) -> SeedSummary:
        s = self.scale
        self.companies = self._companies()
        self.currencies = sorted({c.currency for c in self.companies} | set(FOREIGN_POOL))
        self._write_currencies_and_companies()
        self.customers = self._customers()
        self.contracts = self._contracts()
        milestones = self._milestones()
        self._write_contracts()
        if tmp_extract is not None:
            self._write_extract(tmp_extract, milestones)
        ar_rows = self._ar()
        mirrored, gl_entries = self._gl(ar_rows)
        bu = str(uuid.uuid5(self.ns, "businessunit:root"))
        store.set_setting(self.conn, "organization_id", self.org)
        store.set_setting(self.conn, "business_unit_id", bu)
        store.set_setting(self.conn, "seed", self.seed)
        store.set_setting(self.conn, "scale", scale_name)
        store.set_setting(self.conn, "scale_spec", asdict(s))
        store.set_setting(self.conn, "world_date", WORLD_DATE.isoformat())
        n_inv = sum(1 for m in milestones if m[6])
        return SeedSummary(
            organization_id=self.org,
            business_unit_id=bu,
            seed=self.seed,
            scale=scale_name,
            world_date=WORLD_DATE.isoformat(),
            extract_path=str(extract_path) if extract_path is not None else None,
            legal_entities=len(self.companies),
            currencies=len(self.currencies),
            customers=len(self.customers),
            projects=len(self.contracts),
            contracts=len(self.contracts),
            contract_lines=s.contract_lines,
            fixed_price_lines=s.fixed_price_lines,
            tm_lines=s.contracts * s.tm_lines_per_contract,
            invoiced_milestones=n_inv,
            uninvoiced_milestones=len(milestones) - n_inv,
            ar_transactions=len(ar_rows),
            ar_transactions_with_gl=mirrored,
            gl_entries=gl_entries,
            gl_lines=s.gl_lines,
        )

    # --- master data -----------------------------------------------------------------------

    def _companies(self) -> list[_Company]:
        out = []
        for i in range(self.scale.legal_entities):
            if i < len(COMPANIES):
                code, name, cur, tax, lang = COMPANIES[i]
            else:
                code, name, cur, tax, lang = f"C{i + 1:03d}", f"Contoso Subsidiary {i + 1}", FALLBACK_CURRENCY, 0, "en"
            out.append(_Company(code, name, cur, tax, lang, self.guid("cdm_company", code)))
        return out

    def _write_currencies_and_companies(self) -> None:
        conn = self.conn
        created = self.day(-1200) + "T08:00:00Z"
        self.currency_guid = {c: self.guid("transactioncurrency", c) for c in self.currencies}
        conn.executemany(
            _insert_sql(
                DATAVERSE["transactioncurrencies"],
                (
                    "transactioncurrencyid",
                    "isocurrencycode",
                    "currencyname",
                    "currencysymbol",
                    "sim_createdon",
                    "sim_modifiedon",
                ),
            ),
            [(self.currency_guid[c], c, CURRENCIES[c][0], CURRENCIES[c][1], created, created) for c in self.currencies],
        )
        conn.executemany(
            _insert_sql(
                DATAVERSE["cdm_companies"],
                ("cdm_companyid", "cdm_companycode", "cdm_name", "sim_createdon", "sim_modifiedon"),
            ),
            [(c.guid, c.code, c.name, created, created) for c in self.companies],
        )

    def _customers(self) -> list[_Customer]:
        rng = self.rng
        n_companies = len(self.companies)
        counters: dict[str, int] = {}
        used_names: set[str] = set()
        out: list[_Customer] = []
        for i in range(self.scale.customers):
            company = self.companies[i % n_companies]
            prefix = company.code[:2]
            counters[prefix] = counters.get(prefix, 0) + 1
            number = f"{prefix}-{counters[prefix]:03d}"
            base = rng.choice(_CUSTOMER_BASES)
            suffix = _LEGAL_SUFFIX.get(company.lang, " Inc." if company.currency == "USD" else " Ltd")
            name = base + rng.choice(_CUSTOMER_VARIANTS) + suffix
            unique, k = name, 2
            while unique in used_names:
                unique, k = f"{name} ({k})", k + 1
            used_names.add(unique)
            if i % 7 == 3:
                currency = rng.choice([c for c in FOREIGN_POOL if c != company.currency])
            else:
                currency = company.currency
            out.append(
                _Customer(
                    number,
                    unique,
                    base,
                    company,
                    currency,
                    self.guid("account", number),
                    rng.choice(BUSINESS_UNITS),
                    rng.choice(DEPARTMENTS),
                )
            )
        self.progress("customers", len(out), len(out))
        return out

    def _contracts(self) -> list[_Contract]:
        rng = self.rng
        s = self.scale
        by_company: dict[str, list[_Customer]] = {}
        for c in self.customers:
            by_company.setdefault(c.company.code, []).append(c)
        out: list[_Contract] = []
        for i in range(s.contracts):
            company = self.companies[i % len(self.companies)]
            customer = rng.choice(by_company[company.code])
            number = f"PRJC-{i + 1:06d}"
            name = f"{customer.short} – {rng.choice(_PROGRAMS)}"
            methods = [True] * s.fixed_price_lines_per_contract + [False] * s.tm_lines_per_contract
            rng.shuffle(methods)
            bu, dept = customer.bu, rng.choice(DEPARTMENTS)
            lines = []
            for n, fixed in enumerate(methods, start=1):
                if fixed or rng.random() >= 0.2:
                    dim = f"{bu}-{dept}-{rng.choice(COST_CENTERS)}"
                else:
                    dim = ""
                desc = rng.choice(_FP_LINES if fixed else _TM_LINES)
                lines.append(_Line(n, fixed, self.guid("salesorderdetail", f"{number}-{n}"), desc, dim))
            out.append(
                _Contract(
                    number,
                    name,
                    customer,
                    self.guid("salesorder", number),
                    self.guid("msdyn_project", number),
                    200 + int(rng.random() * 700),
                    lines,
                )
            )
        self.progress("contracts", len(out), len(out))
        return out

    # --- legacy milestones -----------------------------------------------------------------

    def _milestones(self) -> list[tuple]:
        """Distribute the legacy milestones over the fixed-price lines.

        Returns rows (contract, line, seq, name, day offset, cents, invoiced, tax cents),
        sorted by creation order (date, contract, line, seq).
        """
        rng = self.rng
        r = rng.random
        s = self.scale
        fp_lines = [(c, ln) for c in self.contracts for ln in c.lines if ln.fixed_price]
        n_fp = len(fp_lines)
        per_line: list[list[int]] = [[0, 0] for _ in range(n_fp)]
        for _ in range(s.invoiced_milestones):
            per_line[int(r() * n_fp)][0] += 1
        for _ in range(s.uninvoiced_milestones):
            per_line[int(r() * n_fp)][1] += 1
        rows: list[tuple] = []
        for (contract, line), (k_inv, k_open) in zip(fp_lines, per_line):
            phases = _PHASES[contract.customer.company.lang]
            tax_bp = contract.customer.company.tax_bp
            start = contract.start_offset
            inv_days = sorted(-1 - int(r() * (start - 30)) for _ in range(k_inv))  # oldest first
            open_days = sorted((1 + int(r() * 540)) if r() < 0.8 else (-1 - int(r() * 60)) for _ in range(k_open))
            total = 0
            seq = 0
            for invoiced, days in ((True, inv_days), (False, open_days)):
                for d in days:
                    seq += 1
                    phase = phases[seq - 1] if seq <= len(phases) else f"Milestone {seq}"
                    name = f"M{seq:02d} {phase}"
                    amount = self.cents(100_000, 15_000_000)
                    tax = (amount * tax_bp * 2 + 10_000) // 20_000
                    total += amount
                    rows.append((contract, line, seq, name, d, amount, invoiced, tax))
            # line value: all its milestones plus headroom (sometimes none: fully billed)
            if total == 0:
                line.value = self.cents(2_000_000, 50_000_000)
            elif r() < 0.15:
                line.value = total
            else:
                line.value = total + self.cents(0, max(total * 6 // 10, 1)) // 100 * 100
        for contract in self.contracts:
            for line in contract.lines:
                if not line.fixed_price:
                    line.value = self.cents(1_000_000, 40_000_000)
        rows.sort(key=lambda m: (m[4], m[0].number, m[1].number, m[2]))
        self.progress("milestones", len(rows), len(rows))
        return rows

    def _write_extract(self, path: Path, milestones: list[tuple]) -> None:
        rng = self.rng
        out_rows = []
        invoice_no = 0
        for i, (contract, line, _seq, name, d, amount, invoiced, tax) in enumerate(milestones, start=1):
            if invoiced:
                invoice_no += 1
                inv = f"LEG-INV-{invoice_no:07d}"
            else:
                inv = ""
            out_rows.append(
                (
                    f"LEG-MS-{i:07d}",
                    contract.customer.company.code,
                    contract.number,
                    str(line.number),
                    contract.customer.number,
                    name,
                    self.day(d),
                    _money_text(amount),
                    _money_text(tax),
                    contract.customer.currency,
                    STATUS_INVOICED if invoiced else STATUS_NOT_INVOICED,
                    inv,
                )
            )
        rng.shuffle(out_rows)
        buf = io.StringIO(newline="")
        writer = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(EXTRACT_COLUMNS)
        writer.writerows(out_rows)
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(buf.getvalue())
        self.progress("extract", len(out_rows), len(out_rows))

    # --- Dataverse + F&O master rows -----------------------------------------------------------

    def _write_contracts(self) -> None:
        conn = self.conn
        cg = self.currency_guid
        account_rows = []
        for c in self.customers:
            created = self.day(-1000 - int(self.rng.random() * 500)) + "T09:30:00Z"
            account_rows.append((c.guid, c.name, c.number, c.company.guid, cg[c.currency], created, created))
        conn.executemany(
            _insert_sql(
                DATAVERSE["accounts"],
                (
                    "accountid",
                    "name",
                    "accountnumber",
                    "_msdyn_company_value",
                    "_transactioncurrencyid_value",
                    "sim_createdon",
                    "sim_modifiedon",
                ),
            ),
            account_rows,
        )
        project_rows, order_rows, line_rows, fno_rows = [], [], [], []
        for k in self.contracts:
            created = self.day(-k.start_offset) + "T10:00:00Z"
            cust = k.customer
            cur = cg[cust.currency]
            project_rows.append((k.project_guid, k.name, cust.guid, cust.company.guid, created, created))
            order_rows.append(
                (k.guid, k.number, k.name, cust.guid, cur, cust.company.guid, ORDER_TYPE_WORK_BASED, created, created)
            )
            for ln in k.lines:
                method = BILLING_FIXED_PRICE if ln.fixed_price else BILLING_TIME_AND_MATERIAL
                line_rows.append(
                    (
                        ln.guid,
                        ln.number,
                        ln.description,
                        k.guid,
                        k.project_guid,
                        cur,
                        method,
                        ln.value * 100,
                        created,
                        created,
                    )
                )
                fno_rows.append(
                    (
                        cust.company.area,
                        f"{k.number}-{ln.number}",
                        ln.guid,
                        k.number,
                        1 if ln.fixed_price else 0,
                        ln.dimension,
                    )
                )
        conn.executemany(
            _insert_sql(
                DATAVERSE["msdyn_projects"],
                (
                    "msdyn_projectid",
                    "msdyn_subject",
                    "_msdyn_customer_value",
                    "_msdyn_company_value",
                    "sim_createdon",
                    "sim_modifiedon",
                ),
            ),
            project_rows,
        )
        conn.executemany(
            _insert_sql(
                DATAVERSE["salesorders"],
                (
                    "salesorderid",
                    "ordernumber",
                    "name",
                    "_customerid_value",
                    "_transactioncurrencyid_value",
                    "_msdyn_company_value",
                    "msdyn_ordertype",
                    "sim_createdon",
                    "sim_modifiedon",
                ),
            ),
            order_rows,
        )
        conn.executemany(
            _insert_sql(
                DATAVERSE["salesorderdetails"],
                (
                    "salesorderdetailid",
                    "lineitemnumber",
                    "productdescription",
                    "_salesorderid_value",
                    "_msdyn_project_value",
                    "_transactioncurrencyid_value",
                    "msdyn_billingmethod",
                    "extendedamount",
                    "sim_createdon",
                    "sim_modifiedon",
                ),
            ),
            line_rows,
        )
        conn.executemany(
            _insert_sql(
                FNO["ProjectContractLines"],
                (
                    "dataAreaId",
                    "ContractLineId",
                    "ContractLineGuid",
                    "ProjectContractId",
                    "BillingMethod",
                    "DefaultDimensionDisplayValue",
                ),
            ),
            fno_rows,
        )
        self.progress("contract lines", len(line_rows), len(line_rows))

    # --- opening AR ----------------------------------------------------------------------------

    def _ar(self) -> list[tuple]:
        """Write the AR transactions; return them as (company, customer, day, cur, mst, voucher,
        is_invoice, invoice id) in RecId order for the GL mirror."""
        rng = self.rng
        r = rng.random
        n = self.scale.ar_transactions
        customers = self.customers
        n_cust = len(customers)
        days = sorted(-1 - int(r() * 540) for _ in range(n))
        outstanding = [0] * n_cust
        seq: dict[tuple[str, str], int] = {}
        rows = []
        db_rows = []
        sql = _insert_sql(
            FNO["CustTransactions"],
            (
                "dataAreaId",
                "RecId",
                "AccountNum",
                "Voucher",
                "TransDate",
                "AmountCur",
                "AmountMst",
                "CurrencyCode",
                "Invoice",
                "TransType",
            ),
        )
        for i, d in enumerate(days):
            ci = int(r() * n_cust)
            cust = customers[ci]
            co = cust.company
            if outstanding[ci] <= 0 or r() < 0.62:
                amount = self.cents(50_000, 5_000_000)
                outstanding[ci] += amount
                key = (co.area, "CustInvoice")
                seq[key] = no = seq.get(key, 0) + 1
                voucher, invoice, trans_type = f"CIV-{no:06d}", f"CIN-{no:06d}", 2
            else:
                if r() < 0.6:
                    amount = outstanding[ci]  # settles the balance
                else:
                    amount = max(1, outstanding[ci] * (20 + int(r() * 60)) // 100)  # part payment
                outstanding[ci] -= amount
                amount = -amount
                key = (co.area, "ARPayment")
                seq[key] = no = seq.get(key, 0) + 1
                voucher, invoice, trans_type = f"ARP-{no:06d}", "", 15
            mst = convert(amount, cust.currency, co.currency)
            recid = CUST_RECID_BASE + i + 1
            db_rows.append(
                (
                    co.area,
                    recid,
                    cust.number,
                    voucher,
                    self.stamp(d),
                    amount * 100,
                    mst * 100,
                    cust.currency,
                    invoice,
                    trans_type,
                )
            )
            rows.append((co, cust, d, amount, mst, voucher, trans_type == 2, invoice))
            if len(db_rows) >= BATCH:
                self.conn.executemany(sql, db_rows)
                db_rows.clear()
                self.progress("ar", i + 1, n)
        if db_rows:
            self.conn.executemany(sql, db_rows)
        self.progress("ar", n, n)
        if n:
            self._set_counter(COUNTER_CUST_RECID, CUST_RECID_BASE + n)
        for (area, name), no in sorted(seq.items()):
            self._set_counter(f"fno.{area}.{name}", no)
        return rows

    def _set_counter(self, name: str, value: int) -> None:
        self.conn.execute(
            "INSERT INTO sim_counters(name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    # --- opening GL ----------------------------------------------------------------------------

    def _gl(self, ar_rows: list[tuple]) -> tuple[int, int]:
        conn = self.conn
        rng = self.rng
        r = rng.random
        total_lines = self.scale.gl_lines
        mirrored = min(len(ar_rows), total_lines // 2)
        remaining = total_lines - 2 * mirrored
        if remaining == 1:  # an odd total: one three-line random journal instead of an AR mirror
            mirrored -= 1
            remaining = 3
        entry_sql = _insert_sql(
            FNO["GeneralJournalEntryBiEntities"],
            ("SourceKey", "AccountingDate", "SubledgerVoucher", "SubledgerVoucherDataAreaId", "JournalNumber"),
        )
        line_sql = _insert_sql(
            FNO["GeneralJournalAccountEntryBiEntities"],
            (
                "SourceKey",
                "GeneralJournalEntry",
                "MainAccount",
                "LedgerAccount",
                "AccountingCurrencyAmount",
                "TransactionCurrencyAmount",
                "TransactionCurrencyCode",
                "Text",
            ),
        )
        # The index on GeneralJournalEntry is rebuilt once after the bulk insert (cheaper).
        index_sql = next((ddl for ddl in store.index_ddl() if " ix_gl_entry " in ddl), None)
        if index_sql is not None:
            conn.execute("DROP INDEX IF EXISTS ix_gl_entry")

        ledger_cache: dict[tuple[str, str, str], str] = {}

        def ledger(main: str, bu: str, dept: str) -> str:
            key = (main, bu, dept)
            s = ledger_cache.get(key)
            if s is None:
                s = ledger_cache[key] = f"{main}-{bu}-{dept}"
            return s

        entries: list[tuple] = []
        lines: list[tuple] = []
        entry_key = GL_ENTRY_BASE
        line_key = GL_LINE_BASE
        journal_seq: dict[str, int] = {}
        voucher_seq: dict[str, int] = {}
        written = 0

        def journal_number(co: _Company) -> str:
            # a new journal (posting batch) every 25 vouchers per company
            n = journal_seq.get(co.code, 0)
            journal_seq[co.code] = n + 1
            return f"{co.code}-GJ-{n // 25 + 1:06d}"

        def flush() -> None:
            nonlocal written
            conn.executemany(entry_sql, entries)
            conn.executemany(line_sql, lines)
            written += len(lines)
            entries.clear()
            lines.clear()
            self.progress("gl", written, total_lines)

        # 1. one entry per AR transaction (the AR control account mirrors the subledger)
        for co, cust, d, cur_amount, mst, voucher, is_invoice, invoice in ar_rows[:mirrored]:
            entry_key += 1
            entries.append((entry_key, self.stamp(d), voucher, co.code, journal_number(co)))
            bu, dept = cust.bu, cust.dept
            ccy = cust.currency
            if is_invoice:
                text = f"Customer invoice {invoice}, {cust.number}"
                debit, credit = ACCOUNT_AR, ACCOUNT_REVENUE
                amt_mst, amt_cur = mst, cur_amount
            else:
                text = f"Customer payment {voucher}, {cust.number}"
                debit, credit = ACCOUNT_BANK, ACCOUNT_AR
                amt_mst, amt_cur = -mst, -cur_amount
            line_key += 1
            lines.append((line_key, entry_key, debit, ledger(debit, bu, dept), amt_mst * 100, amt_cur * 100, ccy, text))
            line_key += 1
            lines.append(
                (line_key, entry_key, credit, ledger(credit, bu, dept), -amt_mst * 100, -amt_cur * 100, ccy, text)
            )
            if len(lines) >= BATCH:
                flush()

        # 2. random balanced journals of 2-6 lines
        companies = self.companies
        n_co = len(companies)
        n_tpl = len(JOURNAL_TEMPLATES)
        n_bu, n_dept = len(BUSINESS_UNITS), len(DEPARTMENTS)
        stamps = [self.stamp(-1 - k) for k in range(730)]
        while remaining:
            if remaining <= 6:
                size = remaining
            else:
                size = 2 + int(r() * 5)
                if remaining - size == 1:
                    size = size - 1 if size > 2 else size + 1
            remaining -= size
            co = companies[int(r() * n_co)]
            text, debits, credits = JOURNAL_TEMPLATES[int(r() * n_tpl)]
            n_debit = 1 + int(r() * (size - 1))
            n_credit = size - n_debit
            bu = BUSINESS_UNITS[int(r() * n_bu)]
            dept = DEPARTMENTS[int(r() * n_dept)]
            ccy = co.currency
            vs = voucher_seq.get(co.code, 0) + 1
            voucher_seq[co.code] = vs
            entry_key += 1
            entries.append((entry_key, stamps[int(r() * 730)], f"GNJL{vs:06d}", co.code, journal_number(co)))
            total = 0  # cents
            for _ in range(n_debit):
                amount = 1_000 + int(r() * 5_000_000)  # 10.00 .. 50,010.00
                total += amount
                main = debits[int(r() * len(debits))]
                line_key += 1
                lines.append((line_key, entry_key, main, ledger(main, bu, dept), amount * 100, amount * 100, ccy, text))
            weights = [500 + int(r() * 1000) for _ in range(n_credit)]
            wsum = sum(weights)
            left = total
            for j, w in enumerate(weights):
                part = left if j == n_credit - 1 else total * w // wsum
                left -= part
                main = credits[int(r() * len(credits))]
                line_key += 1
                lines.append((line_key, entry_key, main, ledger(main, bu, dept), -part * 100, -part * 100, ccy, text))
            if len(lines) >= BATCH:
                flush()
        if lines or entries:
            flush()
        if index_sql is not None:
            conn.execute(index_sql)
        n_entries = entry_key - GL_ENTRY_BASE
        if n_entries:
            self._set_counter(COUNTER_GL_ENTRY, entry_key)
        if total_lines:
            self._set_counter(COUNTER_GL_LINE, line_key)
        for code, vs in sorted(voucher_seq.items()):
            self._set_counter(f"fno.{code.lower()}.GLVoucher", vs)
        return mirrored, n_entries


if MONEY_SCALE != 10_000:  # amounts above are stored as cents x 100
    raise ImportError(f"seed assumes MONEY_SCALE 10,000, schema says {MONEY_SCALE}")
