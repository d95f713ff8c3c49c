"""Three-way milestone reconciliation on hand-built frames: exact rows, exact Decimals."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import polars as pl
import pytest

from cutover.domain import InvoiceStatus, ProjTransStatus, deterministic_id
from cutover.money import MoneyError
from cutover.reconcile import (
    CONTROL_TOTAL_SCHEMA,
    DUPLICATE_SCHEMA,
    MISMATCH_SCHEMA,
    Tolerances,
    _frames,
    normalise_dataverse,
    normalise_fno,
    normalise_legacy,
    reconcile_milestones,
    reference_from_legacy,
)
from cutover.source.model import VALID_SCHEMA

# --- a hand-built world: milestones on three sides ------------------------------------------------

NS = uuid.UUID("0b7c7a3e-3c1f-4f57-9f5e-5d0d2f9a7e11")
LEGACY_COLUMNS = (
    "legacy_id",
    "milestone_id",
    "legal_entity",
    "contract_number",
    "contract_id",
    "contract_line",
    "line_id",
    "currency",
    "currency_id",
    "amount",
    "tax_amount",
    "milestone_date",
)
LEGACY_SCHEMA = {c: VALID_SCHEMA[c] for c in LEGACY_COLUMNS}


def guid(text: str) -> str:
    return str(uuid.uuid5(NS, text))


def legacy_row(
    legacy_id: str,
    contract: str = "PRJC-000001",
    line: int = 1,
    legal_entity: str = "USMF",
    currency: str = "USD",
    amount: str = "100.00",
    tax: str | None = "10.00",
    date: dt.date = dt.date(2024, 5, 31),
) -> dict:
    return {
        "legacy_id": legacy_id,
        "milestone_id": deterministic_id(legacy_id),
        "legal_entity": legal_entity,
        "contract_number": contract,
        "contract_id": guid(contract),
        "contract_line": line,
        "line_id": guid(f"{contract}-{line}"),
        "currency": currency,
        "currency_id": guid(currency),
        "amount": Decimal(amount),
        "tax_amount": None if tax is None else Decimal(tax),
        "milestone_date": date,
    }


def legacy_frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=LEGACY_SCHEMA, orient="row") if rows else pl.DataFrame(schema=LEGACY_SCHEMA)


def dv_row(legacy: dict, **changes) -> dict:
    row = {
        "@odata.etag": 'W/"1"',
        "msdyn_contractlinescheduleofvalueid": legacy["milestone_id"],
        "msdyn_name": f"Milestone {legacy['legacy_id']}",
        "msdyn_amount": legacy["amount"],
        "msdyn_tax": legacy["tax_amount"],
        "msdyn_invoicedate": legacy["milestone_date"].isoformat(),
        "msdyn_invoicestatus": int(InvoiceStatus.POSTED),
        "_msdyn_contract_value": legacy["contract_id"],
        "_msdyn_contractlineid_value": legacy["line_id"],
        "_transactioncurrencyid_value": legacy["currency_id"],
    }
    row.update(changes)
    return row


def fno_row(legacy: dict, identifier: str = "CLM-0000001", **changes) -> dict:
    row = {
        "@odata.etag": 'W/"x"',
        "dataAreaId": legacy["legal_entity"].lower(),
        "ContractLineMilestoneIdentifier": identifier,
        "ContractLineMilestoneGuid": legacy["milestone_id"],
        "ProjectContractId": legacy["contract_number"],
        "ContractLineId": f"{legacy['contract_number']}-{legacy['contract_line']}",
        "Description": f"Milestone {legacy['legacy_id']}",
        "Amount": legacy["amount"],
        "TransactionDate": f"{legacy['milestone_date'].isoformat()}T12:00:00Z",
        "CustomerAccountNumber": "US-001",
        "TransStatus": "Invoiced",
    }
    row.update(changes)
    return row


def sides(legacy: list[dict], dataverse: list[dict], fno: list[dict], reference_rows: list[dict] | None = None):
    """The three sides normalised (the reference from ``reference_rows``, default the legacy rows)."""
    frame = legacy_frame(legacy)
    reference = reference_from_legacy(legacy_frame(reference_rows if reference_rows is not None else legacy))
    return normalise_legacy(frame), normalise_dataverse(dataverse, reference), normalise_fno(fno)


A = legacy_row("LEG-1", amount="100.00", tax="10.00")
B = legacy_row("LEG-2", line=2, amount="200.50", tax="20.05", date=dt.date(2024, 4, 30))
C = legacy_row("LEG-3", contract="PRJC-000002", legal_entity="DEMF", currency="EUR", amount="300.00", tax=None)
WORLD = [A, B, C]


def run(legacy=WORLD, dataverse=None, fno=None, **options):
    dataverse = [dv_row(r) for r in legacy] if dataverse is None else dataverse
    fno = [fno_row(r, f"CLM-{i:07d}") for i, r in enumerate(legacy, 1)] if fno is None else fno
    return reconcile_milestones(*sides(list(legacy), dataverse, fno, reference_rows=WORLD), **options)


def rows(frame: pl.DataFrame, *columns: str) -> list[tuple]:
    return frame.select(columns).rows()


# --- everything in place ---------------------------------------------------------------------------


def test_three_sides_that_agree_are_ok_with_exact_control_totals():
    result = run()
    assert result.ok
    s = result.summary
    assert (s.legacy_rows, s.dataverse_rows, s.fno_rows, s.matched) == (3, 3, 3, 3)
    assert s.mismatches == s.duplicates == s.missing_in_dataverse == s.unexpected_in_fno == 0
    for name, frame in result.frames().items():
        if name != "control_totals":
            assert frame.height == 0, name
    totals = result.control_totals
    assert totals.schema == pl.Schema(CONTROL_TOTAL_SCHEMA)
    assert rows(totals, "level", "legal_entity", "contract", "line", "currency", "legacy_count", "legacy_amount") == [
        ("contract_line", "DEMF", "PRJC-000002", "PRJC-000002-1", "EUR", 1, Decimal("300.00")),
        ("contract_line", "USMF", "PRJC-000001", "PRJC-000001-1", "USD", 1, Decimal("100.00")),
        ("contract_line", "USMF", "PRJC-000001", "PRJC-000001-2", "USD", 1, Decimal("200.50")),
        ("contract", "DEMF", "PRJC-000002", None, "EUR", 1, Decimal("300.00")),
        ("contract", "USMF", "PRJC-000001", None, "USD", 2, Decimal("300.50")),
        ("legal_entity", "DEMF", None, None, "EUR", 1, Decimal("300.00")),
        ("legal_entity", "USMF", None, None, "USD", 2, Decimal("300.50")),
        ("currency", None, None, None, "EUR", 1, Decimal("300.00")),
        ("currency", None, None, None, "USD", 2, Decimal("300.50")),
    ]
    assert totals["ok"].all()
    assert totals["dataverse_amount"].to_list() == totals["legacy_amount"].to_list() == totals["fno_amount"].to_list()
    assert set(totals["dataverse_difference"].to_list()) == {Decimal(0)}
    assert isinstance(totals["legacy_amount"][0], Decimal)


# --- every kind of mismatch ------------------------------------------------------------------------

ON_A = A["milestone_id"]


@pytest.mark.parametrize(
    ("field", "dv", "fno", "expected"),
    [
        (
            "amount",
            {"msdyn_amount": Decimal("100.01")},
            {"Amount": Decimal("99.5")},
            ("100.00", "100.01", "99.50", "100.00", "+0.01", "-0.50", "0.00", "dataverse, fno"),
        ),
        (
            "tax",
            {"msdyn_tax": Decimal("10.0001")},
            {},
            ("10.00", "10.0001", None, "10.00", "+0.0001", None, "0.00", "dataverse"),
        ),
        (
            "date",
            {},
            {"TransactionDate": "2024-06-03T12:00:00Z"},
            ("2024-05-31", "2024-05-31", "2024-06-03", "2024-05-31", "0", "+3", "0", "fno"),
        ),
        (
            "contract",
            {"_msdyn_contract_value": guid("PRJC-000002")},
            {"ProjectContractId": "PRJC-000009"},
            ("PRJC-000001", "PRJC-000002", "PRJC-000009", "PRJC-000001", None, None, None, "dataverse, fno"),
        ),
        (
            "line",
            {"_msdyn_contractlineid_value": guid("PRJC-000001-2")},
            {},
            ("PRJC-000001-1", "PRJC-000001-2", "PRJC-000001-1", "PRJC-000001-1", None, None, None, "dataverse"),
        ),
        (
            "legal_entity",
            {},
            {"dataAreaId": "demf"},
            ("USMF", "USMF", "DEMF", "USMF", None, None, None, "fno"),
        ),
        (
            "currency",
            {"_transactioncurrencyid_value": guid("EUR")},
            {"CurrencyCode": "usd"},
            ("USD", "EUR", "USD", "USD", None, None, None, "dataverse"),
        ),
        (
            "invoice_status",
            {"msdyn_invoicestatus": int(InvoiceStatus.READY)},
            {},
            (
                None,
                "Ready for invoicing (192350001)",
                None,
                "Customer invoice posted (192350003)",
                None,
                None,
                None,
                "dataverse",
            ),
        ),
        (
            "trans_status",
            {},
            {"TransStatus": "Registered"},
            (None, None, "Registered", "Invoiced", None, None, None, "fno"),
        ),
    ],
)
def test_each_field_mismatch_is_one_exact_row(field, dv, fno, expected):
    dataverse = [dv_row(A, **dv), dv_row(B), dv_row(C)]
    fno_rows = [fno_row(A, "CLM-1", **fno), fno_row(B, "CLM-2"), fno_row(C, "CLM-3")]
    if field == "currency":  # F&O rows carry CurrencyCode only in this case
        fno_rows = [{**r, "CurrencyCode": r.get("CurrencyCode", x["currency"])} for r, x in zip(fno_rows, WORLD)]
    result = run(dataverse=dataverse, fno=fno_rows)
    m = result.mismatches
    assert m.schema == pl.Schema(MISMATCH_SCHEMA)
    assert m.rows() == [(ON_A, "LEG-1", field, *expected)]
    assert result.summary.mismatched_milestones == 1
    assert not result.ok
    assert result.missing_in_dataverse.height == result.unexpected_in_fno.height == 0


def test_a_null_against_a_value_differs_and_two_nulls_agree():
    # C has no tax in the extract; Dataverse holding one is a mismatch, holding none is not
    result = run(dataverse=[dv_row(A), dv_row(B), dv_row(C, msdyn_tax=Decimal("0"))])
    assert rows(result.mismatches, "legacy_id", "field", "legacy", "dataverse") == [("LEG-3", "tax", None, "0.00")]
    assert run().mismatches.height == 0


def test_expectations_are_parameters():
    ready = [dv_row(r, msdyn_invoicestatus=int(InvoiceStatus.READY)) for r in WORLD]
    assert run(dataverse=ready, expected_invoice_status=InvoiceStatus.READY).ok
    assert run(dataverse=ready, expected_invoice_status=None).ok
    assert run(dataverse=ready).summary.mismatches == 3
    registered = [fno_row(r, f"CLM-{i}", TransStatus="Registered") for i, r in enumerate(WORLD)]
    assert run(fno=registered, expected_trans_status="Registered").ok
    assert run(fno=registered, expected_trans_status=ProjTransStatus.REGISTERED).ok
    assert run(fno=registered, expected_trans_status=None).ok
    assert run(fno=registered).summary.mismatches == 3


@pytest.mark.parametrize(
    "sent", [4, "4", "Invoiced", "invoiced", "Microsoft.Dynamics.DataEntities.ProjTransStatus'Invoiced'"]
)
def test_transstatus_is_read_in_every_form_fno_sends(sent):
    frame = normalise_fno([fno_row(A, TransStatus=sent)]).collect()
    assert frame["trans_status"].to_list() == ["Invoiced"]


# --- tolerances ------------------------------------------------------------------------------------


def test_amount_tolerance_within_and_outside():
    dataverse = [dv_row(A, msdyn_amount=Decimal("100.01")), dv_row(B, msdyn_amount=Decimal("200.48")), dv_row(C)]
    result = run(dataverse=dataverse, tolerances={"amount": "0.01", "total": "0.05"})
    assert rows(result.mismatches, "legacy_id", "field", "dataverse_difference", "tolerance") == [
        ("LEG-2", "amount", "-0.02", "0.01")
    ]
    line_b = result.control_totals.filter(pl.col("line") == "PRJC-000001-2")
    assert line_b["dataverse_difference"].to_list() == [Decimal("-0.02")]
    assert line_b["ok"].to_list() == [True]  # within the total tolerance of 0.05
    strict = run(dataverse=dataverse)
    assert rows(strict.mismatches, "legacy_id", "field") == [("LEG-1", "amount"), ("LEG-2", "amount")]
    assert strict.summary.control_totals_off == 5  # both USD lines, their contract, legal entity and currency


def test_date_tolerance_in_days():
    fno_rows = [
        fno_row(A, TransactionDate="2024-06-01T00:00:00Z"),
        fno_row(B, TransactionDate="2024-04-28T23:59:59Z"),
        fno_row(C),
    ]
    result = run(fno=fno_rows, tolerances=Tolerances(date=1))
    assert rows(result.mismatches, "legacy_id", "field", "fno", "fno_difference", "tolerance") == [
        ("LEG-2", "date", "2024-04-28", "-2", "1")
    ]
    assert run(fno=fno_rows, tolerances={"date": 2}).ok


def test_tolerances_are_checked():
    assert Tolerances.of({"amount": "0.01"}).amount == Decimal("0.01")
    assert Tolerances.of(None) == Tolerances()
    with pytest.raises(MoneyError):
        Tolerances.of({"amount": 0.01})
    with pytest.raises(ValueError, match="unknown tolerance"):
        Tolerances.of({"amonut": "1"})
    with pytest.raises(ValueError):
        Tolerances(amount=Decimal("-1"))
    with pytest.raises(ValueError):
        Tolerances(date=1.5)  # type: ignore[arg-type]


# --- duplicates, missing, unexpected ---------------------------------------------------------------


def test_duplicates_on_either_side_are_reported_never_collapsed():
    legacy = [*WORLD, C]  # the extract names LEG-3 twice
    dataverse = [dv_row(A), dv_row(A), dv_row(B), dv_row(C)]
    fno_rows = [
        fno_row(A, "CLM-1"),
        fno_row(B, "CLM-2"),
        fno_row(B, "CLM-9", Amount=Decimal("999.00")),
        fno_row(C, "CLM-3"),
    ]
    result = run(legacy=legacy, dataverse=dataverse, fno=fno_rows)
    assert result.duplicates.schema == pl.Schema(DUPLICATE_SCHEMA)
    assert result.duplicates.rows() == [
        ("legacy", C["milestone_id"], 2),
        ("dataverse", A["milestone_id"], 2),
        ("fno", B["milestone_id"], 2),
    ]
    # every copy compared: the second F&O copy of LEG-2 differs
    assert rows(result.mismatches, "legacy_id", "field", "fno") == [("LEG-2", "amount", "999.00")]
    # and counted: no copy disappears from the totals
    line = result.control_totals.filter(pl.col("level") == "contract_line")
    assert rows(line, "line", "legacy_count", "dataverse_count", "fno_count", "fno_amount") == [
        ("PRJC-000002-1", 2, 1, 1, Decimal("300.00")),
        ("PRJC-000001-1", 1, 2, 1, Decimal("100.00")),
        ("PRJC-000001-2", 1, 1, 2, Decimal("1199.50")),
    ]
    assert result.summary.duplicates == 3
    assert not result.ok


def test_missing_and_unexpected_with_contract_scope():
    stray = {**B, "legacy_id": "HAND-1", "milestone_id": guid("hand-entered"), "contract_line": 3}
    other = {**B, "legacy_id": "OTHER", "milestone_id": guid("other"), "contract_number": "PRJC-000099"}
    other_ref = {**other, "contract_id": guid("PRJC-000099"), "line_id": guid("PRJC-000099-2")}
    dataverse = [
        dv_row(A),
        dv_row(C),
        dv_row(stray, _msdyn_contractlineid_value=guid("PRJC-000001-3")),
        dv_row(other_ref),
    ]
    fno_rows = [
        fno_row(A, "CLM-1"),
        fno_row(B, "CLM-2"),
        fno_row(stray, "CLM-7"),
        fno_row(other, "CLM-8"),
        fno_row(A, "CLM-HAND", ContractLineMilestoneGuid=None),
    ]
    result = run(dataverse=dataverse, fno=fno_rows)
    assert rows(result.missing_in_dataverse, "legacy_id", "amount") == [("LEG-2", Decimal("200.50"))]
    assert rows(result.missing_in_fno, "legacy_id") == [("LEG-3",)]
    # the stray milestone sits on line 3 of an extract contract: in scope; PRJC-000099 is not
    assert rows(result.unexpected_in_dataverse, "milestone_id", "contract", "line") == [
        (guid("hand-entered"), "PRJC-000001", guid("PRJC-000001-3"))  # a line the reference does not know
    ]
    assert rows(result.unexpected_in_fno, "fno_identifier", "milestone_id", "line") == [
        ("CLM-HAND", None, "PRJC-000001-1"),
        ("CLM-7", guid("hand-entered"), "PRJC-000001-3"),
    ]
    s = result.summary
    assert (s.missing_in_dataverse, s.missing_in_fno, s.unexpected_in_dataverse, s.unexpected_in_fno) == (1, 1, 1, 2)
    assert (s.dataverse_rows, s.fno_rows, s.matched) == (3, 4, 1)
    assert "PRJC-000099" not in result.control_totals["contract"].to_list()
    by_line = result.control_totals.filter(pl.col("level") == "contract_line")
    assert rows(by_line.filter(pl.col("line") == "PRJC-000001-3"), "legacy_count", "fno_count", "fno_amount") == [
        (0, 1, Decimal("200.50"))
    ]


def test_line_scope_leaves_other_lines_of_the_contract_alone():
    stray = {**B, "legacy_id": "HAND-1", "milestone_id": guid("hand-entered"), "contract_line": 3}
    fno_rows = [fno_row(A, "CLM-1"), fno_row(B, "CLM-2"), fno_row(C, "CLM-3"), fno_row(stray, "CLM-7")]
    assert run(fno=fno_rows).summary.unexpected_in_fno == 1
    assert run(fno=fno_rows, scope="line").ok


# --- empty, multi-currency, ids --------------------------------------------------------------------


def test_empty_inputs_give_empty_findings():
    result = run(legacy=[], dataverse=[], fno=[])
    assert result.ok
    assert all(f.height == 0 for f in result.frames().values())
    assert result.mismatches.schema == pl.Schema(MISMATCH_SCHEMA)
    assert result.control_totals.schema == pl.Schema(CONTROL_TOTAL_SCHEMA)
    nothing = reconcile_milestones(
        normalise_legacy(pl.DataFrame()),
        normalise_dataverse(pl.DataFrame(), reference_from_legacy(pl.DataFrame())),
        normalise_fno(pl.DataFrame()),
    )
    assert nothing.ok and nothing.summary.legacy_rows == 0


def test_nothing_arrived_yet_is_all_missing():
    result = run(dataverse=[], fno=[])
    assert result.summary.missing_in_dataverse == result.summary.missing_in_fno == 3
    assert result.mismatches.height == 0
    usd = result.control_totals.filter((pl.col("level") == "currency") & (pl.col("currency") == "USD"))
    assert rows(usd, "legacy_amount", "dataverse_amount", "dataverse_difference", "ok") == [
        (Decimal("300.50"), Decimal("0"), Decimal("-300.50"), False)
    ]


def test_currencies_are_never_added_together():
    eur_in_usmf = legacy_row("LEG-4", contract="PRJC-000003", currency="EUR", amount="50.00")
    legacy = [*WORLD, eur_in_usmf]
    result = reconcile_milestones(
        *sides(legacy, [dv_row(r) for r in legacy], [fno_row(r) for r in legacy]),
    )
    assert result.ok
    le = result.control_totals.filter(pl.col("level") == "legal_entity")
    assert rows(le, "legal_entity", "currency", "legacy_count", "fno_count", "fno_amount") == [
        ("DEMF", "EUR", 1, 1, Decimal("300.00")),
        ("USMF", "EUR", 1, 1, Decimal("50.00")),
        ("USMF", "USD", 2, 2, Decimal("300.50")),
    ]
    cur = result.control_totals.filter(pl.col("level") == "currency")
    assert rows(cur, "currency", "legacy_amount", "dataverse_amount") == [
        ("EUR", Decimal("350.00"), Decimal("350.00")),
        ("USD", Decimal("300.50"), Decimal("300.50")),
    ]


def test_fno_rows_without_currency_are_totalled_in_their_lines_currency():
    result = run()
    fno_by_currency = result.control_totals.filter(pl.col("level") == "currency")
    assert rows(fno_by_currency, "currency", "fno_count", "fno_amount") == [
        ("EUR", 1, Decimal("300.00")),
        ("USD", 2, Decimal("300.50")),
    ]


@pytest.mark.parametrize("wide", [True, False])
def test_ids_join_as_128_bit_numbers(monkeypatch, wide):
    if wide and not hasattr(pl, "UInt128"):
        pytest.skip("this polars has no UInt128")
    monkeypatch.setattr(_frames, "WIDE_KEY", wide)
    x = {**A, "legacy_id": "X-0", "milestone_id": "6f1d3c2a-0000-4000-8000-00000000000a"}
    y = {**A, "legacy_id": "X-1", "milestone_id": "6f1d3c2a-0000-4000-8000-00000000000b"}
    upper_braced = "{6F1D3C2A-0000-4000-8000-00000000000B}"
    dataverse = [dv_row(y, msdyn_contractlinescheduleofvalueid=upper_braced)]
    fno_rows = [
        fno_row(y, ContractLineMilestoneGuid="6f1d3c2a000040008000-00000000000b"),
        fno_row(x, "CLM-BAD", ContractLineMilestoneGuid="+f1d3c2a-0000-4000-8000-00000000000a"),
    ]
    result = reconcile_milestones(*sides([x, y], dataverse, fno_rows, reference_rows=WORLD))
    assert rows(result.missing_in_dataverse, "legacy_id") == [("X-0",)]
    assert rows(result.missing_in_fno, "legacy_id") == [("X-0",)]  # "+f1d…" is no GUID: it joins nothing
    assert rows(result.unexpected_in_fno, "fno_identifier") == [("CLM-BAD",)]
    assert result.mismatches.height == 0
    assert result.summary.matched == 1


# --- money and inputs ------------------------------------------------------------------------------


def test_money_is_decimal_never_float():
    with pytest.raises(MoneyError):
        normalise_dataverse([dv_row(A, msdyn_amount=100.0)], reference_from_legacy(legacy_frame(WORLD)))
    with pytest.raises(MoneyError, match="never a float"):
        normalise_legacy(legacy_frame(WORLD).with_columns(pl.col("amount").cast(pl.Float64)))
    legacy, dv, fno = sides(WORLD, [dv_row(r) for r in WORLD], [fno_row(r) for r in WORLD])
    with pytest.raises(MoneyError, match="never a float"):
        reconcile_milestones(legacy, dv.with_columns(pl.col("amount").cast(pl.Float64)), fno)
    fno = normalise_fno([fno_row(A, Amount=5000), fno_row(B, Amount="200.5")]).collect()
    assert fno["amount"].to_list() == [Decimal("5000"), Decimal("200.5")]


def test_lazy_parquet_inputs_give_the_same_findings(tmp_path):
    dataverse = [dv_row(A, msdyn_amount=Decimal("1.00")), dv_row(B), dv_row(C)]
    legacy, dv, fno = sides(WORLD, dataverse, [fno_row(r) for r in WORLD])
    paths = []
    for name, frame in (("l", legacy), ("d", dv), ("f", fno)):
        path = tmp_path / f"{name}.parquet"
        frame.collect().write_parquet(path)
        paths.append(pl.scan_parquet(path))
    eager = reconcile_milestones(legacy.collect(), dv.collect(), fno.collect())
    lazy = reconcile_milestones(*paths)
    for name, frame in eager.frames().items():
        assert frame.equals(lazy.frames()[name]), name
    assert rows(lazy.mismatches, "field", "dataverse_difference") == [("amount", "-99.00")]


def test_a_side_without_required_columns_is_refused():
    with pytest.raises(ValueError, match="no column"):
        reconcile_milestones(pl.DataFrame({"milestone_id": ["x"]}), pl.DataFrame(), pl.DataFrame())


def test_a_side_without_currency_and_a_side_with_it_are_compared_on_what_each_has():
    # The roles swapped from the usual: F&O rows carry CurrencyCode (one of them wrong), the
    # Dataverse frame has no currency; the other text fields of both are still compared.
    fno = [fno_row(r, f"CLM-{i:07d}", CurrencyCode=r["currency"]) for i, r in enumerate(WORLD, 1)]
    fno[1]["CurrencyCode"] = "EUR"
    dataverse = [dv_row(r) for r in WORLD]
    dataverse[2]["_msdyn_contractlineid_value"] = A["line_id"]  # LEG-3 on USMF's line 1
    legacy, dv, fno_frame = sides(WORLD, dataverse, fno)
    result = reconcile_milestones(legacy, dv.drop("currency"), fno_frame)
    assert rows(result.mismatches, "legacy_id", "field", "legacy", "dataverse", "fno", "differs") == [
        ("LEG-2", "currency", "USD", None, "EUR", "fno"),
        ("LEG-3", "line", "PRJC-000002-1", "PRJC-000001-1", "PRJC-000002-1", "dataverse"),
        ("LEG-3", "legal_entity", "DEMF", "USMF", "DEMF", "dataverse"),
    ]
