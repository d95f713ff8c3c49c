"""Steps about Accounts receivable and the General ledger: the snapshots before and after.

Step texts (``<…>`` is a parameter an accountant may change):

- ``Given the customer transactions before and after the cutover``
- ``Given the general ledger before and after the cutover``
- ``Then no customer balance in <legal entities> moved by more than <tolerance>``
- ``Then no main account balance in <legal entities> moved by more than <tolerance>``
- ``Then no customer transaction was posted in <legal entities>``
- ``Then no voucher was posted in the general ledger of <legal entities>``

``<legal entities>`` is ``every legal entity in scope`` (``scope.toml``'s list, else the
legal entities the snapshots were taken for) or codes (``USMF``, ``USMF and DEMF``);
``<tolerance>`` is ``the scope's tolerance`` or an amount (``0.01``), compared with each
balance's movement in its own currency (AR: the transaction currency and the accounting
currency; GL: the accounting currency). A balance is one legal entity × customer × currency
(AR) or one legal entity × main account (GL).
"""

from __future__ import annotations

import polars as pl
from pytest_bdd import given, parsers, then

from cutover.reconcile import MONEY

from ..outcomes import Finding
from ..recorder import money, row_list, signed
from ..scope import amount


def _tolerance(words: str, default) -> object:
    text = words.strip()
    if text.lower() in ("the scope's tolerance", "the scopes tolerance", "scope"):
        return default
    return amount(text, "tolerance")


def _snapshot_figures(cutover, evidence, ledger: str) -> None:
    for label in ("before", "after"):
        manifest = cutover.snapshots[label][2]
        rows = manifest.ar_rows if ledger == "ar" else manifest.gl_rows
        evidence.figure(f"{ledger.upper()} rows {label}", rows)
        evidence.figure(f"snapshot {label} taken (UTC)", manifest.finished_utc.strftime("%Y-%m-%d %H:%M:%S"))
        if manifest.sha256:
            evidence.figure(f"snapshot {label} manifest SHA-256", manifest.sha256)


@given("the customer transactions before and after the cutover", target_fixture="balances")
def _(cutover, evidence):
    _snapshot_figures(cutover, evidence, "ar")
    return cutover.balances


@given("the general ledger before and after the cutover", target_fixture="balances")
def _(cutover, evidence):
    _snapshot_figures(cutover, evidence, "gl")
    return cutover.balances


def _moved(frame: pl.DataFrame, columns: tuple[str, ...], tolerance) -> pl.DataFrame:
    tol = pl.lit(tolerance, MONEY)
    return frame.filter(pl.any_horizontal([pl.col(f"{c}_delta").abs() > tol for c in columns]))


@then(parsers.parse("no customer balance in {legal_entities} moved by more than {tolerance}"))
def _(cutover, scope, balances, evidence, legal_entities, tolerance):
    entities = cutover.legal_entities_in(legal_entities, scope.legal_entities)
    tol = _tolerance(tolerance, scope.customer_balance)
    changes = balances.ar_changes.filter(pl.col("legal_entity").is_in(list(entities)))
    moved = _moved(changes, ("AmountCur", "AmountMst"), tol)
    evidence.figure("legal entities", ", ".join(entities))
    evidence.figure("tolerance", tol)
    evidence.figure("customer balances that changed", changes.height)
    evidence.figure("moved by more than the tolerance", moved.height)
    if changes.height:
        evidence.table(
            "ar_balance_changes", changes, "Customer balances that changed (legal entity, customer, currency)"
        )
    if moved.height:
        lines = [
            f"customer {r['AccountNum']} in {r['legal_entity']} ({r['CurrencyCode']}): {money(r['AmountCur_before'])} before, "
            f"{money(r['AmountCur_after'])} after ({signed(r['AmountCur_delta'])}; accounting currency {signed(r['AmountMst_delta'])})"
            for r in moved.iter_rows(named=True)
        ]
        raise Finding(
            f"{moved.height:,} customer balance(s) moved by more than {money(tol)}: " + row_list(lines, moved.height)
        )


@then(parsers.parse("no main account balance in {legal_entities} moved by more than {tolerance}"))
def _(cutover, scope, balances, evidence, legal_entities, tolerance):
    entities = cutover.legal_entities_in(legal_entities, scope.legal_entities)
    tol = _tolerance(tolerance, scope.ledger_balance)
    changes = balances.gl_changes.filter(pl.col("legal_entity").is_in(list(entities)))
    moved = _moved(changes, ("AccountingCurrencyAmount",), tol)
    evidence.figure("legal entities", ", ".join(entities))
    evidence.figure("tolerance", tol)
    evidence.figure("main account balances that changed", changes.height)
    evidence.figure("moved by more than the tolerance", moved.height)
    if changes.height:
        evidence.table("gl_balance_changes", changes, "Main account balances that changed (legal entity, main account)")
    if moved.height:
        lines = [
            f"main account {r['MainAccount']} in {r['legal_entity']}: {money(r['AccountingCurrencyAmount_before'])} before, "
            f"{money(r['AccountingCurrencyAmount_after'])} after ({signed(r['AccountingCurrencyAmount_delta'])})"
            for r in moved.iter_rows(named=True)
        ]
        raise Finding(
            f"{moved.height:,} main account balance(s) moved by more than {money(tol)}: "
            + row_list(lines, moved.height)
        )


@then(parsers.parse("no customer transaction was posted in {legal_entities}"))
def _(cutover, scope, balances, evidence, legal_entities):
    entities = cutover.legal_entities_in(legal_entities, scope.legal_entities)
    new = balances.ar_new_vouchers.filter(pl.col("legal_entity").is_in(list(entities)))
    evidence.figure("legal entities", ", ".join(entities))
    evidence.figure("new customer vouchers", new.height)
    if new.height:
        evidence.table("ar_new_vouchers", new, "Customer transactions posted during the cutover")
        lines = [
            f"voucher {r['Voucher']} for customer {r['AccountNum']} in {r['legal_entity']}: {r['CurrencyCode']} "
            f"{signed(r['AmountCur'])} on {str(r['TransDate'] or '')[:10]}"
            for r in new.iter_rows(named=True)
        ]
        raise Finding(f"{new.height:,} customer transaction(s) were posted: " + row_list(lines, new.height))


@then(parsers.parse("no voucher was posted in the general ledger of {legal_entities}"))
def _(cutover, scope, balances, evidence, legal_entities):
    entities = cutover.legal_entities_in(legal_entities, scope.legal_entities)
    new = balances.gl_new_vouchers.filter(pl.col("legal_entity").is_in(list(entities)))
    evidence.figure("legal entities", ", ".join(entities))
    evidence.figure("new voucher lines (voucher × main account)", new.height)
    evidence.figure(
        "new vouchers", new.select("legal_entity", "SubledgerVoucher", "JournalNumber").n_unique() if new.height else 0
    )
    if new.height:
        evidence.table("gl_new_vouchers", new, "General ledger vouchers posted during the cutover")
        lines = [
            f"voucher {r['SubledgerVoucher']} (journal {r['JournalNumber']}) in {r['legal_entity']}: main account "
            f"{r['MainAccount']} {signed(r['AccountingCurrencyAmount'])} on {str(r['AccountingDate'] or '')[:10]}"
            for r in new.iter_rows(named=True)
        ]
        raise Finding(
            f"{new.height:,} general ledger line(s) were posted in new vouchers: " + row_list(lines, new.height)
        )
