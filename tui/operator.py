"""The TUI's :class:`cutover.runbook.operator.Operator`: every question of the engine is a modal.

The engine runs in a worker; when it asks, the worker waits on a modal screen
(``App.push_screen_wait``) while the rest of the interface keeps drawing. An answer of ``None``
or ``False`` stops the run at that step without failing it — it resumes there next time, which
is exactly what "Not now" means to the operator.

The name typed into an attestation is remembered for the next one (the same person usually
does the whole night), never guessed from the login.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cutover.runbook.model import Evidence, Step
from cutover.runbook.operator import Attestation

from .modals.attest import AttestModal
from .modals.confirm import ConfirmModal
from .modals.confirm_production import ConfirmProductionModal
from .modals.name import AcknowledgeModal

if TYPE_CHECKING:
    from textual.app import App


class TuiOperator:
    """Answers the engine's questions with modal screens."""

    def __init__(self, app: App, *, rehearsal: bool = False, performed_in_simulator: bool = False):
        self.app = app
        self.rehearsal = rehearsal
        self.performed = performed_in_simulator
        self.last_name = ""

    async def attest(self, step: Step, evidence: Evidence | None) -> Attestation | None:
        performed = self.performed and step.rehearse is not None
        result = await self.app.push_screen_wait(AttestModal(step, name=self.last_name, performed=performed))
        if result is not None:
            self.last_name = result.name
        return result

    async def confirm_production(self, step: Step, environment: str) -> bool:
        return bool(await self.app.push_screen_wait(ConfirmProductionModal(step, environment)))

    async def confirm_point_of_no_return(self, step: Step) -> bool:
        return bool(
            await self.app.push_screen_wait(
                ConfirmModal(
                    "Point of no return",
                    f"{step.title}\n\n{step.what}\n\nThis cannot be undone. Go on?",
                    confirm="Yes, go on",
                    cancel="No, stop here",
                    danger=True,
                    purpose="point-of-no-return",
                )
            )
        )

    async def acknowledge_not_verified(self, step: Step, evidence: Evidence) -> str | None:
        name = await self.app.push_screen_wait(AcknowledgeModal(step, evidence, name=self.last_name))
        if name:
            self.last_name = name
        return name or None
