"""The one error path's face: message, where and fix of a :class:`cutover.errors.CutoverError`.

Every worker of the TUI reports its failure here (``CutoverApp.on_worker_state_changed``); an
error that is not a CutoverError is a bug of the tool and says so, with the traceback written
to ``<workspace>/logs/``. ``c`` copies the text (OSC 52), so it can be pasted into a ticket.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Static

from cutover.errors import CutoverError

from .base import Modal


@dataclass(frozen=True)
class ErrorReport:
    title: str
    message: str
    where: str | None = None
    fix: str | None = None
    log: str | None = None

    @classmethod
    def of(cls, error: BaseException, *, log: str | None = None) -> ErrorReport:
        if isinstance(error, CutoverError):
            return cls(type(error).__name__, error.message, error.where, error.fix)
        return cls(
            "Internal error",
            f"{type(error).__name__}: {error}",
            None,
            "this is a bug in the tool; the journal holds everything done so far — send the log",
            log,
        )

    def text(self) -> str:
        lines = [f"{self.title}: {self.message}"]
        if self.where:
            lines.append(f"Where: {self.where}")
        if self.fix:
            lines.append(f"Fix: {self.fix}")
        if self.log:
            lines.append(f"Details: {self.log}")
        return "\n".join(lines)


class ErrorModal(Modal[None]):
    BINDINGS = [Binding("c", "copy", "Copy the error", id="error.copy")]

    def __init__(self, report: ErrorReport):
        super().__init__(classes="danger error")
        self.report = report

    def compose(self) -> ComposeResult:
        r = self.report
        with Vertical(classes="modal-body tall") as body:
            body.border_title = r.title
            with VerticalScroll(classes="modal-scroll"):
                yield Static(r.message, markup=False, id="error-message", classes="modal-message")
                if r.where:
                    yield Static(f"Where: {r.where}", markup=False, id="error-where")
                if r.fix:
                    yield Static(f"Fix: {r.fix}", markup=False, id="error-fix")
                if r.log:
                    yield Static(f"Details: {r.log}", markup=False, id="error-log")
            with Horizontal(classes="modal-buttons"):
                yield Button("Close", id="close", variant="primary", compact=True)
                yield Button("Copy (c)", id="copy", compact=True)

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.report.text())
        self.notify("error text copied (OSC 52)")

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#copy")
    def _copy(self) -> None:
        self.action_copy()
