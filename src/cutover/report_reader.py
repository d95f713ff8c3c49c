"""Reading an evidence pack back as data: what a verification found, for a screen to show.

:func:`load_results` ``(report_dir) -> ReportResults`` reads ``results.json`` (the validation
suite's) and ``run.json`` (:mod:`cutover.evidence`'s) of a report folder: the verdict, the
counts per outcome, the headline figures, and per scenario its outcome, message, figures and
mismatch tables (the first rows, and the CSV in ``tables/`` that holds every row).
:func:`load_table` reads such a CSV whole (up to a limit). :func:`latest_report` finds the
newest report folder of an environment, as the runbook's ``verify`` and ``signoff`` steps do.

Nothing here judges: the verdict and outcomes are the ones the verification wrote. A pack that
cannot be read is an :class:`~cutover.errors.InputError` naming the file. Stdlib only.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .errors import InputError
from .evidence import _HEADLINE_KEYS, RUN_FILE
from .verification import ERROR, FAILED, NOT_VERIFIED, PASSED, RESULTS_FILE, SKIPPED

__all__ = [
    "OUTCOMES",
    "MismatchTable",
    "ReportResults",
    "ScenarioView",
    "TableRows",
    "latest_report",
    "load_results",
    "load_table",
]

#: Outcomes, worst first.
OUTCOMES: tuple[str, ...] = (ERROR, FAILED, NOT_VERIFIED, SKIPPED, PASSED)
TABLE_LIMIT = 10_000


@dataclass(frozen=True)
class MismatchTable:
    """One mismatch table of a scenario: its first rows, and the CSV with all of them."""

    name: str
    title: str
    csv: str  # path inside the report folder ("tables/…/x.csv")
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]  # the first rows (as results.json holds them)
    total_rows: int


@dataclass(frozen=True)
class ScenarioView:
    index: int
    feature: str
    scenario: str
    outcome: str
    message: str = ""
    tags: tuple[str, ...] = ()
    example: dict[str, str] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    tables: tuple[MismatchTable, ...] = ()

    @property
    def title(self) -> str:
        example = ", ".join(f"{k} {v}" for k, v in self.example.items())
        return f"{self.scenario} ({example})" if example else self.scenario

    @property
    def mismatch_rows(self) -> int:
        return sum(t.total_rows for t in self.tables)


@dataclass(frozen=True)
class ReportResults:
    """What the verification in ``report_dir`` found."""

    report_dir: Path
    environment: str
    verdict: str  # passed, failed, incomplete, error
    exit_code: int | None
    finished_utc: str
    counts: dict[str, int]
    headline: dict[str, Any]
    scenarios: tuple[ScenarioView, ...]

    def scenario(self, index: int) -> ScenarioView:
        for s in self.scenarios:
            if s.index == index:
                return s
        raise KeyError(index)


@dataclass(frozen=True)
class TableRows:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    total_rows: int  # rows in the CSV (more than ``rows`` when the limit cut it)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"{path.name} is missing: this is not a complete evidence pack",
            where=str(path),
            fix="open a folder `cutover verify` wrote",
        ) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path.name} cannot be read: {exc}", where=str(path)) from None
    if not isinstance(data, dict):
        raise InputError(f"{path.name} is not a report file of this tool", where=str(path))
    return data


def _table(t: dict[str, Any]) -> MismatchTable:
    rows = tuple(tuple(r) for r in t.get("rows") or ())
    return MismatchTable(
        name=str(t.get("name") or ""),
        title=str(t.get("title") or t.get("name") or ""),
        csv=str(t.get("csv") or ""),
        columns=tuple(str(c) for c in t.get("columns") or ()),
        rows=rows,
        total_rows=int(t.get("total_rows") or len(rows)),
    )


def load_results(report_dir: str | Path) -> ReportResults:
    """The verification in ``report_dir`` as data (module docstring)."""
    folder = Path(report_dir)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a report folder", fix="give the folder `cutover verify` wrote")
    results = _read_json(folder / RESULTS_FILE)
    run = _read_json(folder / RUN_FILE)
    scenarios = []
    for number, s in enumerate(results.get("scenarios") or (), start=1):
        scenarios.append(
            ScenarioView(
                index=int(s.get("index") or number),
                feature=str(s.get("feature") or ""),
                scenario=str(s.get("scenario") or ""),
                outcome=str(s.get("outcome") or ERROR),
                message=str(s.get("message") or ""),
                tags=tuple(s.get("tags") or ()),
                example=dict(s.get("example") or {}),
                figures=dict(s.get("figures") or {}),
                tables=tuple(_table(t) for t in s.get("tables") or ()),
            )
        )
    counts = {k: 0 for k in (PASSED, FAILED, NOT_VERIFIED, ERROR, SKIPPED)}
    for s in scenarios:
        counts[s.outcome] = counts.get(s.outcome, 0) + 1
    found: dict[str, Any] = {}
    for s in scenarios:
        for key, value in s.figures.items():
            if key in _HEADLINE_KEYS and key not in found:
                found[key] = value
    headline = {key: found[key] for key in _HEADLINE_KEYS if key in found}
    return ReportResults(
        report_dir=folder,
        environment=str(run.get("environment") or ""),
        verdict=str(run.get("verdict") or ERROR),
        exit_code=run.get("exit_code"),
        finished_utc=str(run.get("finished_utc") or ""),
        counts=counts,
        headline=headline,
        scenarios=tuple(scenarios),
    )


def load_table(report_dir: str | Path, table: MismatchTable, *, limit: int = TABLE_LIMIT) -> TableRows:
    """Every row of ``table``'s CSV (up to ``limit``); its first rows when there is no CSV."""
    folder = Path(report_dir).resolve()
    path = (folder / table.csv).resolve() if table.csv else None
    if path is None or not path.is_relative_to(folder) or not path.is_file():
        rows = tuple(tuple("" if v is None else str(v) for v in r) for r in table.rows)
        return TableRows(table.columns, rows, table.total_rows)
    out: list[tuple[str, ...]] = []
    total = 0
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            columns = tuple(next(reader, ()))
            for row in reader:
                total += 1
                if len(out) < limit:
                    out.append(tuple(row))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"the table {table.csv} cannot be read: {exc}", where=str(path)) from None
    return TableRows(columns or table.columns, tuple(out), total)


def latest_report(workspace: str | Path, env: str) -> Path | None:
    """The newest report folder of ``env`` under ``<workspace>/reports/`` (None if there is none)."""
    from .runbook.verify_steps import latest_report as newest

    return newest(SimpleNamespace(state={}, workspace=Path(workspace), env=env))  # type: ignore[arg-type]
