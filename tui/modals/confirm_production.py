"""Production: before a step that writes, the operator types the environment's name again."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Static

from cutover.runbook.model import Step

from .base import Modal


class ConfirmProductionModal(Modal[bool]):
    """``True`` only when the typed name equals the environment's name exactly."""

    ESCAPE_RESULT = False

    def __init__(self, step: Step, environment: str):
        super().__init__(classes="danger confirm-production")
        self.step = step
        self.environment = environment

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-body") as body:
            body.border_title = "PRODUCTION write"
            yield Static(
                f"{self.step.id}: {self.step.title}\n\n"
                f"This step writes to the PRODUCTION environment '{self.environment}'.\n"
                "Type the environment's name to go on; Escape stops here (the run resumes at this step).",
                markup=False,
                classes="modal-message",
            )
            yield Input(placeholder=self.environment, id="environment-name")
            yield Static("", id="mismatch", classes="modal-problem", markup=False)
            with Horizontal(classes="modal-buttons"):
                yield Button("Write to production", id="confirm", variant="error", compact=True)
                yield Button("Stop here", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def _check(self) -> None:
        typed = self.query_one(Input).value
        if typed == self.environment:
            self.dismiss(True)
        else:
            self.query_one("#mismatch", Static).update(
                f"'{typed}' is not '{self.environment}': nothing was written" if typed else "type the name first"
            )

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self._check()

    @on(Button.Pressed, "#confirm")
    def _yes(self) -> None:
        self._check()

    @on(Button.Pressed, "#cancel")
    def _no(self) -> None:
        self.dismiss(False)
