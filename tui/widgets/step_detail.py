"""One step in full: what it does, when it is done, the exact click path, its gate, its checks
and their results, its progress, and its lines of the journal.

Everything shown is the step's own data (:class:`cutover.runbook.model.Step`) or what the
journal recorded; the widget decides nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import ProgressBar, Static

from .present import STATES, figures_text, journal_line

CHECK_KINDS = {"check.passed": "✓", "check.failed": "✗", "check.not-verified": "?"}


def click_path_text(click_path: Sequence[str]) -> Text:
    text = Text("Click path:\n", style="bold")
    for number, part in enumerate(click_path, 1):
        text.append(f"  {number}. {part}\n")
    text.rstrip()
    return text


class ProgressPanel(Vertical):
    """Rows done of total, rate, ETA, throttles and failures of the running step."""

    def compose(self) -> ComposeResult:
        yield ProgressBar(total=100, show_eta=False, id="progress-bar")
        yield Static("", id="progress-figures", markup=False)

    def show(self, figures: Mapping[str, Any] | None) -> None:
        if not figures:
            self.display = False
            return
        self.display = True
        total = max(int(figures.get("total") or 0), 1)
        self.query_one(ProgressBar).update(total=total, progress=int(figures.get("done") or 0))
        self.query_one("#progress-figures", Static).update(figures_text(figures))


class StepDetail(VerticalScroll):
    """The right-hand pane of the runbook screen."""

    def compose(self) -> ComposeResult:
        yield Static("", id="detail-head")
        yield ProgressPanel(id="progress")
        yield Static("", id="detail-body")

    def on_mount(self) -> None:
        self.query_one(ProgressPanel).display = False

    def show(
        self,
        step: Any,
        state: str,
        attested_by: str | None,
        entries: Sequence[Any],
        progress: Mapping[str, Any] | None,
        snapshot: Mapping[str, Any] | None = None,
        *,
        step_number: int = 0,
        total_steps: int = 0,
        note: str | None = None,
    ) -> None:
        symbol, _ = STATES.get(state, ("?", ""))
        head = Text()
        head.append(f"{step_number}/{total_steps} " if step_number else "", style="dim")
        head.append(step.id, style="bold")
        head.append(f"  {step.kind}  ")
        head.append(f"{symbol} {state}", style="bold")
        if attested_by:
            head.append(f" (attested by {attested_by})")
        head.append(f"\n{step.title}", style="bold")
        self.query_one("#detail-head", Static).update(head)
        self.query_one(ProgressPanel).show(progress)

        body = Text()
        if step.point_of_no_return:
            body.append("POINT OF NO RETURN: you are asked once more before it starts.\n", style="bold reverse")
        if step.what:
            body.append(f"{step.what}\n")
        if step.done_when:
            body.append("Done when: ", style="bold").append(f"{step.done_when}\n")
        if step.gate is not None:
            body.append("Gate: ", style="bold").append(f"{step.gate_rule or 'a live check must hold first'}\n")
        if step.depends_on:
            body.append("After: ", style="bold").append(", ".join(step.depends_on) + "\n")
        if step.writes:
            body.append("Writes to the environment.\n", style="italic")
        if step.click_path:
            body.append_text(click_path_text(step.click_path))
            body.append("\n")
        if note:
            body.append(f"{note}\n", style="italic")
        if step.undo:
            body.append("Undo: ", style="bold").append(f"{step.undo}\n")
        if snapshot:
            body.append("Snapshot: ", style="bold").append(
                f"{snapshot['ar_rows']:,} AR rows, {snapshot['gl_rows']:,} GL rows "
                f"({snapshot['legal_entities']}), taken {snapshot['finished_utc']}\n"
            )
            for le, amount in snapshot.get("ar_amount", {}).items():
                body.append(f"  AR {le}: {amount}   GL {le}: {snapshot.get('gl_amount', {}).get(le, '-')}\n")
            if snapshot.get("sha256"):
                body.append(f"  manifest sha256 {snapshot['sha256'][:16]}…\n", style="dim")
        checks = [e for e in entries if e.kind in CHECK_KINDS]
        body.append("Checks:", style="bold")
        if checks:
            body.append("\n")
            for e in checks[-6:]:
                who = f" (accepted by {e.data['acknowledged_by']})" if e.data.get("acknowledged_by") else ""
                body.append(f"  {CHECK_KINDS[e.kind]} {e.data.get('summary', '')}{who}\n")
        else:
            body.append(" none yet\n" if step.check is not None else " this step has no postcondition\n")
        progress_lines = [e for e in entries if e.kind == "step.progress"]
        other = [e for e in entries if e.kind != "step.progress"]
        body.append("Journal:", style="bold")
        if not entries:
            body.append(" nothing yet\n")
        else:
            body.append("\n")
            shown = other[-12:]
            for e in shown:
                body.append(f"  {journal_line(e.at, e.kind, e.actor, e.data)}\n")
            if progress_lines:
                body.append(f"  … {len(progress_lines):,} progress line(s); last: ", style="dim")
                last = progress_lines[-1]
                body.append(journal_line(last.at, last.kind, last.actor, last.data)[9:] + "\n", style="dim")
        body.rstrip()
        self.query_one("#detail-body", Static).update(body)
