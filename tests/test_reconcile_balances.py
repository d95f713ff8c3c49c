"""AR/GL balance comparison of two snapshots on hand-built frames: exact rows, exact Decimals."""

from __future__ import annotations

from decimal import Decimal

import polars as pl
import pytest

from cutover.money import MoneyError, polars_dtype
from cutover.reconcile import (
    AR_CHANGE_SCHEMA,
    AR_VOUCHER_SCHEMA,
    GL_CHANGE_SCHEMA,
    GL_VOUCHER_SCHEMA,
    compare_ar,
    compare_balances,
    compare_gl,
    new_vouchers,
)

SNAP = polars_dtype(16)  # what cutover.snapshot writes: Decimal(38, 16)
AR = {
    "legal_entity": pl.String(),
    "dataAreaId": pl.String(),
    "RecId": pl.Int64(),
    "AccountNum": pl.String(),
    "Voucher": pl.String(),
    "TransDate": pl.String(),
    "AmountCur": SNAP,
    "AmountMst": SNAP,
    "CurrencyCode": pl.String(),
}
GL = {
    "legal_entity": pl.String(),
    "SourceKey": pl.Int64(),
    "GeneralJournalEntry": pl.Int64(),
    "AccountingDate": pl.String(),
    "SubledgerVoucher": pl.String(),
    "JournalNumber": pl.String(),
    "MainAccount": pl.String(),
    "AccountingCurrencyAmount": SNAP,
}


def ar(*rows) -> pl.DataFrame:
    out = [
        {
            "legal_entity": le,
            "dataAreaId": le.lower(),
            "RecId": i,
            "AccountNum": cust,
            "Voucher": voucher,
            "TransDate": date,
            "AmountCur": Decimal(cur),
            "AmountMst": Decimal(mst),
            "CurrencyCode": ccy,
        }
        for i, (le, cust, ccy, voucher, date, cur, mst) in enumerate(rows, 1)
    ]
    return pl.DataFrame(out, schema=AR, orient="row") if out else pl.DataFrame(schema=AR)


def gl(*rows) -> pl.DataFrame:
    out = [
        {
            "legal_entity": le,
            "SourceKey": i,
            "GeneralJournalEntry": 1000 + i,
            "AccountingDate": date,
            "SubledgerVoucher": voucher,
            "JournalNumber": journal,
            "MainAccount": account,
            "AccountingCurrencyAmount": Decimal(amount),
        }
        for i, (le, account, voucher, journal, date, amount) in enumerate(rows, 1)
    ]
    return pl.DataFrame(out, schema=GL, orient="row") if out else pl.DataFrame(schema=GL)


AR_BEFORE = ar(
    ("USMF", "US-001", "USD", "CIV-000001", "2024-01-10", "1000.00", "1000.00"),
    ("USMF", "US-001", "USD", "ARP-000001", "2024-02-10", "-400.00", "-400.00"),
    ("USMF", "US-001", "EUR", "CIV-000002", "2024-03-01", "500.00", "540.00"),
    ("DEMF", "DE-002", "EUR", "CIV-000001", "2024-03-05", "250.00", "250.00"),
)
GL_BEFORE = gl(
    ("USMF", "130100", "CIV-000001", "GJ-1", "2024-01-10", "1000.00"),
    ("USMF", "401100", "CIV-000001", "GJ-1", "2024-01-10", "-1000.00"),
    ("DEMF", "130100", "CIV-000001", "GJ-7", "2024-03-05", "250.00"),
    ("DEMF", "401100", "CIV-000001", "GJ-7", "2024-03-05", "-250.00"),
)


def test_unchanged_snapshots_show_nothing():
    result = compare_balances(AR_BEFORE, AR_BEFORE.sample(fraction=1, shuffle=True, seed=3), GL_BEFORE, GL_BEFORE)
    assert result.ok
    assert result.summary() == {
        "ar_changed_balances": 0,
        "gl_changed_balances": 0,
        "ar_new_vouchers": 0,
        "gl_new_vouchers": 0,
        "ok": True,
    }
    assert result.ar_changes.schema == pl.Schema(AR_CHANGE_SCHEMA)
    assert result.gl_new_vouchers.schema == pl.Schema(GL_VOUCHER_SCHEMA)


def test_ar_changed_balances_per_legal_entity_customer_and_currency():
    after = pl.concat(
        [
            AR_BEFORE,
            ar(
                ("USMF", "US-001", "EUR", "CIV-000099", "2024-06-01", "120.50", "130.14"),  # an invoice posted twice
                ("USMF", "US-003", "USD", "CIV-000100", "2024-06-01", "75.00", "75.00"),  # a customer new to AR
            ),
        ]
    )
    changes = compare_ar(AR_BEFORE, after)
    assert changes.schema == pl.Schema(AR_CHANGE_SCHEMA)
    assert changes.rows() == [
        (
            "USMF",
            "US-001",
            "EUR",
            1,
            2,
            Decimal("500.00"),
            Decimal("620.50"),
            Decimal("120.50"),
            Decimal("540.00"),
            Decimal("670.14"),
            Decimal("130.14"),
        ),
        (
            "USMF",
            "US-003",
            "USD",
            0,
            1,
            Decimal(0),
            Decimal("75.00"),
            Decimal("75.00"),
            Decimal(0),
            Decimal("75.00"),
            Decimal("75.00"),
        ),
    ]
    # the US-001 USD balance did not move and the EUR one is its own row: currencies never add up
    assert isinstance(changes["AmountCur_delta"][0], Decimal)


def test_a_pair_that_nets_to_zero_still_shows_as_a_changed_balance_and_as_new_vouchers():
    after = pl.concat(
        [
            AR_BEFORE,
            ar(
                ("DEMF", "DE-002", "EUR", "CIV-000050", "2024-06-01", "10.00", "10.00"),
                ("DEMF", "DE-002", "EUR", "CCN-000050", "2024-06-01", "-10.00", "-10.00"),
            ),
        ]
    )
    changes = compare_ar(AR_BEFORE, after)
    assert changes.select("AccountNum", "rows_before", "rows_after", "AmountCur_delta").rows() == [
        ("DE-002", 1, 3, Decimal(0))
    ]
    vouchers = new_vouchers(AR_BEFORE, after, ledger="ar")
    assert vouchers.schema == pl.Schema(AR_VOUCHER_SCHEMA)
    assert vouchers.rows() == [
        ("DEMF", "CCN-000050", "DE-002", "EUR", "2024-06-01", 1, Decimal("-10.00"), Decimal("-10.00")),
        ("DEMF", "CIV-000050", "DE-002", "EUR", "2024-06-01", 1, Decimal("10.00"), Decimal("10.00")),
    ]


def test_a_removed_transaction_is_a_change_too():
    after = AR_BEFORE.filter(pl.col("Voucher") != "ARP-000001")
    changes = compare_ar(AR_BEFORE, after)
    assert changes.select(
        "AccountNum", "CurrencyCode", "AmountMst_before", "AmountMst_after", "AmountMst_delta"
    ).rows() == [("US-001", "USD", Decimal("600.00"), Decimal("1000.00"), Decimal("400.00"))]
    assert new_vouchers(AR_BEFORE, after, ledger="ar").height == 0


def test_gl_changed_balances_and_new_vouchers():
    after = pl.concat(
        [
            GL_BEFORE,
            gl(
                ("USMF", "130100", "CIV-000099", "GJ-9", "2024-06-01", "130.14"),
                ("USMF", "401100", "CIV-000099", "GJ-9", "2024-06-01", "-130.14"),
                # the same voucher posted again in another journal is new
                ("DEMF", "130100", "CIV-000001", "GJ-8", "2024-06-02", "250.00"),
                ("DEMF", "401100", "CIV-000001", "GJ-8", "2024-06-02", "-250.00"),
            ),
        ]
    )
    result = compare_balances(AR_BEFORE, AR_BEFORE, GL_BEFORE, after)
    assert result.gl_changes.schema == pl.Schema(GL_CHANGE_SCHEMA)
    assert result.gl_changes.rows() == [
        ("DEMF", "130100", 1, 2, Decimal("250.00"), Decimal("500.00"), Decimal("250.00")),
        ("DEMF", "401100", 1, 2, Decimal("-250.00"), Decimal("-500.00"), Decimal("-250.00")),
        ("USMF", "130100", 1, 2, Decimal("1000.00"), Decimal("1130.14"), Decimal("130.14")),
        ("USMF", "401100", 1, 2, Decimal("-1000.00"), Decimal("-1130.14"), Decimal("-130.14")),
    ]
    assert result.gl_new_vouchers.rows() == [
        ("DEMF", "CIV-000001", "GJ-8", "2024-06-02", "130100", 1, Decimal("250.00")),
        ("DEMF", "CIV-000001", "GJ-8", "2024-06-02", "401100", 1, Decimal("-250.00")),
        ("USMF", "CIV-000099", "GJ-9", "2024-06-01", "130100", 1, Decimal("130.14")),
        ("USMF", "CIV-000099", "GJ-9", "2024-06-01", "401100", 1, Decimal("-130.14")),
    ]
    assert result.ar_changes.height == result.ar_new_vouchers.height == 0
    assert not result.ok
    assert compare_gl(GL_BEFORE, after).equals(result.gl_changes)
    assert new_vouchers(GL_BEFORE, after, ledger="gl").equals(result.gl_new_vouchers)


def test_empty_snapshots_and_a_first_snapshot_against_an_empty_one():
    assert compare_balances(ar(), ar(), gl(), gl()).ok
    assert compare_balances(pl.DataFrame(), pl.DataFrame(), pl.DataFrame(), pl.DataFrame()).ok
    everything = compare_ar(ar(), AR_BEFORE)
    assert everything.height == 3  # US-001 USD, US-001 EUR, DE-002 EUR
    assert new_vouchers(gl(), GL_BEFORE, ledger="gl").height == 4


def test_other_column_names_are_mapped_and_legal_entity_comes_from_dataareaid():
    before = AR_BEFORE.drop("legal_entity").rename({"AccountNum": "customer", "AmountMst": "mst"})
    after = pl.concat([AR_BEFORE, ar(("USMF", "US-001", "USD", "CIV-000077", "2024-06-01", "1.00", "1.00"))])
    after = after.drop("legal_entity").rename({"AccountNum": "customer", "AmountMst": "mst"})
    mapping = {"customer": "AccountNum", "mst": "AmountMst"}
    changes = compare_ar(before.lazy(), after.lazy(), columns=mapping)
    assert changes.select("legal_entity", "AccountNum", "CurrencyCode", "AmountCur_delta").rows() == [
        ("USMF", "US-001", "USD", Decimal("1.00"))
    ]
    with pytest.raises(ValueError, match="no column AccountNum"):
        compare_ar(before, after)


def test_money_must_not_be_float():
    floats = AR_BEFORE.with_columns(pl.col("AmountCur").cast(pl.Float64))
    with pytest.raises(MoneyError):
        compare_ar(AR_BEFORE, floats)
    with pytest.raises(ValueError, match="'ar' or 'gl'"):
        new_vouchers(AR_BEFORE, AR_BEFORE, ledger="ap")  # type: ignore[arg-type]
