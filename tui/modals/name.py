"""Production: evidence that cannot be read is accepted by a named person, or the run stops."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Static

from cutover.runbook.model import Evidence, Step

from .base import Modal


class AcknowledgeModal(Modal[str | None]):
    """The name of who accepts unreadable evidence, or ``None`` (the run stops at this step)."""

    ESCAPE_RESULT = None

    def __init__(self, step: Step, evidence: Evidence, *, name: str = ""):
        super().__init__(classes="acknowledge")
        self.step = step
        self.evidence = evidence
        self.default_name = name

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-body") as body:
            body.border_title = f"Not verified: {self.step.id}"
            yield Static(
                f"{self.step.title}\n\nThe evidence cannot be read here: {self.evidence.summary}\n\n"
                "Type your name to accept going on without it (recorded in the journal).",
                markup=False,
                classes="modal-message",
            )
            yield Input(value=self.default_name, placeholder="your name", id="ack-name")
            with Horizontal(classes="modal-buttons"):
                yield Button("Accept", id="confirm", variant="warning", compact=True)
                yield Button("Stop here", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def _submit(self) -> None:
        name = self.query_one(Input).value.strip()
        if name:
            self.dismiss(name)

    @on(Input.Submitted)
    def _entered(self) -> None:
        self._submit()

    @on(Button.Pressed, "#confirm")
    def _yes(self) -> None:
        self._submit()

    @on(Button.Pressed, "#cancel")
    def _no(self) -> None:
        self.dismiss(None)
