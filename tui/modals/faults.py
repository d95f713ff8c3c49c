"""Rehearsal aids: perform manual steps in the simulator, and mistakes to make on purpose.

``ModalScreen[RehearsalChoice | None]``. The faults are the core's (:data:`cutover.rehearsal.FAULTS`,
less the crash faults: to rehearse a crash, quit in the middle of a step). Setting faults
(throttling, asynchronous invoice integration) are applied to the simulator when the next run
starts and stay in that world; the others change what the tool performs for a manual step.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, SelectionList, Static
from textual.widgets.selection_list import Selection

from ..widgets.tick import Tick
from .base import Modal


@dataclass(frozen=True)
class RehearsalChoice:
    perform_in_simulator: bool
    faults: tuple[str, ...]


class FaultsModal(Modal[RehearsalChoice | None]):
    ESCAPE_RESULT = None

    def __init__(self, offered: dict[str, str], chosen: RehearsalChoice):
        super().__init__(classes="faults")
        self.offered = offered
        self.chosen = chosen

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-body wide tall") as body:
            body.border_title = "Rehearsal"
            yield Tick(
                "Perform manual steps in the simulator (you still attest them)",
                value=self.chosen.perform_in_simulator,
                id="perform",
                compact=True,
            )
            yield Static("Faults (space toggles; applied when the next run starts):", markup=False)
            yield SelectionList[str](
                *(
                    Selection(f"{name} — {what}", name, name in self.chosen.faults)
                    for name, what in self.offered.items()
                ),
                id="fault-list",
            )
            with Horizontal(classes="modal-buttons"):
                yield Button("Apply", id="confirm", variant="primary", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    @on(Button.Pressed, "#confirm")
    def _yes(self) -> None:
        perform = self.query_one("#perform", Tick).value
        faults = tuple(self.query_one("#fault-list", SelectionList).selected)
        self.dismiss(RehearsalChoice(perform, faults))

    @on(Button.Pressed, "#cancel")
    def _no(self) -> None:
        self.dismiss(None)
