"""The Finance and Operations read client against the simulator: paging, cross-company,
filters, exact money, partitioned parallel reads, cancellation, throttling, read-only.

Rules checked (DESIGN.md, "Domain facts", Finance and Operations, and issue #3 items 4-6):
server-driven paging (at most 10,000 rows a page, follow ``@odata.nextLink``), cross-company
reads, enum literals ``Microsoft.Dynamics.DataEntities.<Enum>'<Member>'``, money as Decimal
never float, 429 + Retry-After always waited out, verification clients read-only.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import sqlite3
import uuid
from collections import Counter
from decimal import Decimal
from urllib.parse import unquote

import pytest

from cutover import odata
from cutover.fno import (
    FnoClient,
    Partition,
    company_partitions,
    date_partitions,
    enum,
    key_range_partitions,
)
from cutover.tokens import StaticToken
from cutover.transport import AdaptiveLimit, BadRequest, ReadOnlyViolation, Transport
from tests.conftest import FNO, READER

GL = "GeneralJournalAccountEntryBiEntities"
AR = "CustTransactions"
MILESTONES = "ProjectContractLineMilestones"
SCALE = Decimal(10_000)  # the simulator stores money as integer 1/10,000 units
TASK_PREFIX = "cutover.fno.partitioned"


async def fno_client(h, *, conn_limit: int = 8, read_only: bool = True) -> FnoClient:
    """A client as verification builds it: read-only transport, the read-only identity."""
    t = Transport(
        f"{h.client.base_url}{FNO}",
        StaticToken(await h.token(*READER)),
        environment="rehearsal",
        read_only=read_only,
        client=h.client,
        limit=AdaptiveLimit(start=conn_limit),
    )
    return FnoClient(t)


def sql_keys(conn: sqlite3.Connection, sql: str = f"SELECT SourceKey FROM fno_{GL}", params=()) -> Counter:
    return Counter(r[0] for r in conn.execute(sql, params))


def gl_bounds(conn: sqlite3.Connection) -> tuple[int, int]:
    return conn.execute(f"SELECT min(SourceKey), max(SourceKey) FROM fno_{GL}").fetchone()


def producers() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith(TASK_PREFIX) and not t.done()]


async def fno_requests(h) -> list[dict]:
    return [e for e in await h.log() if e["path"].startswith(FNO)]


# --- paging ------------------------------------------------------------------------------------


async def test_paging_follows_every_next_link_and_returns_each_gl_line_once(sim):
    """Server-driven paging: with 173-row pages the 5,000 GL lines come in 29 pages, each page
    within the requested size, and every SourceKey in the database arrives exactly once."""
    fno = await fno_client(sim)
    keys: Counter = Counter()
    sizes = []
    async for page in fno.pages(GL, select=["SourceKey", "AccountingCurrencyAmount"], page_size=173):
        sizes.append(len(page))
        keys.update(r["SourceKey"] for r in page)
    expected = sql_keys(sim.conn)
    assert sum(expected.values()) == 5000
    assert keys == expected and max(keys.values()) == 1
    assert len(sizes) == math.ceil(5000 / 173) and max(sizes) <= 173
    gets = [e for e in await fno_requests(sim) if GL in e["path"]]
    assert len(gets) == len(sizes) and all(e["status"] == 200 for e in gets)
    assert sum("$skiptoken=" in e["path"] for e in gets) == len(sizes) - 1  # followed the nextLinks


async def test_rows_stream_and_default_page_is_the_servers(sim):
    """Without a page size F&O decides (up to 10,000 a page): the small world's 5,000 lines
    come in one page; rows() yields the same rows one by one. A page size above F&O's
    10,000 limit is refused before anything is sent."""
    fno = await fno_client(sim)
    pages = [p async for p in fno.pages(GL, select=["SourceKey"])]
    assert [len(p) for p in pages] == [5000]
    assert Counter([r["SourceKey"] async for r in fno.rows(GL, select=["SourceKey"], page_size=999)]) == sql_keys(
        sim.conn
    )
    before = len(await sim.log())
    with pytest.raises(ValueError, match="10,000"):
        [p async for p in fno.pages(GL, page_size=10_001)]
    assert len(await sim.log()) == before


async def test_count_uses_count_true_and_top_zero(sim):
    """count() asks `$count=true&$top=0`: the number matches SQL and no rows are transferred."""
    fno = await fno_client(sim)
    assert await fno.count(GL) == 5000
    sales = odata.compare("TransType", "eq", odata.Enum("Microsoft.Dynamics.DataEntities.LedgerTransType", "Sales"))
    expected = sim.conn.execute(f"SELECT count(*) FROM fno_{AR} WHERE TransType = 2").fetchone()[0]
    assert await fno.count(AR, filter=sales) == expected
    last = (await fno_requests(sim))[-1]
    assert "$count=true" in last["path"] and "$top=0" in last["path"] and last["records"] == 0


# --- cross-company and filters ---------------------------------------------------------------


async def test_cross_company_reads_every_legal_entity_default_only_the_users_company(sim):
    """F&O returns only the caller's default company unless `cross-company=true`. The client
    reads cross-company by default (both legal entities); with cross_company=False it sees
    only the default company, whichever that is."""
    fno = await fno_client(sim)
    per_company = dict(sim.conn.execute(f"SELECT dataAreaId, count(*) FROM fno_{AR} GROUP BY 1"))
    assert set(per_company) == {"usmf", "demf"}

    everything = Counter([r["dataAreaId"] async for r in fno.rows(AR, page_size=100)])
    assert everything == Counter(per_company)
    default = Counter([r["dataAreaId"] async for r in fno.rows(AR, cross_company=False, page_size=100)])
    assert default == Counter({"usmf": per_company["usmf"]})
    assert await fno.count(AR) == sum(per_company.values())
    assert await fno.count(AR, cross_company=False) == per_company["usmf"]

    await sim.admin("PUT", "settings", json={"fno_default_company": "demf"})
    assert {r["dataAreaId"] async for r in fno.rows(AR, cross_company=False)} == {"demf"}


async def test_enum_literal_filter_on_trans_status(sim):
    """Enum filters are written `TransStatus eq Microsoft.Dynamics.DataEntities.ProjTransStatus'Invoiced'`
    (the form F&O accepts): only the Invoiced milestones (TransStatus 4) come back."""
    statuses = {"M-1": 4, "M-2": 1, "M-3": 4, "M-4": 3, "M-5": 4}
    with sim.conn:
        for ident, status in statuses.items():
            sim.conn.execute(
                f"INSERT INTO fno_{MILESTONES} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    "usmf",
                    ident,
                    str(uuid.uuid4()),
                    "PRJC-000001",
                    "PRJC-000001-1",
                    "Milestone",
                    1_000_000,
                    "2026-10-31T12:00:00Z",
                    "US-001",
                    status,
                ),
            )
    fno = await fno_client(sim)
    invoiced = odata.compare(
        "TransStatus", "eq", odata.Enum("Microsoft.Dynamics.DataEntities.ProjTransStatus", "Invoiced")
    )
    assert invoiced == "TransStatus eq Microsoft.Dynamics.DataEntities.ProjTransStatus'Invoiced'"
    assert str(enum("ProjTransStatus", "Invoiced")) == "Microsoft.Dynamics.DataEntities.ProjTransStatus'Invoiced'"
    rows = [r async for r in fno.rows(MILESTONES, filter=invoiced)]
    assert sorted(r["ContractLineMilestoneIdentifier"] for r in rows) == ["M-1", "M-3", "M-5"]
    assert {r["TransStatus"] for r in rows} == {"Invoiced"} and {type(r["Amount"]) for r in rows} == {Decimal}
    sent = unquote((await fno_requests(sim))[-1]["path"])
    assert "$filter=TransStatus eq Microsoft.Dynamics.DataEntities.ProjTransStatus'Invoiced'" in sent

    sales = odata.compare("TransType", "eq", enum("LedgerTransType", "Sales"))
    keys = Counter([(r["dataAreaId"], r["RecId"]) async for r in fno.rows(AR, filter=sales)])
    assert keys == Counter(sim.conn.execute(f"SELECT dataAreaId, RecId FROM fno_{AR} WHERE TransType = 2").fetchall())


async def test_date_range_partitions_return_exactly_the_rows_in_the_window(sim):
    """Date partitions `TransDate ge a and TransDate lt b` (dates sent as UTC midnight, as F&O
    exposes dates as DateTimeOffset) split a window into disjoint ranges: their union is exactly
    the rows SQL finds in the window, none twice."""
    fno = await fno_client(sim)
    start, end = dt.date(2025, 9, 1), dt.date(2026, 3, 1)
    parts = date_partitions("TransDate", start, end, 5)
    assert len(parts) == 5 and "TransDate ge 2025-09-01T00:00:00Z" in parts[0].filter
    got: Counter = Counter()
    for part in parts:
        got.update([(r["dataAreaId"], r["RecId"]) async for r in fno.rows(AR, filter=part.filter)])
    expected = Counter(
        sim.conn.execute(
            f"SELECT dataAreaId, RecId FROM fno_{AR} WHERE TransDate >= '2025-09-01T00:00:00Z' AND TransDate < '2026-03-01T00:00:00Z'"
        ).fetchall()
    )
    assert 0 < sum(expected.values()) < 500
    assert got == expected


# --- exact money --------------------------------------------------------------------------------


async def test_money_is_exact_decimal_and_sums_equal_the_ledger(sim):
    """Money is Decimal, never float: per main account the sum of AccountingCurrencyAmount over
    all 5,000 GL lines equals the database's sum of its stored 1/10,000 integers exactly, and the
    AR subledger per company (AmountMst) likewise."""
    fno = await fno_client(sim)
    sums: dict[str, Decimal] = {}
    async for page in fno.pages(GL, select=["MainAccount", "AccountingCurrencyAmount"], page_size=1000):
        for r in page:
            assert type(r["AccountingCurrencyAmount"]) is Decimal
            sums[r["MainAccount"]] = sums.get(r["MainAccount"], Decimal(0)) + r["AccountingCurrencyAmount"]
    expected = {
        a: Decimal(s) / SCALE
        for a, s in sim.conn.execute(f"SELECT MainAccount, sum(AccountingCurrencyAmount) FROM fno_{GL} GROUP BY 1")
    }
    assert sums == expected and len(sums) > 3
    assert sum(sums.values()) == 0  # every journal entry balances

    ar: dict[str, Decimal] = {}
    async for r in fno.rows(AR, select=["AmountMst"]):  # keys (dataAreaId, RecId) always come back
        ar[r["dataAreaId"]] = ar.get(r["dataAreaId"], Decimal(0)) + r["AmountMst"]
    assert ar == {
        c: Decimal(s) / SCALE
        for c, s in sim.conn.execute(f"SELECT dataAreaId, sum(AmountMst) FROM fno_{AR} GROUP BY 1")
    }


# --- partitioned reads ------------------------------------------------------------------------------


async def test_partitioned_by_key_range_equals_one_stream(sim):
    """Parallel reads of disjoint key ranges (lo / hi probed with $orderby + $top=1) return the
    same multiset of rows as one nextLink stream and as SQL: every GL line exactly once."""
    fno = await fno_client(sim)
    parts = await fno.plan_partitions(GL, "SourceKey", 7)
    assert (
        len(parts) == 7 and parts[0].filter.startswith("SourceKey lt ") and parts[-1].filter.startswith("SourceKey ge ")
    )
    select = ["SourceKey", "AccountingCurrencyAmount", "LedgerAccount"]
    single = Counter([tuple(r.values()) async for r in fno.rows(GL, select=select, page_size=400)])
    parallel: Counter = Counter()
    pages = 0
    async for page in fno.partitioned(GL, parts, select=select, page_size=300, concurrency=4):
        pages += 1
        parallel.update(tuple(r.values()) for r in page)
    assert parallel == single
    assert Counter(k for k, *_ in parallel) == sql_keys(sim.conn)
    assert pages >= 7 * 2 and not producers()


async def test_partitioned_by_company_with_a_shared_filter_equals_one_stream(sim):
    """Partitions by legal entity (`dataAreaId eq 'usmf'`, read cross-company) with a filter
    shared by all partitions give exactly the rows of one cross-company stream with that filter."""
    fno = await fno_client(sim)
    payments = odata.compare("TransType", "eq", enum("LedgerTransType", "Payment"))
    parts = company_partitions(["USMF", "DEMF", "usmf"])
    assert [p.filter for p in parts] == ["dataAreaId eq 'usmf'", "dataAreaId eq 'demf'"]
    single = Counter(
        [(r["dataAreaId"], r["RecId"], r["AmountCur"]) async for r in fno.rows(AR, filter=payments, page_size=50)]
    )
    parallel: Counter = Counter()
    async for page in fno.partitioned(AR, parts, filter=payments, page_size=20):
        parallel.update((r["dataAreaId"], r["RecId"], r["AmountCur"]) for r in page)
    assert parallel == single
    assert sum(single.values()) == sim.conn.execute(f"SELECT count(*) FROM fno_{AR} WHERE TransType = 15").fetchone()[0]


async def test_partitioned_read_is_backpressured(sim):
    """Memory stays flat: while the caller sits on its first page, readers stop once the
    bounded queue is full — at most consumed + queued + one held page per reader are fetched,
    not the 50 pages of the whole set."""
    fno = await fno_client(sim)
    lo, hi = gl_bounds(sim.conn)
    stream = fno.partitioned(
        GL,
        key_range_partitions("SourceKey", lo, hi, 3),
        select=["SourceKey"],
        page_size=100,
        concurrency=3,
        queue_pages=2,
    )
    async with contextlib.aclosing(stream):
        async for _first in stream:
            await asyncio.sleep(0.4)
            fetched = len(await fno_requests(sim))
            await asyncio.sleep(0.2)
            assert len(await fno_requests(sim)) == fetched  # the readers are parked, not reading on
            assert fetched <= 1 + 2 + 3
            break
    assert not producers()


@pytest.mark.parametrize("close", ["aclosing", "abandoned"])
async def test_consumer_stopping_early_cancels_the_readers(sim, close):
    """A caller that stops after two pages leaves no reader running and no error behind: with
    `contextlib.aclosing` at once, with a plain `break` once the loop finalises the generator.
    The request log stops growing."""
    errors: list[dict] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))
    fno = await fno_client(sim)
    lo, hi = gl_bounds(sim.conn)
    parts = key_range_partitions("SourceKey", lo, hi, 6)

    async def consume_two() -> int:
        n = 0
        stream = fno.partitioned(GL, parts, page_size=50, concurrency=6)
        if close == "aclosing":
            async with contextlib.aclosing(stream):
                async for _page in stream:
                    n += 1
                    if n == 2:
                        break
            assert not producers()
        else:
            async for _page in stream:
                n += 1
                if n == 2:
                    break
        return n

    assert await consume_two() == 2
    for _ in range(100):
        if not producers():
            break
        await asyncio.sleep(0.01)
    assert not producers()
    seen = len(await fno_requests(sim))
    await asyncio.sleep(0.2)
    assert len(await fno_requests(sim)) == seen < 5000 // 50
    assert all(e["status"] == 200 for e in await fno_requests(sim))
    assert errors == []


async def test_a_failing_partition_raises_and_cancels_the_others(sim):
    """The first failure of any partition reaches the caller as the service's error, and the
    other readers are cancelled rather than left running."""
    fno = await fno_client(sim)
    lo, hi = gl_bounds(sim.conn)
    parts = key_range_partitions("SourceKey", lo, hi, 4) + [Partition("NoSuchField eq 1", "bad")]
    with pytest.raises(BadRequest, match="NoSuchField"):
        async for _page in fno.partitioned(GL, parts, page_size=50, concurrency=5):
            pass
    assert not producers()


async def test_throttling_during_a_partitioned_read_loses_nothing(sim):
    """Service protection: 30 % of requests answered 429 (Retry-After 0) during a partitioned
    read; every throttled page is fetched again and every GL line arrives exactly once."""
    await sim.admin("PUT", "faults", json={"throttle_rate": 0.3, "retry_after": 0, "seed": 7, "path_contains": FNO})
    fno = await fno_client(sim)
    lo, hi = gl_bounds(sim.conn)
    got: Counter = Counter()
    async for page in fno.partitioned(
        GL, key_range_partitions("SourceKey", lo, hi, 6), select=["SourceKey"], page_size=200, concurrency=6
    ):
        got.update(r["SourceKey"] for r in page)
    assert got == sql_keys(sim.conn)
    throttled = [e for e in await fno_requests(sim) if e["status"] == 429]
    assert fno.transport.stats.throttled == len(throttled) > 5


# --- read-only ---------------------------------------------------------------------------------


async def test_verification_reads_are_read_only_by_construction(sim):
    """Verification never writes: the client has no write method, its transport is read-only
    and refuses a write before sending it, and the simulator's log shows only GETs."""
    fno = await fno_client(sim)
    assert fno.read_only
    public = {n for n in dir(fno) if not n.startswith("_")}
    assert public == {"count", "first", "pages", "partitioned", "plan_partitions", "read_only", "rows", "transport"}
    await fno.count(GL)
    lo, hi = gl_bounds(sim.conn)
    async for _ in fno.partitioned(GL, key_range_partitions("SourceKey", lo, hi, 3), page_size=1000):
        pass
    before = await sim.log()
    for method in ("POST", "PATCH", "PUT", "DELETE"):
        with pytest.raises(ReadOnlyViolation, match="read-only"):
            await fno.transport.request(method, f"{MILESTONES}", content=odata.dumps({"TransStatus": 4}))
    after = await sim.log()
    assert after == before
    assert {e["method"] for e in after if e["path"].startswith(FNO)} == {"GET"}


# --- planners ------------------------------------------------------------------------------------


def test_key_range_partitions_are_contiguous_disjoint_and_covering():
    """Key ranges: first open below, last open above, neighbours share a bound; never more
    partitions than keys; closed ends when asked cover exactly [lo, hi]."""
    parts = key_range_partitions("SourceKey", 100, 199, 4)
    assert [p.filter for p in parts] == [
        "SourceKey lt 125",
        "(SourceKey ge 125) and (SourceKey lt 150)",
        "(SourceKey ge 150) and (SourceKey lt 175)",
        "SourceKey ge 175",
    ]
    assert len(key_range_partitions("SourceKey", 5, 7, 10)) == 3
    assert key_range_partitions("SourceKey", 5, 5, 3) == [Partition(None, "SourceKey [5, 6)")]
    closed = key_range_partitions("RecId", 1, 10, 2, open_ends=False)
    assert [p.filter for p in closed] == ["(RecId ge 1) and (RecId lt 6)", "(RecId ge 6) and (RecId le 10)"]
    with pytest.raises(TypeError, match="integer"):
        key_range_partitions("Voucher", "A", "Z", 2)
    with pytest.raises(ValueError, match=r"empty key range: hi \(1\) is below lo \(10\)"):
        key_range_partitions("SourceKey", 10, 1, 2)
    with pytest.raises(ValueError, match="not an OData property name"):
        key_range_partitions("Source Key or 1 eq 1", 1, 10, 2)


def test_date_partitions_split_whole_days_and_seconds():
    """Dates split on whole days (never more partitions than days), datetimes on seconds; an
    Edm.Date property gets bare dates."""
    days = date_partitions("TransDate", dt.date(2026, 1, 1), dt.date(2026, 1, 3), 5)
    assert [p.filter for p in days] == [
        "(TransDate ge 2026-01-01T00:00:00Z) and (TransDate lt 2026-01-02T00:00:00Z)",
        "(TransDate ge 2026-01-02T00:00:00Z) and (TransDate lt 2026-01-03T00:00:00Z)",
    ]
    assert (
        date_partitions("D", dt.date(2026, 1, 1), dt.date(2026, 1, 2), 1, edm_date=True)[0].filter
        == "(D ge 2026-01-01) and (D lt 2026-01-02)"
    )
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    secs = date_partitions("At", t0, t0 + dt.timedelta(hours=1), 4, open_ends=True)
    assert secs[0].filter == "At lt 2026-01-01T00:15:00Z" and secs[-1].filter == "At ge 2026-01-01T00:45:00Z"
    with pytest.raises(ValueError, match="empty date range"):
        date_partitions("TransDate", dt.date(2026, 1, 2), dt.date(2026, 1, 1), 2)


# --- over a real socket ------------------------------------------------------------------------------


@pytest.mark.socket
async def test_partitioned_read_over_a_real_socket(socket_sim):
    """Over a loopback socket (uvicorn, as on the night), a planned 5-way partitioned read
    returns every GL line exactly once with the same exact amounts as the database."""
    fno = await fno_client(socket_sim)
    parts = await fno.plan_partitions(GL, "SourceKey", 5)
    got: Counter = Counter()
    async for page in fno.partitioned(GL, parts, select=["SourceKey", "AccountingCurrencyAmount"], page_size=500):
        got.update((r["SourceKey"], r["AccountingCurrencyAmount"]) for r in page)
    conn = sqlite3.connect(socket_sim.db)
    try:
        expected = Counter(
            (k, Decimal(a) / SCALE)
            for k, a in conn.execute(f"SELECT SourceKey, AccountingCurrencyAmount FROM fno_{GL}")
        )
    finally:
        conn.close()
    assert got == expected and sum(got.values()) == 5000
