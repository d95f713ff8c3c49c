"""Money, exactly: parse, the scale of each currency, quantise without rounding, polars schema.

Rules:
- Money is :class:`decimal.Decimal` end to end. Text is parsed as text; a ``float`` is refused
  (``0.1`` as a float is not 0.1). A binary double that came from a spreadsheet or Parquet
  cell is converted by :func:`from_double` through ``repr`` — the shortest text that round-trips
  — and then must be exact at the currency's scale.
- Each currency has a scale (ISO 4217 minor units: JPY 0, EUR 2, KWD 3). :func:`quantize`
  refuses a value with more decimals than its currency allows: a wrong amount is an error,
  never a rounding.
- In polars, money columns are ``pl.Decimal(MONEY_PRECISION, scale)``; :func:`polars_schema`
  builds a schema so nothing is inferred as Int64 or Float64 (a whole amount read as an int
  and a fractional one as a float would silently lose cents).
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal

import polars as pl

from .errors import InputError

# Dataverse Money columns hold up to 922,337,203,685,477 with 4 decimals; 38 digits hold any of them.
MONEY_PRECISION = 38
DEFAULT_SCALE = 2

# ISO 4217 minor units for currencies whose scale is not 2. Every other well-formed code has 2.
_MINOR_UNITS: dict[str, int] = {
    # no minor unit
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    # three decimals
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    # four decimals
    "CLF": 4, "UYW": 4,
}  # fmt: skip

_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
_PLAIN_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


class MoneyError(InputError, ValueError):
    """A value that is not an exact amount of money. ``str()`` says what was wrong."""


def currency_scale(currency: str) -> int:
    """The number of decimals ``currency`` allows (ISO 4217 minor units)."""
    code = str(currency).strip().upper()
    if not _CURRENCY_RE.match(code):
        raise MoneyError(f"{currency!r} is not an ISO 4217 currency code (three letters, e.g. EUR)")
    return _MINOR_UNITS.get(code, DEFAULT_SCALE)


def parse(text: str, *, decimal_separator: str = ".", thousands_separator: str | None = None) -> Decimal:
    """An amount written as text, e.g. ``"12500.00"``, ``"1.234,56"`` (with ``decimal_separator=","``
    and ``thousands_separator="."``). Refuses floats, exponents, NaN and infinities, and empty text."""
    if isinstance(text, float):
        raise MoneyError(f"{text!r} is a binary float; money must be parsed from text (or use from_double)")
    if isinstance(text, Decimal):
        return _finite(text, str(text))
    if isinstance(text, int) and not isinstance(text, bool):
        return Decimal(text)
    if not isinstance(text, str):
        raise MoneyError(f"{text!r} is not an amount")
    raw = text.strip().replace("\u00a0", "").replace("\u202f", "")
    if thousands_separator:
        raw = raw.replace(thousands_separator, "")
    if decimal_separator != ".":
        if "." in raw and thousands_separator != ".":
            raise MoneyError(f"{text!r} has a '.' but the decimal separator is {decimal_separator!r}")
        raw = raw.replace(decimal_separator, ".")
    if not _PLAIN_NUMBER_RE.match(raw):
        raise MoneyError(f"{text!r} is not a number")
    return Decimal(raw)


def from_double(value: float) -> Decimal:
    """A spreadsheet or Parquet double as the decimal it was meant to be: ``Decimal(repr(x))``."""
    if isinstance(value, bool) or not isinstance(value, (float, int)):
        raise MoneyError(f"{value!r} is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise MoneyError(f"{value!r} is not a finite number")
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _finite(value: Decimal, shown: str) -> Decimal:
    if not value.is_finite():
        raise MoneyError(f"{shown!r} is not a finite number")
    return value


def quantize(value: Decimal, currency: str | None = None, *, scale: int | None = None) -> Decimal:
    """``value`` at exactly the currency's (or the given) scale, e.g. ``Decimal("5")`` → ``5.00``.
    A value that is not exact at that scale (``0.125`` EUR, ``10.5`` JPY) is a :class:`MoneyError`."""
    if isinstance(value, float):
        raise MoneyError(f"{value!r} is a binary float; money is Decimal")
    value = _finite(Decimal(value), str(value))
    places = scale if scale is not None else (currency_scale(currency) if currency else DEFAULT_SCALE)
    exponent = Decimal(1).scaleb(-places)
    try:
        exact = value.quantize(
            exponent, context=decimal.Context(prec=MONEY_PRECISION, traps=[decimal.Inexact, decimal.InvalidOperation])
        )
    except (decimal.Inexact, decimal.InvalidOperation):
        what = f"{currency} amounts" if currency and scale is None else "this column"
        raise MoneyError(f"{value} has more decimals than {what} allow ({places})") from None
    return exact


def polars_dtype(scale: int = DEFAULT_SCALE) -> pl.Decimal:
    """The polars type of a money column with ``scale`` decimals."""
    return pl.Decimal(MONEY_PRECISION, scale)


def polars_schema(
    columns: Mapping[str, pl.DataType] | Iterable[tuple[str, pl.DataType]],
    money: Iterable[str],
    *,
    scale: int = DEFAULT_SCALE,
) -> pl.Schema:
    """A schema in which every column named in ``money`` is Decimal, whatever else says."""
    items = dict(columns.items() if isinstance(columns, Mapping) else columns)
    for name in money:
        items[name] = polars_dtype(scale)
    return pl.Schema(items)


def frame(rows: Iterable[Mapping[str, object]], schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Rows (e.g. OData answers) as a frame with an explicit schema: money stays Decimal even when
    one row has ``5000`` (an int) and another ``1234.56``; a float anywhere is refused."""
    rows = list(rows)
    for index, row in enumerate(rows):
        for name, dtype in schema.items():
            value = row.get(name)
            if isinstance(value, float) and isinstance(dtype, pl.Decimal):
                raise MoneyError(f"row {index}, column {name}: {value!r} is a binary float; money is Decimal")
    return pl.DataFrame(
        rows, schema=dict(schema), orient="row" if rows and not isinstance(rows[0], Mapping) else None, strict=False
    )
