"""The numbers behind a scenario: what each step read and found, for the evidence pack.

A step asks for the ``evidence`` fixture and records figures (counts, totals, tolerances) and
tables (the rows behind a finding, or the comparison itself). The plugin writes them to
``results.json`` and each table to CSV in the report folder; :mod:`cutover.evidence` renders
them in ``report.html``. Money stays exact: Decimals are written as text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import polars as pl

PREVIEW_ROWS = 50


def money(value: Any) -> str:
    """An amount as people read it: thousands separated, at least two decimals, never rounded."""
    if value is None:
        return "—"
    d = value if isinstance(value, Decimal) else Decimal(str(value))
    if d == d.quantize(Decimal("0.01")):
        return f"{d:,.2f}"
    return f"{d.normalize():,f}"


def signed(value: Any) -> str:
    text = money(value)
    return f"+{text}" if value is not None and Decimal(str(value)) > 0 else text


def plain(value: Any) -> Any:
    """A value as JSON can hold it exactly (Decimal and dates as text)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


@dataclass
class Table:
    name: str
    title: str
    frame: pl.DataFrame

    def preview(self) -> dict[str, Any]:
        head = self.frame.head(PREVIEW_ROWS)
        return {
            "columns": head.columns,
            "rows": [[plain(v) for v in row] for row in head.iter_rows()],
            "total_rows": self.frame.height,
        }


@dataclass
class Recorder:
    """What one scenario recorded."""

    figures: dict[str, Any] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)

    def figure(self, name: str, value: Any) -> None:
        self.figures[name] = plain(value)

    def table(self, name: str, frame: pl.DataFrame, title: str) -> None:
        self.tables = [t for t in self.tables if t.name != name]
        self.tables.append(Table(name, title, frame))


def row_list(lines: list[str], total: int, limit: int = 10) -> str:
    """``lines`` joined for a message, the first ``limit`` of ``total``."""
    shown = "; ".join(lines[:limit])
    more = f"; and {total - limit:,} more (see the table in the report)" if total > limit else ""
    return shown + more
