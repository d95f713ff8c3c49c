"""A manual step: the exact click path, the operator's name and an explicit confirmation.

``ModalScreen[Attestation | None]``: an :class:`~cutover.runbook.operator.Attestation` with the
name typed and the statement confirmed, or ``None`` ("not now": the run stops at this step and
resumes there). No name, or the box not ticked, attests nothing.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Static

from cutover.runbook.model import Kind, Step
from cutover.runbook.operator import Attestation

from ..widgets.step_detail import click_path_text
from ..widgets.tick import Tick
from .base import Modal


def statement_of(step: Step) -> str:
    if step.kind is Kind.ATTEST:
        return f"I confirm: {step.title}"
    return f"I did it, as the click path says: {step.title}"


def tick_label(step: Step) -> str:
    return "I confirm this is true" if step.kind is Kind.ATTEST else "I did this step, as the click path says"


class AttestModal(Modal[Attestation | None]):
    ESCAPE_RESULT = None

    def __init__(self, step: Step, *, name: str = "", performed: bool = False):
        super().__init__(classes="attest")
        self.step = step
        self.default_name = name
        self.performed = performed

    def compose(self) -> ComposeResult:
        step = self.step
        with Vertical(classes="modal-body tall") as body:
            body.border_title = f"{'Attest' if step.kind is Kind.ATTEST else 'Manual step'}: {step.id}"
            with VerticalScroll(classes="modal-scroll"):
                yield Static(step.title, classes="modal-heading", markup=False)
                if step.what:
                    yield Static(step.what, markup=False)
                if step.click_path:
                    yield Static(click_path_text(step.click_path), id="click-path")
                if step.done_when:
                    yield Static(f"Done when: {step.done_when}", markup=False)
                if self.performed:
                    yield Static(
                        "Rehearsal: the tool has just performed this step in the simulator.",
                        classes="modal-note",
                        markup=False,
                    )
            yield Input(value=self.default_name, placeholder="your name (recorded in the journal)", id="attest-name")
            yield Tick(tick_label(step), id="attest-confirm", compact=True)
            yield Static("", id="attest-problem", classes="modal-problem", markup=False)
            with Horizontal(classes="modal-buttons"):
                yield Button("Attest", id="confirm", variant="primary", compact=True)
                yield Button("Not now", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#attest-name", Input).focus()

    def _submit(self) -> None:
        name = self.query_one("#attest-name", Input).value.strip()
        confirmed = self.query_one("#attest-confirm", Tick).value
        problem = self.query_one("#attest-problem", Static)
        if not name:
            problem.update("type your name: the journal records who attested")
            self.query_one("#attest-name", Input).focus()
            return
        if not confirmed:
            problem.update("tick the statement (space) to confirm it")
            self.query_one("#attest-confirm", Tick).focus()
            return
        self.dismiss(Attestation(name, statement_of(self.step)))

    @on(Input.Submitted, "#attest-name")
    def _name_entered(self) -> None:
        if self.query_one("#attest-confirm", Tick).value:
            self._submit()
        else:
            self.query_one("#attest-confirm", Tick).focus()

    @on(Button.Pressed, "#confirm")
    def _yes(self) -> None:
        self._submit()

    @on(Button.Pressed, "#cancel")
    def _no(self) -> None:
        self.dismiss(None)
