"""After the load: read back what Dataverse holds and what reached F&O.

``read_back(session, validated)`` counts the extract's milestones in Dataverse and sums their
amounts per contract line (exact Decimal sums, compared with the extract's), lists legacy ids
that are not there, and — unless F&O refuses the read (401/403: said so, not an error) — counts
how many arrived in ``ProjectContractLineMilestones`` and with which ``TransStatus``. A load done
without the cutover map version shows at once: "arrived as Registered, not Invoiced".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import polars as pl

from ..domain import ProjTransStatus
from ..source.model import MONEY, ValidatedExtract
from ..transport import AuthenticationFailed, PermissionDenied
from .plan import KEY

__all__ = ["ReadBack", "read_back"]

LINE_SCHEMA = {
    "contract_number": pl.String(),
    "contract_line": pl.Int64(),
    "line_id": pl.String(),
    "currency": pl.String(),
    "expected_count": pl.UInt32(),
    "expected_amount": MONEY,
    "found_count": pl.UInt32(),
    "found_amount": MONEY,
}


@dataclass
class ReadBack:
    """What Dataverse and F&O hold of the extract's milestones."""

    lines: pl.DataFrame  # LINE_SCHEMA + ok, one row per contract line of the extract
    expected: int
    found: int
    missing: tuple[str, ...]  # legacy ids not in Dataverse
    fno_statuses: dict[str, int] | None = None  # TransStatus member -> count of our milestones
    fno_missing: int = 0  # our milestones not (yet) in F&O
    fno_reason: str | None = None  # why F&O was not read
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def lines_ok(self) -> int:
        return int(self.lines["ok"].sum()) if self.lines.height else 0

    @property
    def ok(self) -> bool:
        return self.found == self.expected and not self.missing and self.lines_ok == self.lines.height

    @property
    def all_invoiced_in_fno(self) -> bool | None:
        if self.fno_statuses is None:
            return None
        invoiced = self.fno_statuses.get(ProjTransStatus.INVOICED.member, 0)
        return invoiced == self.expected and not self.fno_missing

    def totals(self) -> list[tuple[str, Decimal, Decimal]]:
        """(currency, extract amount, Dataverse amount) per currency."""
        if not self.lines.height:
            return []
        by = self.lines.group_by("currency").agg(pl.col("expected_amount").sum(), pl.col("found_amount").sum())
        return [(c, e or Decimal(0), f or Decimal(0)) for c, e, f in by.sort("currency").iter_rows()]

    def summary(self) -> list[str]:
        amounts = "; ".join(
            f"{c} {_money(e)}" + ("" if e == f else f" ≠ Dataverse {_money(f)}") for c, e, f in self.totals()
        )
        out = [
            f"Dataverse: {self.found:,} of {self.expected:,} milestones; {self.lines_ok:,} of {self.lines.height:,} "
            f"contract lines match in count and amount ({amounts or 'no amounts'})"
        ]
        if self.missing:
            shown = ", ".join(self.missing[:10]) + (" …" if len(self.missing) > 10 else "")
            out.append(f"  missing in Dataverse: {len(self.missing):,} ({shown})")
        if self.fno_statuses is None:
            out.append(f"F&O: not read — {self.fno_reason}")
        else:
            arrived = sum(self.fno_statuses.values())
            by = ", ".join(f"{n:,} {status}" for status, n in sorted(self.fno_statuses.items())) or "none"
            out.append(f"F&O ProjectContractLineMilestones: {arrived:,} of {self.expected:,} arrived ({by})")
            if self.fno_missing:
                out.append(f"  {self.fno_missing:,} not (yet) in F&O — is the milestone map running?")
            invoiced = self.fno_statuses.get(ProjTransStatus.INVOICED.member, 0)
            if arrived and invoiced < arrived:
                others = ", ".join(s for s in self.fno_statuses if s != ProjTransStatus.INVOICED.member)
                out.append(
                    f"  {arrived - invoiced:,} arrived as {others}, not Invoiced: the milestone map did not run the "
                    "cutover version (TRANSSTATUS value map 4 ⇐ 192350001) when they were written"
                )
        return out


def _money(value: Decimal) -> str:
    return f"{value:,.2f}" if value == value.quantize(Decimal("0.01")) else f"{value.normalize():,f}"


async def read_back(session: Any, validated: ValidatedExtract) -> ReadBack:
    """Count and sum the extract's milestones in Dataverse per contract line; where F&O lets us,
    count them in ProjectContractLineMilestones by TransStatus."""
    rows = validated.rows.with_columns(pl.col("milestone_id").str.to_lowercase())
    ids = set(rows["milestone_id"].to_list())
    entity_set = session.profile.entity_set("milestones")
    found_rows = []
    for row in await session.dataverse.query_all(entity_set, select=[KEY, "msdyn_amount"]):
        mid = str(row.get(KEY, "")).lower()
        if mid in ids:
            amount = row.get("msdyn_amount")
            found_rows.append({"milestone_id": mid, "found": Decimal(amount) if amount is not None else None})
    found = pl.DataFrame(found_rows, schema={"milestone_id": pl.String(), "found": MONEY}, orient="row", strict=False)
    joined = rows.join(found, on="milestone_id", how="left").with_columns(
        pl.col("milestone_id").is_in(found["milestone_id"].to_list()).alias("__there")
    )
    lines = (
        joined.group_by("contract_number", "contract_line", "line_id", "currency")
        .agg(
            pl.len().cast(pl.UInt32).alias("expected_count"),
            pl.col("amount").sum().cast(MONEY).alias("expected_amount"),
            pl.col("__there").sum().cast(pl.UInt32).alias("found_count"),
            pl.col("found").sum().cast(MONEY).alias("found_amount"),
        )
        .with_columns(
            (
                (pl.col("expected_count") == pl.col("found_count"))
                & (pl.col("expected_amount") == pl.col("found_amount"))
            ).alias("ok")
        )
        .sort("contract_number", "contract_line")
    )
    missing = tuple(joined.filter(~pl.col("__there"))["legacy_id"].sort().to_list())
    result = ReadBack(lines, rows.height, int(joined["__there"].sum()), missing)

    fno_set = session.profile.entity_set("fno_milestones")
    statuses: dict[str, int] = {}
    seen = 0
    try:
        async for row in session.fno.rows(fno_set, select=["ContractLineMilestoneGuid", "TransStatus"]):
            guid = str(row.get("ContractLineMilestoneGuid") or "").lower()
            if guid in ids:
                seen += 1
                status = row.get("TransStatus")
                name = _status_name(status)
                statuses[name] = statuses.get(name, 0) + 1
    except (AuthenticationFailed, PermissionDenied) as exc:
        result.fno_reason = f"F&O answered {exc.status} ({'sign-in refused' if exc.status == 401 else 'no privilege'})"
        return result
    result.fno_statuses = statuses
    result.fno_missing = rows.height - seen
    return result


def _status_name(value: Any) -> str:
    if isinstance(value, int):
        try:
            return ProjTransStatus(value).member
        except ValueError:
            return str(value)
    text = str(value or "")
    if "'" in text:  # Microsoft.Dynamics.DataEntities.ProjTransStatus'Invoiced'
        text = text.split("'")[1]
    try:
        return ProjTransStatus.from_member(text).member
    except ValueError:
        return text or "(none)"
