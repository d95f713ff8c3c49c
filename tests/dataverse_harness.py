"""Building Dataverse clients and milestone records against the simulator, for the client tests
(test_dataverse_client, test_bulk). Tokens come from the simulator's own token endpoint."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from decimal import Decimal

from cutover.dataverse import DataverseClient
from cutover.domain import deterministic_id
from cutover.tokens import TokenSource
from cutover.transport import Transport
from tests.conftest import DV, WRITER, fixed_price_line

MILESTONES = "msdyn_contractlinescheduleofvalues"
MILESTONE = "msdyn_contractlinescheduleofvalue"
KEY = "msdyn_contractlinescheduleofvalueid"
NS = uuid.UUID("0b7c1f8e-6a51-4c33-9d0e-8f6c2b7a9e11")
READY = 192350001
POOL = [
    WRITER,
    ("cutover-rehearsal-2", "rehearsal-secret-2"),
    ("cutover-rehearsal-3", "rehearsal-secret-3"),
    ("cutover-rehearsal-4", "rehearsal-secret-4"),
]


class HarnessToken(TokenSource):
    """Tokens from the simulator's own token endpoint."""

    def __init__(self, harness, who=WRITER):
        self.harness, self.who = harness, who

    async def token(self, *, force_refresh: bool = False) -> str:
        if force_refresh and self.harness._tokens:
            self.harness._tokens.pop(self.who[0], None)
        return await self.harness.token(*self.who)


async def no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


def transport(h, *, who=WRITER, read_only=False, **kw) -> Transport:
    kw.setdefault("sleep", no_sleep)
    return Transport(
        f"{h.client.base_url}{DV}",
        HarnessToken(h, who),
        environment="rehearsal",
        read_only=read_only,
        client=h.client,
        **kw,
    )


def client(h, *, pool=(WRITER,), read_only=False, **kw) -> DataverseClient:
    chunk = kw.pop("chunk", 250)
    return DataverseClient([transport(h, who=w, read_only=read_only, **kw) for w in pool], chunk=chunk)


def milestone(
    line: dict,
    legacy_id: str,
    *,
    amount: Decimal = Decimal("100.00"),
    status: int = READY,
    name: str | None = None,
    line_id: str | None = None,
) -> dict:
    return {
        KEY: deterministic_id(legacy_id, NS),
        "msdyn_name": name or f"Milestone {legacy_id}",
        "msdyn_amount": amount,
        "msdyn_invoicedate": "2026-10-31",
        "msdyn_invoicestatus": status,
        "msdyn_ContractLineId@odata.bind": f"/salesorderdetails({line_id or line['line_id']})",
    }


def milestones(conn, n: int, prefix: str = "LEG", lines: int = 6) -> list[dict]:
    fp = [fixed_price_line(conn, i) for i in range(lines)]
    return [milestone(fp[i % lines], f"{prefix}-{i:05d}", amount=Decimal(i) + Decimal("0.25")) for i in range(n)]


def count_rows(db_or_conn, where: str = "1=1") -> tuple[int, int]:
    conn = db_or_conn if isinstance(db_or_conn, sqlite3.Connection) else sqlite3.connect(db_or_conn)
    return conn.execute(f"SELECT count(*), count(DISTINCT {KEY}) FROM dv_{MILESTONES} WHERE {where}").fetchone()


def tm_line(conn) -> str:
    return conn.execute(
        "SELECT salesorderdetailid FROM dv_salesorderdetails WHERE msdyn_billingmethod = 192350000 LIMIT 1"
    ).fetchone()[0]


def with_bad_records(conn) -> tuple[list[dict], dict[int, tuple[int, str, str]]]:
    """100 milestones, three of them wrong in the ways people get them wrong."""
    records = milestones(conn, 100, prefix="BAD")
    records[13]["msdyn_invoicestatus"] = 7  # not an option value
    records[57]["msdyn_ContractLineId@odata.bind"] = f"/salesorderdetails({uuid.uuid4()})"  # no such line
    records[88]["msdyn_ContractLineId@odata.bind"] = f"/salesorderdetails({tm_line(conn)})"  # time & material line
    expected = {
        13: (400, "0x80040203", "outside the valid range"),
        57: (404, "0x80040217", "Does Not Exist"),
        88: (400, "0x80040203", "fixed price"),
    }
    return records, expected


def check_bad_records(result, records, expected) -> None:
    assert len(result.succeeded) == 97 and result.total == 100
    assert [f.index for f in result.failures] == sorted(expected)
    for f in result.failures:
        status, code, text = expected[f.index]
        assert (f.status, f.code, f.key) == (status, code, records[f.index][KEY])
        assert text in f.message
        assert f"record {f.index} ({MILESTONE} {records[f.index][KEY]}): {status} {code}" in str(f)
    assert set(result.succeeded) == {r[KEY] for i, r in enumerate(records) if i not in expected}


async def writes(h, since: int = 0) -> list[dict]:
    """Every request of the simulator's log that could change data (anything but GET)."""
    return [e for e in await h.log(since) if e["method"] != "GET"]
