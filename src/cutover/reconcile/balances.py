"""Balance comparison of two AR/GL snapshots (pure polars, no I/O).

The inputs are the frames :mod:`cutover.snapshot` writes (``read_snapshot`` gives them lazily),
under F&O's field names:

- AR (``CustTransactions``): ``legal_entity`` (upper case; else derived from ``dataAreaId``),
  ``AccountNum``, ``CurrencyCode``, ``AmountCur``, ``AmountMst``, ``Voucher``, ``TransDate``;
- GL (``GeneralJournalAccountEntryBiEntities`` joined to their entries): ``legal_entity``,
  ``MainAccount``, ``AccountingCurrencyAmount``, ``SubledgerVoucher``, ``JournalNumber``,
  ``AccountingDate``.

Other names are mapped with ``columns={"their name": "F&O name"}``. Money stays Decimal
(``Decimal(38, 16)``); a float column is refused.

- :func:`compare_ar` — per legal entity / customer / currency: transaction count and the sums
  of ``AmountCur`` and ``AmountMst`` before and after, and the deltas; one row per group whose
  sums or count changed (a group on one side only counts as zero on the other).
- :func:`compare_gl` — the same per legal entity / main account, on ``AccountingCurrencyAmount``
  (the legal entity's accounting currency, so one currency per group).
- :func:`new_vouchers` — the vouchers present after and not before, with their customer or
  account and amounts: AR by (legal entity, ``Voucher``), GL by (legal entity,
  ``SubledgerVoucher``, ``JournalNumber``) — a voucher posted again in a new journal is new.
- :func:`compare_balances` — all four at once (one pass over each file), with a summary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import polars as pl

from ._frames import MONEY, Frame, lazy, money_column

__all__ = [
    "AR_CHANGE_SCHEMA",
    "AR_VOUCHER_SCHEMA",
    "GL_CHANGE_SCHEMA",
    "GL_VOUCHER_SCHEMA",
    "BalanceComparison",
    "compare_ar",
    "compare_balances",
    "compare_gl",
    "new_vouchers",
]

_AR_KEYS = ("legal_entity", "AccountNum", "CurrencyCode")
_AR_MONEY = ("AmountCur", "AmountMst")
_GL_KEYS = ("legal_entity", "MainAccount")
_GL_MONEY = ("AccountingCurrencyAmount",)


def _change_schema(keys: tuple[str, ...], amounts: tuple[str, ...]) -> dict[str, pl.DataType]:
    out: dict[str, pl.DataType] = {k: pl.String() for k in keys}
    out |= {"rows_before": pl.UInt32(), "rows_after": pl.UInt32()}
    for name in amounts:
        out |= {f"{name}_before": MONEY, f"{name}_after": MONEY, f"{name}_delta": MONEY}
    return out


AR_CHANGE_SCHEMA = _change_schema(_AR_KEYS, _AR_MONEY)
GL_CHANGE_SCHEMA = _change_schema(_GL_KEYS, _GL_MONEY)
AR_VOUCHER_SCHEMA: dict[str, pl.DataType] = {
    "legal_entity": pl.String(),
    "Voucher": pl.String(),
    "AccountNum": pl.String(),
    "CurrencyCode": pl.String(),
    "TransDate": pl.String(),
    "rows": pl.UInt32(),
    "AmountCur": MONEY,
    "AmountMst": MONEY,
}
GL_VOUCHER_SCHEMA: dict[str, pl.DataType] = {
    "legal_entity": pl.String(),
    "SubledgerVoucher": pl.String(),
    "JournalNumber": pl.String(),
    "AccountingDate": pl.String(),
    "MainAccount": pl.String(),
    "rows": pl.UInt32(),
    "AccountingCurrencyAmount": MONEY,
}
_REQUIRED = {
    "ar": (*_AR_KEYS, *_AR_MONEY),
    "gl": (*_GL_KEYS, *_GL_MONEY),
}
_OPTIONAL = {"ar": ("Voucher", "TransDate"), "gl": ("SubledgerVoucher", "JournalNumber", "AccountingDate")}


def _prepare(frame: Frame, ledger: str, which: str, columns: Mapping[str, str] | None) -> pl.LazyFrame:
    out = lazy(frame)
    if columns:
        names = out.collect_schema().names()
        out = out.rename({k: v for k, v in columns.items() if k in names})
    schema = out.collect_schema()
    if "legal_entity" not in schema and "dataAreaId" in schema:
        out = out.with_columns(pl.col("dataAreaId").str.to_uppercase().alias("legal_entity"))
        schema = out.collect_schema()
    if len(schema) == 0:  # a frame with no columns: an empty snapshot
        empty = {n: pl.String() for n in (*_REQUIRED[ledger], *_OPTIONAL[ledger])}
        return pl.LazyFrame(schema=empty | {n: MONEY for n in (_AR_MONEY if ledger == "ar" else _GL_MONEY)})
    missing = [n for n in _REQUIRED[ledger] if n not in schema]
    if missing:
        raise ValueError(
            f"the {ledger.upper()} {which} snapshot has no column {', '.join(missing)} (map with columns=)"
        )
    where = f"{ledger.upper()} {which}"
    amounts = _AR_MONEY if ledger == "ar" else _GL_MONEY
    casts = [money_column(out, n, schema, where).alias(n) for n in amounts]
    casts += [
        pl.col(n).cast(pl.String) for n in (*_REQUIRED[ledger], *_OPTIONAL[ledger]) if n in schema and n not in amounts
    ]
    casts += [pl.lit(None, pl.String).alias(n) for n in _OPTIONAL[ledger] if n not in schema]
    return out.with_columns(casts)


def _changes(
    before: pl.LazyFrame, after: pl.LazyFrame, keys: tuple[str, ...], amounts: tuple[str, ...]
) -> pl.LazyFrame:
    def sums(frame: pl.LazyFrame, suffix: str) -> pl.LazyFrame:
        return frame.group_by(list(keys)).agg(
            pl.len().cast(pl.UInt32).alias(f"rows_{suffix}"),
            *(pl.col(n).sum().cast(MONEY).alias(f"{n}_{suffix}") for n in amounts),
        )

    zero = pl.lit(0, MONEY)
    joined = sums(before, "before").join(
        sums(after, "after"), on=list(keys), how="full", coalesce=True, nulls_equal=True
    )
    joined = joined.with_columns(
        pl.col("rows_before").fill_null(0),
        pl.col("rows_after").fill_null(0),
        *(pl.col(f"{n}_{s}").fill_null(zero) for n in amounts for s in ("before", "after")),
    ).with_columns((pl.col(f"{n}_after") - pl.col(f"{n}_before")).cast(MONEY).alias(f"{n}_delta") for n in amounts)
    changed = pl.col("rows_before") != pl.col("rows_after")
    for n in amounts:
        changed = changed | (pl.col(f"{n}_delta") != zero)
    return joined.filter(changed).sort(list(keys), nulls_last=True).select(list(_change_schema(keys, amounts)))


def compare_ar(before: Frame, after: Frame, *, columns: Mapping[str, str] | None = None) -> pl.DataFrame:
    """Every AR balance (legal entity, customer, currency) that changed: :data:`AR_CHANGE_SCHEMA`."""
    return _ar_changes(before, after, columns).collect()


def compare_gl(before: Frame, after: Frame, *, columns: Mapping[str, str] | None = None) -> pl.DataFrame:
    """Every GL balance (legal entity, main account) that changed: :data:`GL_CHANGE_SCHEMA`."""
    return _gl_changes(before, after, columns).collect()


def _ar_changes(before: Frame, after: Frame, columns: Mapping[str, str] | None) -> pl.LazyFrame:
    return _changes(
        _prepare(before, "ar", "before", columns), _prepare(after, "ar", "after", columns), _AR_KEYS, _AR_MONEY
    )


def _gl_changes(before: Frame, after: Frame, columns: Mapping[str, str] | None) -> pl.LazyFrame:
    return _changes(
        _prepare(before, "gl", "before", columns), _prepare(after, "gl", "after", columns), _GL_KEYS, _GL_MONEY
    )


def _new_vouchers(before: Frame, after: Frame, ledger: str, columns: Mapping[str, str] | None) -> pl.LazyFrame:
    old = _prepare(before, ledger, "before", columns)
    new = _prepare(after, ledger, "after", columns)
    if ledger == "ar":
        key = ["legal_entity", "Voucher"]
        by = ["legal_entity", "Voucher", "AccountNum", "CurrencyCode"]
        aggs = [pl.col("TransDate").min(), *(pl.col(n).sum().cast(MONEY) for n in _AR_MONEY)]
        schema = AR_VOUCHER_SCHEMA
    else:
        key = ["legal_entity", "SubledgerVoucher", "JournalNumber"]
        by = [*key, "AccountingDate", "MainAccount"]
        aggs = [pl.col("AccountingCurrencyAmount").sum().cast(MONEY)]
        schema = GL_VOUCHER_SCHEMA
    seen = old.select(key).unique()
    return (
        new.join(seen, on=key, how="anti", nulls_equal=True)
        .group_by(by)
        .agg(pl.len().cast(pl.UInt32).alias("rows"), *aggs)
        .sort(by, nulls_last=True)
        .select(list(schema))
    )


def new_vouchers(
    before: Frame,
    after: Frame,
    *,
    ledger: Literal["ar", "gl"],
    columns: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """Vouchers present after and not before: :data:`AR_VOUCHER_SCHEMA` (one row per voucher,
    customer and currency) or :data:`GL_VOUCHER_SCHEMA` (one row per voucher, date and main
    account), with their amounts."""
    if ledger not in ("ar", "gl"):
        raise ValueError(f"ledger is 'ar' or 'gl', not {ledger!r}")
    return _new_vouchers(before, after, ledger, columns).collect()


@dataclass(frozen=True)
class BalanceComparison:
    """What moved in AR and GL between two snapshots (each a frame)."""

    ar_changes: pl.DataFrame  # AR_CHANGE_SCHEMA
    gl_changes: pl.DataFrame  # GL_CHANGE_SCHEMA
    ar_new_vouchers: pl.DataFrame  # AR_VOUCHER_SCHEMA
    gl_new_vouchers: pl.DataFrame  # GL_VOUCHER_SCHEMA

    @property
    def ok(self) -> bool:
        """Nothing moved: no balance changed and no voucher appeared."""
        return not (
            self.ar_changes.height
            or self.gl_changes.height
            or self.ar_new_vouchers.height
            or self.gl_new_vouchers.height
        )

    def summary(self) -> dict[str, int | bool]:
        return {
            "ar_changed_balances": self.ar_changes.height,
            "gl_changed_balances": self.gl_changes.height,
            "ar_new_vouchers": self.ar_new_vouchers.height,
            "gl_new_vouchers": self.gl_new_vouchers.height,
            "ok": self.ok,
        }

    def frames(self) -> dict[str, pl.DataFrame]:
        return {
            "ar_changes": self.ar_changes,
            "gl_changes": self.gl_changes,
            "ar_new_vouchers": self.ar_new_vouchers,
            "gl_new_vouchers": self.gl_new_vouchers,
        }


def compare_balances(
    ar_before: Frame,
    ar_after: Frame,
    gl_before: Frame,
    gl_after: Frame,
    *,
    ar_columns: Mapping[str, str] | None = None,
    gl_columns: Mapping[str, str] | None = None,
) -> BalanceComparison:
    """:func:`compare_ar`, :func:`compare_gl` and both :func:`new_vouchers` in one collect."""
    frames = pl.collect_all(
        [
            _ar_changes(ar_before, ar_after, ar_columns),
            _gl_changes(gl_before, gl_after, gl_columns),
            _new_vouchers(ar_before, ar_after, "ar", ar_columns),
            _new_vouchers(gl_before, gl_after, "gl", gl_columns),
        ]
    )
    return BalanceComparison(*frames)
