"""Fixed reference data of every simulated world: legal entities, currencies and their fixed
exchange rates, the main accounts AR and revenue post to, and the key ranges and counters of
F&O rows.

Both the world generator (:mod:`cutover.sim.seed`) and runtime dual-write
(:mod:`cutover.sim.dualwrite`) read these facts, so that what dual-write posts on the night
(an invoice's AR transaction and GL entry) continues exactly where the seeded opening AR and GL
left off: same accounts, same rates, same rounding, the next RecId. Nothing here depends on a
seed; changing a value changes every world.
"""

from __future__ import annotations

__all__ = [
    "ACCOUNT_ACCRUED_REVENUE",
    "ACCOUNT_AR",
    "ACCOUNT_BANK",
    "ACCOUNT_BILLED_REVENUE",
    "ACCOUNT_REVENUE",
    "COMPANIES",
    "COUNTER_CUST_RECID",
    "COUNTER_GL_ENTRY",
    "COUNTER_GL_LINE",
    "CURRENCIES",
    "CUST_RECID_BASE",
    "DEFAULT_COMPANY",
    "EXCHANGE_RATES",
    "FALLBACK_CURRENCY",
    "FOREIGN_POOL",
    "GL_ENTRY_BASE",
    "GL_LINE_BASE",
    "accounting_currency",
    "convert",
]

# --- legal entities --------------------------------------------------------------------------

# (code, name, accounting currency, tax rate in basis points, language)
COMPANIES: tuple[tuple[str, str, str, int, str], ...] = (
    ("USMF", "Contoso Entertainment System USA", "USD", 0, "en"),
    ("DEMF", "Contoso Entertainment System Germany", "EUR", 1900, "de"),
    ("GBSI", "Contoso Entertainment System UK", "GBP", 2000, "en"),
    ("FRRT", "Contoso Retail France", "EUR", 2000, "fr"),
    ("USSI", "Contoso Consulting USA", "USD", 0, "en"),
    ("ITCO", "Contoso Entertainment System Italy", "EUR", 2200, "en"),
    ("MXMF", "Contoso Entertainment System Mexico", "MXN", 1600, "en"),
    ("INMF", "Contoso Entertainment System India", "INR", 1800, "en"),
    ("BRMF", "Contoso Entertainment System Brazil", "BRL", 0, "en"),
    ("CNMF", "Contoso Entertainment System China", "CNY", 600, "en"),
)
#: The company F&O answers for when a request names none (its ``dataAreaId`` is the lower case).
DEFAULT_COMPANY = COMPANIES[0][0]
#: Accounting currency of a legal entity beyond :data:`COMPANIES` (generated ``C011`` …).
FALLBACK_CURRENCY = "USD"

# --- currencies ------------------------------------------------------------------------------

# (ISO code, name, symbol, value of one unit in millionths of a USD) — fixed, deterministic rates
CURRENCIES: dict[str, tuple[str, str, int]] = {
    "USD": ("US Dollar", "$", 1_000_000),
    "EUR": ("Euro", "€", 1_085_000),
    "GBP": ("Pound Sterling", "£", 1_270_000),
    "MXN": ("Mexican Peso", "$", 58_000),
    "INR": ("Indian Rupee", "₹", 12_000),
    "BRL": ("Brazilian Real", "R$", 200_000),
    "CNY": ("Yuan Renminbi", "¥", 138_000),
}
EXCHANGE_RATES = {code: spec[2] for code, spec in CURRENCIES.items()}
#: Currencies every world has, and those a foreign-currency customer bills in.
FOREIGN_POOL = ("USD", "EUR", "GBP")

# --- main accounts ---------------------------------------------------------------------------

ACCOUNT_AR = "130100"  # accounts receivable (the AR control account)
ACCOUNT_REVENUE = "401100"  # project revenue (customer invoices)
ACCOUNT_BANK = "110110"  # bank (customer payments)
ACCOUNT_ACCRUED_REVENUE = "140200"  # accrued revenue (billed-sales actuals, debit)
ACCOUNT_BILLED_REVENUE = "401200"  # billed revenue (billed-sales actuals, credit)

# --- F&O keys --------------------------------------------------------------------------------

CUST_RECID_BASE = 5_637_144_576
GL_ENTRY_BASE = CUST_RECID_BASE + 100_000_000
GL_LINE_BASE = CUST_RECID_BASE + 1_000_000_000
COUNTER_CUST_RECID = "fno.CustTransactions.RecId"
COUNTER_GL_ENTRY = "fno.GeneralJournalEntryBiEntities.SourceKey"
COUNTER_GL_LINE = "fno.GeneralJournalAccountEntryBiEntities.SourceKey"


def accounting_currency(company: str) -> str:
    """The accounting currency of legal entity ``company`` (code, any case)."""
    return next((cur for code, _name, cur, _tax, _lang in COMPANIES if code == company.upper()), FALLBACK_CURRENCY)


def convert(amount_minor: int, from_currency: str, to_currency: str) -> int:
    """Convert an integer amount in minor units at the fixed rates, rounding half away from 0."""
    if from_currency == to_currency:
        return amount_minor
    num = abs(amount_minor) * EXCHANGE_RATES[from_currency]
    den = EXCHANGE_RATES[to_currency]
    result = (2 * num + den) // (2 * den)
    return result if amount_minor >= 0 else -result
