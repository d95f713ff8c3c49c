"""AR/GL snapshots against the simulator (issue #10 item 5).

Every expected figure is computed independently, straight from the simulator's SQLite tables
(money stored as integers in 1/10,000 units), never from the snapshot code: row counts,
control totals per legal entity / customer / currency (AR) and per legal entity / main account
(GL), the highest RecId, voucher and keys, the files' SHA-256. Also: scope limited to the legal
entities asked for, multi-currency AR, retake refused / kept, tampering detected on load,
Decimal money whether F&O writes ``5000`` or ``1234.56``.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote

import polars as pl
import pytest

from cutover import odata
from cutover.fno import FnoClient
from cutover.journal import file_sha256
from cutover.money import MoneyError
from cutover.snapshot import (
    AR_SCHEMA,
    GL_LINE_SCHEMA,
    SnapshotExists,
    SnapshotMissing,
    SnapshotTampered,
    load_manifest,
    page_frame,
    plan_snapshot,
    read_snapshot,
    snapshot_dir,
    take_snapshot,
)
from cutover.tokens import StaticToken
from cutover.transport import AdaptiveLimit, Transport
from tests.conftest import FNO, READER

SCALE = Decimal(10_000)  # the simulator stores money as integer 1/10,000 units
ORG = "6F1C2A4E-0000-0000-0000-000000000001"


async def fno_client(h) -> FnoClient:
    """A client as verification builds it: read-only transport, the read-only identity."""
    t = Transport(
        f"{h.client.base_url}{FNO}",
        StaticToken(await h.token(*READER)),
        environment="rehearsal",
        read_only=True,
        client=h.client,
        limit=AdaptiveLimit(start=8),
    )
    return FnoClient(t)


def db(h) -> sqlite3.Connection:
    """An independent read-only connection to the simulator's database file."""
    return sqlite3.connect(f"file:{h.db}?mode=ro", uri=True)


def money(stored: int | None) -> Decimal:
    return Decimal(stored or 0) / SCALE


def sql_ar(conn, entities: set[str]) -> dict:
    rows = conn.execute(
        "SELECT upper(dataAreaId), AccountNum, CurrencyCode, count(*), sum(AmountCur), sum(AmountMst), max(RecId) "
        "FROM fno_CustTransactions GROUP BY 1, 2, 3"
    ).fetchall()
    out = {"customers": {}, "le": defaultdict(lambda: [0, Decimal(0), 0]), "cur": {}}
    for le, cust, cur, n, amount_cur, amount_mst, recid in rows:
        if le not in entities:
            continue
        out["customers"][(le, cust, cur)] = (n, money(amount_cur), money(amount_mst))
        t = out["le"][le]
        t[0] += n
        t[1] += money(amount_mst)
        t[2] = max(t[2], recid)
        c = out["cur"].setdefault((le, cur), [0, Decimal(0), Decimal(0)])
        c[0] += n
        c[1] += money(amount_cur)
        c[2] += money(amount_mst)
    return out


def sql_gl(conn, entities: set[str]) -> dict:
    rows = conn.execute(
        "SELECT upper(e.SubledgerVoucherDataAreaId), l.MainAccount, count(*), sum(l.AccountingCurrencyAmount), "
        "sum(CASE WHEN l.AccountingCurrencyAmount > 0 THEN l.AccountingCurrencyAmount ELSE 0 END), "
        "sum(CASE WHEN l.AccountingCurrencyAmount < 0 THEN -l.AccountingCurrencyAmount ELSE 0 END), "
        "max(l.SourceKey), max(e.SourceKey), count(DISTINCT e.SourceKey) "
        "FROM fno_GeneralJournalAccountEntryBiEntities l JOIN fno_GeneralJournalEntryBiEntities e "
        "ON e.SourceKey = l.GeneralJournalEntry GROUP BY 1, 2"
    ).fetchall()
    accounts = {}
    for le, acct, n, amount, debit, credit, *_ in rows:
        if le in entities:
            accounts[(le, acct)] = (n, money(amount), money(debit), money(credit))
    per_le = conn.execute(
        "SELECT upper(e.SubledgerVoucherDataAreaId), count(*), max(l.SourceKey), max(e.SourceKey), "
        "count(DISTINCT e.SourceKey), max(e.SubledgerVoucher) "
        "FROM fno_GeneralJournalAccountEntryBiEntities l JOIN fno_GeneralJournalEntryBiEntities e "
        "ON e.SourceKey = l.GeneralJournalEntry GROUP BY 1"
    ).fetchall()
    return {"accounts": accounts, "le": {r[0]: r[1:] for r in per_le if r[0] in entities}}


async def snap(sim, tmp_path: Path, label: str = "before", entities=("USMF", "DEMF"), **kw):
    fno = await fno_client(sim)
    kw.setdefault("organization_id", ORG)
    return await take_snapshot(fno, tmp_path / "ws", "rehearsal", label, list(entities), **kw)


# --- figures against the database ----------------------------------------------------------------


async def test_ar_control_totals_equal_the_database(sim, tmp_path):
    """Per legal entity, currency and customer: rows, ΣAmountCur and ΣAmountMst equal SQL sums
    over fno_CustTransactions; highest RecId and voucher per legal entity too. The small world
    has customers billing in a foreign currency: AR is multi-currency in both companies."""
    events: list[tuple] = []
    m = await snap(sim, tmp_path, batch_rows=120, page_size=97, progress=lambda *e: events.append(e))
    with db(sim) as conn:
        want = sql_ar(conn, {"USMF", "DEMF"})
        vouchers = dict(
            conn.execute("SELECT upper(dataAreaId), max(Voucher) FROM fno_CustTransactions GROUP BY 1").fetchall()
        )
        series = conn.execute(
            "SELECT upper(dataAreaId), substr(Voucher, 1, 4), max(Voucher) FROM fno_CustTransactions GROUP BY 1, 2"
        ).fetchall()
        total = conn.execute("SELECT count(*) FROM fno_CustTransactions").fetchone()[0]

    assert m.ar_rows == total == sum(t.rows for t in m.ar_by_legal_entity.values())
    assert {
        (c.legal_entity, c.customer, c.currency): (c.rows, c.amount_cur, c.amount_mst) for c in m.ar_by_customer
    } == (want["customers"])
    for le, (rows, mst, recid) in want["le"].items():
        t = m.ar_by_legal_entity[le]
        assert (t.rows, t.amount_mst, t.max_recid, t.max_voucher) == (rows, mst, recid, vouchers[le])
        assert {c: (v.rows, v.amount_cur, v.amount_mst) for c, v in t.by_currency.items()} == {
            cur: tuple(v) for (l2, cur), v in want["cur"].items() if l2 == le
        }
        assert len(t.by_currency) >= 2, f"{le} should bill in two currencies in the small world"
    for le, prefix, top in series:
        assert m.ar_by_legal_entity[le].max_voucher_by_series[prefix] == top

    ar_events = [e for e in events if e[0] == "ar"]
    assert ar_events[-1] == ("ar", total, total)
    assert [e[1] for e in ar_events] == sorted(e[1] for e in ar_events)
    assert events[-1] == ("files", 2, 2)


async def test_gl_control_totals_equal_the_database(sim, tmp_path):
    """Per legal entity and main account: lines, ΣAccountingCurrencyAmount, debit and credit
    totals equal SQL over the lines joined to their entries; per legal entity the highest line
    and entry key, the entries and the highest subledger voucher. Every line read is kept."""
    m = await snap(sim, tmp_path, gl_parts=5, batch_rows=700)
    with db(sim) as conn:
        want = sql_gl(conn, {"USMF", "DEMF"})
        lines = conn.execute("SELECT count(*) FROM fno_GeneralJournalAccountEntryBiEntities").fetchone()[0]
        entries = conn.execute("SELECT count(*) FROM fno_GeneralJournalEntryBiEntities").fetchone()[0]

    assert m.gl_rows == m.gl_lines_read == lines == 5000
    assert m.gl_entries_read == entries
    assert {(a.legal_entity, a.main_account): (a.rows, a.amount, a.debit, a.credit) for a in m.gl_by_main_account} == (
        want["accounts"]
    )
    for le, (rows, line_key, entry_key, n_entries, voucher) in want["le"].items():
        t = m.gl_by_legal_entity[le]
        assert (t.rows, t.max_line_key, t.max_entry_key, t.entries, t.max_voucher) == (
            rows,
            line_key,
            entry_key,
            n_entries,
            voucher,
        )
        assert t.amount == 0 and t.debit == t.credit > 0  # every seeded entry balances


async def test_scope_is_limited_to_the_legal_entities_asked_for(sim, tmp_path):
    """USMF only: the files hold USMF rows only, totals match SQL restricted to USMF, while all
    GL lines are still read (lines carry no company; the join to entries scopes them)."""
    m = await snap(sim, tmp_path, entities=["usmf"])
    ar, gl, _ = read_snapshot(tmp_path / "ws", "rehearsal", "before")
    assert m.legal_entities == ("USMF",)
    assert ar.select(pl.col("legal_entity").unique()).collect().to_series().to_list() == ["USMF"]
    assert ar.select(pl.col("dataAreaId").unique()).collect().to_series().to_list() == ["usmf"]
    assert gl.select(pl.col("legal_entity").unique()).collect().to_series().to_list() == ["USMF"]
    with db(sim) as conn:
        want_ar = sql_ar(conn, {"USMF"})
        want_gl = sql_gl(conn, {"USMF"})
        usmf_ar = conn.execute("SELECT count(*) FROM fno_CustTransactions WHERE dataAreaId = 'usmf'").fetchone()[0]
    assert set(m.ar_by_legal_entity) == set(m.gl_by_legal_entity) == {"USMF"}
    assert m.ar_rows == usmf_ar < 500
    assert m.ar_by_legal_entity["USMF"].amount_mst == want_ar["le"]["USMF"][1]
    assert m.gl_rows == want_gl["le"]["USMF"][0] < m.gl_lines_read == 5000
    assert {(a.legal_entity, a.main_account): (a.rows, a.amount, a.debit, a.credit) for a in m.gl_by_main_account} == (
        want_gl["accounts"]
    )
    requests = [unquote(e["path"]) for e in await sim.log()]
    ar_requests = [p for p in requests if "/CustTransactions" in p]
    entry_requests = [p for p in requests if "/GeneralJournalEntryBiEntities" in p]
    assert ar_requests and all("dataAreaId eq 'usmf'" in p for p in ar_requests)
    assert entry_requests and all("SubledgerVoucherDataAreaId eq 'usmf'" in p for p in entry_requests)


async def test_files_layout_hashes_and_manifest_json(sim, tmp_path):
    """``<ws>/snapshots/<env>/<label>/{ar,gl}.parquet + manifest.json``; the manifest records
    each file's SHA-256, size and rows, the label, environment, pinned org id, the UTC window;
    money is JSON text, never a number; the files' money columns are Decimal."""
    m = await snap(sim, tmp_path)
    d = tmp_path / "ws" / "snapshots" / "rehearsal" / "before"
    assert sorted(p.name for p in d.iterdir()) == ["ar.parquet", "gl.parquet", "manifest.json"]
    assert m.directory == d
    raw = (d / "manifest.json").read_text()
    data = json.loads(raw)  # floats would appear as float here
    assert data["label"] == "before" and data["environment"] == "rehearsal"
    assert data["organization_id"] == ORG.lower()
    assert data["legal_entities"] == ["DEMF", "USMF"]
    assert data["started_utc"].endswith("Z") and data["started_utc"] <= data["finished_utc"]
    for key in ("ar", "gl"):
        f = data["files"][key]
        assert f["sha256"] == file_sha256(d / f"{key}.parquet")
        assert f["bytes"] == (d / f"{key}.parquet").stat().st_size
        assert f["rows"] == pl.scan_parquet(d / f"{key}.parquet").select(pl.len()).collect().item()
    assert isinstance(data["ar"]["by_legal_entity"]["USMF"]["amount_mst"], str)
    assert isinstance(data["gl"]["by_main_account"][0]["debit"], str)
    assert "." in data["gl"]["by_legal_entity"]["USMF"]["amount"]
    ar = pl.read_parquet(d / "ar.parquet")
    gl = pl.read_parquet(d / "gl.parquet")
    assert ar.schema["AmountCur"] == ar.schema["AmountMst"] == pl.Decimal(38, 16)
    assert gl.schema["AccountingCurrencyAmount"] == pl.Decimal(38, 16)
    assert not (d.parent / ".before.partial").exists() and len(list(d.parent.iterdir())) == 1
    again = load_manifest(d / "manifest.json")
    assert again == m and again.sha256 == file_sha256(d / "manifest.json")


# --- retake and tampering --------------------------------------------------------------------------


async def test_retake_is_refused_without_retake_and_keeps_the_earlier_one_with_it(sim, tmp_path):
    first = await snap(sim, tmp_path)
    d = first.directory
    before_hash = file_sha256(d / "manifest.json")
    with pytest.raises(SnapshotExists) as refused:
        await snap(sim, tmp_path)
    assert "before" in str(refused.value) and str(d) in str(refused.value) and "--retake" in str(refused.value)
    assert file_sha256(d / "manifest.json") == before_hash

    second = await snap(sim, tmp_path, retake=True)
    kept = [p for p in d.parent.iterdir() if p.name.startswith("before.")]
    assert len(kept) == 1 and kept[0].name[len("before.") :].endswith("Z")
    assert file_sha256(kept[0] / "manifest.json") == before_hash
    assert load_manifest(kept[0]).files == first.files  # still intact and verifiable
    assert second.directory == d and second.started_utc > first.started_utc
    third = await snap(sim, tmp_path, retake=True)
    assert len([p for p in d.parent.iterdir() if p.name.startswith("before.")]) == 2
    assert third.files["ar"].sha256 == load_manifest(d).files["ar"].sha256


async def test_a_changed_parquet_file_is_detected_on_load(sim, tmp_path):
    await snap(sim, tmp_path)
    d = snapshot_dir(tmp_path / "ws", "rehearsal", "before")
    path = d / "gl.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotTampered) as bad:
        read_snapshot(tmp_path / "ws", "rehearsal", "before")
    assert "gl.parquet" in str(bad.value)
    (d / "ar.parquet").unlink()
    with pytest.raises(SnapshotTampered, match=r"ar\.parquet"):
        load_manifest(d)
    with pytest.raises(SnapshotMissing):
        read_snapshot(tmp_path / "ws", "rehearsal", "after")


async def test_a_failed_snapshot_leaves_no_half_snapshot_and_keeps_the_earlier_one(sim, tmp_path):
    """A snapshot that fails half-way (here the progress callback raises while GL lines are
    being read) raises that error itself, not an ExceptionGroup, stops the readers, and leaves
    the earlier snapshot as it was and no staging directory behind."""
    first = await snap(sim, tmp_path)

    class Stop(Exception):
        pass

    def progress(stage, done, total):
        if stage == "gl-lines" and done > 1000:
            raise Stop(stage)

    with pytest.raises(Stop):
        await snap(sim, tmp_path, retake=True, page_size=500, progress=progress)
    env_dir = first.directory.parent
    assert [p.name for p in env_dir.iterdir()] == ["before"]
    assert load_manifest(first.directory) == first


# --- exact money -----------------------------------------------------------------------------------


def test_whole_and_fractional_amounts_both_stay_decimal():
    """F&O writes a whole amount without decimals: ``odata.loads`` gives int 5000 next to
    Decimal 1234.56 in the same column; the frame keeps both exactly as Decimal."""
    page = odata.loads(
        b'{"value": [{"dataAreaId": "usmf", "RecId": 1, "AmountCur": 5000, "AmountMst": 1234.56},'
        b' {"dataAreaId": "usmf", "RecId": 2, "AmountCur": 1234.56, "AmountMst": 5000},'
        b' {"dataAreaId": "usmf", "RecId": 3, "AmountCur": -0.0001, "AmountMst": 123456789012.1234567890123456}]}'
    )["value"]
    assert type(page[0]["AmountCur"]) is int and type(page[0]["AmountMst"]) is Decimal
    frame = page_frame(page, AR_SCHEMA, "CustTransactions")
    assert frame.schema["AmountCur"] == frame.schema["AmountMst"] == pl.Decimal(38, 16)
    assert frame["AmountCur"].to_list() == [Decimal("5000"), Decimal("1234.56"), Decimal("-0.0001")]
    assert frame["AmountMst"].to_list() == [
        Decimal("1234.56"),
        Decimal("5000"),
        Decimal("123456789012.1234567890123456"),
    ]
    assert frame["AmountCur"].sum() == Decimal("6234.5599")


@pytest.mark.parametrize(
    "value",
    [1.5, Decimal("0.12345678901234567"), 10**22, Decimal("1e22"), "12.00"],
    ids=["float", "17-decimals", "int-too-big", "decimal-too-big", "text"],
)
def test_amounts_that_cannot_be_kept_exactly_are_refused_not_rounded(value):
    with pytest.raises(MoneyError, match="AccountingCurrencyAmount"):
        page_frame([{"SourceKey": 1, "AccountingCurrencyAmount": value}], GL_LINE_SCHEMA, "GL")
    ok = page_frame([{"SourceKey": 1, "AccountingCurrencyAmount": Decimal("1.50000000000000000000")}], GL_LINE_SCHEMA)
    assert ok["AccountingCurrencyAmount"].to_list() == [Decimal("1.5")]


# --- the plan --------------------------------------------------------------------------------------


def test_plan_names_paths_and_partitions_and_checks_names(tmp_path):
    plan = plan_snapshot(tmp_path, "prod", "after", ["usmf", "DEMF", "USMF "], gl_parts=4)
    assert plan.legal_entities == ("DEMF", "USMF")
    assert plan.directory == tmp_path / "snapshots" / "prod" / "after"
    assert (plan.ar_path.name, plan.gl_path.name, plan.manifest_path.name) == (
        "ar.parquet",
        "gl.parquet",
        "manifest.json",
    )
    assert [p.filter for p in plan.ar_partitions] == ["dataAreaId eq 'demf'", "dataAreaId eq 'usmf'"]
    assert [p.filter for p in plan.gl_entry_partitions] == [
        "SubledgerVoucherDataAreaId eq 'demf'",
        "SubledgerVoucherDataAreaId eq 'usmf'",
    ]
    assert not tmp_path.joinpath("snapshots").exists()  # planning touches nothing
    for bad in ("../x", "a/b", "before.2026", ""):
        with pytest.raises(Exception, match="not allowed"):
            plan_snapshot(tmp_path, "prod", bad, ["USMF"])
    with pytest.raises(Exception, match="at least one legal entity"):
        plan_snapshot(tmp_path, "prod", "before", [])


async def test_a_legal_entity_without_rows_is_in_the_manifest_with_zeros(sim, tmp_path):
    m = await snap(sim, tmp_path, entities=["USMF", "FRRT"])
    assert m.ar_by_legal_entity["FRRT"].rows == 0 and m.ar_by_legal_entity["FRRT"].amount_mst == 0
    assert m.ar_by_legal_entity["FRRT"].max_recid is None and m.ar_by_legal_entity["FRRT"].by_currency == {}
    assert m.gl_by_legal_entity["FRRT"].rows == 0 and m.gl_by_legal_entity["FRRT"].max_line_key is None
    assert m.ar_by_legal_entity["USMF"].rows > 0


async def test_partitioned_map_page_queues_mapped_pages_and_fails_the_read_with_its_error(sim):
    """The generic FnoClient.partitioned(map_page=…) the snapshot uses: mapped pages are what
    comes out (every row once); an exception in the mapping is raised to the caller as itself."""
    fno = await fno_client(sim)
    parts = await fno.plan_partitions("GeneralJournalAccountEntryBiEntities", "SourceKey", 4)
    sizes = [
        n async for n in fno.partitioned("GeneralJournalAccountEntryBiEntities", parts, page_size=300, map_page=len)
    ]
    assert sum(sizes) == 5000 and max(sizes) <= 300

    def boom(page):
        raise MoneyError("bad page")

    with pytest.raises(MoneyError, match="bad page"):
        async for _ in fno.partitioned("GeneralJournalAccountEntryBiEntities", parts, map_page=boom):
            pass
