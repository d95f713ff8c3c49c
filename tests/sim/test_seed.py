"""The rehearsal world generator (cutover.sim.seed): what a rehearsal can rely on in a seeded world."""

from __future__ import annotations

import csv
import hashlib
import os
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from cutover.sim import store
from cutover.sim.schema import (
    ALL_SETS,
    BILLING_FIXED_PRICE,
    BILLING_TIME_AND_MATERIAL,
    MONEY_SCALE,
    ORDER_TYPE_WORK_BASED,
)
from cutover.sim.seed import (
    EXTRACT_COLUMNS,
    SCALES,
    WORLD_DATE,
    Scale,
    SeedSummary,
    convert,
    entity_guid,
    organization_id,
    seed_world,
)

TINY = Scale(
    legal_entities=3,
    customers=7,
    contracts=5,
    fixed_price_lines_per_contract=2,
    tm_lines_per_contract=1,
    invoiced_milestones=12,
    uninvoiced_milestones=5,
    ar_transactions=30,
    gl_lines=151,
)


def _seed(tmp_path: Path, name: str, scale: Scale = SCALES["small"], seed: int = 7, **kw):
    conn = store.connect(tmp_path / f"{name}.db")
    extract = tmp_path / f"{name}.csv"
    summary = seed_world(conn, scale, seed=seed, scale_name=kw.pop("scale_name", "small"), extract_path=extract, **kw)
    return conn, extract, summary


def _table_hashes(conn: sqlite3.Connection) -> dict[str, str]:
    out = {}
    for entity in ALL_SETS:
        order = ", ".join(f'"{k}"' for k in entity.key)
        h = hashlib.sha256()
        for row in conn.execute(f'SELECT * FROM "{entity.table}" ORDER BY {order}'):
            h.update(repr(row).encode())
        out[entity.table] = h.hexdigest()
    h = hashlib.sha256()
    for row in conn.execute("SELECT key, value FROM sim_settings ORDER BY key"):
        h.update(repr(row).encode())
    out["sim_settings"] = h.hexdigest()
    return out


def _read_extract(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _count(conn: sqlite3.Connection, table: str, where: str = "1") -> int:
    return conn.execute(f'SELECT COUNT(*) FROM "{table}" WHERE {where}').fetchone()[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One small world (seed 7) shared by the read-only checks below."""
    tmp = tmp_path_factory.mktemp("world")
    conn, extract, summary = _seed(tmp, "w")
    yield conn, extract, summary
    conn.close()


# --- determinism ------------------------------------------------------------------------------


def test_same_seed_gives_the_same_world(tmp_path):
    """Two rehearsals seeded with the same seed see byte-identical extracts and identical tables,
    so a failed rehearsal can be reproduced exactly."""
    a_conn, a_csv, a_sum = _seed(tmp_path, "a")
    b_conn, b_csv, b_sum = _seed(tmp_path, "b")
    assert a_csv.read_bytes() == b_csv.read_bytes()
    assert _table_hashes(a_conn) == _table_hashes(b_conn)
    assert replace(a_sum, extract_path=None) == replace(b_sum, extract_path=None)


def test_same_seed_same_world_in_a_fresh_interpreter(tmp_path):
    """Determinism does not hang on the interpreter's hash seed or process state: a seed run in a
    different process (different PYTHONHASHSEED) writes the same extract bytes."""
    _, here_csv, _ = _seed(tmp_path, "here", TINY)
    there_csv = tmp_path / "there.csv"
    code = (
        "import sys; from pathlib import Path; from cutover.sim import store, seed;"
        "from tiny_args import TINY_ARGS;"
        "conn = store.connect(Path(sys.argv[1]));"
        "seed.seed_world(conn, seed.Scale(**TINY_ARGS), seed=7, scale_name='small', extract_path=Path(sys.argv[2]))"
    )
    (tmp_path / "tiny_args.py").write_text(f"TINY_ARGS = {TINY.__dict__!r}\n")
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=str(tmp_path))
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "there.db"), str(there_csv)], check=True, env=env, cwd=tmp_path
    )
    assert here_csv.read_bytes() == there_csv.read_bytes()


def test_different_seed_gives_a_different_environment(tmp_path):
    """A differently seeded world is a different environment (org id, GUIDs) with different data,
    so a profile pinned to one rehearsal file cannot silently run against another."""
    a_conn, a_csv, a_sum = _seed(tmp_path, "a", seed=1)
    b_conn, b_csv, b_sum = _seed(tmp_path, "b", seed=2)
    assert a_sum.organization_id != b_sum.organization_id
    assert a_sum.organization_id == organization_id(1)
    assert store.get_setting(b_conn, "organization_id") == organization_id(2)
    assert a_csv.read_bytes() != b_csv.read_bytes()
    ha, hb = _table_hashes(a_conn), _table_hashes(b_conn)
    for table in (
        "dv_salesorders",
        "dv_salesorderdetails",
        "fno_CustTransactions",
        "fno_GeneralJournalAccountEntryBiEntities",
    ):
        assert ha[table] != hb[table], table
    ids_a = {r[0] for r in a_conn.execute("SELECT salesorderid FROM dv_salesorders")}
    ids_b = {r[0] for r in b_conn.execute("SELECT salesorderid FROM dv_salesorders")}
    assert not ids_a & ids_b


def test_keys_are_derived_from_seed_and_natural_keys(world):
    """Every contract, line and customer GUID is uuid5(org id, natural key), so tools and tests can
    name a record without reading it first."""
    conn, _, _ = world
    for oid, number in conn.execute("SELECT salesorderid, ordernumber FROM dv_salesorders"):
        assert oid == entity_guid(7, "salesorder", number)
    for aid, number in conn.execute("SELECT accountid, accountnumber FROM dv_accounts"):
        assert aid == entity_guid(7, "account", number)
    rows = conn.execute(
        "SELECT d.salesorderdetailid, o.ordernumber, d.lineitemnumber FROM dv_salesorderdetails d "
        "JOIN dv_salesorders o ON o.salesorderid = d._salesorderid_value"
    ).fetchall()
    assert rows
    for did, number, line in rows:
        assert did == entity_guid(7, "salesorderdetail", f"{number}-{line}")


# --- volumes ------------------------------------------------------------------------------


@pytest.mark.parametrize("scale_name", ["small", "tiny"])
def test_counts_match_the_scale(tmp_path, scale_name):
    """The seeded volumes are exactly the ones the scale promises (the benchmarks and the demo
    quote them)."""
    scale = SCALES["small"] if scale_name == "small" else TINY
    conn, extract, summary = _seed(tmp_path, "w", scale, scale_name=scale_name)
    lines = scale.contracts * (scale.fixed_price_lines_per_contract + scale.tm_lines_per_contract)
    assert _count(conn, "dv_cdm_companies") == scale.legal_entities == summary.legal_entities
    assert _count(conn, "dv_accounts") == scale.customers == summary.customers
    assert _count(conn, "dv_salesorders") == scale.contracts == summary.contracts
    assert _count(conn, "dv_msdyn_projects") == scale.contracts
    assert _count(conn, "dv_salesorderdetails") == lines == summary.contract_lines
    assert _count(conn, "dv_salesorderdetails", f"msdyn_billingmethod = {BILLING_FIXED_PRICE}") == (
        scale.contracts * scale.fixed_price_lines_per_contract
    )
    assert _count(conn, "dv_salesorderdetails", f"msdyn_billingmethod = {BILLING_TIME_AND_MATERIAL}") == (
        scale.contracts * scale.tm_lines_per_contract
    )
    assert _count(conn, "fno_ProjectContractLines") == lines
    assert _count(conn, "fno_CustTransactions") == scale.ar_transactions == summary.ar_transactions
    assert _count(conn, "fno_GeneralJournalAccountEntryBiEntities") == scale.gl_lines == summary.gl_lines
    assert _count(conn, "fno_GeneralJournalEntryBiEntities") == summary.gl_entries
    rows = _read_extract(extract)
    statuses = Counter(r["legacy_status"] for r in rows)
    assert statuses == {"Invoiced": scale.invoiced_milestones, "NotInvoiced": scale.uninvoiced_milestones}
    assert (summary.invoiced_milestones, summary.uninvoiced_milestones) == (
        scale.invoiced_milestones,
        scale.uninvoiced_milestones,
    )
    assert summary.scale == scale_name and summary.extract_path == str(extract)


def test_companies_have_contoso_codes_and_currencies(world):
    """Legal entities look like Contoso's (USMF, DEMF) and each has a known currency row, so
    cross-company queries and currency lookups work."""
    conn, _, _ = world
    codes = [r[0] for r in conn.execute("SELECT cdm_companycode FROM dv_cdm_companies ORDER BY cdm_companycode")]
    assert codes == ["DEMF", "USMF"]
    isos = {r[0] for r in conn.execute("SELECT isocurrencycode FROM dv_transactioncurrencies")}
    assert {"USD", "EUR"} <= isos
    dangling = conn.execute(
        "SELECT COUNT(*) FROM dv_accounts a LEFT JOIN dv_transactioncurrencies c "
        "ON c.transactioncurrencyid = a._transactioncurrencyid_value "
        "LEFT JOIN dv_cdm_companies k ON k.cdm_companyid = a._msdyn_company_value "
        "WHERE c.transactioncurrencyid IS NULL OR k.cdm_companyid IS NULL"
    ).fetchone()[0]
    assert dangling == 0
    areas = {r[0] for r in conn.execute("SELECT DISTINCT dataAreaId FROM fno_CustTransactions")}
    assert areas == {"usmf", "demf"}


def test_contracts_are_work_based_and_lines_point_at_their_project(world):
    """Every contract is a work-based project contract with a project, and every line carries the
    contract's project and currency, as the milestone load needs to bind them."""
    conn, _, _ = world
    assert _count(conn, "dv_salesorders", f"msdyn_ordertype != {ORDER_TYPE_WORK_BASED}") == 0
    bad = conn.execute(
        "SELECT COUNT(*) FROM dv_salesorderdetails d JOIN dv_salesorders o ON o.salesorderid = d._salesorderid_value "
        "LEFT JOIN dv_msdyn_projects p ON p.msdyn_projectid = d._msdyn_project_value "
        "WHERE p.msdyn_projectid IS NULL OR d._transactioncurrencyid_value != o._transactioncurrencyid_value "
        "OR p._msdyn_customer_value != o._customerid_value OR d.extendedamount <= 0"
    ).fetchone()[0]
    assert bad == 0


# --- ledgers ------------------------------------------------------------------------------


def test_every_gl_entry_balances_exactly(world):
    """Every opening journal entry nets to exactly zero in accounting currency, so any imbalance
    after the cutover is the cutover's fault."""
    conn, _, _ = world
    unbalanced = conn.execute(
        "SELECT GeneralJournalEntry, SUM(AccountingCurrencyAmount) FROM fno_GeneralJournalAccountEntryBiEntities "
        "GROUP BY GeneralJournalEntry HAVING SUM(AccountingCurrencyAmount) != 0"
    ).fetchall()
    assert unbalanced == []
    sizes = conn.execute(
        "SELECT MIN(n), MAX(n) FROM (SELECT COUNT(*) n FROM fno_GeneralJournalAccountEntryBiEntities "
        "GROUP BY GeneralJournalEntry)"
    ).fetchone()
    assert sizes[0] >= 2 and sizes[1] <= 6
    orphans = conn.execute(
        "SELECT COUNT(*) FROM fno_GeneralJournalAccountEntryBiEntities l LEFT JOIN fno_GeneralJournalEntryBiEntities e "
        "ON e.SourceKey = l.GeneralJournalEntry WHERE e.SourceKey IS NULL"
    ).fetchone()[0]
    assert orphans == 0
    empty = conn.execute(
        "SELECT COUNT(*) FROM fno_GeneralJournalEntryBiEntities e WHERE NOT EXISTS "
        "(SELECT 1 FROM fno_GeneralJournalAccountEntryBiEntities l WHERE l.GeneralJournalEntry = e.SourceKey)"
    ).fetchone()[0]
    assert empty == 0


def test_gl_balances_with_an_odd_line_count(tmp_path):
    """A scale with an odd number of GL lines still gets exactly that many lines, all balanced."""
    scale = replace(TINY, gl_lines=61)  # exactly 2 x 30 AR mirrors + 1
    conn, _, summary = _seed(tmp_path, "odd", scale)
    assert _count(conn, "fno_GeneralJournalAccountEntryBiEntities") == 61
    assert (
        conn.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM fno_GeneralJournalAccountEntryBiEntities GROUP BY GeneralJournalEntry "
            "HAVING SUM(AccountingCurrencyAmount) != 0)"
        ).fetchone()[0]
        == 0
    )
    assert summary.ar_transactions_with_gl == 29


def test_ar_control_account_equals_the_ar_subledger(world):
    """Opening AR and GL agree: per company, the 130100 receivables balance in the GL equals the sum
    of open customer transactions, so 'AR unchanged' and 'GL unchanged' checks start from a
    consistent baseline."""
    conn, _, _ = world
    sub = dict(conn.execute("SELECT UPPER(dataAreaId), SUM(AmountMst) FROM fno_CustTransactions GROUP BY 1"))
    gl = dict(
        conn.execute(
            "SELECT e.SubledgerVoucherDataAreaId, SUM(l.AccountingCurrencyAmount) "
            "FROM fno_GeneralJournalAccountEntryBiEntities l "
            "JOIN fno_GeneralJournalEntryBiEntities e ON e.SourceKey = l.GeneralJournalEntry "
            "WHERE l.MainAccount = '130100' GROUP BY 1"
        )
    )
    assert sub and sub == gl


def test_ar_transactions_are_well_formed(world):
    """Customer transactions look like F&O's: invoices positive with an invoice number (Sales),
    payments negative (Payment), dates before go-live, amounts in whole cents, AmountMst the fixed
    rate conversion of AmountCur, and no customer paid more than invoiced."""
    conn, _, _ = world
    rows = conn.execute(
        "SELECT t.AccountNum, t.TransDate, t.AmountCur, t.AmountMst, t.CurrencyCode, t.Invoice, t.TransType, "
        "a.isocurrencycode, c.cdm_companycode, t.dataAreaId FROM fno_CustTransactions t "
        "JOIN dv_accounts acc ON acc.accountnumber = t.AccountNum "
        "JOIN dv_transactioncurrencies a ON a.transactioncurrencyid = acc._transactioncurrencyid_value "
        "JOIN dv_cdm_companies c ON c.cdm_companyid = acc._msdyn_company_value"
    ).fetchall()
    assert len(rows) == 500
    company_ccy = {"USMF": "USD", "DEMF": "EUR"}
    balance: Counter = Counter()
    foreign = 0
    for num, when, cur, mst, ccy, invoice, ttype, cust_ccy, company, area in rows:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T12:00:00Z", when) and when[:10] < WORLD_DATE.isoformat()
        assert ccy == cust_ccy and area == company.lower()
        assert cur % 100 == 0 and mst % 100 == 0
        assert mst // 100 == convert(cur // 100, ccy, company_ccy[company])
        foreign += ccy != company_ccy[company]
        if ttype == 2:
            assert cur > 0 and invoice.startswith("CIN-")
        else:
            assert ttype == 15 and cur < 0 and invoice == ""
        balance[num] += cur
    assert all(v >= 0 for v in balance.values())
    assert foreign > 0
    recids = [r[0] for r in conn.execute("SELECT RecId FROM fno_CustTransactions")]
    assert len(set(recids)) == len(recids)


def test_money_is_whole_cents_and_dates_are_iso(world):
    """Stored money is exact (integer 1/10,000 units holding whole cents) and dates are ISO text,
    as the schema promises every reader."""
    conn, _, _ = world
    assert MONEY_SCALE == 10_000
    for table, col in (
        ("dv_salesorderdetails", "extendedamount"),
        ("fno_GeneralJournalAccountEntryBiEntities", "AccountingCurrencyAmount"),
        ("fno_GeneralJournalAccountEntryBiEntities", "TransactionCurrencyAmount"),
    ):
        assert _count(conn, table, f"typeof({col}) != 'integer' OR {col} % 100 != 0") == 0, (table, col)
    bad = [
        d
        for (d,) in conn.execute("SELECT AccountingDate FROM fno_GeneralJournalEntryBiEntities")
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T12:00:00Z", d) or d[:10] >= WORLD_DATE.isoformat()
    ]
    assert bad == []


# --- contract lines and the extract ------------------------------------------------------------


def test_dimensions_are_set_on_every_fixed_price_line(world):
    """Preflight requires financial dimensions on fixed-price lines; the seeded world satisfies it,
    and every F&O line mirrors its Dataverse line (GUID, billing method, company)."""
    conn, _, _ = world
    fp = conn.execute(
        "SELECT DefaultDimensionDisplayValue FROM fno_ProjectContractLines WHERE BillingMethod = 1"
    ).fetchall()
    assert len(fp) == 60
    assert all(re.fullmatch(r"\d{3}-\d{3}-OU_\d{4}", d) for (d,) in fp)
    mismatched = conn.execute(
        "SELECT COUNT(*) FROM fno_ProjectContractLines f "
        "LEFT JOIN dv_salesorderdetails d ON d.salesorderdetailid = f.ContractLineGuid "
        "LEFT JOIN dv_salesorders o ON o.salesorderid = d._salesorderid_value "
        "LEFT JOIN dv_cdm_companies c ON c.cdm_companyid = o._msdyn_company_value "
        "WHERE d.salesorderdetailid IS NULL OR f.ProjectContractId != o.ordernumber "
        "OR f.ContractLineId != o.ordernumber || '-' || d.lineitemnumber "
        "OR f.dataAreaId != LOWER(c.cdm_companycode) "
        f"OR (f.BillingMethod = 1) != (d.msdyn_billingmethod = {BILLING_FIXED_PRICE})"
    ).fetchone()[0]
    assert mismatched == 0


def test_milestone_tables_start_empty(world):
    """The milestones exist only in the legacy extract: neither Dataverse nor F&O holds any before
    the migration, so every milestone found afterwards was put there by the cutover."""
    conn, _, _ = world
    assert _count(conn, "dv_msdyn_contractlinescheduleofvalues") == 0
    assert _count(conn, "fno_ProjectContractLineMilestones") == 0
    assert _count(conn, "dv_invoices") == 0


def test_extract_rows_reference_existing_fixed_price_lines(world):
    """Every extract row names an existing contract and one of its fixed-price lines, with the
    contract's company, customer and currency, so a correct load has nothing to reject."""
    conn, extract, _ = world
    lines = {
        (number, line): (method, company, account, iso)
        for number, line, method, company, account, iso in conn.execute(
            "SELECT o.ordernumber, d.lineitemnumber, d.msdyn_billingmethod, c.cdm_companycode, a.accountnumber, "
            "cur.isocurrencycode FROM dv_salesorderdetails d "
            "JOIN dv_salesorders o ON o.salesorderid = d._salesorderid_value "
            "JOIN dv_cdm_companies c ON c.cdm_companyid = o._msdyn_company_value "
            "JOIN dv_accounts a ON a.accountid = o._customerid_value "
            "JOIN dv_transactioncurrencies cur ON cur.transactioncurrencyid = o._transactioncurrencyid_value"
        )
    }
    rows = _read_extract(extract)
    assert rows
    for r in rows:
        key = (r["contract_number"], int(r["contract_line"]))
        assert key in lines, r
        method, company, account, iso = lines[key]
        assert method == BILLING_FIXED_PRICE, r
        assert (r["legal_entity"], r["customer_account"], r["currency"]) == (company, account, iso), r


def test_extract_format(world):
    """The extract is the documented CSV: UTF-8, the documented header, unique legacy ids, amounts
    as plain 2-decimal text, ISO dates, names unique per line — and it holds the awkward
    characters (commas, quotes, umlauts) a real legacy export does."""
    _, extract, _ = world
    raw = extract.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8")
    assert text.splitlines()[0] == ",".join(EXTRACT_COLUMNS)
    rows = _read_extract(extract)
    assert len({r["legacy_id"] for r in rows}) == len(rows)
    for r in rows:
        assert re.fullmatch(r"LEG-MS-\d{7}", r["legacy_id"])
        assert re.fullmatch(r"\d+\.\d{2}", r["amount"]) and Decimal(r["amount"]) > 0
        assert re.fullmatch(r"\d+\.\d{2}", r["tax_amount"])
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["milestone_date"])
        assert 0 < len(r["milestone_name"]) <= 100
    names = Counter((r["contract_number"], r["contract_line"], r["milestone_name"]) for r in rows)
    assert max(names.values()) == 1
    assert any("," in r["milestone_name"] for r in rows)
    assert any('"' in r["milestone_name"] for r in rows)
    assert any(not r["milestone_name"].isascii() for r in rows)


def test_extract_reads_with_polars(world):
    """The extract loads with polars (what `cutover` reads it with) into the documented columns
    and row count, quoted names intact."""
    pl = pytest.importorskip("polars")
    _, extract, summary = world
    df = pl.read_csv(extract, infer_schema=False)
    assert tuple(df.columns) == EXTRACT_COLUMNS
    assert df.height == summary.invoiced_milestones + summary.uninvoiced_milestones
    assert df.filter(pl.col("milestone_name").str.contains(",")).height > 0


def test_invoiced_sum_per_line_within_line_value(world):
    """On every fixed-price line the legacy milestones (invoiced and not) add up to no more than
    the line value, so migrating the invoiced ones can never over-bill a line."""
    conn, extract, _ = world
    value = {
        (n, ln): v
        for n, ln, v in conn.execute(
            "SELECT o.ordernumber, d.lineitemnumber, d.extendedamount FROM dv_salesorderdetails d "
            "JOIN dv_salesorders o ON o.salesorderid = d._salesorderid_value"
        )
    }
    invoiced: Counter = Counter()
    everything: Counter = Counter()
    for r in _read_extract(extract):
        key = (r["contract_number"], int(r["contract_line"]))
        amount = int(Decimal(r["amount"]) * MONEY_SCALE)
        everything[key] += amount
        if r["legacy_status"] == "Invoiced":
            invoiced[key] += amount
    assert invoiced
    for key, total in everything.items():
        assert invoiced[key] <= total <= value[key], key


def test_uninvoiced_rows_are_present_flagged_and_interleaved(world):
    """The extract holds un-invoiced milestones the cutover must leave out: flagged NotInvoiced,
    with no legacy invoice number, mixed in among the invoiced rows (not a tidy block at the
    end), some even dated before go-live so that only the status tells them apart."""
    _, extract, _ = world
    rows = _read_extract(extract)
    statuses = [r["legacy_status"] for r in rows]
    assert set(statuses) == {"Invoiced", "NotInvoiced"}
    for r in rows:
        if r["legacy_status"] == "Invoiced":
            assert re.fullmatch(r"LEG-INV-\d{7}", r["legacy_invoice_number"])
            assert r["milestone_date"] < WORLD_DATE.isoformat()
        else:
            assert r["legacy_invoice_number"] == ""
    first_open = statuses.index("NotInvoiced")
    assert "Invoiced" in statuses[first_open:]
    assert any(r["legacy_status"] == "NotInvoiced" and r["milestone_date"] < WORLD_DATE.isoformat() for r in rows)
    ids = [r["legacy_id"] for r in rows]
    assert ids != sorted(ids)  # shuffled, not in creation order


# --- behaviour ------------------------------------------------------------------------------


def test_refuses_to_seed_twice(tmp_path):
    """Seeding a file that already holds a world fails with a clear message and changes nothing
    (neither the database nor an existing extract)."""
    conn, extract, _ = _seed(tmp_path, "w", TINY)
    before = _table_hashes(conn)
    extract_bytes = extract.read_bytes()
    with pytest.raises(ValueError, match="already holds a seeded world"):
        seed_world(conn, TINY, seed=99, extract_path=extract)
    assert _table_hashes(conn) == before
    assert extract.read_bytes() == extract_bytes


def test_a_failed_seed_leaves_nothing_behind(tmp_path):
    """If seeding fails half way (here: interrupted during the GL stage), the database holds no
    partial world and no extract file appears; the file can be seeded again."""
    conn = store.connect(tmp_path / "w.db")
    extract = tmp_path / "x.csv"

    def boom(stage, done, total):
        if stage == "gl":
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        seed_world(conn, TINY, seed=3, extract_path=extract, progress=boom)
    assert _count(conn, "dv_salesorders") == 0 and _count(conn, "fno_CustTransactions") == 0
    assert store.get_setting(conn, "organization_id") is None
    assert not extract.exists() and not list(tmp_path.glob("*.part"))
    seed_world(conn, TINY, seed=3, extract_path=extract)
    assert _count(conn, "dv_salesorders") == TINY.contracts


def test_settings_and_counters_are_written(world):
    """The seeded file records who it is (org id, business unit), how it was made (seed, scale) and
    its go-live date, and leaves RecId / SourceKey sequences past the seeded rows so later postings
    never collide with opening balances."""
    conn, _, summary = world
    assert store.get_setting(conn, "organization_id") == summary.organization_id == organization_id(7)
    assert store.get_setting(conn, "seed") == 7
    assert store.get_setting(conn, "scale") == "small"
    assert store.get_setting(conn, "world_date") == WORLD_DATE.isoformat() == summary.world_date
    bu = store.get_setting(conn, "business_unit_id")
    assert bu == summary.business_unit_id and bu != summary.organization_id
    max_recid = conn.execute("SELECT MAX(RecId) FROM fno_CustTransactions").fetchone()[0]
    max_line = conn.execute("SELECT MAX(SourceKey) FROM fno_GeneralJournalAccountEntryBiEntities").fetchone()[0]
    max_entry = conn.execute("SELECT MAX(SourceKey) FROM fno_GeneralJournalEntryBiEntities").fetchone()[0]
    counters = dict(conn.execute("SELECT name, value FROM sim_counters"))
    assert counters["fno.CustTransactions.RecId"] == max_recid
    assert counters["fno.GeneralJournalAccountEntryBiEntities.SourceKey"] == max_line
    assert counters["fno.GeneralJournalEntryBiEntities.SourceKey"] == max_entry


def test_progress_is_reported(tmp_path):
    """Long stages report progress (stage, done, total) so the CLI can show a bar; the GL stage
    ends at its total."""
    calls = []
    _seed(tmp_path, "w", TINY, progress=lambda s, d, t: calls.append((s, d, t)))
    stages = {s for s, _, _ in calls}
    assert {"contracts", "ar", "gl"} <= stages
    assert ("gl", TINY.gl_lines, TINY.gl_lines) in calls
    assert all(0 <= d <= t for _, d, t in calls)


def test_no_extract_when_not_asked(tmp_path):
    """Without an extract path only the database is written, and the summary says so."""
    conn = store.connect(tmp_path / "w.db")
    summary = seed_world(conn, TINY, seed=5)
    assert isinstance(summary, SeedSummary) and summary.extract_path is None
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".csv") == []


@pytest.mark.parametrize(
    "change, message",
    [
        ({"gl_lines": 1}, "gl_lines"),
        ({"legal_entities": 0}, "legal_entities"),
        ({"customers": 2}, "customers"),
        ({"fixed_price_lines_per_contract": 0}, "fixed-price"),
        ({"contracts": -1}, "contracts"),
    ],
)
def test_impossible_scales_are_rejected(change, message):
    """A scale that cannot be generated consistently (a one-line journal, no fixed-price line to
    hang milestones on, ...) is refused up front with a message naming the field."""
    with pytest.raises(ValueError, match=message):
        replace(TINY, **change)


def test_standard_scales_have_the_promised_sizes():
    """The named scales keep the sizes the docs and benchmarks quote."""
    small, medium, large = SCALES["small"], SCALES["medium"], SCALES["large"]
    assert small.legal_entities >= 2 and small.contracts == 20
    assert (small.invoiced_milestones, small.uninvoiced_milestones) == (150, 50)
    assert medium.legal_entities >= 3 and medium.contracts == 400 and medium.invoiced_milestones == 4_000
    assert medium.gl_lines == 100_000
    assert large.legal_entities >= 3 and large.invoiced_milestones >= 20_000 and large.gl_lines >= 1_000_000
    for scale in SCALES.values():
        assert scale.gl_lines >= 2 * scale.ar_transactions  # every AR row gets its GL entry


def test_convert_rounds_half_away_from_zero():
    """Currency conversion is exact integer arithmetic at the fixed rates, symmetric for signs."""
    assert convert(100, "USD", "USD") == 100
    assert convert(100_00, "EUR", "USD") == 108_50
    assert convert(-100_00, "EUR", "USD") == -108_50
    assert convert(1, "GBP", "USD") == 1  # 1.27 cents rounds to 1
    assert convert(2, "GBP", "USD") == 3  # 2.54 rounds to 3
    assert convert(-2, "GBP", "USD") == -3
