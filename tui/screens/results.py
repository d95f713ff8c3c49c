"""The verification results: per scenario its outcome, the headline figures, and drill-down.

Opened after the runbook's ``verify`` step, or on demand (``v`` on the runbook screen) for the
newest evidence pack of the environment. The list can be filtered by outcome (``o``: all,
failed, not verified, passed) and sorted (``t``: run order, worst first, by name); Enter (or
``d``) opens a scenario: its message, its figures and its mismatch rows, read from the pack's
``tables/*.csv``. ``a`` goes to the sign-off of the same pack; Escape goes back.

Everything shown is the pack's (:mod:`cutover.report_reader`), read in a worker.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from cutover.report_reader import ReportResults, ScenarioView, TableRows, load_results, load_table

from ..widgets.outcomes import (
    FILTERS,
    SORTS,
    VERDICT_MARKS,
    counts_text,
    figure_value,
    figures_line,
    outcome_text,
    select,
)

BACK = Binding("escape", "back", "Back", id="view.back", tooltip="Back to the screen before")
SIGNOFF = Binding("a", "signoff", "Sign-off", id="run.signoff", tooltip="The evidence pack's sign-off: check and sign")
RESULTS = Binding("v", "results", "Results", id="run.results", tooltip="The verification results of the evidence pack")


def shown_path(screen: Screen, folder: Path) -> str:
    """The pack's folder as the operator types it: relative to the workspace when inside it."""
    workspace = getattr(screen.app, "workspace", None)
    try:
        return str(folder.resolve().relative_to(Path(workspace).resolve())) if workspace else str(folder)
    except ValueError:
        return str(folder)


def _beneath(screen: Screen) -> Screen | None:
    stack = screen.app.screen_stack
    index = stack.index(screen) if screen in stack else -1
    return stack[index - 1] if index > 0 else None


class ResultsScreen(Screen):
    BINDINGS = [
        Binding("o", "filter", "Filter", id="results.filter", tooltip="Show all, failed, not verified or passed"),
        Binding("t", "sort", "Sort", id="results.sort", tooltip="Run order, worst first, or by name"),
        Binding("d", "drill", "Rows", id="results.rows", tooltip="The scenario's message, figures and mismatch rows"),
        SIGNOFF,
        BACK,
    ]

    def __init__(self, report_dir: Path, env: str):
        super().__init__(classes="results")
        self.report_dir = Path(report_dir)
        self.env = env
        self.results: ReportResults | None = None
        self.outcome_filter = "all"
        self.sort = SORTS[0]
        self.shown: list[ScenarioView] = []

    def compose(self) -> ComposeResult:
        yield Static(f"cutover · {self.env} · verification results", id="title", markup=False)
        yield Static("Reading the evidence pack…", id="headline", markup=False)
        table: DataTable = DataTable(id="scenarios", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#scenarios", DataTable)
        table.border_title = "Scenarios"
        table.focus()
        self.app.start_work(self._load(), name="results-load", description=f"read {self.report_dir}")

    async def _load(self) -> None:
        self.results = await asyncio.to_thread(load_results, self.report_dir)
        self._show()

    # --- what is shown -------------------------------------------------------------------------

    def _show(self) -> None:
        r = self.results
        if r is None or self not in self.app.screen_stack:  # the operator left meanwhile
            return
        mark = VERDICT_MARKS.get(r.verdict, "?")
        self.query_one("#title", Static).update(
            f"cutover · {r.environment or self.env} · verification {mark} {r.verdict.upper()} ({counts_text(r.counts)})"
        )
        self.query_one("#headline", Static).update(
            figures_line(r.headline) if r.headline else "No headline figures in this pack."
        )
        self._fill()

    def _fill(self) -> None:
        r = self.results
        if r is None:
            return
        table = self.query_one("#scenarios", DataTable)
        keep = self.selected
        self.shown = select(r.scenarios, self.outcome_filter, self.sort)
        table.clear(columns=True)
        width = max(24, self.app.size.width - 34)
        table.add_column("#", key="index", width=3)
        table.add_column("outcome", key="outcome", width=14)
        table.add_column("scenario", key="scenario", width=width)
        table.add_column("rows", key="rows", width=5)
        for s in self.shown:
            rows = f"{s.mismatch_rows:,}" if s.tables else ""
            table.add_row(str(s.index), outcome_text(self.app, s.outcome), Text(s.title), rows, key=str(s.index))
        if keep is not None and keep in self.shown:
            table.move_cursor(row=self.shown.index(keep))
        table.border_subtitle = f"{len(self.shown)} of {len(r.scenarios)} · {self.outcome_filter} · {self.sort}"
        self.query_one("#status", Static).update(
            f"Filter: {self.outcome_filter} (o) · sort: {self.sort} (t) · Enter: mismatch rows · pack {shown_path(self, r.report_dir)}"
        )

    @property
    def selected(self) -> ScenarioView | None:
        if not self.shown:
            return None
        row = self.query_one("#scenarios", DataTable).cursor_row
        return self.shown[row] if 0 <= row < len(self.shown) else None

    # --- actions ---------------------------------------------------------------------------------

    def action_filter(self) -> None:
        names = list(FILTERS)
        self.outcome_filter = names[(names.index(self.outcome_filter) + 1) % len(names)]
        self._fill()

    def action_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self._fill()

    def action_drill(self) -> None:
        scenario = self.selected
        if scenario is not None:
            self.app.push_screen(ScenarioScreen(self.report_dir, scenario, self.env))

    @on(DataTable.RowSelected, "#scenarios")
    def _chosen(self) -> None:
        self.action_drill()

    def action_signoff(self) -> None:
        from .signoff import SignoffScreen

        below = _beneath(self)
        if isinstance(below, SignoffScreen) and below.report_dir == self.report_dir:
            self.app.pop_screen()
        else:
            self.app.push_screen(SignoffScreen(self.report_dir, self.env))

    def action_back(self) -> None:
        if _beneath(self) is not None:
            self.app.pop_screen()


class ScenarioScreen(Screen):
    """One scenario in full: outcome, message, figures and every mismatch table's rows."""

    BINDINGS = [BACK]

    def __init__(self, report_dir: Path, scenario: ScenarioView, env: str):
        super().__init__(classes="scenario")
        self.report_dir = Path(report_dir)
        self.scenario = scenario
        self.env = env
        self.tables: list[TableRows] = []

    def compose(self) -> ComposeResult:
        s = self.scenario
        yield Static(f"cutover · {self.env} · scenario {s.index}: {s.scenario}", id="title", markup=False)
        with VerticalScroll(id="scenario-body"):
            head = Text()
            head.append_text(outcome_text(self.app, s.outcome))
            head.append(f"  {s.title}\n", style="bold")
            head.append(f"Feature: {s.feature}" + (f"  ·  tags: {' '.join('@' + t for t in s.tags)}" if s.tags else ""))
            yield Static(head, id="scenario-head")
            if s.message and s.outcome != "passed":
                yield Static(s.message, id="scenario-message", markup=False)
            if s.figures:
                lines = "\n".join(f"  {k}: {figure_value(v)}" for k, v in s.figures.items())
                yield Static("Figures:\n" + lines, id="scenario-figures", markup=False)
            if not s.tables:
                yield Static("No mismatch rows: this scenario wrote no table.", classes="modal-note", markup=False)
            for number, t in enumerate(s.tables):
                yield Static(f"{t.title} — {t.total_rows:,} row(s) — {t.csv}", classes="table-title", markup=False)
                table: DataTable = DataTable(id=f"mismatch-{number}", classes="mismatch", zebra_stripes=True)
                yield table
        yield Static("Tab moves between the tables; Escape goes back.", id="status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#scenario-body").focus()  # from the top: outcome and message first; Tab to the rows
        if self.scenario.tables:
            self.app.start_work(self._load(), name="results-rows", description=f"read {self.scenario.title}")

    async def _load(self) -> None:
        for number, t in enumerate(self.scenario.tables):
            rows = await asyncio.to_thread(load_table, self.report_dir, t)
            self.tables.append(rows)
            if self not in self.app.screen_stack:  # the operator left meanwhile
                return
            table = self.query_one(f"#mismatch-{number}", DataTable)
            table.add_columns(*rows.columns)
            table.add_rows(rows.rows)
            if rows.total_rows > len(rows.rows):
                table.border_subtitle = f"first {len(rows.rows):,} of {rows.total_rows:,}: the CSV holds every row"

    def action_back(self) -> None:
        self.app.pop_screen()
